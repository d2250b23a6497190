"""The content-addressed image store: one file per stored copy, named by its sha256.

Layout: ``<root>/ab/abcd<...>.jpg``, one level of 256 folders (git's object layout): 1,600 files a
folder at the paper's 415k images, which ext4, XFS, APFS and NTFS index. Stores written before
2026-11-27 used two levels (``ab/cd/abcd<...>.jpg``); a marker file ``.fid-store`` at the root
records the layout, a store without one that already holds ``ab/cd/`` folders keeps two levels, and
the catalog keeps each image's relative path, so old and new stores both read as before. (Two
levels meant a ``mkdir`` for almost every image of a new store: a third of a worker's time per
image in the ingest benchmark.) Writes go to a hidden temp file in the destination folder
(created exclusively, mode 0644, named after the sha256, the process id and a counter) and are
renamed into place with ``os.replace``, which is atomic on POSIX and Windows: a reader, or a crawl
killed with SIGKILL at any moment, sees either no file or the whole file, never a partial one.
Temp files left by a killed writer start with ``.tmp-`` and are what `fid doctor` may sweep.
"""

from __future__ import annotations

import itertools
import os
import re
import stat
from pathlib import Path

from dataset_db.errors import FidError

TMP_PREFIX = ".tmp-"
#: the store's layout marker at its root (not an image; `fid doctor` skips it)
STORE_MARKER = ".fid-store"
#: folder levels of a new store; LEGACY_LEVELS for a store written before the marker existed
DEFAULT_LEVELS = 1
LEGACY_LEVELS = 2
_HEX2 = re.compile(r"^[0-9a-f]{2}$")
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

    def __init__(self, root: str | os.PathLike, fsync: bool = False, levels: int | None = None):
        self.root = Path(root)
        self._root = str(self.root)
        #: also fsync each file and its folder (survives power loss, not just a killed process)
        self.fsync = fsync
        if levels not in (None, 1, 2):
            raise StoreError(f"store folder levels must be 1 or 2; got {levels!r}")
        self._levels = levels
        self._marked = False

    def __repr__(self) -> str:
        return f"ImageStore({str(self.root)!r})"

    def __reduce__(self):  # picklable for process pools
        return (ImageStore, (str(self.root), self.fsync, self._levels))

    @property
    def levels(self) -> int:
        """Folder levels of this store's layout: the marker's, else 2 for a store that already
        holds ``ab/cd/`` folders (written before the marker existed), else 1."""
        if self._levels is None:
            self._levels = read_layout(self._root)
        return self._levels

    # ---- naming ----------------------------------------------------------------------------

    @staticmethod
    def path_for(sha256: str, ext: str = "jpg", prefix: str = "", levels: int = DEFAULT_LEVELS) -> str:
        """The relative path of the file with this sha256 in a store with ``levels`` folder levels,
        e.g. ``ab/abcd....jpg`` (1) or ``ab/cd/abcd....jpg`` (2). :meth:`rel_path` uses the store's own."""
        sha = str(sha256).lower()
        if not _SHA256.match(sha):
            raise StoreError(f"not a sha256 hex digest: {sha256!r}; expected 64 hex characters")
        ext = ext.lower().lstrip(".")
        if not _EXT.match(ext):
            raise StoreError(f"bad file extension {ext!r}; expected 1-8 letters or digits")
        folders = f"{sha[:2]}/{sha[2:4]}/" if levels == 2 else f"{sha[:2]}/"
        return f"{prefix.strip('/') + '/' if prefix else ''}{folders}{sha}.{ext}"

    def rel_path(self, sha256: str, ext: str = "jpg", prefix: str = "") -> str:
        """Where this store keeps (or would keep) the file with this sha256."""
        return self.path_for(sha256, ext, prefix, self.levels)

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
        rel = self.path_for(sha256, ext, prefix, self.levels)
        if not self._marked:
            self._mark()
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

    def _mark(self) -> None:
        """Write the layout marker before the first file (once per process; atomic, so writers
        racing on a new store each write the same whole file)."""
        marker = os.path.join(self._root, STORE_MARKER)
        if not os.path.exists(marker):
            os.makedirs(self._root, exist_ok=True)
            fd, tmp = _create_temp(self._root, "0" * 16)
            try:
                os.write(fd, f"fid image store\nlevels = {self.levels}\n".encode())
                if _HAS_FCHMOD:
                    os.fchmod(fd, 0o644)
            finally:
                os.close(fd)
            os.replace(tmp, marker)
        self._marked = True

    def temp_files(self) -> list[Path]:
        """Temp files a killed writer left behind (none after a clean run)."""
        if not self.root.exists():
            return []
        return sorted(self.root.rglob(TMP_PREFIX + "*"))


_HAS_FCHMOD = hasattr(os, "fchmod")


def read_layout(root: str | os.PathLike) -> int:
    """Folder levels of the store at ``root`` (see :attr:`ImageStore.levels`)."""
    try:
        with open(os.path.join(root, STORE_MARKER), encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return LEGACY_LEVELS if _has_two_levels(root) else DEFAULT_LEVELS
    m = re.search(r"^levels\s*=\s*([12])\s*$", text, re.M)
    if not m:
        raise StoreError(f"cannot read the store layout in {os.path.join(root, STORE_MARKER)}; "
                         "expected a line 'levels = 1' or 'levels = 2'")
    return int(m.group(1))


def _has_two_levels(root: str | os.PathLike) -> bool:
    """Whether an unmarked store holds any ``ab/cd/`` folder (the layout before the marker)."""
    try:
        with os.scandir(root) as it:
            tops = [e.path for e in it if _HEX2.match(e.name) and e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return False
    for top in tops:
        with os.scandir(top) as it:
            for e in it:
                if e.is_dir() and _HEX2.match(e.name):
                    return True
                if e.is_file():  # files directly under ab/: a one-level store
                    return False
    return False


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
