"""processing.entry: installs a step's requirements only in containers, then runs the module."""
from __future__ import annotations

import sys

import pytest

from processing import entry


def test_given_step_modules_then_requirements_files_are_found_by_last_component():
    assert entry.requirements_file("evaluation.evaluate").name == "evaluate.txt"
    assert entry.requirements_file("processing.no_such_step") is None


@pytest.mark.parametrize("environ, expected", [
    ({"FORECAST_INSTALL_REQUIREMENTS": "1", "FORECAST_TARGET": "sagemaker"}, True),
    ({"FORECAST_INSTALL_REQUIREMENTS": "1", "FORECAST_TARGET": "local"}, False),
    ({"FORECAST_INSTALL_REQUIREMENTS": "0", "FORECAST_TARGET": "sagemaker"}, False),
    ({}, False),
])
def test_given_the_environment_then_installs_happen_only_in_containers(environ, expected):
    assert entry.should_install(environ) is expected


def _step_module(tmp_path, monkeypatch, name="fake_step"):
    (tmp_path / f"{name}.py").write_text(
        "import sys, pathlib\npathlib.Path(sys.argv[1].split('=', 1)[1]).write_text(' '.join(sys.argv[1:]))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "argv", list(sys.argv))


def test_given_a_module_and_arguments_when_run_then_the_module_sees_them_as_its_argv(tmp_path, monkeypatch):
    _step_module(tmp_path, monkeypatch)
    out = tmp_path / "seen.txt"
    calls = []
    entry.main(["fake_step", f"--out={out}", "--grouping-columns="], environ={}, run=calls.append)
    assert out.read_text() == f"--out={out} --grouping-columns="
    assert calls == []


def test_given_a_step_then_the_entry_names_it_without_repeating_the_command_line(tmp_path, monkeypatch, capsys):
    _step_module(tmp_path, monkeypatch)
    entry.main(["fake_step", f"--out={tmp_path / 'seen.txt'}", "--grouping-columns="], environ={}, run=print)
    printed = capsys.readouterr().out
    assert "[entry] running fake_step (2 arguments)" in printed and "--out=" not in printed


def test_given_requirements_in_a_container_when_run_then_pip_installs_them_first(tmp_path, monkeypatch):
    _step_module(tmp_path, monkeypatch, "evaluate")
    calls = []
    entry.main(["evaluate", f"--out={tmp_path / 'x'}"],
               environ={"FORECAST_INSTALL_REQUIREMENTS": "1", "FORECAST_TARGET": "sagemaker"},
               run=lambda command, check: calls.append(command))
    (command,) = calls
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert command[-1].endswith("processing/requirements/evaluate.txt")


def test_given_no_module_then_usage_is_printed():
    with pytest.raises(SystemExit, match="usage: python3 -m processing.entry <module>"):
        entry.main([])
