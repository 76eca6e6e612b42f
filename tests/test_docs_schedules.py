"""docs/schedules.md against `python -m pipelines.schedule` on the local target: the crontab
lines it shows are the ones `create` prints, and what it says about `list`/`delete` is what they do."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from pipelines import schedule

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "schedules.md"
SESSION = re.compile(r"^\$ (python -m pipelines\.schedule .+?)\n(local target: .+?\n)(.+?)\n", re.M | re.S)


def _sessions():
    """(arguments, printed crontab line) of every `$ python -m pipelines.schedule ... create` example."""
    text = re.sub(r"\\\n\s*", " ", DOC.read_text(encoding="utf-8"))
    return [(shlex.split(command)[3:], line) for command, _, line in SESSION.findall(text)]


def test_the_doc_shows_at_least_the_weekly_retrain_and_the_nightly_batch_examples():
    names = [args[args.index("create") + 1] for args, _ in _sessions()]
    assert "weekly-retrain" in names and "nightly-batch" in names


@pytest.mark.parametrize("args, documented", _sessions(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_every_crontab_line_the_doc_shows_is_the_one_create_prints(args, documented, monkeypatch, tmp_path):
    # the doc's shell has no FORECAST_* settings (the line would carry them): the home is ./.forecast
    for name in [k for k in os.environ if k.startswith("FORECAST_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    printed = []
    assert schedule.main(args, log=printed.append) == 0
    line = next(p for p in printed if "-m pipelines.run" in p)
    # the doc's checkout folder and interpreter stand for the current ones
    expected = documented.replace("/home/me/demand-forecasting", str(tmp_path)).replace(
        "/usr/bin/python3", sys.executable
    )
    assert line == expected


@pytest.mark.parametrize("command", [["list"], ["delete", "weekly-retrain"]])
def test_list_and_delete_are_refused_locally_with_exit_2_as_the_doc_says(command, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / ".forecast"))
    monkeypatch.delenv("FORECAST_TARGET", raising=False)
    assert schedule.main(["--target", "local", *command]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: the local target keeps no schedules")
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert "`list` and `delete` exit with status 2" in text
    assert error.split(": use")[0] in text  # the message the doc quotes is the one printed
    assert "`crontab -l`" in text  # where a local user lists them instead


NOTED = re.compile(r"^\$ (python -m pipelines\.schedule .+?)\nlocal target: .+?\n.+?\n((?:note: .+\n)*)```", re.M)


def test_the_notes_the_doc_shows_are_the_ones_create_prints_and_an_uneven_rate_has_one(monkeypatch, tmp_path):
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / ".forecast"))
    monkeypatch.delenv("FORECAST_TARGET", raising=False)
    monkeypatch.chdir(tmp_path)
    text = re.sub(r"\\\n\s*", " ", DOC.read_text(encoding="utf-8"))
    sessions = NOTED.findall(text)
    assert len(sessions) == len(_sessions())  # every session parsed, with or without notes
    noted = {}
    for command, notes in sessions:
        printed: list = []
        assert schedule.main(shlex.split(command)[3:], log=printed.append) == 0
        assert [p for p in printed if p.startswith("note: ")] == notes.splitlines(), command
        noted[command] = notes
    uneven = [c for c in noted if '"rate(7 days)"' in c]
    assert uneven and "days 1, 8, 15, 22 and 29" in noted[uneven[0]]
