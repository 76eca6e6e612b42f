"""user_named: a step's message names its input as the user gave it, not the container's folder."""

from __future__ import annotations

import pytest

from processing.kernel.inputs import named_input, user_named


def test_given_a_prefix_then_the_folder_and_files_under_it_are_named_by_the_uri(tmp_path):
    folder = tmp_path / "data"
    (folder / "2024").mkdir(parents=True)
    (folder / "2024" / "a.csv").write_text("x\n")
    text = f"input folder {folder}: bad; {folder}/2024/a.csv line 2; {folder}2/other stays"
    assert user_named(text, folder, "s3://b/sales/") == (
        f"input folder s3://b/sales/: bad; s3://b/sales/2024/a.csv line 2; {folder}2/other stays"
    )


def test_given_one_file_then_the_folder_and_that_file_are_both_the_uri(tmp_path):
    (tmp_path / "sales.csv").write_text("x\n")
    assert user_named(f"{tmp_path}/sales.csv: bad ({tmp_path})", tmp_path, "s3://b/in/sales.csv") == (
        "s3://b/in/sales.csv: bad (s3://b/in/sales.csv)"
    )


def test_given_no_url_then_the_text_is_unchanged(tmp_path):
    assert user_named(f"{tmp_path}: bad", tmp_path, None) == f"{tmp_path}: bad"


def test_given_a_relative_folder_then_only_that_path_is_renamed_not_the_tail_of_another():
    text = "input folder data: no files; mydata/x.csv and /srv/data/y.csv stay; data/z.csv"
    assert user_named(text, "data", "s3://b/in/") == (
        "input folder s3://b/in/: no files; mydata/x.csv and /srv/data/y.csv stay; s3://b/in/z.csv"
    )


def test_given_an_error_inside_named_input_then_it_is_raised_again_naming_the_url(tmp_path):
    class Refused(ValueError):
        pass

    with pytest.raises(Refused, match=r"^s3://b/x/: no files$"):
        with named_input(tmp_path, "s3://b/x/", Refused):
            raise Refused(f"{tmp_path}: no files")
    with pytest.raises(KeyError):  # other errors pass untouched
        with named_input(tmp_path, "s3://b/x/", Refused):
            raise KeyError(str(tmp_path))
