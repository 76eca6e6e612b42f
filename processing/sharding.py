"""Cut whole series into files by bytes: each transform input file is one request.

With SplitType None a batch transform sends each input file as one invocation, so a file is
a request and must fit the job's payload limit. Autopilot also needs each series whole in
one file. `group_series` packs consecutive series greedily into files of at most
`max_bytes` (and at most `max_items` series); a single series larger than `max_bytes` gets
a file of its own (it cannot be split) and is reported by the caller.

Standard library and numpy only (runs in the processing image).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np


def group_series(
    series_bytes: Sequence[int], max_bytes: int, header_bytes: int = 0, max_items: Optional[int] = None
) -> List[Tuple[int, int]]:
    """[start, end) ranges of series indices, one per file, in order.

    series_bytes: the encoded size of each series' rows (lines with their newline);
    header_bytes: the header line each file repeats.
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")
    ranges: List[Tuple[int, int]] = []
    start, size = 0, header_bytes
    for index, nbytes in enumerate(int(b) for b in series_bytes):
        count = index - start
        full = count > 0 and (size + nbytes > max_bytes or (max_items is not None and count >= max_items))
        if full:
            ranges.append((start, index))
            start, size = index, header_bytes
        size += nbytes
    if len(series_bytes):
        ranges.append((start, len(series_bytes)))
    return ranges


def line_bytes(lines: Sequence[str]) -> np.ndarray:
    """UTF-8 size of each line plus its newline."""
    return np.fromiter((len(line.encode("utf-8")) + 1 for line in lines), dtype=np.int64, count=len(lines))


def series_sizes(row_bytes: np.ndarray, series_of_row: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per run of equal series ids (rows of a series are contiguous): (first row, total bytes)."""
    series_of_row = np.asarray(series_of_row)
    if not len(series_of_row):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, series_of_row[1:] != series_of_row[:-1]])
    return starts, np.add.reduceat(np.asarray(row_bytes, dtype=np.int64), starts)
