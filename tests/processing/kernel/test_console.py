"""Libraries log, programs print: a program's console shows the project's log records as plain lines."""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import sys
from pathlib import Path

from processing.kernel import console


def test_given_no_console_when_a_library_logs_info_then_nothing_reaches_stdout(capsys):
    logging.getLogger("processing.some_module").info("progress")
    assert capsys.readouterr().out == ""


def test_given_the_console_when_a_library_logs_then_stdout_has_the_bare_message(capsys):
    console.setup()
    logging.getLogger("processing.some_module").info("read 3 rows")
    logging.getLogger("deploy.some_module").warning("warning: careful")
    logging.getLogger("__main__").info("a step script run with python -m")
    assert capsys.readouterr().out == "read 3 rows\nwarning: careful\na step script run with python -m\n"


def test_given_the_console_when_stdout_is_redirected_later_then_records_follow_it(capsys):
    # the local runtime redirects sys.stdout into a step's log around in-process steps
    console.setup()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        logging.getLogger("pipelines.local.sagemaker_jobs").info("[local transform] 1 file(s)")
    assert buffer.getvalue() == "[local transform] 1 file(s)\n"
    assert capsys.readouterr().out == ""


def test_setup_twice_prints_each_record_once_and_third_party_info_stays_hidden(capsys):
    console.setup()
    console.setup()
    logging.getLogger("forecasting.engine").info("once")
    logging.getLogger("botocore.credentials").info("Found credentials in environment variables.")
    assert capsys.readouterr().out == "once\n"


def test_records_are_not_passed_on_to_a_root_handler_too(capsys):
    # AWS Lambda's runtime (and logging.basicConfig) put a handler on the root logger
    root_stream = io.StringIO()
    handler = logging.StreamHandler(root_stream)
    logging.getLogger().addHandler(handler)
    try:
        console.setup()
        logging.getLogger("deploy.handler").info("deployed")
    finally:
        logging.getLogger().removeHandler(handler)
    assert capsys.readouterr().out == "deployed\n" and root_stream.getvalue() == ""


def test_reset_restores_the_logging_defaults(capsys):
    console.setup()
    console.reset()
    logging.getLogger("processing.some_module").info("hidden again")
    assert capsys.readouterr().out == ""
    assert logging.getLogger("processing").propagate and logging.getLogger("processing").level == logging.NOTSET


def _read_like_head(program: str, cwd) -> tuple:
    """Run `program` with stdout into a pipe that is closed after 10 bytes, as `| head` does:
    (exit status, stderr)."""
    process = subprocess.Popen(
        [sys.executable, "-c", program],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[3]), "PATH": "/usr/bin:/bin"},
    )
    process.stdout.read(10)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    return process.wait(timeout=60), stderr


def test_a_program_whose_reader_closes_the_pipe_finishes_its_work_without_a_traceback(tmp_path):
    """`python -m deploy.approve approve --latest | head` printed a BrokenPipeError traceback."""
    program = (
        "import logging\n"
        "from processing.kernel import console\n"
        "def main():\n"
        "    console.setup()\n"
        "    for i in range(100000):\n"
        "        logging.getLogger('deploy.x').info('logged %d', i)\n"
        "    open('finished', 'w').close()\n"  # the work went on after the reader left
        "    for i in range(100000):\n"
        "        print('line', i)\n"
        "    return 0\n"
        "console.exit_with(main)\n"
    )
    code, stderr = _read_like_head(program, tmp_path)
    assert code == 0  # the logging handler met the closed pipe first: output dropped, work done
    assert "Traceback" not in stderr and "Logging error" not in stderr, stderr[:500]
    assert (tmp_path / "finished").exists()


def test_a_print_into_a_closed_pipe_ends_the_program_with_status_1_and_no_traceback(tmp_path):
    program = (
        "from processing.kernel import console\n"
        "def main():\n"
        "    for i in range(200000):\n"
        "        print('line', i)\n"
        "    return 0\n"
        "console.exit_with(main)\n"
    )
    code, stderr = _read_like_head(program, tmp_path)
    assert code == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr[:500]
