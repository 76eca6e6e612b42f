"""The threading environment a process sets for itself at start."""

from __future__ import annotations

from processing.kernel.process_env import THREADING_ENV, configure_threads


def test_given_no_setting_when_configured_then_openmp_threads_sleep_while_idle():
    environ: dict = {}
    configure_threads(environ)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"} == THREADING_ENV


def test_given_the_users_own_setting_when_configured_then_it_is_kept():
    environ = {"OMP_WAIT_POLICY": "ACTIVE"}
    configure_threads(environ)
    assert environ == {"OMP_WAIT_POLICY": "ACTIVE"}
