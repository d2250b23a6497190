"""The content-addressed image store: one file per stored copy, named by its sha256.

Layout: ``<root>/ab/cd/abcd<...>.jpg`` (two levels of 256 folders keep any folder small at 400k+
images). Writes go to a hidden temp file in the destination folder and are renamed into place with
``os.replace``, which is atomic on POSIX and Windows: a reader, or a crawl killed with SIGKILL at
any moment, sees either no file or the whole file, never a partial one. Temp files left by a
killed writer start with ``.tmp-`` and are what `fid doctor` may sweep.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from dataset_db.errors import FidError

TMP_PREFIX = ".tmp-"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EXT = re.compile(r"^[a-z0-9]{1,8}$")
#: folders this process has created or found (``put`` skips their mkdir); bounded by the fan-out
_MADE: set[str] = set()


class StoreError(FidError):
    pass


class ImageStore:
    """Files under ``root`` addressed by the sha256 of their bytes. Paths handed out are relative
    to the root (what the catalog's ``Image.store_path`` holds), with forward slashes."""

    def __init__(self, root: str | os.PathLike, fsync: bool = False):
        self.root = Path(root)
        self._root = str(self.root)
        #: also fsync each file and its folder (survives power loss, not just a killed process)
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"ImageStore({str(self.root)!r})"

    def __reduce__(self):  # picklable for process pools
        return (ImageStore, (str(self.root), self.fsync))

    # ---- naming ----------------------------------------------------------------------------

    @staticmethod
    def path_for(sha256: str, ext: str = "jpg", prefix: str = "") -> str:
        """The relative path of the file with this sha256, e.g. ``ab/cd/abcd....jpg``."""
        sha = str(sha256).lower()
        if not _SHA256.match(sha):
            raise StoreError(f"not a sha256 hex digest: {sha256!r}; expected 64 hex characters")
        ext = ext.lower().lstrip(".")
        if not _EXT.match(ext):
            raise StoreError(f"bad file extension {ext!r}; expected 1-8 letters or digits")
        return f"{prefix.strip('/') + '/' if prefix else ''}{sha[:2]}/{sha[2:4]}/{sha}.{ext}"

    def abs_path(self, rel: str) -> Path:
        rel_path = Path(rel)
        if rel_path.is_absolute() or ".." in rel_path.parts:
            raise StoreError(f"store path {rel!r} must be relative to the store and stay inside it")
        return self.root / rel_path

    def exists(self, rel: str) -> bool:
        return self.abs_path(rel).is_file()

    def open(self, rel: str, mode: str = "rb"):
        if "r" not in mode or "+" in mode:
            raise StoreError(f"store files are read-only; got mode {mode!r}, expected 'rb'")
        return self.abs_path(rel).open(mode)

    def read_bytes(self, rel: str) -> bytes:
        return self.abs_path(rel).read_bytes()

    # ---- writing ---------------------------------------------------------------------------

    def put(self, data: bytes, sha256: str, ext: str = "jpg", prefix: str = "") -> str:
        """Store ``data`` (whose sha256 the caller computed) and return its relative path.

        Content-addressed: when the file is already there nothing is written. Never leaves a
        partial file: temp file in the same folder, then an atomic rename.
        """
        rel = self.path_for(sha256, ext, prefix)
        dest = str(self.abs_path(rel)) if prefix else os.path.join(self._root, rel)  # sha/ext validated
        try:
            st = os.stat(dest)
            if stat.S_ISREG(st.st_mode) and st.st_size == len(data):
                return rel
        except FileNotFoundError:
            pass
        folder = os.path.dirname(dest)
        if folder not in _MADE:  # one mkdir per fan-out folder and process, not one per file
            os.makedirs(folder, exist_ok=True)
            _MADE.add(folder)
        try:
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=folder)
        except FileNotFoundError:  # the folder was removed after we made it
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        if self.fsync and hasattr(os, "O_DIRECTORY"):
            dfd = os.open(folder, os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return rel

    def temp_files(self) -> list[Path]:
        """Temp files a killed writer left behind (none after a clean run)."""
        if not self.root.exists():
            return []
        return sorted(self.root.rglob(TMP_PREFIX + "*"))
