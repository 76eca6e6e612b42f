"""The interpreter local processing steps run with: the processing image's environment.

On SageMaker a step runs in the scikit-learn image (pipelines/processing_image.toml: its Python
minor version and exact pins) with only the code bundle and what the step installs. Locally the
runtime gives it the same:

- **image** (default): a venv built once from a Python of the image's minor version found on
  PATH (`python3.12`) or under pyenv (`pyenv root`/versions/3.12.*), with exactly the image's
  pins (`pip install --no-deps --only-binary=:all:`, then `pip check`). It is cached under
  `<cache>/step-env/py<version>-<hash>/`, the hash covering the environment file and the
  interpreter, built under a file lock (concurrent runs and tests wait for one build) and marked
  complete only at the end. A step's `processing/requirements/<step>.txt` becomes an overlay
  folder (`pip install --target`, the same flags processing.entry uses on SageMaker) on that
  step's PYTHONPATH only, so a step that forgot to declare a package fails locally too.
- No such Python (or the build fails, e.g. offline): the host's own Python, with ONE warning
  line naming the differences; `FORECAST_STEP_ENV=strict` makes that an error instead.
- `FORECAST_STEP_PYTHON=/path/to/python`: that interpreter, as is (plus the step overlays).
- `FORECAST_STEP_ENV=host`: the host's Python directly, no warning.

The host's Python still runs isolated: a venv without pip whose only `.pth` file lists the
host's site-packages folders as plain paths, so their own `.pth` files (the project's editable
install finder among them) are never executed and the checkout is not importable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from pipelines import processing_image
from processing.atomic import file_lock, write_text_atomic  # file_lock: one build for concurrent runs
from processing.kernel import console
from processing.kernel.settings import Settings

logger = logging.getLogger(__name__)

IMAGE, STEP_PYTHON, HOST_FALLBACK, HOST = "image", "FORECAST_STEP_PYTHON", "host fallback", "host"
MARKER = "environment.json"  # written last: its presence means the folder is complete
PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)"
PIP_TIMEOUT_SECONDS = 900
HEARTBEAT_SECONDS = 30


class StepEnvironmentError(RuntimeError):
    """The image's environment cannot be had and the settings forbid the fallback."""


@dataclasses.dataclass(frozen=True)
class StepEnvironment:
    """An interpreter for processing steps and what it is."""

    kind: str  # IMAGE, STEP_PYTHON, HOST_FALLBACK or HOST
    python: str  # the executable steps run with
    python_version: str  # "3.12.1"
    root: Optional[Path] = None  # the venv (image env, host venv); overlays are cached beside it
    note: str = ""  # why a fallback happened, the warning text

    @property
    def label(self) -> str:
        """Short, for the run summary: 'image 1.9-0 (Python 3.12.1)'."""
        if self.kind == IMAGE:
            return f"image {processing_image.load().version} env (Python {self.python_version})"
        return f"{self.kind} (Python {self.python_version})"

    def record(self, overlay: Optional[Path] = None, requirements: Optional[str] = None) -> dict:
        """What the execution record says about the environment a step ran in."""
        image = processing_image.load()
        entry = {
            "kind": self.kind,
            "label": self.label,
            "python": self.python,
            "python_version": self.python_version,
            "image": image.version,
            "image_python": image.python,
            "matches_image": self.kind == IMAGE,
        }
        if requirements:
            entry["requirements"] = requirements
            entry["overlay"] = str(overlay) if overlay else None
            if overlay:
                entry["label"] += f" + {requirements}"
        if self.note:
            entry["note"] = self.note
        return entry


