"""A step's JSON input (another step's small result file), read with the one-line errors of the
table reader. Standard library only: the AutoML and RegisterModel steps read these without
importing pandas (processing.tables re-exports both names)."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple, Type, Union


class TableError(ValueError):
    """A file cannot be read as a table; the message is one line naming the file."""


def read_json(path, file_name: str, flag: str, hint: str = "") -> Dict[str, Any]:
    """A step's JSON input (another step's result): the file itself, or the folder holding `file_name`.

    Every failure is one line naming the flag and the file, raised as TableError; `hint` says which
    step writes the file, for the "does not exist" case.
    """
    target = Path(path)
    if target.is_dir():
        target = target / file_name
    if not target.is_file():
        raise TableError(f"{flag}: {target} does not exist{'; ' + hint if hint else ''}")
    try:
        document = json.loads(target.read_text(encoding="utf-8"))
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError alike
        raise TableError(f"{flag}: {target} is not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise TableError(f"{flag}: {target} holds a JSON {type(document).__name__}, not an object")
    return document


def user_named(text: str, folder: Union[str, Path], given: Optional[str]) -> str:
    """`text` with the step's input folder (and the files under it) named as the user gave the input.

    On SageMaker a step reads its input from /opt/ml/processing/input/<name>, a path the user never
    typed: `given` is what they passed (InputDataUrl's S3 URI or path). A folder holding the one file
    the URI names (s3://b/sales.csv -> <folder>/sales.csv) is that URI, as the folder itself is; any
    other file is the URI joined with its path in the folder. No `given`: `text` unchanged.
    """
    root = str(folder).rstrip("/")
    if not given or not root:
        return text
    start = r"(?<![\w./-])" + re.escape(root)  # the whole path, not the tail of a longer one
    name = given.rstrip("/").rsplit("/", 1)[-1]
    if not given.endswith("/") and name and (Path(root) / name).is_file():
        text = re.sub(start + re.escape(f"/{name}") + r"(?![\w.-])", lambda _match: given, text)
    text = re.sub(start + "/", lambda _match: given.rstrip("/") + "/", text)
    return re.sub(start + r"(?![\w.-])", lambda _match: given, text)


@contextlib.contextmanager
def named_input(
    folder: Union[str, Path], given: Optional[str], errors: Union[Type[Exception], Tuple[Type[Exception], ...]]
) -> Iterator[None]:
    """Re-raise `errors` raised inside with the input folder named as the user gave it (user_named)."""
    try:
        yield
    except errors as error:
        named = user_named(str(error), folder, given)
        if named == str(error):
            raise
        raise type(error)(named) from None
