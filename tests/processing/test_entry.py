"""processing.entry: installs a step's requirements only in containers, then runs the module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from processing import entry


def test_given_step_modules_then_requirements_files_are_found_by_last_component():
    assert entry.requirements_file("evaluation.evaluate").name == "evaluate.txt"
    assert entry.requirements_file("processing.no_such_step") is None


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"FORECAST_INSTALL_REQUIREMENTS": "1", "FORECAST_TARGET": "sagemaker"}, True),
        ({"FORECAST_INSTALL_REQUIREMENTS": "1", "FORECAST_TARGET": "local"}, False),
        ({"FORECAST_INSTALL_REQUIREMENTS": "0", "FORECAST_TARGET": "sagemaker"}, False),
        ({}, False),
    ],
)
def test_given_the_environment_then_installs_happen_only_in_containers(environ, expected):
    assert entry.should_install(environ) is expected


def _step_module(tmp_path, monkeypatch, name="fake_step"):
    (tmp_path / f"{name}.py").write_text(
        "import sys, pathlib\npathlib.Path(sys.argv[1].split('=', 1)[1]).write_text(' '.join(sys.argv[1:]))\n"
    )
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


CONTAINER = {"FORECAST_INSTALL_REQUIREMENTS": "1", "FORECAST_TARGET": "sagemaker"}


def test_given_requirements_in_a_container_when_run_then_pip_installs_exactly_them_first(tmp_path, monkeypatch):
    _step_module(tmp_path, monkeypatch, "evaluate")
    calls = []
    entry.main(
        ["evaluate", f"--out={tmp_path / 'x'}"],
        environ=CONTAINER,
        run=lambda command, check, timeout: calls.append(command),
    )
    (command,) = calls
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--no-deps" in command and "--only-binary=:all:" in command  # the pins, nothing resolved or built
    assert command[-1].endswith("processing/requirements/evaluate.txt")
    assert (tmp_path / "x").read_text() == f"--out={tmp_path / 'x'}"


def test_given_no_internet_when_the_install_fails_then_the_step_still_runs_and_says_what_it_lacks(
    tmp_path, monkeypatch, capsys
):
    _step_module(tmp_path, monkeypatch, "evaluate")

    def offline_pip(command, check, timeout):
        raise subprocess.CalledProcessError(1, command)

    entry.main(["evaluate", f"--out={tmp_path / 'x'}"], environ=CONTAINER, run=offline_pip)
    printed = capsys.readouterr().out
    assert "[entry] could not install evaluate.txt (pip exited with code 1;" in printed
    assert "evaluate runs without matplotlib, contourpy, cycler, fonttools, kiwisolver, pyparsing" in printed
    assert (tmp_path / "x").read_text() == f"--out={tmp_path / 'x'}"  # the step ran


def test_given_a_hanging_pip_when_it_times_out_then_the_step_still_runs(tmp_path, monkeypatch, capsys):
    _step_module(tmp_path, monkeypatch, "evaluate")

    def hanging_pip(command, check, timeout):
        raise subprocess.TimeoutExpired(command, timeout)

    entry.main(["evaluate", f"--out={tmp_path / 'x'}"], environ=CONTAINER, run=hanging_pip)
    assert f"pip did not finish in {entry.INSTALL_TIMEOUT_SECONDS}s" in capsys.readouterr().out
    assert (tmp_path / "x").is_file()


def test_given_the_requirements_files_then_each_pins_exactly_and_only_what_the_image_lacks():
    from pipelines import processing_image

    image = processing_image.load()
    in_image = {name.lower() for name in list(image.packages) + list(image.image_only)}
    files = sorted(entry.REQUIREMENTS_DIR.glob("*.txt"))
    assert [f.name for f in files] == ["evaluate.txt", "report.txt"]  # pyarrow and boto3: the image has them
    for path in files:
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, version = line.partition("==")
            assert sep and version.strip() and not set(version) & set("<>=!~*,; "), (
                f"{path.name}: {line!r} is not exact"
            )
            assert name.strip().lower() not in in_image, f"{path.name}: the image already has {name}"


def test_given_no_module_then_usage_is_printed():
    with pytest.raises(SystemExit, match="usage: python3 -m processing.entry <module>"):
        entry.main([])