# --- finding a Python of the image's minor version ----------------------------------------
def probe(python: str, timeout: float = 30) -> Optional[tuple[str, str]]:
    """(full version, sys.executable) of an interpreter, or None when it does not run
    (a pyenv shim for a version that is not selected prints an error and exits 127)."""
    try:
        result = subprocess.run(
            [python, "-c", PROBE], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = result.stdout.split()
    if result.returncode != 0 or len(lines) < 2 or not re.fullmatch(r"\d+\.\d+\.\d+", lines[0]):
        return None
    return lines[0], lines[1]


def _pyenv_roots(environ) -> list[str]:
    roots = []
    if environ.get("PYENV_ROOT"):
        roots.append(environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv", path=environ.get("PATH"))
    if pyenv:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
            )
            if result.returncode == 0 and result.stdout.strip():
                roots.append(result.stdout.strip())
    roots.append(str(Path.home() / ".pyenv"))
    return list(dict.fromkeys(roots))


def _version_key(path: str) -> tuple:
    match = re.search(r"versions/(\d+)\.(\d+)\.(\d+)", path)
    return tuple(int(x) for x in match.groups()) if match else (0, 0, 0)


def find_python(minor: str, environ=None) -> Optional[tuple[str, str]]:
    """A working interpreter of version `minor` ("3.12"): (path, full version), or None.

    PATH first (`python3.12`, each match tried, so a pyenv shim that refuses is skipped), then
    pyenv's installed versions (newest patch release first).
    """
    environ = os.environ if environ is None else environ
    for candidate in _candidates(minor, environ, _pyenv_roots(environ)):
        probed = probe(candidate)
        if probed and probed[0].startswith(minor + "."):
            return candidate, probed[0]
    return None


def _candidates(minor: str, environ, roots: Sequence[str]) -> list:
    """`python<minor>` files on PATH, then under each pyenv root's versions (newest first)."""
    candidates = []
    for folder in (environ.get("PATH") or "").split(os.pathsep):
        path = Path(folder or ".") / f"python{minor}"
        if path.is_file() and os.access(path, os.X_OK):
            candidates.append(str(path))
    for root in roots:
        found = glob.glob(os.path.join(root, "versions", f"{minor}.*", "bin", f"python{minor}"))
        candidates.extend(sorted(found, key=_version_key, reverse=True))
    return list(dict.fromkeys(candidates))


FOUND_FILE = "interpreters.json"
FOUND_ENVIRONMENT = ("PATH", "PYENV_ROOT", "PYENV_VERSION", "HOME")


def remembered_python(minor: str, settings: Settings, environ=None) -> Optional[tuple[str, str]]:
    """find_python's answer, remembered in the cache (step-env/interpreters.json) for the same PATH and
    pyenv settings while the same candidate files exist and the interpreter found is the same file.

    Searching runs each candidate (a pyenv shim for a version that is not selected takes 0.3 s to
    refuse, `pyenv root` 0.03 s) at every run's start, for an answer that changes only when
    interpreters are installed or removed, which the candidates' list and the file's identity show."""
    environ = os.environ if environ is None else environ
    key = minor + "|" + hashlib.sha256(json.dumps([environ.get(n) for n in FOUND_ENVIRONMENT]).encode()).hexdigest()
    path = cache_root(settings) / FOUND_FILE
    home = environ.get("HOME") or str(Path.home())
    roots = list(dict.fromkeys(filter(None, [environ.get("PYENV_ROOT"), os.path.join(home, ".pyenv")])))
    candidates = _candidates(minor, environ, roots)
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    entry = known.get(key) if isinstance(known, dict) else None
    if (
        isinstance(entry, dict)
        and entry.get("candidates") == candidates
        and entry.get("file") == _identity(entry.get("python"))
    ):
        return entry["python"], entry["version"]
    found = find_python(minor, environ)
    if found is not None:
        known = known if isinstance(known, dict) else {}
        known[key] = {"python": found[0], "version": found[1], "candidates": candidates, "file": _identity(found[0])}
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps(known, indent=1, sort_keys=True))
    return found


def _identity(python: Optional[str]) -> Optional[list]:
    """The interpreter's file as it is now (its real path, size, modification time), None when missing."""
    if not python:
        return None
    try:
        real = os.path.realpath(python)
        stat = os.stat(real)
    except OSError:
        return None
    return [real, stat.st_size, stat.st_mtime_ns]


# --- cache folders, locks, builds ---------------------------------------------------------
def cache_root(settings: Settings) -> Path:
    return settings.cache_path / "step-env"


def environment_key(image: processing_image.ProcessingImage, python_version: str, python: str) -> str:
    """Changes when a pin, the image or the interpreter changes (so the venv is rebuilt)."""
    digest = hashlib.sha256()
    for part in (image.digest, python_version, os.path.realpath(python), platform.machine()):
        digest.update(part.encode() + b"\0")
    return f"py{python_version}-{digest.hexdigest()[:12]}"


def overlay_key(requirements_text: str) -> str:
    """The pins, not the comments: two steps with the same requirements share one overlay."""
    lines = sorted(line.split("#", 1)[0].strip() for line in requirements_text.splitlines())
    return hashlib.sha256("\n".join(line for line in lines if line).encode()).hexdigest()[:12]


