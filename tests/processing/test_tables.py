"""The one reader: ids as text in every format, one folder rule, one-line errors naming the file."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from processing import tables

IDS = ["007", "7", "0042", "42"]
CSV = "item_id,store,timestamp,target_value\n" + "".join(
    f"{item},{store},2023-01-0{day},{day}.5\n" for item, store in zip(IDS, ["01", "1", "01", "1"]) for day in (1, 2)
)


@pytest.mark.parametrize("name", ["sales.csv", "sales.csv.gz", "part-00000.csv.out", "sales.parquet"])
def test_given_ids_with_leading_zeros_when_read_then_they_stay_text_in_every_format(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(CSV.encode()))
    elif name.endswith(".parquet"):
        pd.DataFrame({"item_id": [7, 42], "store": [1, 1], "target_value": [1.0, 2.0]}).to_parquet(path)
    else:
        path.write_text(CSV)
    frame = tables.read_frame(path, ["item_id", "store"], suffixes=tables.DATA_SUFFIXES + tables.FORECAST_SUFFIXES)
    if name.endswith(".parquet"):  # numbers stored as numbers become their text
        assert frame["item_id"].tolist() == ["7", "42"] and frame["store"].tolist() == ["1", "1"]
    else:
        assert sorted(frame["item_id"].unique()) == sorted(IDS)
        assert sorted(frame["store"].unique()) == ["01", "1"]
    assert frame["target_value"].dtype.kind == "f"


def test_given_categorical_reading_then_ids_are_categories_of_the_original_text(tmp_path):
    (tmp_path / "sales.csv").write_text(CSV)
    table = tables.read_table(tmp_path / "sales.csv", ["item_id"], categorical=True, numeric=["target_value"])
    assert sorted(table.frame["item_id"].cat.categories) == sorted(IDS)
    assert table.where([0, 7]) == ["sales.csv line 2", "sales.csv line 9"]


def test_given_a_folder_then_every_data_file_below_it_is_read_and_hidden_or_marker_files_are_not(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.csv").write_text(CSV)
    (tmp_path / "c.csv.gz").write_bytes(gzip.compress(CSV.encode()))
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".hidden.csv").write_text("garbage")
    (tmp_path / "notes.md").write_text("# not data")
    table = tables.read_table(tmp_path, ["item_id"])
    assert table.files == ["a/b.csv", "c.csv.gz"]
    assert len(table.frame) == 16


def test_given_a_truncated_gzip_file_then_the_error_is_one_line_naming_the_file(tmp_path):
    body = gzip.compress((CSV * 2000).encode())
    (tmp_path / "sales.csv.gz").write_bytes(body[: len(body) // 2])
    with pytest.raises(tables.TableError) as caught:
        tables.read_table(tmp_path / "sales.csv.gz", ["item_id"], categorical=True)
    message = str(caught.value)
    assert message.startswith("sales.csv.gz: cannot be read as CSV: ") and "cut short" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "the file is empty"),
        (b"\x00\x01\x02garbage", "cannot be read as Parquet"),
    ],
)
def test_given_unreadable_files_then_the_error_names_the_file(tmp_path, content, expected):
    path = tmp_path / ("bad.parquet" if content else "empty.csv")
    path.write_bytes(content)
    with pytest.raises(tables.TableError, match=rf"^{path.name}: .*{expected}"):
        tables.read_table(path, ["item_id"])


def test_given_files_with_different_columns_then_both_are_named(tmp_path):
    (tmp_path / "a.csv").write_text(CSV)
    (tmp_path / "b.csv").write_text("item_id,timestamp\n1,2023-01-01\n")
    with pytest.raises(tables.TableError, match=r"b.csv vs a.csv: missing \['store', 'target_value'\]"):
        tables.read_table(tmp_path, ["item_id"])


def test_split_utc_offsets_reads_each_timestamp_at_its_local_time():
    plain, offsets = tables.split_utc_offsets(
        [
            "2023-01-01T00:00:00Z",
            "2023-01-02T00:00:00+02:00",
            "2023-01-03 10:00:00-0500",
            "2023-01-04",
            "2023-01-05 10:00",
        ]
    )
    assert plain == [
        "2023-01-01T00:00:00",
        "2023-01-02T00:00:00",
        "2023-01-03 10:00:00",
        "2023-01-04",
        "2023-01-05 10:00",
    ]
    assert offsets == ["+00:00", "+02:00", "-05:00", None, None]


def test_given_fetched_csv_bytes_then_ids_stay_text_and_a_cut_gzip_is_one_line_naming_the_object():
    frame = tables.read_csv_bytes(gzip.compress(CSV.encode()), "s3://b/backtest/part-00000.csv.gz", ["item_id"])
    assert sorted(frame["item_id"].unique()) == sorted(IDS)
    body = gzip.compress((CSV * 500).encode())
    with pytest.raises(
        tables.TableError, match=r"^s3://b/backtest/part-00000.csv.gz: cannot be read as CSV: .*cut short"
    ):
        tables.read_csv_bytes(body[: len(body) // 2], "s3://b/backtest/part-00000.csv.gz", ["item_id"])


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "--evaluation-dir: {path} does not exist; the Evaluate step writes it"),
        (b'{"wape": ', "--evaluation-dir: {path} is not valid JSON (Expecting value: line 1 column 10 (char 9))"),
        (b"\xff\xfe{}", "--evaluation-dir: {path} is not valid JSON ('utf-8' codec can't decode"),
        (b"[1, 2]", "--evaluation-dir: {path} holds a JSON list, not an object"),
    ],
)
def test_given_a_bad_json_input_then_the_error_is_one_line_naming_the_flag_and_the_file(tmp_path, content, expected):
    path = tmp_path / "evaluation.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(tables.TableError) as raised:
        tables.read_json(tmp_path, "evaluation.json", "--evaluation-dir", "the Evaluate step writes it")
    message = str(raised.value)
    assert message.startswith(expected.format(path=path)) and "\n" not in message


def test_given_a_json_file_or_its_folder_then_both_read_the_same_document(tmp_path):
    (tmp_path / "evaluation.json").write_text('{"wape": {"value": 0.1}}', encoding="utf-8")
    assert tables.read_json(tmp_path, "evaluation.json", "--evaluation-dir") == {"wape": {"value": 0.1}}
    assert tables.read_json(tmp_path / "evaluation.json", "other.json", "--evaluation-dir") == {"wape": {"value": 0.1}}


def test_shared_text_read_gives_the_same_frame_with_one_string_per_distinct_value(tmp_path):
    from processing import tables

    path = tmp_path / "sales.csv"
    path.write_text(
        "item_id,timestamp,target_value,region\n"
        + "".join(f"007,2024-01-{d:02d},{d}.5,North\n" for d in range(1, 29))
        + "8,2024-01-01,,South\n"
    )
    plain = tables.read_frame(path, ["item_id"])
    shared = tables.read_frame_shared_text(path, ["item_id"], numeric=["target_value"])
    pd.testing.assert_frame_equal(shared, plain)
    assert shared["item_id"].iloc[0] == "007" and shared["target_value"].isna().sum() == 1
    # the rows of a distinct value hold the same string object
    assert len({id(v) for v in shared["region"]}) == 2


def _plain(frame):
    return frame.astype({c: object for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})


def _awkward_rows():
    rows = ["item_id,day,qty,price,flag,note"]
    for i in range(30):
        qty = ("" if i % 7 == 0 else str(i)) if i % 5 else ("None" if i % 2 else "<NA>")  # pandas' NA words too
        price = "0.1000000000000000055511151231257827" if i == 4 else f"{i * 1.1:.17g}"
        note = '"a, quoted\nline"' if i == 9 else ("NA" if i == 3 else f"n{i % 3}")
        rows.append(f"{i % 4:03d},2024-01-{i % 28 + 1:02d},{qty},{price},{'True' if i % 2 else 'false'},{note}")
    return "\n".join(rows) + "\n"


def test_given_a_csv_then_the_arrow_coded_read_is_the_pandas_categorical_read(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(_awkward_rows(), encoding="utf-8")
    coded = tables._arrow_coded(path, ["item_id"])  # the pyarrow path itself, not its pandas fallback
    assert coded is not None
    expected = tables.read_frame(path, ["item_id"], categorical=True)
    pd.testing.assert_frame_equal(coded, expected, check_exact=True)  # categories in pandas' order too
    assert coded["item_id"].astype(str).tolist()[:2] == ["000", "001"]
    assert coded["qty"].isna().sum() == 10 and coded["qty"].dtype == float  # '', 'None', '<NA>' are missing
    assert coded["note"].astype(object).tolist()[9] == "a, quoted\nline"


def test_given_numbers_then_text_beyond_the_sample_then_pandas_reads_that_column(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(
        "item_id,v\n" + "".join(f"a,{i}\n" for i in range(tables.SAMPLE_ROWS + 5)) + "a,oops\n", encoding="utf-8"
    )
    assert tables._arrow_coded(path, ["item_id"]) is None
    frame = tables.read_frame_coded(path, ["item_id"])
    pd.testing.assert_frame_equal(_plain(frame), _plain(tables.read_frame(path, ["item_id"], categorical=True)))
    assert frame["v"].iloc[-1] == "oops"


@pytest.mark.parametrize("layout", ["gzip", "folder", "bom"])
def test_given_gzip_folders_or_a_byte_order_mark_then_the_coded_read_is_the_pandas_one(tmp_path, layout):
    data = _awkward_rows().encode("utf-8")
    if layout == "gzip":
        path = tmp_path / "in.csv.gz"
        path.write_bytes(gzip.compress(data))
    elif layout == "folder":
        path = tmp_path / "in"
        path.mkdir()
        header, _, body = data.partition(b"\n")
        lines = body.splitlines(keepends=True)
        (path / "a.csv").write_bytes(header + b"\n" + b"".join(lines[:12]))
        (path / "b.csv").write_bytes(header + b"\n" + b"".join(lines[12:]))
    else:
        path = tmp_path / "in.csv"
        path.write_bytes(b"\xef\xbb\xbf" + data)
    expected = tables.read_frame(path, ["item_id"], categorical=True)
    pd.testing.assert_frame_equal(_plain(tables.read_frame_coded(path, ["item_id"])), _plain(expected))


def test_given_an_unreadable_csv_then_the_coded_read_gives_the_one_line_error(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("item_id,v\na,1\nb,1,2\n", encoding="utf-8")
    with pytest.raises(tables.TableError, match="in.csv"):
        tables.read_frame_coded(path, ["item_id"])


@pytest.mark.parametrize("shape", ["short decimals", "long decimals and exponents", "whole numbers"])
def test_given_a_column_of_many_distinct_numbers_then_the_coded_values_are_pandas_bit_for_bit(tmp_path, shape):
    # given: more distinct texts than the per-text check takes (the pyarrow compute path), some
    # of which pyarrow's parser alone would round otherwise than pandas'
    rng = np.random.default_rng(3)
    n = 3000
    if shape == "short decimals":
        values = [f"{v:.{1 + i % 6}f}" for i, v in enumerate(rng.random(n) * 10_000)]
    elif shape == "long decimals and exponents":
        values = [
            f"{v:.{1 + i % 19}g}" for i, v in enumerate(rng.standard_normal(n) * 10.0 ** rng.integers(-25, 25, n))
        ]
    else:
        values = [str(v) for v in rng.integers(-(10**14), 10**14, n)]
    values[7] = ""  # a missing cell
    path = tmp_path / "in.csv"
    path.write_text("item_id,v\n" + "".join(f"a{i % 5},{v}\n" for i, v in enumerate(values)), encoding="utf-8")
    # when
    coded = tables._arrow_coded(path, ["item_id"])
    # then
    assert coded is not None
    expected = tables.read_frame(path, ["item_id"], categorical=True)
    pd.testing.assert_frame_equal(coded, expected, check_exact=True)
    assert coded["v"].dtype == float and np.isnan(coded["v"].iloc[7])


def test_given_text_first_then_numbers_then_the_column_is_a_category_as_pandas_reads_it(tmp_path):
    # given: a column whose first rows (pandas' sample) hold text: a category, numbers and all
    path = tmp_path / "in.csv"
    rows = [f"a,{'n/a yet' if i < 3 else i}\n" for i in range(tables.SAMPLE_ROWS + 50)]
    path.write_text("item_id,v\n" + "".join(rows), encoding="utf-8")
    # when
    coded = tables._arrow_coded(path, ["item_id"])
    # then
    assert coded is not None and isinstance(coded["v"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(coded, tables.read_frame(path, ["item_id"], categorical=True), check_exact=True)


def test_given_text_in_a_numeric_column_then_the_pandas_reader_reads_it_as_read_frame_does(tmp_path):
    # given: `numeric` columns are never categories (the engine's target): text in one is pandas' to read
    path = tmp_path / "in.csv"
    path.write_text("item_id,target,v\na,1,x\na,lots,y\nb,3,x\n", encoding="utf-8")
    # when
    coded = tables.read_frame_coded(path, ["item_id"], numeric=["target"])
    # then
    assert tables._arrow_coded(path, ["item_id"], ["target"]) is None
    expected = tables.read_frame(path, ["item_id"], categorical=True, numeric=["target"])
    pd.testing.assert_frame_equal(coded, expected, check_exact=True)
    assert coded["target"].tolist() == ["1", "lots", "3"] and isinstance(coded["v"].dtype, pd.CategoricalDtype)


@pytest.mark.parametrize("threads", [True, False])
def test_given_one_or_two_threads_then_the_coded_read_is_the_same(tmp_path, threads):
    path = tmp_path / "in.csv"
    path.write_text(_awkward_rows(), encoding="utf-8")
    coded = tables.read_frame_coded(path, ["item_id"], threads=threads)
    pd.testing.assert_frame_equal(coded, tables.read_frame(path, ["item_id"], categorical=True), check_exact=True)
