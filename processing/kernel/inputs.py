"""A step's JSON input (another step's small result file), read with the one-line errors of the
table reader. Standard library only: the AutoML and RegisterModel steps read these without
importing pandas (processing.tables re-exports both names)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict


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
