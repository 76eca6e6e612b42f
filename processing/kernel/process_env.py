"""Environment a process sets for itself when it starts (entry points, never libraries at import).

Standard library only: step scripts, the local runtime, the engine's CLIs and worker processes,
the AutoML worker and the endpoint all call `configure_threads()` first thing.
"""

from __future__ import annotations

import os
from typing import MutableMapping, Optional

# OpenMP threads that spin while waiting make LightGBM ~50x slower when the cores are shared
# (measured: 250 rounds on 8,500 rows, 2 threads, busy machine: 96 s spinning, 2 s passive);
# waiting threads sleep instead. OpenMP reads it once, when it loads: set it before that.
THREADING_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def configure_threads(environ: Optional[MutableMapping[str, str]] = None) -> None:
    """Set each THREADING_ENV variable the user has not set (theirs wins)."""
    environ = os.environ if environ is None else environ
    for name, value in THREADING_ENV.items():
        environ.setdefault(name, value)
