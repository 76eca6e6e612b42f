"""PrepareBatchInput on coded (category) frames: the same shards and history bytes as on plain text frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from processing import batch_input, tables


def _csv(tmp_path, rows, name="input.csv"):
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _awkward_input(tmp_path):
    """Unsorted items and times, ids with leading zeros, a short item, missing targets and
    attributes, a text with a comma (quoted), ints, floats and booleans."""
    rows = ["timestamp,target_value,item_id,category,promotion,price,flag"]
    rng = np.random.default_rng(0)
    for item, category in (("007", '"toys, small"'), ("b", "books"), ("010", ""), ("a", "books")):
        for day in rng.permutation(8):
            target = "" if day == 3 else f"{rng.integers(0, 50) / 4:g}"
            rows.append(
                f"2024-01-{day + 1:02d},{target},{item},{category},{day % 2},{1.1 * day:.3f},{'True' if day % 3 else 'False'}"
            )
    rows += ["2024-01-01,1,short,books,0,1.0,True", "2024-01-02,,short,books,1,1.0,False"]
    return _csv(tmp_path, rows)


def _run(frame, tmp_path, name):
    frame, dropped = batch_input.prepare(frame, "item_id", "timestamp", "target_value", tmp_path / "input.csv")
    codes = batch_input.text_codes(frame)
    shards = batch_input.write_shards(frame, "item_id", tmp_path / name / "shards", 2, codes=codes)
    history = batch_input.write_history(frame, tmp_path / name / "history", tmp_path / name / "shards", codes)
    return dropped, [p.read_bytes() for p in shards], history.read_bytes()


def test_given_coded_and_plain_text_frames_then_shards_and_history_are_byte_identical(tmp_path):
    source = _awkward_input(tmp_path)
    coded = tables.read_frame_coded(source, ["item_id"])
    plain = tables.read_frame_shared_text(source, ["item_id"])
    assert isinstance(coded["item_id"].dtype, pd.CategoricalDtype)

    dropped, shards, history = _run(coded, tmp_path, "coded")
    assert (dropped, shards, history) == _run(plain, tmp_path, "plain")
    assert dropped == ["short"]
    text = b"".join(shards).decode()
    assert ',007,"toys, small",' in text and ",010,," in text  # leading zeros, quoting and a missing text kept


def test_given_coded_ids_then_rows_come_sorted_by_id_text_and_time(tmp_path):
    coded = tables.read_frame_coded(_awkward_input(tmp_path), ["item_id"])
    frame, _ = batch_input.prepare(coded, "item_id", "timestamp", "target_value", tmp_path / "input.csv")
    ids = frame["item_id"].astype(str).tolist()
    assert ids == sorted(ids)
    for _, part in frame.groupby("item_id", observed=True):
        assert pd.to_datetime(part["timestamp"].astype(str)).is_monotonic_increasing


def test_given_missing_ids_in_a_coded_frame_then_they_are_the_text_nan_as_astype_makes_them(tmp_path):
    rows = ["timestamp,target_value,item_id"] + [f"2024-01-0{d},{d},{i}" for i in ("x", "") for d in range(1, 6)]
    source = _csv(tmp_path, rows)
    coded, _ = batch_input.prepare(
        tables.read_frame_coded(source, ["item_id"]), "item_id", "timestamp", "target_value", source
    )
    plain, _ = batch_input.prepare(
        tables.read_frame_shared_text(source, ["item_id"]), "item_id", "timestamp", "target_value", source
    )
    assert coded["item_id"].astype(str).tolist() == plain["item_id"].tolist() == ["nan"] * 5 + ["x"] * 5


def test_given_a_coded_frame_with_bad_dates_then_the_error_names_the_column_rows_and_values(tmp_path):
    rows = ["timestamp,target_value,item_id"] + [f"2024-01-0{d},{d},x" for d in range(1, 6)] + ["soon,1,x"]
    source = _csv(tmp_path, rows)
    with pytest.raises(
        batch_input.BatchInputError,
        match=r"^column 'timestamp' \(TimestampColumn\): 1 values are not dates: input.csv line 7 \('soon'\)\. Fix:",
    ):
        batch_input.prepare(
            tables.read_frame_coded(source, ["item_id"]), "item_id", "timestamp", "target_value", source
        )


def test_text_codes_of_a_coded_frame_are_pandas_factorize_of_its_text():
    values = pd.Series(["b", "a", None, "b", "c", "a"], dtype=object)
    frame = pd.DataFrame({"t": values.astype("category"), "o": values})
    codes = batch_input.text_codes(frame)
    expected_codes, expected_uniques = pd.factorize(values.to_numpy())
    for column in ("t", "o"):
        np.testing.assert_array_equal(codes[column][0], expected_codes)
        assert codes[column][1].tolist() == expected_uniques.tolist()


def _history_with_text_target(tmp_path, name="input.csv"):
    """Two items of 6 days: a history row of item x holds 'abc', the last 2 days of each are future rows."""
    rows = ["timestamp,target_value,item_id"]
    for item in ("x", "y"):
        for day in range(1, 7):
            target = "" if day > 4 else ("abc" if (item, day) == ("x", 3) else str(day))
            rows.append(f"2024-01-0{day},{target},{item}")
    return _csv(tmp_path, rows, name)


@pytest.mark.parametrize("read", [tables.read_frame_coded, tables.read_frame_shared_text], ids=["coded", "plain"])
def test_given_text_in_a_history_target_then_it_is_refused_like_prepare_data_refuses_it(tmp_path, read):
    # given a batch input whose history has the text 'abc' as a target value (line 4: header, x 1, x 2, x 3)
    source = _history_with_text_target(tmp_path)
    # when PrepareBatchInput prepares it, then it is an error naming the column, file, line and value
    with pytest.raises(batch_input.BatchInputError) as refused:
        batch_input.prepare(read(source, ["item_id"]), "item_id", "timestamp", "target_value", source)
    message = str(refused.value)
    assert message.startswith(
        "column 'target_value' (TargetColumn): 1 values are not numbers: input.csv line 4 ('abc'). Fix:"
    )
    assert "\n" not in message
    # and PrepareData says exactly the same for the same rows (one rule, data_prep.target_numbers)
    from processing.data_prep import DataValidationError, parse_target

    with pytest.raises(DataValidationError) as prepared:
        parse_target(tables.read_table(source, ["item_id"], numeric=["target_value"]), "target_value")
    assert str(prepared.value) == message


def test_given_empty_future_targets_then_they_stay_empty_and_nothing_is_refused(tmp_path):
    source = _history_with_text_target(tmp_path)
    source.write_text(source.read_text().replace("abc", "3.5"))
    frame, dropped = batch_input.prepare(
        tables.read_frame_coded(source, ["item_id"]), "item_id", "timestamp", "target_value", source
    )
    assert dropped == [] and frame["target_value"].isna().sum() == 4
    assert frame["target_value"].dropna().tolist() == [1.0, 2.0, 3.5, 4.0, 1.0, 2.0, 3.0, 4.0]


def test_given_text_in_the_second_file_of_a_folder_then_the_error_names_that_file_and_its_line(tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    _csv(folder, ["timestamp,target_value,item_id"] + [f"2024-01-0{d},{d},a" for d in range(1, 7)], "1.csv")
    _history_with_text_target(folder, "2.csv")
    with pytest.raises(batch_input.BatchInputError, match=r"values are not numbers: 2\.csv line 4 \('abc'\)"):
        batch_input.prepare(
            tables.read_frame_coded(folder, ["item_id"]), "item_id", "timestamp", "target_value", folder
        )


def test_given_text_in_a_target_then_the_step_exits_2_with_one_line(tmp_path, capsys):
    source = _history_with_text_target(tmp_path)
    assert batch_input.main(["--input", str(source), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("PrepareBatchInput failed: column 'target_value' (TargetColumn)")
    assert not (tmp_path / "out").exists()


def test_given_a_target_beyond_the_scale_prepare_data_refuses_then_the_batch_input_refuses_it_too(tmp_path):
    source = _history_with_text_target(tmp_path)
    source.write_text(source.read_text().replace("abc", "2e16"))
    with pytest.raises(batch_input.BatchInputError, match=r"values are beyond \+-1e\+15.*input.csv line 4 \(2e\+16\)"):
        batch_input.prepare(
            tables.read_frame_coded(source, ["item_id"]), "item_id", "timestamp", "target_value", source
        )


def test_given_a_folder_holding_one_file_then_messages_name_that_file(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    _csv(folder, ["timestamp,units,item_id", "2024-01-01,1,a"], "sales.csv")
    assert batch_input.main(["--input", str(folder), "--output-dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(
        f"PrepareBatchInput failed: {folder / 'sales.csv'}: column 'target_value'"
    )
