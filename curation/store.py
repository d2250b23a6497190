"""The content-addressed image store: one file per stored copy, named by its sha256.

Layout: ``<root>/ab/cd/abcd<...>.jpg`` (two levels of 256 folders keep any folder small at 400k+
images). Writes go to a hidden temp file in the destination folder (created exclusively, mode
0644, named after the sha256, the process id and a counter) and are renamed into place with
``os.replace``, which is atomic on POSIX and Windows: a reader, or a crawl killed with SIGKILL at
any moment, sees either no file or the whole file, never a partial one. Temp files left by a
killed writer start with ``.tmp-`` and are what `fid doctor` may sweep.
"""

from __future__ import annotations

import itertools
import os
import re
import stat
from pathlib import Path

from dataset_db.errors import FidError

TMP_PREFIX = ".tmp-"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EXT = re.compile(r"^[a-z0-9]{1,8}$")
#: folders this process has created or found (``put`` skips their mkdir); bounded by the fan-out
_MADE: set[str] = set()
#: temp file numbers of this process (with the pid, unique among live writers; O_EXCL does the rest)
_TMP_SEQ = itertools.count()
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


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
        folder = os.path.dirname(dest)
        # a folder this call creates cannot hold the file yet: no stat then
        if (folder in _MADE or not _make_folder(folder)) and _same_file_there(dest, len(data)):
            return rel
        fd, tmp = _create_temp(folder, sha256)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
                if _HAS_FCHMOD:  # 0644 whatever the umask or a default ACL made of the mode above
                    os.fchmod(fd, 0o644)
            finally:
                os.close(fd)
            if not _HAS_FCHMOD:
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


_HAS_FCHMOD = hasattr(os, "fchmod")


def _same_file_there(dest: str, size: int) -> bool:
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def _make_folder(folder: str) -> bool:
    """Make ``folder`` (and its parents) and remember it; True when this call created it."""
    try:
        os.mkdir(folder)
        created = True
    except FileExistsError:  # (a file of that name makes the stat or the temp file fail next)
        created = False
    except FileNotFoundError:  # the ab/ level is missing too (or the root)
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        try:
            os.mkdir(folder)
            created = True
        except FileExistsError:
            created = False
    _MADE.add(folder)
    return created


def _create_temp(folder: str, sha256: str) -> tuple[int, str]:
    """Create a new, empty temp file in ``folder`` (exclusively; 0644 before the umask)."""
    pid = os.getpid()
    for _ in range(100):
        tmp = os.path.join(folder, f"{TMP_PREFIX}{sha256[:16]}-{pid}-{next(_TMP_SEQ)}")
        try:
            return os.open(tmp, _TMP_FLAGS, 0o644), tmp
        except FileExistsError:  # left by a killed process that had the same pid
            continue
        except FileNotFoundError:  # the folder was removed after we made it
            _MADE.discard(folder)
            os.makedirs(folder, exist_ok=True)
            _MADE.add(folder)
    raise FileExistsError(f"cannot create a temp file in {folder}: 100 names taken")
