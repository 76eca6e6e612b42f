"""A step's main: input errors are one line and an exit status, anything else keeps its traceback."""

from __future__ import annotations

import pytest

from processing.kernel.cli import step_main


class InputError(ValueError):
    pass


@step_main("Demo failed", InputError, code=3)
def main(argv=None, fail=None) -> int:
    """The demo step."""
    if fail is not None:
        raise fail
    print("done")
    return 0


def test_given_an_input_error_then_one_line_names_the_step_on_stderr_and_the_status_is_the_one_given(capsys):
    assert main([], fail=InputError("sales.csv line 7: 'x' is not a number")) == 3
    out, err = capsys.readouterr()
    assert out == "" and err == "Demo failed: sales.csv line 7: 'x' is not a number\n"


def test_given_success_then_the_main_returns_its_own_status_and_prints_as_it_does(capsys):
    assert main([]) == 0
    assert capsys.readouterr() == ("done\n", "")
    assert main.__name__ == "main" and main.__doc__ == "The demo step."


@pytest.mark.parametrize("error", [KeyError("column"), ValueError("not an input error"), SystemExit(2)])
def test_given_an_unexpected_error_then_it_propagates_with_its_traceback(error):
    with pytest.raises(type(error)):
        main([], fail=error)
