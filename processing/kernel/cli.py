"""A step script's `main`: what its failures look like to the person running it. Stdlib only.

Input errors (the exceptions a step raises for bad input, a missing file, a refused AWS request)
are one line on stderr, `<prefix>: <message>` (the message names the file, column or
parameter), and an exit status; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, ParamSpec, Tuple, Type, Union

P = ParamSpec("P")
Errors = Union[Type[BaseException], Tuple[Type[BaseException], ...]]


def step_main(prefix: str, errors: Errors, code: int = 2) -> Callable[[Callable[P, int]], Callable[P, int]]:
    """Decorate a main: `errors` print `prefix: error` on one line to stderr and return `code`."""

    def decorate(main: Callable[P, int]) -> Callable[P, int]:
        @functools.wraps(main)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except errors as error:
                print(f"{prefix}: {error}", file=sys.stderr, flush=True)
                return code

        return wrapper

    return decorate


__all__ = ["step_main"]
