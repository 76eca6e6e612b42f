"""Report step of the batch pipeline: forecasts -> tables, summary, inventory, charts, HTML.

    python -m processing.report --forecasts DIR --history PATH --model-dir DIR --out DIR \
        [--item-id-column item_id] [--timestamp-column timestamp] [--target-column target_value] \
        [--grouping-columns a,b] [--quantiles p10,p50,p90] [--service-level 0.9]
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from processing import monitor_report, reporting, tables
from processing.atomic import staged_directory
from processing.kernel import console
from processing.kernel.cli import step_main
from processing.kernel.contracts import RESOLVED_MODEL_FILE, add_column_arguments, parse_list
from processing.kernel.metric_format import format_share, format_units
from processing.reporting import Columns, ReportInputError

logger = logging.getLogger(__name__)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m processing.report", description=__doc__.split("\n")[0])
    parser.add_argument("--forecasts", required=True, type=Path, help="transform output (.out files) or a CSV")
    parser.add_argument("--history", required=True, type=Path, help="the batch input: history + future rows")
    parser.add_argument("--model-dir", type=Path, help=f"folder holding {RESOLVED_MODEL_FILE} (ResolveModel)")
    parser.add_argument("--out", required=True, type=Path)
    add_column_arguments(parser, frequency=False)
    parser.add_argument(
        "--quantiles",
        default="",
        help="quantile columns to read; default: the model's forecast_quantiles, else p10,p50,p90",
    )
    parser.add_argument("--service-level", type=float, default=0.9)
    parser.add_argument("--monitor-dir", type=Path, help="MonitorForecasts output (accuracy.json, drift.json)")
    return parser.parse_args(argv)


def read_history(path: Path, columns: Columns, lean: bool = False, text_attributes_only: bool = False) -> pd.DataFrame:
    """The batch input (history + future rows) through the one reader: ids and grouping as text.

    text_attributes_only (MonitorForecasts): from PrepareBatchInput's history.parquet only the id,
    grouping, timestamp, target and text attribute columns (no numeric attribute: ~1 GB less at
    25,000 series). lean (the report): those columns, and text kept categorical, as the file's
    dictionaries hold it: at 25,000 series (27M rows) a string object per row and column cost the
    report most of its 90 s and GBs. Without that file, every column as plain text."""
    select = lean or text_attributes_only
    try:
        history = _read_history_parquet(
            path,
            [columns.item_id, *columns.grouping],
            columns.timestamp,
            columns.target if select else None,
            categorical=lean,
        )
        if history is None:
            history = tables.read_frame_shared_text(
                path, [columns.item_id, *columns.grouping], what="history", numeric=[columns.target]
            )
    except tables.TableError as error:
        raise ReportInputError(str(error)) from None
    missing = [c for c in (columns.item_id, columns.timestamp, columns.target) if c not in history.columns]
    if missing:
        raise ReportInputError(f"{path}: history lacks column(s) {missing}; it has {list(history.columns)}")
    if select:  # the shards' path (no history.parquet) reads every column: leave out the same ones
        keep = {columns.item_id, *columns.grouping, columns.timestamp, columns.target}
        numeric = [c for c in history.columns if c not in keep and pd.api.types.is_numeric_dtype(history[c])]
        if numeric:
            history = history.drop(columns=numeric)
    history[columns.timestamp] = pd.to_datetime(tables.local_time_texts(history[columns.timestamp]))
    return history


HISTORY_FILE = "history.parquet"  # processing.batch_input.HISTORY_FILE


def _read_history_parquet(
    path: Path,
    text_columns: Sequence[str],
    timestamp: str,
    lean_target: Optional[str] = None,
    categorical: bool = False,
) -> Optional[pd.DataFrame]:
    """PrepareBatchInput's history.parquet (in the folder `path`) as the frame reading its shards
    gives: the same rows and types, text as plain strings shared per distinct value (read from the
    file's dictionaries), a missing text NaN, `text_columns` as text, and the `timestamp` text
    parsed as read_history parses it, once per distinct value. None without that file.

    lean_target (the target column): only the text columns, the `text_columns`, `timestamp` and
    that target; categorical: text left categorical (missing: no category), as read_history's lean."""
    file = Path(path) / HISTORY_FILE if Path(path).is_dir() else Path(path)
    if file.name != HISTORY_FILE or not file.is_file():
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(file)
        text = [f.name for f in schema if _is_text(pa, f.type)]
        wanted = None
        if lean_target is not None:
            keys = {*text_columns, timestamp, lean_target}
            wanted = [f.name for f in schema if f.name in keys or f.name in text]
        table = pq.read_table(file, columns=wanted, read_dictionary=text)
        frame = table.to_pandas(split_blocks=True, self_destruct=True)  # each column's Arrow buffers freed as converted
        del table
    except (pa.ArrowException, OSError) as error:
        raise tables.TableError(f"history {file}: cannot be read as Parquet: {error}") from None
    for column in frame.columns:
        values = frame[column]
        if column == timestamp and isinstance(values.dtype, pd.CategoricalDtype):
            stamps = pd.to_datetime(tables.local_time_texts(pd.Series(values.cat.categories.astype(object))))
            frame[column] = pd.Series(stamps.to_numpy()[values.cat.codes.to_numpy()], index=frame.index)
            if values.isna().any():
                frame[column] = frame[column].where(values.notna())
        elif isinstance(values.dtype, pd.CategoricalDtype):
            if not categorical or values.cat.categories.dtype != object:
                frame[column] = values.astype(object)
        elif column in text_columns and values.dtype != object:  # numbers: their CSV text
            texts = values.astype(object).map(str)
            frame[column] = texts.where(values.notna(), np.nan)
    return frame


def _is_text(pa, kind) -> bool:
    """A string column, or a dictionary of strings (how PrepareBatchInput stores text)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def check_every_series_forecast(history: pd.DataFrame, forecasts: pd.DataFrame, columns: Columns, source: Path) -> None:
    """Every series sent to the transform has a forecast: a partial batch run fails, naming the missing ones.

    Keys are compared as text, so an id that lost its leading zeros on the way ('007' -> '7') is
    reported as missing instead of passing as another item.
    """
    keys = [columns.item_id, *[g for g in columns.grouping if g in history.columns and g in forecasts.columns]]
    # distinct keys first: 27M rows as text would be a string object each (25,000 series)
    given = history[keys].drop_duplicates().astype(str).drop_duplicates()
    got = set(map(tuple, forecasts[keys].astype(str).drop_duplicates().to_numpy().tolist()))
    missing = [key for key in map(tuple, given.to_numpy().tolist()) if key not in got]
    if missing:
        shown = ", ".join(repr(k[0]) if len(k) == 1 else repr(k) for k in missing[:20])
        raise ReportInputError(
            f"{len(missing)} of {len(given)} series in the batch input ({source}) have no forecast: {shown}"
            f"{' ...' if len(missing) > 20 else ''}. The transform output is incomplete; check the "
            "BatchForecast step's log and rerun the batch pipeline."
        )


def format_timestamps(values: pd.Series) -> pd.Series:
    """Dates when every time is midnight, else date and time (the layout PrepareData writes)."""
    midnight = (values.dt.normalize() == values).all()
    return values.dt.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S")


CSV_DECIMALS = 2  # demand in units: hundredths are far finer than any forecast's accuracy


def rounded(frame: pd.DataFrame, decimals: int = CSV_DECIMALS) -> pd.DataFrame:
    """Float columns rounded for the CSVs people open in a spreadsheet (the parquet keeps every digit)."""
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    return frame.assign(**{c: frame[c].round(decimals) for c in floats})


def read_model_info(model_dir: Optional[Path]) -> dict:
    if model_dir is None:
        return {}
    path = model_dir / RESOLVED_MODEL_FILE if model_dir.is_dir() else model_dir
    if not path.is_file():
        raise ReportInputError(f"{path}: the resolved model description is missing")
    return json.loads(path.read_text())


def write_report(args: argparse.Namespace, log: Callable[[str], None] = logger.info) -> Path:
    columns = Columns(
        args.item_id_column, args.timestamp_column, args.target_column, tuple(parse_list(args.grouping_columns))
    )
    model = read_model_info(args.model_dir)
    quantiles: List[str] = parse_list(args.quantiles or model.get("forecast_quantiles") or "p10,p50,p90")
    for name in quantiles:
        reporting.quantile_level(name)
    forecasts = reporting.read_forecasts(args.forecasts, columns, quantiles)
    forecasts[columns.item_id] = forecasts[columns.item_id].astype(str)
    history = read_history(args.history, columns, lean=True)
    check_every_series_forecast(history, forecasts, columns, args.history)
    statics = reporting.static_attributes(history, columns)
    forecasts, adjusted = reporting.coherent(forecasts, quantiles)
    table = reporting.tidy_table(forecasts, statics, columns, quantiles)
    horizon = int(table.groupby(columns.item_id)[columns.timestamp].nunique().max())
    totals = reporting.item_totals(table, columns, quantiles)
    observed = reporting.observed_history(history, columns)
    moves = reporting.movers(totals, reporting.last_period_totals(history, columns, horizon, observed), columns)
    summary = reporting.build_summary(
        table,
        totals,
        moves,
        statics,
        columns,
        quantiles,
        horizon,
        model,
        reporting.recent_history(history, columns, max(reporting.RECENT_PERIODS, 2 * horizon), observed),
    )
    summary["rows_made_coherent"] = adjusted
    aggregation, factor, basis = reporting.inventory_aggregation(model)
    inventory = reporting.inventory_suggestions(table, columns, quantiles, args.service_level, aggregation, factor)
    summary["service_level"] = args.service_level
    summary.update(inventory_aggregation=aggregation, inventory_spread_factor=factor, inventory_basis=basis)
    summary["total_order_up_to"] = float(inventory["order_up_to_level"].sum())
    accuracy_doc, drift = monitor_report.load(args.monitor_dir)
    monitor_report.extend_summary(summary, accuracy_doc, drift)

    out = args.out
    with staged_directory(out) as staging:
        printable = table.assign(**{columns.timestamp: format_timestamps(table[columns.timestamp])})
        printable.to_parquet(staging / "forecasts.parquet", index=False)  # full precision
        rounded(printable).to_csv(staging / "forecasts.csv", index=False)
        rounded(inventory).to_csv(staging / "inventory.csv", index=False)
        attributes = reporting.attribute_columns(table, columns, quantiles)
        lower, upper, _ = reporting.interval_columns(quantiles)
        try:
            from processing import report_charts  # matplotlib: optional (requirements/report.txt)
        except ImportError as error:
            charts, charts_note = (
                [],
                (
                    f"charts not drawn: {error} (matplotlib comes from "
                    "processing/requirements/report.txt, which could not be installed)"
                ),
            )
            log(f"[report] {charts_note}; the tables, summary and inventory are complete")
            accuracy_chart = None
        else:
            charts_note = None
            charts = [
                report_charts.forecast_by_group(
                    table,
                    history,
                    attributes[0] if attributes else None,
                    columns.timestamp,
                    columns.target,
                    lower,
                    upper,
                    staging / "charts" / "forecast_by_group.png",
                )
            ]
            charts.append(report_charts.top_movers(moves, columns.item_id, staging / "charts" / "top_movers.png"))
            accuracy_chart = monitor_report.accuracy_chart(accuracy_doc, staging / "charts" / "accuracy_over_time.png")
        if charts_note:
            summary["charts_note"] = charts_note
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        page = render_html(summary, inventory, charts, staging)
        page = page.replace("</body>", monitor_report.html_sections(summary, accuracy_chart, staging) + "</body>")
        (staging / "report.html").write_text(page)
    return out


def _headers(quantiles: Sequence[str], relative_to: str = "group") -> Dict[str, Tuple[str, Callable]]:
    """{machine column: (header, format)} for the page's tables; the CSVs keep the machine names.
    The id and attribute columns (item_id, category...) are the user's own names and stay."""
    lower, upper, middle = reporting.interval_columns(quantiles)
    return {
        "expected_demand": ("expected demand (units)", format_units),
        "demand_std": ("demand std. dev. (units)", format_units),
        "safety_stock": ("safety stock (units)", format_units),
        "order_up_to_level": ("order-up-to level (units)", format_units),
        "service_level": ("service level", format_share),
        "previous_demand": ("last comparable period (units)", format_units),
        "change": ("change vs last period", format_share),
        "relative_demand": (f"% of the {relative_to} average", format_share),
        "relative_interval_width": (f"{lower}-{upper} range, % of {middle}", format_share),
        reporting.MEAN_COLUMN: ("expected demand (units)", format_units),
        **{q: (f"{q}, summed (units)", format_units) for q in quantiles},  # the totals table: horizon sums
    }


def _table_html(frame: pd.DataFrame, quantiles: Sequence[str], relative_to: str = "group") -> str:
    """A table with readable headers and one number format per column (units, or percent for shares)."""
    known = _headers(quantiles, relative_to)
    named = {c: known[c][0] for c in frame.columns if c in known}
    # the declared columns are numbers: a column of None only (the summary's missing values) reads '-'
    frame = frame.astype({c: float for c in named})
    formatters = {known[c][0]: known[c][1] for c in named}
    for column in frame.columns:  # a column without a declared format: numbers in units
        if column not in named and pd.api.types.is_float_dtype(frame[column]):
            formatters[column] = format_units
    return frame.rename(columns=named).to_html(
        index=False, border=0, classes="table", na_rep="-", formatters=formatters
    )


def render_html(summary: dict, inventory: pd.DataFrame, charts: List[Path], root: Path) -> str:
    """A single self-describing page; charts are linked relative to the report folder."""
    cards = [
        ("Items forecast", summary["items_forecast"]),
        ("Horizon", summary["horizon"]),
        ("Expected demand", f"{summary['total_expected_demand']:,.0f}"),
        ("Order-up-to (all items)", f"{summary['total_order_up_to']:,.0f}"),
        ("Service level", f"{summary['service_level']:.0%}"),
    ]
    sections = []
    quantiles = summary["quantiles"]
    for attribute, totals in summary["totals_by"].items():
        frame = pd.DataFrame(totals).T.rename_axis(attribute).reset_index()
        sections.append(f"<h3>Totals by {html.escape(attribute)}</h3>{_table_html(frame, quantiles)}")
    threshold = f"{reporting.MOVE_THRESHOLD:.0%}"
    for key, title, empty in (
        ("demand_spikes", "Demand spikes", f"None: no item rises by more than {threshold}."),
        ("demand_drops", "Demand drops", f"None: no item falls by more than {threshold}."),
        ("most_uncertain", "Most uncertain items", "None."),
        ("highest_relative_demand", "Highest demand relative to " + summary["relative_to"], "None."),
        ("lowest_relative_demand", "Lowest demand relative to " + summary["relative_to"], "None."),
    ):
        rows = summary[key]
        if not rows:
            body = f"<p>{html.escape(empty)}</p>"
        else:
            body = _table_html(pd.DataFrame(rows), quantiles, summary["relative_to"])
        sections.append(f"<h3>{html.escape(title)}</h3>{body}")
    suspicious = summary["suspicious_forecasts"]
    sections.append(
        "<h3>Suspicious forecasts</h3>"
        + (
            "<ul>"
            + "".join(
                f"<li>{html.escape(s['item_id'])}: {html.escape(', '.join(s['reasons']))}</li>" for s in suspicious
            )
            + "</ul>"
            if suspicious
            else "<p>None.</p>"
        )
    )
    images = "".join(f'<img src="{html.escape(str(c.relative_to(root)))}" alt="{html.escape(c.stem)}">' for c in charts)
    if summary.get("charts_note"):
        images += f'<p class="note">{html.escape(summary["charts_note"][:1].upper() + summary["charts_note"][1:])}.</p>'

    top_inventory = inventory.sort_values("order_up_to_level", ascending=False).head(25)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Demand forecast report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
.cards{{display:flex;gap:1em;flex-wrap:wrap}}.card{{border:1px solid #ddd;border-radius:6px;padding:.6em 1em}}
.card b{{display:block;font-size:1.4em}}img{{max-width:100%;margin:1em 0}}
table.table{{border-collapse:collapse;font-size:.9em}}table.table td,table.table th{{padding:.2em .6em;border-bottom:1px solid #eee;text-align:right}}</style>
</head><body>
<h1>Demand forecast report</h1>
<p>{html.escape(summary["forecast_start"])} to {html.escape(summary["forecast_end"])} &middot;
model package <code>{html.escape(str(summary.get("model_package_arn")))}</code></p>
<div class="cards">{"".join(f'<div class="card">{html.escape(k)}<b>{html.escape(str(v))}</b></div>' for k, v in cards)}</div>
{images}
<h2>Inventory suggestions (top 25 by order-up-to level)</h2>
<p>Order-up-to level: the {summary["service_level"]:.0%} quantile of demand over the horizon
(files: inventory.csv for every item, forecasts.csv / forecasts.parquet for the full table).
How the periods add up: {html.escape(summary.get("inventory_basis", "independent"))}.</p>
{_table_html(top_inventory, quantiles)}
<h2>Summary</h2>
<p>{html.escape(summary["movement_basis"])}; uncertainty: {html.escape(summary["uncertainty_measure"])}.</p>
{"".join(sections)}
</body></html>
"""


@step_main("Report failed", ReportInputError)
def main(argv: Optional[Sequence[str]] = None) -> int:
    console.setup()
    args = parse_args(argv)
    out = write_report(args)
    charts = ", charts/" if (Path(out) / "charts").is_dir() else " (no charts)"
    print(f"Report written to {out} (report.html, summary.json, inventory.csv, forecasts.csv/.parquet{charts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
