"""Atomic writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def current_umask() -> int:
    """The process umask (read without changing it where Linux tells it; else set and restore)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def usual_permissions(path: Path, directory: bool = False) -> None:
    """Give a mkstemp/mkdtemp product the mode a plain open()/mkdir() would have (0644/0755 under
    umask 022) instead of 0600/0700: outputs are meant to be read like the user's other files."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


@contextlib.contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; on success it replaces `path`.

    On any exception the temporary file is removed and `path` is left as it was. For writers
    that want a file name (pandas, matplotlib, parquet) rather than a string.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    usual_permissions(Path(temporary))
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text_atomic(path: Path, text: str) -> Path:
    with staged_file(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def write_json_atomic(path: Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def replace_directory(source: Path, target: Path) -> Path:
    """Move the folder `source` to `target`, swapping out an existing `target`, even a non-empty one.

    The one folder swap of the project. An empty `target` (the output folder a container
    creates) is removed; a full one is renamed aside first and deleted after, so `target` is
    never half old, half new. Across filesystems (a mounted output folder) it copies instead.
    """
    source, target = Path(source), Path(target)
    trash = None
    if target.exists():
        try:
            os.rmdir(target)
        except OSError:
            trash = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, trash)
    try:
        os.replace(source, target)
    except OSError:
        shutil.copytree(source, target)
        shutil.rmtree(source, ignore_errors=True)
    finally:
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    return target


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Build a folder beside `target`, then swap it in: a failed step leaves no partial output.

    Yields the staging folder; on success it replaces `target` (an older `target` is removed),
    on any exception it is deleted and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    usual_permissions(staging, directory=True)
    try:
        yield staging
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
