"""Files and folders a run writes, with the permissions any Unix tool's output has.

``tempfile`` makes its files 0600 and its folders 0700 whatever the umask, which is right for secrets
and wrong for a report a teammate or a CI artifact upload (another user) must read. Everything evalsuite
stages (run directories, converted models, installed corpora) goes through these helpers: staged
privately, then given the mode the user's umask asks for (0644 files and 0755 folders under umask 022)
just before the atomic rename makes them visible.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from evalsuite.errors import ConfigError


def umask() -> int:
    """The process's umask, read without changing it (``os.umask`` can only be read by setting it,
    which races with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def file_mode() -> int:
    return 0o666 & ~umask()


def folder_mode() -> int:
    return 0o777 & ~umask()


def staging_folder(parent: Path, prefix: str) -> Path:
    """A new empty folder in ``parent`` (which is created if missing) with the umask's mode, to fill and
    then rename into place."""
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    folder.chmod(folder_mode())
    return folder


def follow_umask(root: Path) -> None:
    """Give ``root`` and everything below it the umask's modes (for folders filled by a library that
    staged its own files privately)."""
    files, folders = file_mode(), folder_mode()
    root.chmod(folders)
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        path.chmod(folders if path.is_dir() else files)


def check_folder(path: Path, what: str) -> None:
    """Raise ConfigError unless ``path`` is a folder evalsuite can write in, or one it can create: checked
    before any model loads, so a run never computes for an hour and then finds it cannot write its
    results. Leaves nothing behind."""
    text = str(path)
    if "\0" in text:
        raise ConfigError(f"{what} {text!r}: a path cannot hold a NUL byte")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        kind = "is a file" if existing.is_file() else "is not a folder"
        where = f"{path}" if existing == path else f"{path}: {existing}"
        raise ConfigError(f"{what} {where} {kind}; name a folder")
    try:
        probe = tempfile.mkdtemp(prefix=".evalsuite-write-check-", dir=existing)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(f"{what} {path}: cannot write in {existing} ({reason})") from None
    os.rmdir(probe)
