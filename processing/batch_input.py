"""PrepareBatchInput step: shape the batch input the way the transform job reads it.

    python -m processing.batch_input --input PATH --output-dir DIR [--items-per-file 100] \
        [--item-id-column item_id] [--timestamp-column timestamp] [--target-column target_value]

Each output file holds whole series (history rows plus future rows with known covariates
and an empty target), sorted by item and time, with at most `--items-per-file` items, so
large catalogues are sharded by item and no series is split across files.
"""
from __future__ import annotations

import argparse
import difflib
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

import pandas as pd

from pipelines.contracts import add_column_arguments
from processing import tables
from processing.atomic import staged_directory

MIN_HISTORY_POINTS = 4  # Autopilot needs at least this many observed points per item at inference


class BatchInputError(ValueError):
    """The batch input cannot be forecast; the message names the file, column or items."""


def read_input(path: Path, item_id: str) -> pd.DataFrame:
    """Every input file through the one reader (processing.tables): item ids as text, one-line errors."""
    try:
        return tables.read_frame(path, [item_id], what="InputDataUrl")
    except tables.TableError as error:
        raise BatchInputError(str(error)) from None


PARAMETERS = {0: "ItemIdColumn", 1: "TimestampColumn", 2: "TargetColumn"}  # position in `required`


def check_columns(frame: pd.DataFrame, required: Sequence[str], source: Path) -> None:
    """All missing columns at once, each with the pipeline parameter that names it."""
    missing = []
    for position, name in enumerate(required):
        if name not in frame.columns:
            close = difflib.get_close_matches(name, [str(c) for c in frame.columns], n=1)
            parameter = PARAMETERS.get(position)
            fix = f" (--param {parameter}={close[0] if close else '<column>'}" + (
                f"; did you mean {close[0]!r}?)" if close else ")") if parameter else ""
            missing.append(f"{name!r}{fix}")
    if missing:
        raise BatchInputError(f"{source}: column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                              f"missing; the file has {list(frame.columns)}")


def prepare(frame: pd.DataFrame, item_id: str, timestamp: str, target: str, source: Path):
    """Sort, parse times, drop items with too little history; returns (frame, dropped items)."""
    check_columns(frame, (item_id, timestamp, target), source)
    frame = frame.copy()
    frame[item_id] = frame[item_id].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas' format-inference notice; bad values are reported below
        parsed = pd.to_datetime(frame[timestamp], errors="coerce")
    bad = parsed.isna()
    if bad.any():
        rows = (frame.index[bad][:5] + 2).tolist()  # +2: one-based, after the header row
        raise BatchInputError(f"{source}: column {timestamp!r} has {int(bad.sum())} value(s) that are not dates, "
                              f"first at row(s) {rows}: {frame.loc[bad, timestamp].head(5).tolist()}")
    frame["_ts"] = parsed
    frame[target] = pd.to_numeric(frame[target], errors="coerce")
    frame = frame.sort_values([item_id, "_ts"], kind="stable")
    observed = frame.groupby(item_id)[target].count()
    dropped = sorted(observed[observed < MIN_HISTORY_POINTS].index)
    if dropped:
        frame = frame[~frame[item_id].isin(dropped)]
    if frame.empty:
        raise BatchInputError(f"{source}: no item has the {MIN_HISTORY_POINTS} observed target values "
                              "a forecast needs")
    return frame.drop(columns="_ts"), dropped


def write_shards(frame: pd.DataFrame, item_id: str, output_dir: Path, items_per_file: int) -> List[Path]:
    """Write whole series, `items_per_file` items a file, into output_dir atomically."""
    if items_per_file < 1:
        raise BatchInputError(f"--items-per-file must be at least 1, got {items_per_file}")
    written = []
    with staged_directory(output_dir) as staging:
        items = frame[item_id].unique()
        for index, start in enumerate(range(0, len(items), items_per_file)):
            chunk = frame[frame[item_id].isin(items[start:start + items_per_file])]
            path = staging / f"part-{index:05d}.csv"
            chunk.to_csv(path, index=False)
            written.append(output_dir / path.name)
    return written


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m processing.batch_input", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--items-per-file", type=int, default=100)
    add_column_arguments(parser, grouping=False, frequency=False)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        frame = read_input(args.input, args.item_id_column)
        frame, dropped = prepare(frame, args.item_id_column, args.timestamp_column, args.target_column, args.input)
        files = write_shards(frame, args.item_id_column, args.output_dir, args.items_per_file)
    except BatchInputError as error:
        print(f"PrepareBatchInput failed: {error}", file=sys.stderr)
        return 2
    if dropped:
        print(f"Dropped {len(dropped)} item(s) with fewer than {MIN_HISTORY_POINTS} observed values: "
              f"{dropped[:20]}{' ...' if len(dropped) > 20 else ''}")
    print(f"Wrote {frame[args.item_id_column].nunique()} items in {len(files)} file(s) to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
