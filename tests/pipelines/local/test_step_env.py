"""The processing steps' local environment: the image's pins, the cache key, the fallback and
its warning, strict mode, FORECAST_STEP_PYTHON, and a step that cannot see past its bundle."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time
from importlib import metadata
from pathlib import Path

import pytest

from pipelines import code_bundle, processing_image
from pipelines.local import runtime, step_env
from pipelines.local.store import local_path
from processing.kernel.settings import SettingsError, resolve
from tests.pipelines.local.handwritten import definition, processing

IMAGE = processing_image.load()


def _image_with(tmp_path: Path, old: str, new: str) -> processing_image.ProcessingImage:
    text = processing_image.ENV_FILE.read_text()
    assert old in text
    path = tmp_path / "processing_image.toml"
    path.write_text(text.replace(old, new))
    return processing_image.load.__wrapped__(path)


# --- the environment file -----------------------------------------------------------------
def test_given_the_environment_file_then_it_names_the_image_its_python_and_exact_pins_with_the_source():
    assert (IMAGE.framework, IMAGE.version, IMAGE.python) == ("sklearn", "1.9-0", "3.12")
    assert {
        "pandas": "2.2.3",
        "numpy": "2.5.1",
        "scipy": "1.18.0",
        "scikit-learn": "1.9.0",
        "pyarrow": "25.0.0",
        "boto3": "1.43.46",
    }.items() <= IMAGE.packages.items()
    assert IMAGE.source["repository"] == "aws/deep-learning-containers"
    assert IMAGE.source["path"] == "docker/sklearn/1.9-0" and len(IMAGE.source["commit"]) == 40
    assert "pandas==2.2.3" in IMAGE.requirements()


def test_given_a_range_instead_of_a_pin_then_the_file_is_refused_naming_it(tmp_path):
    with pytest.raises(processing_image.ImageFileError, match=r"must pin exact versions .*pandas = '>=2'"):
        _image_with(tmp_path, 'pandas = "2.2.3"', 'pandas = ">=2"')


# --- the cache key ------------------------------------------------------------------------------
def test_given_a_changed_pin_then_the_cache_key_changes_and_only_then(tmp_path):
    python = "/opt/python3.12/bin/python3.12"
    key = step_env.environment_key(IMAGE, "3.12.1", python)
    assert (
        step_env.environment_key(processing_image.load.__wrapped__(processing_image.ENV_FILE), "3.12.1", python) == key
    )
    assert (
        step_env.environment_key(_image_with(tmp_path, 'pandas = "2.2.3"', 'pandas = "2.2.2"'), "3.12.1", python) != key
    )
    assert step_env.environment_key(IMAGE, "3.12.2", python) != key  # another interpreter
    assert key.startswith("py3.12.1-")
    assert step_env.overlay_key("matplotlib==3.11.2\n") != step_env.overlay_key("matplotlib==3.11.1\n")
    assert step_env.overlay_key("# the plots\nmatplotlib==3.11.2\ncycler==0.12.1\n") == step_env.overlay_key(
        "# the charts\ncycler==0.12.1\nmatplotlib==3.11.2\n"
    )  # same pins, one overlay


@pytest.mark.integration
def test_given_a_held_lock_then_another_process_waits_for_it(tmp_path):
    """Concurrent runs build one environment: the second waits for the first's lock."""
    lock = tmp_path / "env.lock"
    waiter = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from pipelines.local.step_env import file_lock\n"
        "from pathlib import Path\nstarted = time.monotonic()\n"
        "with file_lock(Path(sys.argv[2])):\n    print(round(time.monotonic() - started, 1))\n"
    )
    with step_env.file_lock(lock):
        process = subprocess.Popen(
            [sys.executable, "-c", waiter, str(runtime.PROJECT_ROOT), str(lock)], stdout=subprocess.PIPE, text=True
        )
        time.sleep(1.5)
        assert process.poll() is None  # still waiting
    assert float(process.communicate(timeout=60)[0]) >= 1.0


