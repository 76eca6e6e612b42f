"""Entrypoint of every processing step: `python3 -m processing.entry <module> [args...]`.

Runs in the SageMaker scikit-learn processing container (the image and its pins:
pipelines/processing_image.toml; stdlib only here). Before running the step module it installs
processing/requirements/<name>.txt (name = the module's last component, e.g.
evaluation.evaluate -> evaluate.txt) when that file exists and the definition asks for it
(FORECAST_INSTALL_REQUIREMENTS=1). Those files list only what the image lacks, pinned exactly,
and only optional packages: when the install fails (a VPC with no internet access, say) the step
still runs, without them, and says so here and in its own log. The local runtime provides the
requirements itself (an overlay of the same pins), so installs are skipped there
(FORECAST_TARGET=local, or the switch at 0).
"""

from __future__ import annotations

import importlib
import os
import platform
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Sequence

INSTALL_ENV = "FORECAST_INSTALL_REQUIREMENTS"
REQUIREMENTS_DIR = Path(__file__).resolve().parent / "requirements"
INSTALL_TIMEOUT_SECONDS = 300  # a VPC without internet access makes pip wait; the step must go on


def requirements_file(module: str, directory: Path = REQUIREMENTS_DIR) -> Optional[Path]:
    """processing/requirements/<last module component>.txt, or None when the step needs none."""
    path = Path(directory) / (module.rsplit(".", 1)[-1] + ".txt")
    return path if path.is_file() else None


def requirement_names(path: Path) -> List[str]:
    """The package names a requirements file pins (comments and blank lines skipped)."""
    names = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split("==", 1)[0].strip())
    return names


def should_install(environ: Mapping[str, str]) -> bool:
    """Install only in containers: switch on, and not the local runtime."""
    return environ.get(INSTALL_ENV, "0") == "1" and environ.get("FORECAST_TARGET") != "local"


def install_command(path: Path, python: str = sys.executable) -> List[str]:
    """Exactly the pinned wheels, nothing else: no dependency resolution (the file names every
    package the image lacks), no source builds (the image has no compiler), few retries.
    The local runtime installs step overlays with the same flags (plus --target)."""
    return [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-deps",
        "--only-binary=:all:",
        "--retries",
        "1",
        "--timeout",
        "15",
        "-r",
        str(path),
    ]


def install(path: Path, module: str, run: Callable[..., object] = subprocess.run) -> bool:
    """Install the step's optional requirements; False (and a log line saying what is missing) on failure."""
    print(f"[entry] installing {path.name} for {module}: {', '.join(requirement_names(path))}", flush=True)
    try:
        run(install_command(path), check=True, timeout=INSTALL_TIMEOUT_SECONDS)
        return True
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        reason = (
            f"pip exited with code {error.returncode}"
            if isinstance(error, subprocess.CalledProcessError)
            else f"pip did not finish in {INSTALL_TIMEOUT_SECONDS}s"
            if isinstance(error, subprocess.TimeoutExpired)
            else str(error)
        )
        print(
            f"[entry] could not install {path.name} ({reason}; no access to PyPI, e.g. a VPC without "
            f"internet access?): {module} runs without {', '.join(requirement_names(path))}",
            flush=True,
        )
        return False


def main(
    argv: Sequence[str], environ: Mapping[str, str] = os.environ, run: Callable[..., object] = subprocess.run
) -> None:
    if not argv:
        raise SystemExit(
            "usage: python3 -m processing.entry <module> [arguments...]  (for example processing.prepare --input ...)"
        )
    module, arguments = argv[0], list(argv[1:])
    requirements = requirements_file(module)
    if requirements is not None and should_install(environ):
        if install(requirements, module, run):
            importlib.invalidate_caches()  # the running interpreter sees the new site-packages entries
    # the arguments are in the job's description (AppSpecification) and, locally, on the runtime's
    # "[runtime] <command>" line just above: printing them again made every command appear twice
    print(
        f"[entry] running {module} ({len(arguments)} arguments) with Python {platform.python_version()} "
        f"({sys.executable})",
        flush=True,
    )
    sys.argv = [module] + arguments
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
