"""The console of the project's programs: libraries log, programs print.

Library code logs through `logging.getLogger(__name__)`. A program's entry point (a CLI's or step
script's `main`, the deploy Lambda's handler) calls `setup()` once: the project's records at INFO
and above then reach stdout as plain `%(message)s` lines, the text `print` wrote before, so what
a user, a test or the local runtime's step log sees is unchanged. Standard library only: step
scripts import it inside the processing container.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable

# the top-level packages, plus "__main__": a step script run with `python -m` (or by
# processing.entry through runpy) logs under that name
LOGGERS = ("processing", "evaluation", "forecasting", "deploy", "pipelines", "benchmarks", "__main__")


class _CurrentStdout(logging.StreamHandler):
    """Writes to sys.stdout as it is when a record is emitted, like logging's lastResort does for
    stderr: pytest's capsys, contextlib.redirect_stdout and the local runtime's in-process step
    capture all replace sys.stdout after the program set up its console."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):  # noqa: D401 - logging.StreamHandler reads self.stream on every emit
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.setStream assigns it; the live stdout wins
        pass

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """The reader closed the pipe (`... | head`): the work goes on, its output to /dev/null,
        instead of a "--- Logging error ---" traceback per record."""
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            _silence_stdout()
            return
        super().handleError(record)


def _silence_stdout() -> None:
    """Point the stdout file descriptor at /dev/null (Python's recipe for a closed pipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


_HANDLER = _CurrentStdout()


def setup(level: int = logging.INFO) -> None:
    """Show the project's log records on stdout as plain lines (idempotent: a second call changes nothing).

    The records are not passed on to the root logger as well: a root handler (AWS Lambda's runtime
    installs one, so does logging.basicConfig) would print every line twice.
    """
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = False
        if _HANDLER not in logger.handlers:
            logger.addHandler(_HANDLER)


def reset() -> None:
    """Undo setup(): library records go back to the logging defaults (the tests call this after each test)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _HANDLER in logger.handlers:
            logger.removeHandler(_HANDLER)
            logger.setLevel(logging.NOTSET)
            logger.propagate = True


def exit_with(main: Callable[[], int]) -> None:
    """`sys.exit(main())` for a program whose output may be piped into `head`: when the reader
    closes the pipe, the program ends quietly with status 1 instead of a BrokenPipeError
    traceback (Python's documented recipe: stdout goes to /dev/null so the exit flush cannot fail)."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(1)
    sys.exit(code)
