"""PrepareBatchInput step: shape the batch input the way the transform job reads it.

    python -m processing.batch_input --input PATH --output-dir DIR [--model-dir DIR] \
        [--items-per-file 100] [--max-file-bytes 5242880] [--history-dir DIR] \
        [--item-id-column item_id] [--timestamp-column timestamp] [--target-column target_value]

Each output file holds whole series (history rows plus future rows with known covariates
and an empty target), sorted by item and time. Each file is one BatchForecast transform
request (SplitType None), so files are cut by bytes: at most `--max-file-bytes` (a single
series larger than that gets a file of its own) and at most `--items-per-file` items; no
series is split across files. With `--history-dir`, the same rows also go to one
`history.parquet` there, which MonitorForecasts and Report read (no second CSV parse).

Autopilot requires the inference input to have exactly the training data's columns: with
`--model-dir` (ResolveModel's output), the files hold exactly the model package's training
schema, in its order; a missing column is an error, columns training did not use are left
out (and listed).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from processing import tables
from processing.atomic import staged_directory
from processing.data_prep import SHOW_ROWS, DataValidationError, Where, rows_message, target_numbers
from processing.kernel import console
from processing.kernel.cli import step_main
from processing.kernel.contracts import RESOLVED_MODEL_FILE, TRANSFORM_FILE_MAX_BYTES, add_column_arguments
from processing.kernel.hints import closest, suggest
from processing.kernel.inputs import named_input
from processing.sharding import series_sizes

logger = logging.getLogger(__name__)

MIN_HISTORY_POINTS = 4  # Autopilot needs at least this many observed points per item at inference


class BatchInputError(ValueError):
    """The batch input cannot be forecast; the message names the file, column or items."""


def read_input(path: Path, item_id: str) -> pd.DataFrame:
    """Every input file through the one reader (processing.tables): item ids as text, one-line errors.

    Text columns come back as pandas categories (one code a row, each distinct text once): the
    steps below work on the codes, never on 27M Python strings (25,000 series)."""
    try:
        return tables.read_frame_coded(path, [item_id], what="InputDataUrl")
    except tables.TableError as error:
        raise BatchInputError(str(error)) from None


def _is_coded(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.CategoricalDtype)


def _text_ids(values: pd.Series) -> pd.Series:
    """values.astype(str) for an id column: categories of text stay codes (a missing id is 'nan', as astype makes it)."""
    if not _is_coded(values):
        return values.astype(str)
    categories = values.cat.categories
    if not all(type(c) is str for c in categories.tolist()):
        return values.astype(str)
    if bool((values.cat.codes.to_numpy() < 0).any()):
        if "nan" not in categories:
            values = values.cat.add_categories(["nan"])
        values = values.fillna("nan")
    return values


def _per_value(values: pd.Series, convert):
    """convert(values) computed once per distinct value of a category column (the cells' texts).

    The distinct values go in order of first appearance from the first present cell on, so a
    conversion that looks at its first value (pandas' date-format guess) sees the same one as on
    the full column; a missing cell is converted as NaN."""
    codes = values.cat.codes.to_numpy()
    categories = values.cat.categories.to_numpy(dtype=object)
    present = np.flatnonzero(codes >= 0)
    order = np.arange(len(categories))
    if len(present):
        first = int(codes[present[0]])
        order = np.r_[first, order[order != first]]
    missing = bool(len(present) < len(codes))
    converted = convert(pd.Series(np.append(categories[order], np.nan) if missing else categories[order], dtype=object))
    position = np.empty(len(categories) + missing, dtype=np.int64)
    position[order] = np.arange(len(categories))
    if missing:
        position[-1] = len(categories)  # code -1: the NaN appended last
    return pd.Series(converted.array.take(position[codes]), index=values.index, name=values.name)


def named_source(path: Path) -> Path:
    """What a message names as the input: the file itself when the input folder holds one (the step's
    input folder of a single InputDataUrl file: the user's file name), else the folder."""
    if not Path(path).is_dir():
        return Path(path)
    try:
        files = tables.list_files(path, tables.DATA_SUFFIXES, "InputDataUrl")
    except tables.TableError:
        return Path(path)
    return files[0] if len(files) == 1 else Path(path)


def row_locator(source: Path, item_id: str) -> Where:
    """Row positions of the input frame -> "batch.csv line 8", as PrepareData names rows (the file's
    name, or its path in the folder; CSV lines count the header as line 1, Parquet rows from 1).
    Worked out only when an error names rows: a folder's files are then counted again."""

    def where(positions: np.ndarray) -> List[str]:
        root = Path(source)
        try:
            files = tables.list_files(root, tables.DATA_SUFFIXES, "InputDataUrl")
        except tables.TableError:
            files = [root]
        names = [str(f.relative_to(root)) if root.is_dir() else f.name for f in files]
        lengths = [len(tables.read_frame_coded(f, [item_id])) for f in files[:-1]] if len(files) > 1 else []
        starts = np.cumsum([0] + lengths)
        out = []
        for position in np.asarray(positions, dtype=np.int64).tolist():
            f = int(np.searchsorted(starts, position, side="right")) - 1
            parquet = tables.kind(files[f]) == "parquet"
            out.append(f"{names[f]} {'row' if parquet else 'line'} {position - int(starts[f]) + (1 if parquet else 2)}")
        return out

    return where


PARAMETERS = {0: "ItemIdColumn", 1: "TimestampColumn", 2: "TargetColumn"}  # position in `required`


def check_columns(frame: pd.DataFrame, required: Sequence[str], source: Path) -> None:
    """All missing columns at once, each with the pipeline parameter that names it."""
    columns = [str(c) for c in frame.columns]
    missing, fixes = [], []
    for position, name in enumerate(required):
        if name not in frame.columns:
            parameter = PARAMETERS.get(position)
            missing.append(f"{name!r}{f' ({parameter})' if parameter else ''}{suggest(name, columns)}")
            if parameter:
                fixes.append(f"--param {parameter}={closest(name, columns) or '<column>'}")
    if missing:
        raise BatchInputError(
            f"{source}: column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"missing; {'the files have' if Path(source).is_dir() else 'the file has'} {columns}"
            + (f". Fix: pass {' '.join(fixes)}" if fixes else "")
        )


def prepare(frame: pd.DataFrame, item_id: str, timestamp: str, target: str, source: Path):
    """Sort, parse times, drop items with too little history; returns (frame, dropped items)."""
    check_columns(frame, (item_id, timestamp, target), source)
    frame = frame.copy(deep=False)  # new columns below; the caller's frame keeps its own
    frame[item_id] = _text_ids(frame[item_id])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas' format-inference notice; bad values are reported below
        parsed = None
        if _is_coded(frame[timestamp]):  # each distinct text parsed once (pandas' own cache does the same)
            parsed = _per_value(frame[timestamp], lambda texts: pd.to_datetime(texts, errors="coerce"))
            if parsed.dtype == object:  # mixed UTC offsets: parsed as the whole column parses them
                parsed = None
        if parsed is None:
            stamps = frame[timestamp]
            parsed = pd.to_datetime(stamps.astype(object) if _is_coded(stamps) else stamps, errors="coerce")
    where = row_locator(source, item_id)
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        raise BatchInputError(
            f"column {timestamp!r} (TimestampColumn): {len(bad)} values are not dates: "
            f"{rows_message(where, bad, frame[timestamp].iloc[bad[:SHOW_ROWS]].astype(object).to_numpy())}. "
            "Fix: write every timestamp as a date, preferably YYYY-MM-DD or YYYY-MM-DD HH:MM:SS."
        )
    try:  # PrepareData's rule: an empty cell is a period to forecast; text, infinity or beyond +-1e15 an error
        frame[target] = target_numbers(frame[target], target, where)
    except DataValidationError as error:
        raise BatchInputError(str(error)) from None
    keys, names = _item_keys(frame[item_id])  # per row an int that sorts as the id text does
    times = parsed.to_numpy()
    if not (
        len(keys) < 2 or bool(np.all((keys[1:] > keys[:-1]) | ((keys[1:] == keys[:-1]) & (times[1:] >= times[:-1]))))
    ):
        order = np.lexsort((times, keys))  # stable, as sort_values([item, time], kind="stable")
        frame, keys = frame.take(order), keys[order]
    # observed values per item (a groupby would hash 27M ids again)
    observed = np.bincount(keys, weights=frame[target].notna().to_numpy(), minlength=len(names))
    rows = np.bincount(keys, minlength=len(names))
    short = (rows > 0) & (observed < MIN_HISTORY_POINTS)
    dropped = sorted(names[short].tolist())
    if dropped:
        frame = frame[~short[keys]]
    if frame.empty:
        raise BatchInputError(f"{source}: no item has the {MIN_HISTORY_POINTS} observed target values a forecast needs")
    return frame, dropped


def _item_keys(ids: pd.Series) -> Tuple[np.ndarray, np.ndarray]:
    """(per row the rank of its id among the distinct ids, the distinct ids in that order)."""
    if _is_coded(ids):
        codes = ids.cat.codes.to_numpy()
        categories = ids.cat.categories.to_numpy(dtype=object)
        order = np.argsort(categories, kind="stable")
        rank = np.empty(len(categories), dtype=np.int64)
        rank[order] = np.arange(len(categories))
        return rank[codes], categories[order]
    keys, names = pd.factorize(ids.to_numpy(), sort=True)
    return keys, np.asarray(names, dtype=object)


def training_schema(model_dir: Optional[Path]) -> List[str]:
    """The model package's training columns from ResolveModel's resolved_model.json ([] when unknown)."""
    if model_dir is None:
        return []
    path = model_dir / RESOLVED_MODEL_FILE if model_dir.is_dir() else model_dir
    if not path.is_file():
        raise BatchInputError(f"--model-dir: {path} does not exist; pass ResolveModel's result folder")
    try:
        resolved = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise BatchInputError(f"{path}: not valid JSON ({error})") from None
    return [str(c) for c in resolved.get("training_columns") or []]


def apply_schema(frame: pd.DataFrame, columns: Sequence[str], source: Path) -> Tuple[pd.DataFrame, List[str]]:
    """Exactly `columns`, in their order; returns (frame, columns left out)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        named = ", ".join(f"{m!r}{suggest(m, [str(c) for c in frame.columns])}" for m in missing)
        raise BatchInputError(
            f"{source}: column(s) {named} of the model's training data are missing; "
            f"the model was trained on {list(columns)} and Autopilot needs exactly these "
            f"columns at inference; the file has {list(frame.columns)}"
        )
    extra = [str(c) for c in frame.columns if c not in set(columns)]
    if list(frame.columns) == list(columns):
        return frame, extra  # already exactly the schema: no copy of every column
    return frame[list(columns)], extra


def write_shards(
    frame: pd.DataFrame,
    item_id: str,
    output_dir: Path,
    items_per_file: int,
    max_file_bytes: int = TRANSFORM_FILE_MAX_BYTES,
    codes: Optional[dict] = None,
) -> List[Path]:
    """Write whole series into output_dir atomically: files of at most max_file_bytes and items_per_file items.

    Rows must be sorted by item (prepare does). The CSV is rendered once and cut at series
    boundaries, so each file's size is known exactly before it is written. `codes`: text_codes(frame)
    when the caller has them (main shares them with write_history).
    """
    if items_per_file < 1:
        raise BatchInputError(f"--items-per-file must be at least 1, got {items_per_file}")
    if max_file_bytes < 1:
        raise BatchInputError(f"--max-file-bytes must be at least 1, got {max_file_bytes}")
    codes = text_codes(frame) if codes is None else codes
    items = codes[item_id][0] if item_id in codes else frame[item_id].to_numpy()  # runs of one id: runs of one code
    header = _csv_lines(frame.iloc[:0])[0]
    header_bytes = len(header.encode("utf-8")) + 1
    written: List[Path] = []
    oversized = 0
    with staged_directory(output_dir) as staging:
        handle, size, count = None, header_bytes, 0
        try:
            # rows formatted WRITE_CHUNK_ROWS at a time (whole items per chunk); files packed as
            # processing.sharding.group_series packs them: greedy, whole items, within both limits
            # numeric and text columns: each distinct value's text made once for the frame, not per chunk
            whole = _whole_cell_tables(frame, codes)
            arrow_texts: dict = {}
            for begin, end in _item_chunks(items, WRITE_CHUNK_ROWS):
                chunk = {c: (cells[begin:end], texts) for c, (cells, texts) in whole.items()}
                _, body, offsets = _csv_body(frame.iloc[begin:end], chunk, arrow_texts)
                starts, sizes = series_sizes(np.diff(offsets), items[begin:end])
                oversized += int((sizes + header_bytes > max_file_bytes).sum())
                bounds = offsets[np.r_[starts, end - begin]].tolist()
                for k, nbytes in enumerate(sizes.tolist()):
                    if handle is None or (count > 0 and (size + nbytes > max_file_bytes or count >= items_per_file)):
                        if handle is not None:
                            handle.close()
                        path = staging / f"part-{len(written):05d}.csv"
                        handle = open(path, "wb")
                        handle.write((header + "\n").encode("utf-8"))
                        written.append(output_dir / path.name)
                        size, count = header_bytes, 0
                    handle.write(body[bounds[k] : bounds[k + 1]])  # the series' lines, each with its newline
                    size += nbytes
                    count += 1
        finally:
            if handle is not None:
                handle.close()
    if oversized:
        logger.warning(
            f"warning: {oversized} item(s) are each larger than {max_file_bytes} bytes; each is a "
            "file (one transform request) of its own"
        )
    return written


WRITE_CHUNK_ROWS = 500_000
HISTORY_FILE = "history.parquet"


def text_codes(frame: pd.DataFrame) -> dict:
    """{text column: (codes, distinct values)}: each text column coded once, for both the shards'
    cell texts and the history's dictionaries; the same codes and values as pd.factorize gives."""
    codes = {}
    for c in frame.columns:
        if _is_coded(frame[c]):  # the category codes renumbered in order of first appearance, as factorize numbers
            cells = frame[c].cat.codes.to_numpy()
            used = pd.unique(cells[cells >= 0])
            renumber = np.full(len(frame[c].cat.categories) + 1, -1, dtype=np.int32)  # last: code -1 stays -1
            renumber[used] = np.arange(len(used), dtype=np.int32)
            codes[c] = (renumber[cells], frame[c].cat.categories.to_numpy(dtype=object)[used])
        elif frame[c].dtype == object:
            codes[c] = pd.factorize(frame[c].to_numpy())
    return codes


def _plain_texts(uniques: np.ndarray, codes: np.ndarray) -> bool:
    """Distinct values all text without line breaks, none missing: the fast formatter's case."""
    return not (len(codes) and codes.min() < 0) and all(
        type(u) is str and "\r" not in u and "\n" not in u for u in uniques.tolist()
    )


def _whole_cell_tables(frame: pd.DataFrame, codes: dict) -> dict:
    """{column: (codes, texts)} for numeric columns and plain text columns of the whole frame
    (data_prep.csv_cell_table's texts); other columns are formatted per chunk."""
    from processing.data_prep import _quote, csv_cell_table

    out = {}
    for c in frame.columns:
        if frame[c].dtype.kind in "iubf":
            cells, texts = csv_cell_table(frame[c].to_numpy())
            out[c] = (cells.astype(np.int32) if len(texts) < 2**31 else cells, texts)  # half the memory of intp codes
    for c, (cells, uniques) in codes.items():
        if _plain_texts(uniques, cells):
            out[c] = (cells, np.array([_quote(u) for u in uniques.tolist()] + [""], dtype=object))
    return out


def write_history(frame: pd.DataFrame, history_dir: Path, shards_dir: Path, codes: Optional[dict] = None) -> Path:
    """The shards' rows once more as one Parquet file (atomically), for MonitorForecasts and Report.

    The same rows, columns and values as the shards (Parquet keeps the types the CSV text reads
    back as), stored dictionary-encoded: those steps read 27M rows (25,000 series) in a few
    seconds instead of parsing the CSV text again (~40 s each). A frame Parquet cannot hold (a
    column mixing numbers and text) gets copies of the shards instead, read as before."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    codes = text_codes(frame) if codes is None else codes
    try:  # text as Arrow dictionaries of the codes, not a copy of every row's string (27M rows)
        arrays = []
        for c in frame.columns:
            if c in codes:
                cells, uniques = codes[c]
                arrays.append(
                    pa.DictionaryArray.from_arrays(
                        pa.array(cells.astype(np.int32), mask=cells < 0), pa.array(uniques.tolist(), pa.string())
                    )
                )
            else:
                arrays.append(pa.Array.from_pandas(frame[c]))
        table = pa.Table.from_arrays(arrays, names=[str(c) for c in frame.columns])
    except (pa.ArrowException, TypeError, ValueError) as error:  # a column mixing numbers and text
        logger.info(f"history as the shards' CSV files, not Parquet: {error}")
        table = None
    with staged_directory(history_dir) as staging:
        if table is None:
            for shard in sorted(Path(shards_dir).glob("part-*.csv")):
                shutil.copyfile(shard, staging / shard.name)
            return history_dir
        pq.write_table(table, staging / HISTORY_FILE, row_group_size=1_000_000)
    return history_dir / HISTORY_FILE


def _item_chunks(items: np.ndarray, chunk_rows: int) -> List[Tuple[int, int]]:
    """[begin, end) row ranges of about chunk_rows rows that never split an item."""
    n = len(items)
    if n == 0:
        return []
    starts = np.flatnonzero(np.r_[True, items[1:] != items[:-1]])
    bounds, begin = [], 0
    while begin < n:
        at = int(np.searchsorted(starts, begin + max(1, chunk_rows)))
        end = int(starts[at]) if at < len(starts) else n
        bounds.append((begin, end))
        begin = end
    return bounds


def _csv_lines(frame: pd.DataFrame) -> Tuple[str, List[str]]:
    """The CSV text of frame as (header, one line per row)."""
    header, lines, _ = _csv_rows(frame)
    return header, lines


def _csv_rows(frame: pd.DataFrame) -> Tuple[str, List[str], np.ndarray]:
    """The CSV text of frame as (header, one line per row, UTF-8 bytes of each line with its newline)."""
    header, body, offsets = _csv_body(frame)
    text = bytes(body).decode("utf-8")
    lines = text.split("\n")[:-1] if text else []
    if len(lines) != len(frame):  # a quoted value holds a line break: cut by the offsets
        lines = [bytes(body[a:b]).decode("utf-8")[:-1] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    return header, lines, np.diff(offsets)


def _cell_tables(frame: pd.DataFrame, column_tables: Optional[dict] = None) -> Optional[list]:
    """Per column (codes, texts) as data_prep.csv_cell_table gives them, or None when pandas must
    write the frame: a column neither numeric nor text, a missing text, a text with a line break
    (decided on the distinct values the texts are made from: no hashing pass of its own).

    column_tables: {column: (codes, texts)} for float and text columns, codes already cut to
    `frame`'s rows (write_shards makes each distinct value's text once for the whole input)."""
    from processing.data_prep import _quote, csv_cell_table

    if not len(frame.columns):
        return None
    out = []
    for c in frame.columns:
        kind = frame[c].dtype.kind
        if column_tables and c in column_tables:
            out.append(column_tables[c])
        elif kind in "iubf":
            out.append(csv_cell_table(frame[c].to_numpy()))
        elif frame[c].dtype == object:
            codes, uniques = pd.factorize(frame[c].to_numpy())
            texts = uniques.tolist()
            if (len(codes) and codes.min() < 0) or not all(
                type(u) is str and "\r" not in u and "\n" not in u for u in texts
            ):
                return None  # missing or non-text values, or line breaks: pandas writes them
            out.append((codes, np.array([_quote(u) for u in texts] + [""], dtype=object)))
        else:
            return None
    return out


def _csv_body(
    frame: pd.DataFrame, column_tables: Optional[dict] = None, arrow_texts: Optional[dict] = None
) -> Tuple[str, memoryview, np.ndarray]:
    """The CSV text of frame as (header, the rows' UTF-8 bytes, each ending in a newline, and the
    len(frame) + 1 byte offsets where each row starts and the last ends).

    Cells are formatted once per distinct value (data_prep.csv_cell_table, the same text as
    DataFrame.to_csv for plain types) and the rows joined by pyarrow in one pass (25,000 series,
    27M rows: no Python string per row); other column types and text with line breaks go
    through pandas. arrow_texts: a dict kept across calls with the same column_tables (write_shards'
    chunks): each column's texts become an Arrow array once, not once a chunk."""
    cell_tables = _cell_tables(frame, column_tables)
    if cell_tables is not None:
        import pyarrow as pa
        import pyarrow.compute as pc

        from processing.data_prep import _quote

        cells = []
        for position, (column, (codes, texts)) in enumerate(zip(frame.columns, cell_tables)):
            last = position == len(frame.columns) - 1
            key = (column, last) if arrow_texts is not None and column_tables and column in column_tables else None
            table = arrow_texts.get(key) if key is not None else None
            if table is None:
                table = pa.array([t + "\n" for t in texts.tolist()] if last else texts.tolist(), pa.string())
                if key is not None:
                    arrow_texts[key] = table
            codes = np.where(codes < 0, len(texts) - 1, codes)  # missing: the last text, ""
            cells.append(pc.take(table, pa.array(codes, pa.int64())))
        rows = pc.binary_join_element_wise(*cells, ",") if len(cells) > 1 else cells[0]
        rows = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
        offsets_buffer, data_buffer = rows.buffers()[1:3]
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[rows.offset : rows.offset + len(rows) + 1]
        offsets = offsets.astype(np.int64)
        body = memoryview(data_buffer) if data_buffer is not None else memoryview(b"")
        return ",".join(_quote(str(c)) for c in frame.columns), body, offsets
    text = frame.to_csv(index=False, lineterminator="\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(frame) + 1:  # a quoted value holds a line break: render row by row
        rows = [
            frame.iloc[[i]].to_csv(index=False, header=False, lineterminator="\n").rstrip("\n")
            for i in range(len(frame))
        ]
        header = lines[0]
    else:
        header, rows = lines[0], lines[1:]
    encoded = [(row + "\n").encode("utf-8") for row in rows]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return header, memoryview(b"".join(encoded)), offsets


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m processing.batch_input", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument(
        "--input-url",
        default=None,
        help="what the user gave as InputDataUrl (S3 URI or path): messages name it instead of --input's folder",
    )
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--items-per-file", type=int, default=100, help="at most this many items a file")
    parser.add_argument(
        "--max-file-bytes",
        type=int,
        default=TRANSFORM_FILE_MAX_BYTES,
        help="at most this many bytes a file (one transform request each)",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help=f"ResolveModel's result ({RESOLVED_MODEL_FILE}): write exactly its training columns",
    )
    parser.add_argument(
        "--history-dir",
        type=Path,
        default=None,
        help=f"also write the rows as {HISTORY_FILE} here (read by MonitorForecasts and Report)",
    )
    add_column_arguments(parser, grouping=False, frequency=False)
    return parser.parse_args(argv)


@step_main("PrepareBatchInput failed", BatchInputError)
def main(argv: Optional[Sequence[str]] = None) -> int:
    console.setup()
    args = parse_args(argv)
    with named_input(args.input, args.input_url, BatchInputError):  # not the container's input folder
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    frame = read_input(args.input, args.item_id_column)
    source = named_source(args.input)
    frame, dropped = prepare(frame, args.item_id_column, args.timestamp_column, args.target_column, source)
    schema = training_schema(args.model_dir)
    left_out: List[str] = []
    if schema:
        frame, left_out = apply_schema(frame, schema, source)
    elif args.model_dir is not None:
        print(
            "warning: the model package records no training schema (registered before it was recorded); "
            "the input's columns are passed as they are"
        )
    codes = text_codes(frame)
    files = write_shards(frame, args.item_id_column, args.output_dir, args.items_per_file, args.max_file_bytes, codes)
    if args.history_dir is not None:
        write_history(frame, args.history_dir, args.output_dir, codes)
    del codes
    if dropped:
        print(
            f"Dropped {len(dropped)} item(s) with fewer than {MIN_HISTORY_POINTS} observed values: "
            f"{dropped[:20]}{' ...' if len(dropped) > 20 else ''}"
        )
    if left_out:
        print(f"Left out column(s) the model was not trained on: {left_out}")
    sizes = [f.stat().st_size for f in files]
    print(
        f"Wrote {frame[args.item_id_column].nunique()} items in {len(files)} file(s) to {args.output_dir} "
        f"(largest {max(sizes) / 1048576:.2f} MB; at most {args.max_file_bytes / 1048576:.2f} MB a file)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