def _complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def _write_marker(folder: Path, document: dict) -> None:
    temporary = folder / (MARKER + ".tmp")
    temporary.write_text(json.dumps(document, indent=2))
    os.replace(temporary, folder / MARKER)


def _pip(python: str, arguments: Sequence[str], log_path: Path, out: Optional[Callable[[str], None]] = None) -> None:
    """pip with its output in log_path; a line every HEARTBEAT_SECONDS so a long download shows life."""
    command = [python, "-m", "pip", *arguments]
    started = time.monotonic()
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            while True:
                try:
                    returncode = process.wait(timeout=HEARTBEAT_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - started
                    if elapsed > PIP_TIMEOUT_SECONDS:
                        raise StepEnvironmentError(
                            f"pip {arguments[0]} did not finish in {PIP_TIMEOUT_SECONDS}s (log: {log_path})"
                        ) from None
                    if out is not None:
                        out(f"    ... pip {arguments[0]} still running ({elapsed:.0f}s; log: {log_path})")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if returncode != 0:
        lines = [
            line
            for line in log_path.read_text(errors="replace").splitlines()
            if line.strip() and not line.startswith("WARNING: Location")
        ]
        last = next((line for line in reversed(lines) if "ERROR" in line), lines[-1] if lines else "")
        raise StepEnvironmentError(f"pip {arguments[0]} failed (exit {returncode}): {last.strip()} (log: {log_path})")


COMPILED = "compiled"  # marker key: the folder's modules are byte-compiled (once, at build)


# not byte-compiled: what no step imports at start (the largest folders of the image's venv) and tests
NOT_COMPILED = r"[/\\](tests?|scipy|sklearn|pip|setuptools)[/\\]"


def ensure_compiled(python: str, folder: Path, tree: Path, out: Callable[[str], None] = logger.info) -> None:
    """Byte-compile `tree` (a venv's site-packages, an overlay) once, with the steps' interpreter.

    Steps inherit the user's PYTHONDONTWRITEBYTECODE (set in many shells and images), and pip
    installs here with --no-compile: without this, every step re-compiled the pure-Python modules it
    imports at every run (matplotlib alone: 1.3 s of CPU in each plotting step). The marker records
    it, so an environment built before this ran is compiled at its next use. Skipped: NOT_COMPILED.
    """
    marker = folder / MARKER
    try:
        document = json.loads(marker.read_text())
    except (OSError, ValueError):
        return
    if document.get(COMPILED):
        return
    with file_lock(folder.with_name(folder.name + ".lock")):
        document = json.loads(marker.read_text())
        if document.get(COMPILED):
            return
        started = time.monotonic()
        try:  # a file that does not compile is the package's business: its import reports it
            subprocess.run(
                [python, "-m", "compileall", "-q", "-j", "0", "-x", NOT_COMPILED, str(tree)],
                capture_output=True,
                timeout=PIP_TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
                env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            )
        except (OSError, subprocess.SubprocessError) as error:
            logger.warning("could not byte-compile %s: %s", tree, error)
            return
        document[COMPILED] = True
        _write_marker(folder, document)
        out(f"Byte-compiled {tree} once in {time.monotonic() - started:.0f}s")


def build_image_environment(
    python: str,
    python_version: str,
    settings: Settings,
    out: Callable[[str], None] = logger.info,
    image: Optional[processing_image.ProcessingImage] = None,
) -> Path:
    """The cached venv with the image's pins for `python`; built once, under a lock."""
    image = image or processing_image.load()
    folder = cache_root(settings) / environment_key(image, python_version, python)
    if _complete(folder):
        ensure_compiled(str(folder / "bin" / "python"), folder, _site_packages(folder), out)
        return folder
    with file_lock(folder.with_name(folder.name + ".lock")):
        if _complete(folder):  # another process built it while we waited
            return folder
        if folder.exists():  # an interrupted earlier build
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        heads = ", ".join(
            f"{n} {image.packages[n]}" for n in ("pandas", "numpy", "scikit-learn", "pyarrow") if n in image.packages
        )
        out(
            f"Building the processing image's environment (Python {image.python}, {heads} ...: "
            f"{len(image.packages)} pinned packages from {processing_image.ENV_FILE.name}) once, "
            f"with {python} (Python {python_version}); cached in {folder}"
        )
        started = time.monotonic()
        log_path = folder.with_name(folder.name + ".build.log")
        log_path.write_text("")
        try:
            subprocess.run(
                [python, "-m", "venv", str(folder)],
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
                stdin=subprocess.DEVNULL,
            )
            venv_python = str(folder / "bin" / "python")
            # --no-compile: byte-compiling every module of scipy/pandas/sklearn doubled the build on
            # two busy cores; the image does not ship .pyc files either (PYTHONDONTWRITEBYTECODE=1)
            _pip(
                venv_python,
                [
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--no-deps",
                    "--no-compile",
                    "--only-binary=:all:",
                    "--retries",
                    "2",
                    *image.requirements(),
                ],
                log_path,
                out,
            )
            _pip(venv_python, ["check"], log_path)  # the pins are complete: every requirement met
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            shutil.rmtree(folder, ignore_errors=True)
            detail = (getattr(error, "stderr", "") or "").strip().splitlines()
            raise StepEnvironmentError(
                f"could not create a venv with {python}: {detail[-1] if detail else error}"
            ) from None
        except StepEnvironmentError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        _write_marker(
            folder,
            {
                "image": image.version,
                "python": python,
                "python_version": python_version,
                "packages": dict(image.packages),
                "environment_file_sha256": image.digest,
                "source": dict(image.source),
                "built_seconds": round(time.monotonic() - started, 1),
            },
        )
        out(f"Processing image environment ready in {time.monotonic() - started:.0f}s ({folder})")
    ensure_compiled(str(folder / "bin" / "python"), folder, _site_packages(folder), out)
    return folder


def host_environment(settings: Settings, kind: str = HOST_FALLBACK, note: str = "") -> StepEnvironment:
    """This Python, isolated: a pip-less venv whose one .pth lists the host's site-packages as
    plain paths (their own .pth files, the editable install's finder among them, never run)."""
    version = platform.python_version()
    digest = hashlib.sha256((os.path.realpath(sys.executable) + "\0" + version).encode()).hexdigest()[:12]
    folder = cache_root(settings) / f"host-py{version}-{digest}"
    if not _complete(folder):
        with file_lock(folder.with_name(folder.name + ".lock")):
            if not _complete(folder):
                if folder.exists():
                    shutil.rmtree(folder)
                folder.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(
                    [sys.executable, "-m", "venv", "--without-pip", str(folder)],
                    check=True,
                    capture_output=True,
                    timeout=300,
                    stdin=subprocess.DEVNULL,
                )
                (_site_packages(folder) / "host-site-packages.pth").write_text(
                    "".join(p + "\n" for p in host_site_packages())
                )
                _write_marker(
                    folder, {"python": sys.executable, "python_version": version, "site_packages": host_site_packages()}
                )
    return StepEnvironment(
        kind=kind, python=str(folder / "bin" / "python"), python_version=version, root=folder, note=note
    )


def host_site_packages() -> list[str]:
    """The host's site-packages folders (not the folders their .pth files add)."""
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        folders.append(site.getusersitepackages())
    return [f for f in dict.fromkeys(folders) if os.path.isdir(f)]


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages"))
    if not found:
        raise StepEnvironmentError(f"{venv}: no lib/python*/site-packages in the new venv")
    return found[0]


# --- the choice -----------------------------------------------------------------------------
def fallback_warning(image: processing_image.ProcessingImage, reason: str) -> str:
    """One line: why, and how the host differs from the image (Python and the headline pins)."""
    differences = [f"Python {platform.python_version()} vs {image.python}"]
    from importlib import metadata

    for name in ("pandas", "numpy", "scipy", "scikit-learn", "pyarrow", "boto3"):
        wanted = image.packages.get(name)
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "missing"
        if wanted and have != wanted:
            differences.append(f"{name} {have} vs {wanted}")
    return (
        f"warning: {reason}; processing steps run with this Python ({sys.executable}), which differs from "
        f"the scikit-learn {image.version} image: {', '.join(differences)}; a green local run may not "
        f"predict SageMaker (FORECAST_STEP_ENV=strict makes this an error)"
    )


def resolve(
    settings: Settings,
    out: Callable[[str], None] = logger.info,
    find: Optional[Callable[[str], Optional[tuple[str, str]]]] = None,
) -> StepEnvironment:
    """The environment for this run's processing steps (builds the image env on first use)."""
    image = processing_image.load()
    find = find or (lambda minor: remembered_python(minor, settings))
    if settings.step_python:
        probed = probe(settings.step_python)
        if probed is None:
            raise StepEnvironmentError(
                f"FORECAST_STEP_PYTHON={settings.step_python} does not run (expected the path of a Python interpreter)"
            )
        env = StepEnvironment(kind=STEP_PYTHON, python=settings.step_python, python_version=probed[0])
        if not probed[0].startswith(image.python + "."):
            message = (
                f"FORECAST_STEP_PYTHON={settings.step_python} is Python {probed[0]}; the scikit-learn "
                f"{image.version} image has Python {image.python}"
            )
            if settings.step_env == "strict":
                raise StepEnvironmentError(message + " (FORECAST_STEP_ENV=strict)")
            out("warning: " + message)
        return env
    if settings.step_env == "host":
        return host_environment(settings, kind=HOST)
    found = find(image.python)
    if found is not None:
        try:
            root = build_image_environment(found[0], found[1], settings, out, image)
            return StepEnvironment(kind=IMAGE, python=str(root / "bin" / "python"), python_version=found[1], root=root)
        except StepEnvironmentError as error:
            reason = f"could not build the processing image's environment: {error}"
    else:
        reason = (
            f"no Python {image.python} found (looked for python{image.python} on PATH and under "
            f"pyenv's versions/{image.python}.*)"
        )
    if settings.step_env == "strict":
        raise StepEnvironmentError(
            f"{reason}; FORECAST_STEP_ENV=strict forbids running processing steps "
            f"with another Python (install Python {image.python}, e.g. "
            f"`pyenv install {image.python}`, or set FORECAST_STEP_PYTHON)"
        )
    warning = fallback_warning(image, reason)
    out(warning)  # once: the runtime resolves the environment once per execution
    return host_environment(settings, kind=HOST_FALLBACK, note=warning)


def overlay_folder(env: StepEnvironment, requirements_text: str, settings: Settings) -> Path:
    """Where the overlay of these requirements for `env` is (or will be) installed."""
    base = (
        env.root
        if env.root is not None
        else cache_root(settings) / ("python-" + hashlib.sha256(os.path.realpath(env.python).encode()).hexdigest()[:12])
    )
    return Path(str(base) + ".overlays") / overlay_key(requirements_text)


def installed_overlay(env: StepEnvironment, requirements: Path, settings: Settings) -> Optional[Path]:
    """The overlay `overlay()` would give, when it is installed and compiled already (nothing is
    installed here), else None."""
    if env.kind in (HOST, HOST_FALLBACK):
        return None
    try:
        folder = overlay_folder(env, Path(requirements).read_text(), settings)
        document = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return folder if document.get(COMPILED) else None


def overlay(
    env: StepEnvironment, requirements: Path, settings: Settings, out: Callable[[str], None] = logger.info
) -> Optional[Path]:
    """The step's requirements installed for `env` in a folder of their own (cached by content).

    Returns None for the host's own Python (it has the project's packages already). Raises
    StepEnvironmentError when pip fails.
    """
    from processing.entry import install_command, requirement_names

    if env.kind in (HOST, HOST_FALLBACK):
        return None
    text = Path(requirements).read_text()
    folder = overlay_folder(env, text, settings)
    if _complete(folder):
        ensure_compiled(env.python, folder, folder, out)
        return folder
    with file_lock(folder.with_name(folder.name + ".lock")):
        if _complete(folder):
            return folder
        out(
            f"Installing {Path(requirements).name} for the step environment once "
            f"({', '.join(requirement_names(Path(requirements)))}); cached in {folder}"
        )
        started = time.monotonic()
        staging = folder.with_name(folder.name + f".tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        log_path = folder.with_name(folder.name + ".build.log")
        log_path.write_text("")
        command = install_command(Path(requirements), python=env.python)
        try:
            _pip(env.python, [*command[3:], "--no-compile", "--target", str(staging)], log_path, out)
            _write_marker(staging, {"requirements": text, "python": env.python})
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        out(f"Installed {Path(requirements).name} in {time.monotonic() - started:.0f}s")
    ensure_compiled(env.python, folder, folder, out)
    return folder


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m pipelines.local.step_env`: build (or find) the step environment and say which it is."""
    console.setup()
    import argparse

    from processing.kernel.settings import SettingsError
    from processing.kernel.settings import resolve as resolve_settings

    parser = argparse.ArgumentParser(
        prog="python -m pipelines.local.step_env",
        description="Build the processing image's environment for local steps "
        "(once; cached) and print which interpreter steps run with.",
    )
    parser.parse_args(argv)
    try:
        env = resolve(resolve_settings())
    except (StepEnvironmentError, SettingsError) as error:
        print(f"error: {error}")
        return 1
    print(f"processing steps run in the {env.label}: {env.python}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
