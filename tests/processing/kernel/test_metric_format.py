"""One format per kind of number: shares in percent, the rest in units, log lines in 4 digits."""

from __future__ import annotations

import math

import pytest

from processing.kernel import metric_format as mf


@pytest.mark.parametrize(
    "value, shown",
    [
        (0.0312, "3.12%"),
        (1.5, "150.00%"),
        (0.0, "0.00%"),
        (-0.0, "0.00%"),
        (0.00004, "<0.01%"),
        (0.0000123, "<0.01%"),
        (-0.00004, "-<0.01%"),
        (0.00005001, "0.01%"),
        (-0.5, "-50.00%"),
        (None, "-"),
        (math.nan, "-"),
        ("nan", "-"),
        ("n/a", "n/a"),
        (True, "True"),
    ],
)
def test_a_share_is_a_percent_that_is_zero_only_when_it_is(value, shown):
    assert mf.format_share(value) == shown


@pytest.mark.parametrize(
    "value, shown",
    [
        (7000, "7,000.00"),
        (-12345.678, "-12,345.68"),
        (0.004, "0.00"),
        (-0.004, "0.00"),
        (-0.0, "0.00"),
        (-0.005001, "-0.01"),
        (None, "-"),
        (float("nan"), "-"),
        ("text", "text"),
    ],
)
def test_units_have_two_decimals_thousands_separators_and_never_minus_zero(value, shown):
    assert mf.format_units(value) == shown


@pytest.mark.parametrize(
    "name, value, shown",
    [
        ("WAPE", 0.00987, "0.99%"),
        ("metric_wql", "0.0069", "0.69%"),
        ("coverage", 0.00001, "<0.01%"),
        ("relative_bias", -0.00001, "-<0.01%"),
        ("MASE", 0.7262, "0.73"),
        ("mae", 15.6355, "15.64"),
        ("bias", -0.001, "0.00"),
        ("level", 10287500.0, "10,287,500.00"),
        ("wape", None, "-"),
        ("wape", "n/a", "n/a"),
    ],
)
def test_a_metric_is_shown_as_its_kind(name, value, shown):
    assert mf.format_metric(name, value) == shown


@pytest.mark.parametrize(
    "value, shown",
    [(0.3333333, "0.3333"), (1.23e-05, "1.23e-05"), (12345.678, "1.235e+04"), (-0.0, "0"), (None, "undefined")],
)
def test_a_log_line_keeps_four_significant_digits(value, shown):
    assert mf.format_logged(value) == shown
    assert mf.format_logged(math.nan) == "undefined"


def test_evaluation_logs_with_the_same_rule():
    from evaluation.metrics import logged

    assert logged(-0.0) == "0" and logged(None) == "undefined" and logged(0.3333333) == "0.3333"


def test_pandas_missing_values_show_as_a_dash_as_the_report_tables_did():
    """processing.report's own formatters said '-' for pd.isna values; a nullable column's pd.NA
    showed as '<NA>' once they became format_units/format_share."""
    import pandas as pd

    from processing.kernel.metric_format import format_metric, format_share, format_units

    assert [format_units(pd.NA), format_share(pd.NA), format_metric("wape", pd.NaT)] == ["-", "-", "-"]
