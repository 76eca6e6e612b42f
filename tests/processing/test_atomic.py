"""Atomic writes: a failed writer leaves the old file or folder exactly as it was, and no litter."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from processing.atomic import current_umask, staged_directory, staged_file, write_json_atomic, write_text_atomic


def test_given_a_writer_that_fails_when_staged_then_the_old_file_stays_and_no_temp_is_left(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with staged_file(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("writer died")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_given_a_writer_that_succeeds_when_staged_then_the_file_is_replaced_in_a_new_folder(tmp_path):
    target = tmp_path / "deep" / "er" / "out.txt"
    with staged_file(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.txt.")
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_given_text_and_json_when_written_then_they_read_back(tmp_path):
    assert write_text_atomic(tmp_path / "a.txt", "x").read_text() == "x"
    assert write_json_atomic(tmp_path / "a.json", {"k": 1}).read_text() == '{\n  "k": 1\n}\n'


def test_given_a_folder_build_that_fails_when_staged_then_the_old_folder_survives(tmp_path):
    target = tmp_path / "report"
    target.mkdir()
    (target / "index.html").write_text("old")
    with pytest.raises(ValueError):
        with staged_directory(target) as staging:
            (staging / "index.html").write_text("new")
            raise ValueError("chart failed")
    assert (target / "index.html").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
    with staged_directory(target) as staging:
        (staging / "index.html").write_text("new")
    assert (target / "index.html").read_text() == "new"


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_given_umask_022_when_writing_atomically_then_files_are_0644_and_folders_0755_like_plain_writes(
    tmp_path, umask_022
):
    assert current_umask() == 0o022
    written = write_text_atomic(tmp_path / "a.csv", "x")
    with staged_file(tmp_path / "b.png") as temporary:
        temporary.write_bytes(b"png")
    with staged_directory(tmp_path / "report") as folder:
        (folder / "inside.txt").write_text("y")
    plain = tmp_path / "plain.txt"
    plain.write_text("z")
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(written) == mode(tmp_path / "b.png") == mode(plain) == 0o644
    assert mode(tmp_path / "report") == 0o755


def test_given_a_stricter_umask_then_atomic_writes_follow_it(tmp_path):
    previous = os.umask(0o077)
    try:
        written = write_text_atomic(tmp_path / "private.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_replace_directory_swaps_a_full_folder_and_leaves_nothing_aside(tmp_path):
    from processing.atomic import replace_directory

    target, source = tmp_path / "out", tmp_path / "stage"
    (target / "old").mkdir(parents=True)
    (target / "old" / "a.csv").write_text("old")
    source.mkdir()
    (source / "b.csv").write_text("new")
    assert replace_directory(source, target) == target
    assert sorted(p.name for p in target.iterdir()) == ["b.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging, no renamed-aside folder


def test_replace_directory_copies_when_a_rename_cannot_cross_filesystems(tmp_path, monkeypatch):
    import errno
    import os

    from processing import atomic

    source, target = tmp_path / "stage", tmp_path / "mounted"
    source.mkdir()
    (source / "x.txt").write_text("x")
    target.mkdir()  # an empty output folder, as a container creates it
    real_replace = os.replace

    def replace(a, b):
        if Path(a).parent == source:  # an entry of the staging folder into the mounted one
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(a, b)

    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic.replace_directory(source, target)
    assert (target / "x.txt").read_text() == "x" and not source.exists()
    assert sorted(p.name for p in target.iterdir()) == ["x.txt"]  # no scratch copy left


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def _old_and_new(tmp_path: Path) -> tuple:
    target, source = tmp_path / "output", tmp_path / "stage"
    (target / "model").mkdir(parents=True)
    (target / "model" / "weights.bin").write_text("old weights")
    (target / "metrics.json").write_text("old metrics")
    (target / "stale.csv").write_text("from an older run")
    (source / "model").mkdir(parents=True)
    (source / "model" / "weights.bin").write_text("new weights")
    (source / "metrics.json").write_text("new metrics")
    (source / "forecast.csv").write_text("new forecast")
    return target, source


def test_replace_directory_keeps_the_destination_folder_itself_and_replaces_its_entries(tmp_path):
    # SageMaker's output folder may be a mount point: removing or renaming it is "Device or resource busy"
    from processing.atomic import replace_directory

    target, source = _old_and_new(tmp_path)
    inode = os.stat(target).st_ino
    old_metrics_inode = os.stat(target / "metrics.json").st_ino
    replace_directory(source, target)
    assert os.stat(target).st_ino == inode
    assert _tree(target) == {
        "forecast.csv": "new forecast",
        "metrics.json": "new metrics",
        "model/weights.bin": "new weights",
    }  # the stale entry of the older run is gone, nothing hidden is left
    assert os.stat(target / "metrics.json").st_ino != old_metrics_inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["output"]


@pytest.mark.parametrize("failing_entry", ["forecast.csv", "metrics.json", "model"])
def test_replace_directory_failing_midway_leaves_the_old_contents_not_a_mix(tmp_path, monkeypatch, failing_entry):
    from processing import atomic

    target, source = _old_and_new(tmp_path)
    before = _tree(target)
    inode = os.stat(target).st_ino
    real_replace = os.replace

    def replace(a, b):  # the disk fails when this one entry of the new output is moved in
        if Path(a) == source / failing_entry:
            raise OSError(5, "Input/output error")
        return real_replace(a, b)

    monkeypatch.setattr(atomic.os, "replace", replace)
    monkeypatch.setattr(atomic.shutil, "copy2", lambda *a, **k: (_ for _ in ()).throw(OSError(5, "I/O error")))
    monkeypatch.setattr(atomic.shutil, "copytree", lambda *a, **k: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OSError):
        atomic.replace_directory(source, target)
    assert os.stat(target).st_ino == inode
    assert _tree(target) == before
    assert sorted(p.name for p in target.iterdir()) == ["metrics.json", "model", "stale.csv"]  # nothing hidden
    assert not source.exists()


def test_staged_directory_over_a_full_output_folder_keeps_the_folder(tmp_path):
    target = tmp_path / "output"
    target.mkdir()
    (target / "old.txt").write_text("old")
    inode = os.stat(target).st_ino
    with staged_directory(target) as staging:
        (staging / "new.txt").write_text("new")
    assert os.stat(target).st_ino == inode and _tree(target) == {"new.txt": "new"}


# A swap killed midway (SIGKILL, OOM, a stopped job) runs no rollback: it leaves its hidden `.old-*`
# folder inside the target, sometimes holding the only copy of an old entry. The process is really
# killed here, on disk, at the moment named by each case.
_KILLED_SWAP = """
import os, shutil, signal, sys
from pathlib import Path
from processing import atomic

