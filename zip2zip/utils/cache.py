"""The cache folder zip2zip writes into, and writing folders there safely.

Converted models, assembled models and extracted corpora live under one root: ``$ZIP2ZIP_CACHE`` if set, else
``$HF_HOME/zip2zip``, else ``$XDG_CACHE_HOME/zip2zip``, else ``~/.cache/zip2zip``. A folder is written in a private
temporary sibling and moved into place with :func:`os.replace`, with a marker file written last, under a file lock
that serialises writers; a writer that was killed leaves its temporary folder, which the next lock holder removes.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and transformers are imported lazily: corpora.py only needs cache_root().
    pass

logger = logging.getLogger(__name__)


# Bump when the converted folder's layout or content changes: old caches are then ignored.
CONVERSION_VERSION = "v1"


# Written last inside the temporary folder: its presence marks a finished conversion.
MARKER_FILENAME = "zip2zip_conversion.json"


def cache_root() -> Path:
    """Return the folder under which zip2zip caches converted models and extracted corpora.

    Not created here; callers create what they write.
    """
    explicit = os.environ.get("ZIP2ZIP_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    hf_home = os.environ.get("HF_HOME")
    if hf_home:
        return Path(hf_home).expanduser() / "zip2zip"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "zip2zip"
    return Path.home() / ".cache" / "zip2zip"


def is_complete(folder: str | os.PathLike[str]) -> bool:
    """True if ``folder`` is a finished conversion of the current format version."""
    marker = Path(folder) / MARKER_FILENAME
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return info.get("version") == CONVERSION_VERSION


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive advisory lock on ``path``; yields True, or False (a no-op) where ``fcntl`` does not exist."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the atomic rename alone keeps the cache consistent
        yield False
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_temporary_folder(target: Path) -> Path:
    """A new private folder beside ``target`` (``.<name>.tmp-XXXX``) to write it in before the final rename."""
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporary folders of ``target`` (:func:`make_temporary_folder`) that killed writers left.

    Only safe while holding ``target``'s :func:`writer_lock`: every writer makes its temporary folder under that
    lock, so none of them can belong to a live writer. Folders of other targets are left alone.
    """
    removed = []
    for path in sorted(target.parent.glob(f".{glob.escape(target.name)}.tmp-*")):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        logger.warning(
            "Removed %d temporary folder(s) that an interrupted run left beside %s: %s",
            len(removed),
            target,
            ", ".join(path.name for path in removed),
        )
    return removed


@contextlib.contextmanager
def writer_lock(target: Path) -> Iterator[None]:
    """Hold the lock that serialises the writers of ``target`` (the sibling file ``<name>.lock``).

    Once it is held, temporary folders of ``target`` left by writers that were killed are removed
    (:func:`remove_stale_temporaries`). Where locking is unavailable nothing is removed: another writer may be live.
    """
    with file_lock(target.parent / f"{target.name}.lock") as locked:
        if locked:
            remove_stale_temporaries(target)
        yield


def make_readable(folder: Path) -> None:
    """Give the folder the permissions of an ordinary new folder (mkdtemp makes it private)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        if path.is_dir():
            make_readable(path)
        else:
            path.chmod(0o666 & ~umask)
