"""Entrypoint of every processing step: `python3 -m processing.entry <module> [args...]`.

Runs in the SageMaker scikit-learn processing container (Python 3.9+, stdlib only here).
Before running the step module it installs processing/requirements/<name>.txt (name = the
module's last component, e.g. evaluation.evaluate -> evaluate.txt) when that file exists and
the definition asks for it (FORECAST_INSTALL_REQUIREMENTS=1). The local runtime already has
every dependency, so installs are skipped there (FORECAST_TARGET=local, or the switch at 0).
"""
from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Sequence

INSTALL_ENV = "FORECAST_INSTALL_REQUIREMENTS"
REQUIREMENTS_DIR = Path(__file__).resolve().parent / "requirements"


def requirements_file(module: str, directory: Path = REQUIREMENTS_DIR) -> Optional[Path]:
    """processing/requirements/<last module component>.txt, or None when the step needs none."""
    path = directory / (module.rsplit(".", 1)[-1] + ".txt")
    return path if path.is_file() else None


def should_install(environ: Mapping[str, str]) -> bool:
    """Install only in containers: switch on, and not the local runtime."""
    return environ.get(INSTALL_ENV, "0") == "1" and environ.get("FORECAST_TARGET") != "local"


def install_command(path: Path) -> List[str]:
    return [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-input", "-r", str(path)]


def main(argv: Sequence[str], environ: Mapping[str, str] = os.environ,
         run: Callable[..., object] = subprocess.run) -> None:
    if not argv:
        raise SystemExit("usage: python3 -m processing.entry <module> [arguments...]  "
                         "(for example processing.prepare --input ...)")
    module, arguments = argv[0], list(argv[1:])
    requirements = requirements_file(module)
    if requirements is not None and should_install(environ):
        print(f"[entry] installing {requirements.name} for {module}", flush=True)
        run(install_command(requirements), check=True)
    # the arguments are in the job's description (AppSpecification) and, locally, on the runtime's
    # "[runtime] <command>" line just above: printing them again made every command appear twice
    print(f"[entry] running {module} ({len(arguments)} arguments)", flush=True)
    sys.argv = [module] + arguments
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