# --- finding the interpreter -----------------------------------------------------------------------
def _fake_python(path: Path, version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nprintf '%s\\n%s\\n' '{version}' '{path}'\n")
    path.chmod(0o755)
    return path


def test_given_a_refusing_pyenv_shim_on_path_then_pyenvs_newest_matching_version_is_taken(tmp_path):
    shim = tmp_path / "shims" / "python3.12"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    root = tmp_path / "pyenv"
    _fake_python(root / "versions" / "3.12.3" / "bin" / "python3.12", "3.12.3")
    newest = _fake_python(root / "versions" / "3.12.10" / "bin" / "python3.12", "3.12.10")
    _fake_python(root / "versions" / "3.13.0" / "bin" / "python3.13", "3.13.0")

    assert step_env.find_python("3.12", {"PATH": str(shim.parent), "PYENV_ROOT": str(root)}) == (str(newest), "3.12.10")


def test_given_a_python_of_the_right_version_on_path_then_it_comes_first(tmp_path):
    on_path = _fake_python(tmp_path / "bin" / "python3.12", "3.12.7")
    _fake_python(tmp_path / "pyenv" / "versions" / "3.12.10" / "bin" / "python3.12", "3.12.10")
    assert step_env.find_python("3.12", {"PATH": str(on_path.parent), "PYENV_ROOT": str(tmp_path / "pyenv")}) == (
        str(on_path),
        "3.12.7",
    )


def test_the_interpreter_found_is_remembered_until_the_candidates_or_its_file_change(tmp_path, monkeypatch):
    """A run's start does not probe every candidate again (a refusing pyenv shim costs 0.3 s) while the
    same candidate files exist and the interpreter found is the same file; either change searches again."""
    monkeypatch.setenv("FORECAST_CACHE_DIR", str(tmp_path / "cache"))
    settings = resolve()
    on_path = _fake_python(tmp_path / "bin" / "python3.12", "3.12.7")
    environ = {"PATH": str(on_path.parent), "PYENV_ROOT": str(tmp_path / "pyenv"), "HOME": str(tmp_path)}
    probed: list = []
    probe = step_env.probe
    monkeypatch.setattr(step_env, "probe", lambda python, timeout=30: probed.append(python) or probe(python))

    assert step_env.remembered_python("3.12", settings, environ) == (str(on_path), "3.12.7") and len(probed) == 1
    assert step_env.remembered_python("3.12", settings, environ) == (str(on_path), "3.12.7") and len(probed) == 1
    other = dict(environ, PATH=environ["PATH"] + os.pathsep + "/nowhere")  # another PATH: its own search
    assert step_env.remembered_python("3.12", settings, other) == (str(on_path), "3.12.7") and len(probed) == 2

    _fake_python(tmp_path / "pyenv" / "versions" / "3.12.10" / "bin" / "python3.12", "3.12.10")  # a new candidate
    assert step_env.remembered_python("3.12", settings, environ) == (str(on_path), "3.12.7") and len(probed) == 3
    _fake_python(on_path, "3.12.8")  # the interpreter's file changed (an upgrade in place)
    os.utime(on_path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert step_env.remembered_python("3.12", settings, environ) == (str(on_path), "3.12.8") and len(probed) == 4
    on_path.unlink()  # gone: the next candidate, found by searching again
    assert step_env.remembered_python("3.12", settings, environ)[1] == "3.12.10"


# --- fallback, strict, FORECAST_STEP_PYTHON -----------------------------------------------------------
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FORECAST_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_given_no_python_of_the_image_version_then_one_warning_line_names_the_differences(cache, monkeypatch):
    monkeypatch.setenv("FORECAST_STEP_ENV", "image")  # the default (CI runs the suite with strict)
    lines: list = []
    env = step_env.resolve(resolve(), out=lines.append, find=lambda minor: None)

    assert env.kind == step_env.HOST_FALLBACK and env.python_version == platform.python_version()
    (warning,) = lines
    assert "\n" not in warning
    assert warning.startswith("warning: no Python 3.12 found (looked for python3.12 on PATH and under pyenv")
    assert f"Python {platform.python_version()} vs 3.12" in warning
    if metadata.version("pandas") != "2.2.3":
        assert f"pandas {metadata.version('pandas')} vs 2.2.3" in warning
    assert warning.endswith("(FORECAST_STEP_ENV=strict makes this an error)")
    assert env.record()["note"] == warning and env.record()["matches_image"] is False


def test_given_strict_mode_and_no_python_of_the_image_version_then_it_is_an_error(cache, monkeypatch):
    monkeypatch.setenv("FORECAST_STEP_ENV", "strict")
    lines: list = []
    with pytest.raises(
        step_env.StepEnvironmentError,
        match=r"^no Python 3\.12 found .*; FORECAST_STEP_ENV=strict forbids running processing "
        r"steps with another Python \(install Python 3\.12",
    ):
        step_env.resolve(resolve(), out=lines.append, find=lambda minor: None)
    assert lines == []


def test_given_an_unknown_step_env_mode_then_the_setting_is_refused(monkeypatch):
    monkeypatch.setenv("FORECAST_STEP_ENV", "relaxed")
    with pytest.raises(SettingsError, match=r"\$FORECAST_STEP_ENV: step_env must be one of image, strict, host"):
        resolve()


def test_given_a_step_python_then_it_is_used_as_is(cache, monkeypatch):
    monkeypatch.setenv("FORECAST_STEP_PYTHON", sys.executable)
    monkeypatch.setenv("FORECAST_STEP_ENV", "image")  # this Python is not 3.12: strict (CI) would refuse it
    env = step_env.resolve(resolve(), out=lambda line: None, find=lambda minor: pytest.fail("not searched"))
    assert (env.kind, env.python, env.python_version) == (
        "FORECAST_STEP_PYTHON",
        sys.executable,
        platform.python_version(),
    )


def test_given_strict_mode_and_a_step_python_of_another_version_then_it_is_an_error(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("FORECAST_STEP_PYTHON", str(_fake_python(tmp_path / "python3.9", "3.9.18")))
    monkeypatch.setenv("FORECAST_STEP_ENV", "strict")
    with pytest.raises(
        step_env.StepEnvironmentError,
        match=r"is Python 3\.9\.18; the scikit-learn 1\.9-0 image "
        r"has Python 3\.12 \(FORECAST_STEP_ENV=strict\)",
    ):
        step_env.resolve(resolve(), out=lambda line: None)


def test_given_a_step_python_that_does_not_run_then_the_error_names_it(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("FORECAST_STEP_PYTHON", str(tmp_path / "no-python"))
    with pytest.raises(step_env.StepEnvironmentError, match=r"FORECAST_STEP_PYTHON=.*no-python does not run"):
        step_env.resolve(resolve(), out=lambda line: None)


# --- through the runtime: isolation, the command line, the record ------------------------------------
PROBE = """
    import importlib, json, sys
    from pathlib import Path
    out = Path(sys.argv[1].split("=", 1)[1]); out.mkdir(parents=True, exist_ok=True)
    seen = {}
    for name in ("processing.kernel.contracts", "processing.entry", "forecasting", "pipelines.local", "pipelines.local.runtime",
                 "deploy", "tests", "lightgbm", "statsforecast", "matplotlib"):
        try:
            seen[name] = getattr(importlib.import_module(name), "__file__", None) or "imported"
        except ImportError as error:
            seen[name] = "ImportError"
    import numpy, pandas
    (out / "probe.json").write_text(json.dumps({"seen": seen, "python": "%d.%d" % sys.version_info[:2],
                                                "pandas": pandas.__version__, "numpy": numpy.__version__,
                                                "executable": sys.executable, "path": sys.path}))
"""


def _probe_pipeline(settings, module: str = "") -> dict:
    """One processing step running the probe from the real code bundle (as a definition mounts it)."""
    uri = code_bundle.upload(settings, log=lambda line: None)
    (local_path(uri, settings) / "probe_isolation.py").write_text(textwrap.dedent(PROBE))
    step = processing(
        "Probe", "probe_isolation.py", arguments=["--out=/opt/ml/processing/output/result"], outputs=["result"]
    )
    step["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"] = uri
    if module:  # run through processing.entry like the real steps (picks the module's requirements)
        step["Arguments"]["AppSpecification"]["ContainerEntrypoint"] = ["python3", "-m", "processing.entry", module]
        (local_path(uri, settings) / (module.replace(".", "/") + ".py")).write_text(textwrap.dedent(PROBE))
    return definition([step], [])


def _run_probe(settings, module: str = ""):
    lines: list = []
    code = runtime.run_local(_probe_pipeline(settings, module), {}, settings, out=lines.append)
    record = runtime.load_executions(settings)[0]
    assert code == 0, "\n".join(lines)
    found = json.loads(local_path(record["steps"][0]["outputs"]["result"] + "/probe.json", settings).read_text())
    return found, record, "\n".join(lines)


def _assert_only_the_bundle_is_importable(found, record):
    seen = found["seen"]
    code_dir = Path(record["steps"][0]["log"]).parent / "processing" / "code"
    for inside in ("processing.kernel.contracts", "processing.entry"):  # the bundle, as mounted
        assert Path(seen[inside]).resolve().is_relative_to(code_dir.resolve()), (inside, seen[inside])
    for outside in ("forecasting", "pipelines.local", "pipelines.local.runtime", "deploy"):
        assert seen[outside] == "ImportError", (outside, seen[outside], found["path"])
    for name, where in seen.items():  # nothing from the checkout
        assert where == "ImportError" or not Path(where).resolve().is_relative_to(runtime.PROJECT_ROOT), (name, where)
    assert not any(str(runtime.PROJECT_ROOT) == entry.rstrip("/") for entry in found["path"])
    log = Path(record["steps"][0]["log"]).read_text()
    assert f"[runtime] {record['steps'][0]['environment']['python']} " in log  # the command line names it


def test_given_the_host_python_then_a_step_still_cannot_import_outside_its_bundle(cache, monkeypatch):
    monkeypatch.setenv("FORECAST_STEP_ENV", "host")
    found, record, output = _run_probe(resolve())

    _assert_only_the_bundle_is_importable(found, record)
    assert found["python"] == "%d.%d" % sys.version_info[:2]
    assert record["steps"][0]["environment"]["kind"] == "host"
    assert "host (Python " in output  # the run summary names it
    assert "<td>host (Python " in Path(record["report"]).read_text()  # and the HTML report


def test_given_a_step_python_then_the_log_shows_it_and_the_record_says_so(cache, monkeypatch):
    monkeypatch.setenv("FORECAST_STEP_PYTHON", sys.executable)
    monkeypatch.setenv("FORECAST_STEP_ENV", "image")
    found, record, output = _run_probe(resolve())
    environment = record["steps"][0]["environment"]
    assert environment["kind"] == "FORECAST_STEP_PYTHON" and environment["python"] == sys.executable
    assert f"[runtime] {sys.executable} /" in Path(record["steps"][0]["log"]).read_text()
    assert "FORECAST_STEP_PYTHON (Python " in output


def test_given_strict_mode_without_the_image_python_then_the_step_fails_saying_why(cache, monkeypatch):
    monkeypatch.setenv("FORECAST_STEP_ENV", "strict")
    monkeypatch.setattr(step_env, "find_python", lambda minor, environ=None: None)
    lines: list = []
    settings = resolve()
    assert runtime.run_local(_probe_pipeline(settings), {}, settings, out=lines.append) == 1
    record = runtime.load_executions(settings)[0]
    assert record["steps"][0]["status"] == "Failed"
    assert "FORECAST_STEP_ENV=strict forbids" in record["steps"][0]["failure_reason"]


def test_given_no_python_of_the_image_version_when_running_then_the_record_keeps_the_warning(cache, monkeypatch):
    monkeypatch.setenv("FORECAST_STEP_ENV", "image")
    monkeypatch.setattr(step_env, "find_python", lambda minor, environ=None: None)
    found, record, output = _run_probe(resolve())
    assert output.count("warning: no Python 3.12 found") == 1
    assert record["steps"][0]["environment"]["kind"] == "host fallback"
    assert any(note.startswith("warning: no Python 3.12 found") for note in record["notes"])
    _assert_only_the_bundle_is_importable(found, record)


# --- the image environment itself (built once per machine, then cached) ------------------------------
def _image_python_or_skip():
    if step_env.find_python(IMAGE.python) is None:
        if os.environ.get("FORECAST_STEP_ENV") == "strict":
            pytest.fail(f"FORECAST_STEP_ENV=strict but no Python {IMAGE.python} on this machine")
        pytest.skip(f"no Python {IMAGE.python} here (CI has pyenv's)")


@pytest.mark.slow
def test_given_the_image_env_then_a_step_runs_with_its_python_and_pins_and_only_its_bundle(monkeypatch):
    _image_python_or_skip()
    monkeypatch.setenv("FORECAST_STEP_ENV", "strict")
    found, record, output = _run_probe(resolve())

    _assert_only_the_bundle_is_importable(found, record)
    assert (found["python"], found["pandas"], found["numpy"]) == ("3.12", "2.2.3", "2.5.1")
    seen = found["seen"]
    assert seen["lightgbm"] == seen["statsforecast"] == "ImportError"  # the project's, not the image's
    assert seen["matplotlib"] == seen["tests"] == "ImportError"  # not declared by this step
    environment = record["steps"][0]["environment"]
    assert environment["kind"] == "image" and environment["matches_image"] is True
    assert "image 1.9-0 env (Python 3.12." in output


@pytest.mark.slow
def test_given_a_step_with_requirements_then_only_that_step_sees_its_overlay(monkeypatch):
    """evaluation.evaluate's evaluate.txt (matplotlib) is installed for steps named *.evaluate only."""
    _image_python_or_skip()
    monkeypatch.setenv("FORECAST_STEP_ENV", "strict")
    found, record, _ = _run_probe(resolve(), module="processing.evaluate")
    environment = record["steps"][0]["environment"]
    assert environment["requirements"] == "evaluate.txt" and environment["overlay"]
    assert found["seen"]["matplotlib"].startswith(environment["overlay"]) and environment["overlay"] in found["path"]
    assert environment["label"].endswith(" + evaluate.txt")


@pytest.mark.slow
def test_given_the_image_env_then_pip_check_passes_and_the_versions_are_the_pins():
    _image_python_or_skip()
    env = step_env.resolve(resolve().replace(step_env="strict"), out=print)
    listed = subprocess.run(
        [env.python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    installed = {p["name"].lower(): p["version"] for p in json.loads(listed)}
    assert {name.lower(): version for name, version in IMAGE.packages.items()}.items() <= installed.items()
    extra = set(installed) - {name.lower() for name in IMAGE.packages} - {"pip", "setuptools"}
    assert extra == set(), f"the step environment has packages the pins do not name: {extra}"


def _run_in_image_env(tmp_path, code: str) -> subprocess.CompletedProcess:
    """`code` in the image's environment with the code bundle (only) importable; warnings are errors."""
    _image_python_or_skip()
    env = step_env.resolve(resolve().replace(step_env="strict"), out=print)
    for relative, path in code_bundle.bundle_files():
        target = tmp_path / "code" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return subprocess.run(
        [env.python, "-W", "error::DeprecationWarning", "-W", "error::FutureWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "code")},
    )


@pytest.mark.slow
def test_given_the_image_env_then_evaluation_code_raises_no_deprecation_warning(tmp_path):
    """Python 3.12 deprecates ~ on bool (scoring._numeric used it): warnings are errors here."""
    result = _run_in_image_env(
        tmp_path,
        (
            "import pandas as pd; from evaluation.scoring import SERIES, SOURCE, _numeric\n"
            "frame = pd.DataFrame({'y': ['1', None, '3'], SOURCE: 'holdout.csv', SERIES: 'a'})\n"
            "print(_numeric(frame, 'y', 'target', allow_missing=True).tolist())\n"
            "try:\n    _numeric(frame, 'y', 'target', allow_missing=False)\n"
            "except ValueError as error:\n    print('refused:', error)\n"
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "[1.0, nan, 3.0]" and "refused:" in result.stdout


@pytest.mark.slow
def test_given_the_image_pandas_then_prepare_guesses_timestamp_formats(tmp_path):
    """On the 1.2-1 image's pandas 1.1.3 this import failed on every CSV input (issue 18)."""
    result = _run_in_image_env(
        tmp_path,
        (
            "import pandas; from processing.data_prep import _guess_format\n"
            "print(pandas.__version__, _guess_format('2023-01-31'), _guess_format('31/01/2023 10:30'))\n"
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2.2.3", "%Y-%m-%d", "%d/%m/%Y", "%H:%M"]


OFFLINE_MODULE = "processing.probe_offline"


def _offline_requirements(settings) -> None:
    """A requirements file of its own (a pin no other test installs), so no cached overlay answers."""
    uri = code_bundle.upload(settings, log=lambda line: None)
    (local_path(uri, settings) / "processing" / "requirements" / "probe_offline.txt").write_text("cycler==0.11.0\n")


def test_given_the_step_requirements_cannot_be_installed_then_the_step_runs_without_them_and_says_so(
    cache, monkeypatch
):
    """Offline (no index reachable): as on SageMaker in a VPC without internet access."""
    monkeypatch.setenv("FORECAST_STEP_PYTHON", sys.executable)
    monkeypatch.setenv("FORECAST_STEP_ENV", "image")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip fails at once, without the network
    settings = resolve()
    _offline_requirements(settings)
    found, record, output = _run_probe(settings, module=OFFLINE_MODULE)
    environment = record["steps"][0]["environment"]
    assert environment["requirements"] == "probe_offline.txt" and environment["overlay"] is None
    log = Path(record["steps"][0]["log"]).read_text()
    assert "[runtime] could not install probe_offline.txt (pip install failed" in log
    assert f"{OFFLINE_MODULE} runs without it, as on SageMaker when the install fails" in log


@pytest.mark.slow
def test_given_strict_mode_when_the_step_requirements_cannot_be_installed_then_the_step_fails(monkeypatch):
    _image_python_or_skip()
    monkeypatch.setenv("FORECAST_STEP_ENV", "strict")
    settings = resolve()
    step_env.resolve(settings, out=print)  # the base environment (cached), before going offline
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    _offline_requirements(settings)
    assert runtime.run_local(_probe_pipeline(settings, OFFLINE_MODULE), {}, settings, out=lambda line: None) == 1
    step = runtime.load_executions(settings)[0]["steps"][0]
    assert step["status"] == "Failed" and step["failure_reason"].startswith("probe_offline.txt: pip install failed")


def test_ensure_compiled_byte_compiles_a_folder_once(tmp_path, monkeypatch):
    """Steps inherit PYTHONDONTWRITEBYTECODE: an overlay nobody compiled was re-compiled at every import."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # the compile pass must not inherit it
    folder = tmp_path / "overlay"
    (folder / "pkg" / "tests").mkdir(parents=True)
    (folder / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (folder / "pkg" / "tests" / "test_x.py").write_text("X = 1\n")
    step_env._write_marker(folder, {"requirements": "pkg==1"})
    step_env.ensure_compiled(sys.executable, folder, folder, out=lambda text: None)
    assert list((folder / "pkg" / "__pycache__").glob("__init__.*.pyc"))
    assert not (folder / "pkg" / "tests" / "__pycache__").exists()  # tests folders skipped
    marker = json.loads((folder / step_env.MARKER).read_text())
    assert marker[step_env.COMPILED] is True and marker["requirements"] == "pkg==1"
    said = []
    step_env.ensure_compiled(sys.executable, folder, folder, out=said.append)
    assert said == []  # once
