"""The one reader of tabular files (CSV, gzip CSV, transform output, Parquet; a file or a folder).

Every step and the engine read their inputs here, so they agree on what a folder holds
(recursive; hidden and `_`-prefixed entries skipped; these suffixes only), on types (the item
id and grouping columns are text: '007' stays '007', never 7) and on errors (one line naming
the file, raised as TableError, a ValueError). Container-safe: stdlib, numpy, pandas
(1.x and 2.x), pyarrow for Parquet and for the fast CSV reader (read_frame_coded: the same
frame as read_frame, parsed by pyarrow; the batch input step and the transform's requests).
"""

from __future__ import annotations

import dataclasses
import gzip
import re
import zlib
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from processing.kernel.inputs import TableError, read_json  # noqa: F401 - the readers' names, here too

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz")
FORECAST_SUFFIXES = (".out", ".out.gz")  # batch transform output: CSV with a header
PARQUET_SUFFIXES = (".parquet", ".pq", ".snappy.parquet")
DATA_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
OUTPUT_SUFFIXES = FORECAST_SUFFIXES + CSV_SUFFIXES
SAMPLE_ROWS = 2000  # rows read to decide which text columns become categories
# "2023-01-01T00:00:00Z", "... +02:00", "... +0200", "... -05"; the date alone never matches
_OFFSET = re.compile(r"(?<=\d)\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


@dataclasses.dataclass
class Table:
    """Rows of all files, with where each row came from (for error messages)."""

    frame: pd.DataFrame
    files: List[str]  # display names
    file_index: np.ndarray  # per row: index into files
    row_number: np.ndarray  # per row: 1-based line in a CSV (header = line 1) / row in Parquet
    parquet: List[bool]
    warnings: List[str]

    def where(self, rows: Iterable[int]) -> List[str]:
        """'sales.csv line 7' for each row position given."""
        out = []
        for r in rows:
            f = int(self.file_index[r])
            word = "row" if self.parquet[f] else "line"
            out.append(f"{self.files[f]} {word} {int(self.row_number[r])}")
        return out


def kind(path: Path) -> Optional[str]:
    """'csv', 'parquet', or None for a suffix no reader takes."""
    name = Path(path).name.lower()
    if name.endswith(CSV_SUFFIXES + FORECAST_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def list_files(path, suffixes: Sequence[str] = DATA_SUFFIXES, what: str = "input") -> List[Path]:
    """One file (whatever its name), or every file under a folder whose name ends in `suffixes`.

    Folders are searched recursively in path order; entries whose name starts with '.' or '_'
    (and everything below them) are skipped, like Spark and SageMaker outputs' _SUCCESS markers.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TableError(f"{what} {path}: no such file or folder")
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(tuple(suffixes))
        and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    )
    if not files:
        raise TableError(f"{what} folder {path}: no {', '.join(suffixes)} files in it")
    return files


def read_file(
    path,
    text_columns: Iterable[str] = (),
    *,
    name: Optional[str] = None,
    categorical: bool = False,
    numeric: Iterable[str] = (),
    require_rows: bool = True,
    warnings: Optional[List[str]] = None,
) -> pd.DataFrame:
    """One CSV (gzip ok) or Parquet file; `text_columns` (ids, grouping) come back as strings.

    categorical=True reads every other text column, except `numeric` ones, as a pandas category
    (one Python object per distinct string instead of one per row: half the reading time on
    large files); the text columns are then categories of strings. Any failure is a TableError.
    """
    path = Path(path)
    name = name or str(path)
    with _one_line_errors(name, "Parquet" if kind(path) == "parquet" else "CSV"):
        return _read(
            path,
            name,
            set(text_columns),
            categorical,
            set(numeric),
            require_rows,
            warnings if warnings is not None else [],
        )


def read_csv_bytes(payload: bytes, name: str, text_columns: Iterable[str] = ()) -> pd.DataFrame:
    """CSV content fetched from elsewhere (an S3 object), gzip when `name` ends in .gz; same rules and errors."""
    import io

    with _one_line_errors(name, "CSV"):
        data = gzip.decompress(payload) if name.lower().endswith(".gz") else payload
        if not data.strip():
            raise TableError(f"{name}: the file is empty. Fix: export the data again with a header line.")
        header = pd.read_csv(io.BytesIO(data), nrows=0, encoding="utf-8-sig")
        text = {c: str for c in header.columns if str(c).strip() in set(text_columns)}
        frame = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=text, low_memory=False)
        frame.columns = [str(c).strip() for c in frame.columns]
        return frame


class _one_line_errors:
    """Turn whatever pandas, gzip, zlib or pyarrow raise into a TableError naming the file."""

    def __init__(self, name: str, kind_name: str):
        self.name, self.kind_name = name, kind_name

    def __enter__(self):
        return self

    def __exit__(self, kind_of_error, error, _traceback) -> bool:
        if error is None or isinstance(error, TableError):
            return False
        name, kind_name = self.name, self.kind_name
        if isinstance(error, UnicodeDecodeError):
            raise TableError(
                f"{name}: not UTF-8 text (byte {error.start}: {error.reason}). Fix: save the file as UTF-8 CSV."
            ) from None
        if isinstance(error, pd.errors.ParserError):
            detail = " ".join(str(error).split())
            hint = " (the header is line 1)" if "line" in detail else ""
            raise TableError(
                f"{name}: cannot be parsed as CSV: {detail}{hint}. Fix: quote fields that contain "
                "commas, and give every row as many fields as the header."
            ) from None
        if isinstance(error, (EOFError, zlib.error, OSError, ValueError, ImportError, KeyError, TypeError)):
            detail = " ".join(str(error).split()) or type(error).__name__
            truncated = isinstance(error, EOFError) or "end-of-stream" in detail
            fix = (
                "the compressed file is cut short; copy or export it again"
                if truncated
                else f"check it is a complete, valid {kind_name} file (gzip-compressed CSV must end in .gz)"
            )
            raise TableError(f"{name}: cannot be read as {kind_name}: {detail}. Fix: {fix}.") from None
        return False


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _read(
    path: Path, name: str, text_columns: set, categorical: bool, numeric: set, require_rows: bool, warnings: List[str]
) -> pd.DataFrame:
    if kind(path) == "parquet":
        frame = pd.read_parquet(path)
        if require_rows and len(frame) == 0:
            raise TableError(f"{name}: the file has no rows. Fix: export the data again.")
        for column in text_columns & set(frame.columns):
            values = frame[column]
            if values.dtype != object or not values.dropna().map(type).eq(str).all():
                frame[column] = (
                    values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v))
                )
        return frame
    with _open_bytes(path) as handle:
        head = handle.read(65536)
    if not head.strip():
        raise TableError(
            f"{name}: the file is empty. Fix: export the data again with a header line"
            f"{' and at least one data row' if require_rows else ''}."
        )
    if head.startswith(b"\xef\xbb\xbf"):
        warnings.append(f"{name}: starts with a UTF-8 byte-order mark (BOM); it was ignored.")
    first_line = head.decode("utf-8-sig", errors="replace").splitlines()[0]
    header = pd.read_csv(path, nrows=0, encoding="utf-8-sig")
    columns = [str(c) for c in header.columns]
    if len(columns) == 1:
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if sep in first_line:
                raise TableError(
                    f"{name}: the header has a single column {first_line[:80]!r}; the file looks separated by "
                    f"{label}, not commas. Fix: save it as comma-separated CSV (sep=',')."
                )
    # dtype keys must match the raw header names (pandas strips nothing)
    raw = {c.strip(): c for c in columns}
    text = {raw[c]: str for c in text_columns if c in raw}
    if categorical:
        sample = pd.read_csv(path, nrows=SAMPLE_ROWS, encoding="utf-8-sig", dtype=text)
        strip_numeric = {raw[c] for c in numeric if c in raw}
        dtype = {c: "category" for c in sample.columns if sample[c].dtype == object and c not in strip_numeric}
    else:
        dtype = text
    # categorical: large inputs; the parser then works in chunks (categories unioned) instead of
    # holding every token of the file at once (5.5M rows: peak 1.9 GB -> see docs/data.md)
    frame = pd.read_csv(path, encoding="utf-8-sig", dtype=dtype, low_memory=categorical)
    frame.columns = [str(c).strip() for c in frame.columns]
    if require_rows and len(frame) == 0:
        raise TableError(f"{name}: the file has a header but no data rows. Fix: export the data again.")
    return frame


def read_table(
    path,
    text_columns: Iterable[str] = (),
    *,
    suffixes: Sequence[str] = DATA_SUFFIXES,
    what: str = "input",
    categorical: bool = False,
    numeric: Iterable[str] = (),
    require_rows: bool = True,
) -> Table:
    """Read a file or every matching file of a folder; all files must have the same columns.

    Display names are the file's name, or its path relative to the folder.
    """
    root = Path(path)
    files = list_files(root, suffixes, what)
    names = [str(f.relative_to(root)) if root.is_dir() else f.name for f in files]
    text_columns = list(text_columns)
    frames, warnings, parquet = [], [], []
    for file, name in zip(files, names):
        frames.append(
            read_file(
                file,
                text_columns,
                name=name,
                categorical=categorical,
                numeric=numeric,
                require_rows=require_rows,
                warnings=warnings,
            )
        )
        parquet.append(kind(file) == "parquet")
    first_cols = list(frames[0].columns)
    for frame, name in zip(frames[1:], names[1:]):
        if set(frame.columns) != set(first_cols):
            missing = sorted(set(first_cols) - set(frame.columns))
            extra = sorted(set(frame.columns) - set(first_cols))
            raise TableError(
                f"{what} folder {root}: files have different columns. {name} vs {names[0]}: "
                f"missing {missing or 'none'}, extra {extra or 'none'}. Fix: give every file the same "
                "header (same column names), or point at one dataset only."
            )
    row_number = np.concatenate([np.arange(len(fr)) + (1 if p else 2) for fr, p in zip(frames, parquet)])
    file_index = np.concatenate([np.full(len(fr), i) for i, fr in enumerate(frames)])
    if len(frames) == 1:
        frame = frames[0]
    else:
        frame = pd.concat([fr[first_cols] for fr in frames], ignore_index=True)
        for column in first_cols:  # categories of different files concatenate to object: back to one category
            if categorical and all(isinstance(fr[column].dtype, pd.CategoricalDtype) for fr in frames):
                frame[column] = frame[column].astype("category")
    return Table(frame, names, file_index, row_number, parquet, warnings)


def read_frame(path, text_columns: Iterable[str] = (), **options) -> pd.DataFrame:
    """read_table's rows only (for readers that need no row provenance)."""
    return read_table(path, text_columns, **options).frame


def read_frame_shared_text(
    path, text_columns: Iterable[str] = (), numeric: Iterable[str] = (), **options
) -> pd.DataFrame:
    """read_frame with text columns as plain object columns whose rows share one string per
    distinct value (read as categories, then turned back): the same frame as read_frame, in a
    fraction of the memory for long inputs (25,000 daily series: 27M rows, a string per cell
    otherwise), and the parser reads in chunks. `numeric` columns are never read as text."""
    frame = read_frame(path, text_columns, categorical=True, numeric=numeric, **options)
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(object)
    return frame


# ------------------------------------------------------------------------------ timestamps
def split_utc_offsets(texts: Sequence[str]) -> Tuple[List[str], List[Optional[str]]]:
    """Timestamp texts without their UTC offset, and each offset ('+02:00', 'Z' -> '+00:00', or None).

    The project's rule for offsets: a timestamp is read at its local (wall-clock) time, so a sale
    booked at 2023-01-02T00:00:00+02:00 belongs to 2 January, not to the UTC day before.
    """
    plain, offsets = [], []
    for text in texts:
        text = str(text).strip()
        match = _OFFSET.search(text) if len(text) > 10 else None
        if match is None:
            plain.append(text)
            offsets.append(None)
            continue
        plain.append(text[: match.start()].rstrip())
        offsets.append(_normal_offset(match.group(1)))
    return plain, offsets


def _normal_offset(offset: str) -> str:
    if offset.upper() in ("Z", "UTC"):
        return "+00:00"
    digits = offset[1:].replace(":", "")
    return f"{offset[0]}{digits[:2]}:{(digits[2:] or '00')[:2]}"


def local_time_texts(values: pd.Series) -> pd.Series:
    """Text timestamps with any UTC offset removed (read at local time; see split_utc_offsets)."""
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values
    codes, uniques = pd.factorize(values)
    plain, offsets = split_utc_offsets([str(u) for u in uniques])
    if all(o is None for o in offsets):
        return values
    table = np.array(plain + [None], dtype=object)
    return pd.Series(table[codes], index=values.index, name=values.name)


# ------------------------------------------------------------------------------ fast CSV reading
TRUE_TEXTS = frozenset(("True", "TRUE", "true"))  # pandas' default true values
BOOL_TEXTS = TRUE_TEXTS | frozenset(("False", "FALSE", "false"))  # and its false ones


def read_frame_coded(
    path,
    text_columns: Iterable[str] = (),
    *,
    numeric: Iterable[str] = (),
    what: str = "input",
    threads: bool = True,
) -> pd.DataFrame:
    """read_frame(path, text_columns, categorical=True, numeric=numeric, what=what): the same
    frame (text columns as pandas categories of the original text, in pandas' sorted order;
    numbers as pandas parses them), CSV parsed by pyarrow. The one fast reader: the batch input
    step reads through it, and so does the transform's request reader (forecasting.artifact).

    pandas' parser holds a Python string per cell and re-hashes them into categories (25,000
    series, 27M rows: ~150 s, memory-bound); pyarrow reads every cell as a dictionary code (on
    both cores unless threads=False: the transform runs one request per worker process), and
    the distinct texts of a numeric column go through pandas' own parser once each, so types
    and values are pandas'. Whatever pyarrow cannot give identically (a header that differs,
    bytes that are not UTF-8, a byte-order mark, a ragged row, a column mixing numbers and text,
    text in a `numeric` column, Parquet) is read by read_frame, which also gives its errors."""
    text_columns, numeric = list(text_columns), list(numeric)
    try:
        files = list_files(path, DATA_SUFFIXES, what)
    except TableError:
        files = []
    frames = []
    for file in files:
        frame = _arrow_coded(file, text_columns, numeric, threads) if kind(file) == "csv" else None
        if frame is None:
            break
        frames.append(frame)
    else:
        if len(frames) == 1:
            return frames[0]
        if frames and all(list(f.columns) == list(frames[0].columns) for f in frames):
            frame = pd.concat(frames, ignore_index=True)
            for column in frame.columns:  # as read_table: categories of every file, one category again
                if all(isinstance(f[column].dtype, pd.CategoricalDtype) for f in frames):
                    frame[column] = frame[column].astype("category")
            return frame
    return read_frame(path, text_columns, categorical=True, numeric=numeric, what=what)


def _arrow_coded(
    path: Path, text_columns: Sequence[str], numeric: Sequence[str] = (), threads: bool = True
) -> Optional[pd.DataFrame]:
    """One CSV file as read_file(categorical=True, numeric=numeric) reads it, or None when pyarrow
    cannot say the same.

    _read's rule for which columns become categories (the object columns of pandas' first
    SAMPLE_ROWS rows) is applied to the codes themselves: a column is numbers when every
    distinct text parses as one, text (a category) when a text that does not is among its first
    SAMPLE_ROWS rows; otherwise pandas would give a column mixing both kinds, and it reads it."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pa_csv
    except ImportError:
        return None
    forced, never_text = set(text_columns), set(numeric) - set(text_columns)
    try:
        raw = _plain_header(path)
        if raw is None:
            return None  # a byte-order mark, one column (a wrong separator?), duplicate names: pandas' messages
        code_type = pa.dictionary(pa.int32(), pa.string())
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(use_threads=threads),
            # a line break can only be inside a value in quotes: without a quote anywhere, the
            # faster parallel cut at every line break is exact
            parse_options=pa_csv.ParseOptions(newlines_in_values=_has_quote(path)),
            convert_options=pa_csv.ConvertOptions(
                # a `numeric` column is numbers or pandas' to read: its texts need no dictionary
                column_types={c: pa.string() if c in never_text else code_type for c in raw},
                null_values=pandas_na_values(),
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowException, OSError, ValueError, UnicodeDecodeError, EOFError, zlib.error):
        return None
    if table.column_names != raw or table.num_rows == 0:
        return None
    if any(f.type != (pa.string() if f.name in never_text else code_type) for f in table.schema):
        return None
    table = table.unify_dictionaries()
    columns = {}
    for name in raw:
        if name in never_text:
            texts = table.column(name).combine_chunks()
            table = table.drop_columns([name])
            values = _plain_numbers(texts)
            if values is None:  # through the distinct texts, as any other column
                coded = texts.dictionary_encode()
                codes = pc.fill_null(coded.indices, -1).to_numpy()
                values = _column_numbers(coded.dictionary, bool((codes < 0).any()))
                if values is None:
                    return None  # text where numbers must be: pandas reads it as text
                values = values[codes]
            columns[name] = values
            continue
        chunks = table.column(name).chunks
        dictionary = chunks[0].dictionary if chunks else pa.array([], pa.string())
        codes = np.concatenate([pc.fill_null(chunk.indices, -1).to_numpy() for chunk in chunks]).astype(
            np.int32, copy=False
        )
        table = table.drop_columns([name])  # its Arrow memory goes before the next column's copy
        # text in the first rows: a category (the column cannot be all numbers); else numbers throughout
        if name in forced or _sample_is_text(dictionary, codes[:SAMPLE_ROWS]):
            columns[name] = _sorted_categorical(codes, np.array(dictionary.to_pylist(), dtype=object))
            continue
        values = _column_numbers(dictionary, bool((codes < 0).any()))
        if values is None:
            return None  # text after numbers, or text where numbers must be: pandas' chunked parser decides
        columns[name] = values[codes]  # a missing cell (-1) takes the last value, the missing one
    del table
    pa.default_memory_pool().release_unused()  # the parsed table's buffers back to the system, not kept by the pool
    return pd.DataFrame(columns)


def _plain_header(path: Path) -> Optional[List[str]]:
    """The header's names when pyarrow and pandas read it alike: no byte-order mark, at least two
    names, each once and without surrounding spaces; None otherwise."""
    import csv
    import io

    with _open_bytes(path) as handle:
        head = handle.read(65536)
    if head.startswith(b"\xef\xbb\xbf"):
        return None  # the pandas path says it ignored the byte-order mark
    try:
        rows = csv.reader(io.StringIO(head.decode("utf-8")))
        names = next((row for row in rows if row), [])
    except (UnicodeDecodeError, csv.Error):
        return None
    if len(names) < 2 or len(set(names)) != len(names) or any(not n or n != n.strip() for n in names):
        return None
    return names


def _sorted_categorical(codes: np.ndarray, uniques: np.ndarray) -> pd.Categorical:
    """The cells as pandas' CSV parser makes a category: its distinct texts sorted (pyarrow's are
    in order of first appearance), only those that occur."""
    order = np.argsort(uniques, kind="stable")
    if np.array_equal(order, np.arange(len(uniques))):  # already in order (dates, a file sorted by item)
        return pd.Categorical.from_codes(codes, pd.Index(uniques, dtype=object), validate=False)
    rank = np.empty(len(uniques) + 1, dtype=np.int32)
    rank[order] = np.arange(len(uniques), dtype=np.int32)
    rank[-1] = -1  # a missing cell (-1) stays missing
    return pd.Categorical.from_codes(rank[codes], pd.Index(uniques[order], dtype=object), validate=False)


def _has_quote(path: Path) -> bool:
    """Whether the file has a '"' anywhere (gzip: assumed so, it is not scanned)."""
    if path.name.lower().endswith(".gz"):
        return True
    import mmap

    with open(path, "rb") as handle:
        if handle.seek(0, 2) == 0:
            return False
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(b'"') >= 0


def pandas_na_values() -> List[str]:
    """pandas' default missing-value texts, for readers (pyarrow) that must agree with its CSV parser."""
    try:
        from pandas._libs.parsers import STR_NA_VALUES

        return sorted(STR_NA_VALUES)
    except ImportError:  # pandas moved it: its documented default list
        return sorted(
            ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
             "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
        )  # fmt: skip


def _pandas_parse(texts: List[str], missing: bool) -> Optional[np.ndarray]:
    """Each text as pandas' CSV parser reads a column of them (plus NaN last when `missing`)."""
    import io

    if not texts and not missing:
        return None
    body = "\n".join(texts)
    if body.count("\n") != len(texts) - 1 or any(mark in body for mark in '",\r') or any(t != t.strip() for t in texts):
        # a text with a quote, comma or line break, or spaces around it: each quoted, as its own cell
        body = "\n".join('"' + t.replace('"', '""') + '"' for t in texts)
    lines = len(texts) + missing
    body = "v\n" + body + ('\n""' if missing else "") + "\n"
    parsed = pd.read_csv(io.StringIO(body), dtype=None, low_memory=False, skip_blank_lines=False)["v"].to_numpy()
    return parsed if len(parsed) == lines else None


def _column_numbers(dictionary, missing: bool) -> Optional[np.ndarray]:
    """A column's distinct texts (a pyarrow string array) as pandas' CSV parser converts them
    (plus NaN last when cells are missing), or None unless the column is int64 / float64 / bool
    in every chunk pandas would read.

    Whole numbers of up to 15 digits, and decimals of up to 15 digits without an exponent, are
    converted by pyarrow: pandas' parser gives the same values for them (one exact power of ten
    applied to an exact integer: the correctly rounded float, as pyarrow's). Any other text goes
    through pandas' own parser, whose rounding of longer decimals and exponents is its own."""
    if len(dictionary) <= 1024:  # a few distinct texts: checked here (a compute call costs more)
        texts = dictionary.to_pylist()
        for kind, pattern in ((np.int64, _SHORT_WHOLE), (np.float64, _SHORT_DECIMAL)):
            if texts and all(len(t) <= 15 and pattern.fullmatch(t) for t in texts):
                values = np.array([kind(t) if kind is np.float64 else int(t) for t in texts], dtype=kind)
                return np.append(values.astype(np.float64), np.nan) if missing else values
        return _pandas_numbers(np.array(texts, dtype=object), missing)
    values = _plain_numbers(dictionary)
    if values is not None:
        return np.append(values.astype(np.float64), np.nan) if missing else values
    return _pandas_numbers(np.array(dictionary.to_pylist(), dtype=object), missing)


def _plain_numbers(texts) -> Optional[np.ndarray]:
    """pyarrow's values of a string array (a missing text: NaN) when they are pandas' too: every
    text a whole number or an exponent-free decimal of at most 15 characters; else None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    short = pc.less_equal(pc.utf8_length(texts), 15)
    # all() of no text at all (every cell missing) is null: a column of NaN, as pandas reads it
    if pc.all(pc.and_(short, pc.match_substring_regex(texts, "^" + _SHORT_DECIMAL.pattern + "$"))).as_py() is False:
        return None
    whole = not pc.any(pc.match_substring(texts, ".")).as_py()  # whole numbers: int64, as pandas reads them
    return texts.cast(pa.int64() if whole else pa.float64()).to_numpy(zero_copy_only=False)


def _pandas_numbers(uniques: np.ndarray, missing: bool) -> Optional[np.ndarray]:
    """Each distinct cell text as pandas' CSV parser converts it (plus NaN last when cells are
    missing), or None unless the column is int64 / float64 / bool in every chunk pandas would read."""
    texts = uniques.tolist()
    if texts and set(texts) <= BOOL_TEXTS:  # bool in every chunk only when every text is a bool word
        return None if missing else np.array([t in TRUE_TEXTS for t in texts])
    if _number_kind(texts) == "text":
        return None
    parsed = _pandas_parse(texts, missing)
    if parsed is None or parsed.dtype not in (np.dtype(np.int64), np.dtype(np.float64)):
        return None
    return parsed


def _sample_is_text(dictionary, sample_codes: np.ndarray) -> bool:
    """Whether pandas reads the column's first SAMPLE_ROWS cells (their codes) as text (object)."""
    present = np.unique(sample_codes[sample_codes >= 0])
    texts = dictionary.take(present).to_pylist()
    kind = _number_kind(texts)
    if kind is not None:
        return kind == "text"
    parsed = _pandas_parse(texts, bool((sample_codes < 0).any()))
    return parsed is not None and parsed.dtype == object


_SHORT_WHOLE = re.compile(r"-?[0-9]+")  # with at most 15 characters: pyarrow's value is pandas'
_SHORT_DECIMAL = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# what pandas' parser might read as a number or a bool: anything else is text for certain
_MAYBE_NUMBER = re.compile(r"\s*[+-]?(?:[0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]*)?|inf(?:inity)?|nan)\s*", re.IGNORECASE)


def _number_kind(texts: List[str]) -> Optional[str]:
    """'number' (every text a plain decimal: pandas reads numbers), 'text' (a text that no
    number parser reads, nor is a bool word), or None when only pandas can tell."""
    if all(_DECIMAL.fullmatch(t) for t in texts):
        return "number"
    if any(not _MAYBE_NUMBER.fullmatch(t) and t not in BOOL_TEXTS for t in texts):
        return "text"
    return None
