"""Atomic writes (a reader sees the old file or the new one, never half of one), and a file lock."""

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


def _move_in(entry: Path, destination: Path, scratch: Path) -> None:
    """Put `entry` at `destination` (absent, or a file it replaces) in one rename; across filesystems
    (`destination` on a mount) copy it to `scratch` beside `destination` first, then rename."""
    try:
        os.replace(entry, destination)
        return
    except OSError:
        pass
    if entry.is_dir() and not entry.is_symlink():
        shutil.copytree(entry, scratch, symlinks=True)
    else:
        shutil.copy2(entry, scratch, follow_symlinks=False)
    os.replace(scratch, destination)


def replace_directory(source: Path, target: Path) -> Path:
    """Make the folder `target` hold exactly the entries of the folder `source`; `source` is used up.

    The one folder swap of the project. An existing `target` is kept itself (same inode), never
    removed or renamed: SageMaker's /opt/ml/processing/output/... may be a mount point, which
    refuses both ("Device or resource busy"). Each entry is swapped in one rename (copied beside
    it first when `target` is on another filesystem), so a reader sees an entry old or new, never
    half written (a file over a file is never missing; a folder is absent between two renames).

    Guarantee on failure: old entries are set aside in a hidden folder inside `target` until
    every new one is in place; if any move fails, the new entries already moved are taken out
    again and the old ones put back, so `target` is left with its old contents (`source` is
    deleted either way). Once all new entries are in, the old ones are deleted. A reader during
    the swap may see some entries new and others still old.

    A killed process (SIGKILL, out of memory, a stopped job) runs no rollback: `target` keeps
    a mix of new and old entries plus the hidden `.old-*` folder, which may hold the only copy
    of an old entry (a folder set aside, its new one not yet in); `source` is left too. The next
    swap into `target` treats that folder like any entry `source` lacks: set aside with the
    others, deleted once every new entry is in, put back if that swap fails. One swap into a
    `target` at a time: a concurrent one would sweep the other's `.old-*` folder the same way.
    """
    source, target = Path(source), Path(target)
    if not target.is_dir() or target.is_symlink():
        try:
            os.replace(source, target)
        except OSError:
            shutil.copytree(source, target)
            shutil.rmtree(source, ignore_errors=True)
        return target
    tag = f"{os.getpid()}-{os.urandom(4).hex()}"
    aside = target / f".old-{tag}"  # inside target: the same filesystem as the entries it holds
    placed: list[str] = []  # names whose new entry is in target
    set_aside: list[str] = []  # names whose old entry is in `aside`
    try:
        names = sorted(entry.name for entry in source.iterdir())
        for name in names:
            if os.path.lexists(target / name):
                aside.mkdir(exist_ok=True)
                _set_aside(target / name, aside / name, over_it=source / name)
                set_aside.append(name)
            _move_in(source / name, target / name, target / f".{name}.new-{tag}")
            placed.append(name)
        stale = [entry.name for entry in target.iterdir() if entry.name not in set(names) and entry != aside]
        for name in stale:
            aside.mkdir(exist_ok=True)
            os.replace(target / name, aside / name)
            set_aside.append(name)
    except BaseException:
        for name in placed:
            if not (name in set_aside and _is_file(aside / name) and _is_file(target / name)):
                _remove(target / name)  # a file is put back below in one rename over the new one
        for name in reversed(set_aside):
            os.replace(aside / name, target / name)
        for scratch in target.glob(f".*.new-{tag}"):
            _remove(scratch)
        shutil.rmtree(aside, ignore_errors=True)
        shutil.rmtree(source, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    shutil.rmtree(source, ignore_errors=True)
    return target


def _is_file(path: Path) -> bool:
    return os.path.lexists(path) and (path.is_symlink() or not path.is_dir())


def _set_aside(entry: Path, aside: Path, over_it: Path) -> None:
    """Keep the old `entry` at `aside`. A file to be replaced by a file stays in place (a hard
    link keeps it), so the new one is renamed over it and readers never find the name missing;
    a folder (rename cannot go over a full one) is renamed away, absent until the new one is in."""
    if _is_file(entry) and _is_file(over_it):
        try:
            os.link(entry, aside, follow_symlinks=False)
            return
        except OSError:
            pass  # no hard links here: rename it
    os.replace(entry, aside)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Build a folder beside `target`, then swap it in: a failed step leaves no partial output.

    Yields the staging folder; on success it replaces `target` (an older `target` is removed),
    on any exception it is deleted and `target` is left as it was. A killed process leaves its
    hidden staging folder (`.<target name>-*`) beside `target`; nothing sweeps it (another
    process may be building in its own), and it is no part of `target` (a step's output channel
    is the folder `target`, never its parent).
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


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created if missing) that other processes wait on."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