target, source, moment = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
real_replace, real_rmtree = os.replace, shutil.rmtree

def replace(a, b):
    real_replace(a, b)
    if moment == "old folder set aside" and Path(a) == target / "model":
        os.kill(os.getpid(), signal.SIGKILL)  # the new model folder is not in yet

def rmtree(path, *args, **kwargs):
    if moment == "clearing the old entries" and Path(path).name.startswith(".old-"):
        for entry in sorted(Path(path).iterdir())[:1]:
            real_rmtree(entry) if entry.is_dir() else entry.unlink()
        os.kill(os.getpid(), signal.SIGKILL)  # part of the old entries deleted
    return real_rmtree(path, *args, **kwargs)

atomic.os.replace, atomic.shutil.rmtree = replace, rmtree
atomic.replace_directory(source, target)
"""


def _kill_a_swap(tmp_path: Path, moment: str) -> Path:
    import signal
    import subprocess
    import sys

    target, source = _old_and_new(tmp_path)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    killed = subprocess.run([sys.executable, "-c", _KILLED_SWAP, str(target), str(source), moment], env=env)
    assert killed.returncode == -signal.SIGKILL
    return target


@pytest.mark.integration
@pytest.mark.parametrize("moment", ["old folder set aside", "clearing the old entries"])
def test_given_a_swap_killed_midway_when_the_next_swap_succeeds_then_its_old_folder_is_swept(tmp_path, moment):
    from processing.atomic import replace_directory

    target = _kill_a_swap(tmp_path, moment)
    left = [p for p in target.iterdir() if p.name.startswith(".old-")]
    assert len(left) == 1  # what the killed process leaves behind
    if moment == "old folder set aside":
        assert not (target / "model").exists()
        assert (left[0] / "model" / "weights.bin").read_text() == "old weights"  # the only copy
    nxt = tmp_path / "next"
    (nxt / "model").mkdir(parents=True)
    (nxt / "model" / "weights.bin").write_text("next weights")
    (nxt / "metrics.json").write_text("next metrics")
    replace_directory(nxt, target)
    assert sorted(p.name for p in target.iterdir()) == ["metrics.json", "model"]  # nothing hidden is left
    assert _tree(target) == {"metrics.json": "next metrics", "model/weights.bin": "next weights"}


@pytest.mark.integration
def test_given_a_swap_killed_midway_when_the_next_swap_fails_then_the_old_folder_is_kept(tmp_path, monkeypatch):
    # the killed swap's `.old-*` folder holds the only copy of the old model: a failed swap puts it back
    from processing import atomic

    target = _kill_a_swap(tmp_path, "old folder set aside")
    before = {p.name for p in target.iterdir()}
    kept = _tree(target)
    nxt = tmp_path / "next"
    (nxt / "model").mkdir(parents=True)
    (nxt / "model" / "weights.bin").write_text("next weights")
    (nxt / "zzz.csv").write_text("moved in last")
    real_replace = os.replace

    def replace(a, b):
        if Path(a) == nxt / "zzz.csv":
            raise OSError(28, "No space left on device")
        return real_replace(a, b)

    monkeypatch.setattr(atomic.os, "replace", replace)
    monkeypatch.setattr(atomic.shutil, "copy2", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OSError):
        atomic.replace_directory(nxt, target)
    assert {p.name for p in target.iterdir()} == before
    assert _tree(target) == kept
    assert any(path.endswith("/model/weights.bin") and text == "old weights" for path, text in kept.items())
