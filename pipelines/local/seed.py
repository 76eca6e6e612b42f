"""The seed dataset: with no InputDataUrl, a run uses the generator's data at the parameter's default location."""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Optional

from pipelines.local.store import local_path
from processing.kernel.settings import Settings

SEED_FUTURE_DAYS = 14  # the training pipeline's default ForecastHorizon


def ensure_seed_data(
    definition: Mapping[str, Any], parameters: Mapping[str, Any], settings: Settings, out: Callable[[str], None] = print
) -> Optional[str]:
    """With no InputDataUrl override, put the seed dataset at the parameter's default location.

    Returns a note for the execution record (None when nothing was needed).
    """
    declared = {p["Name"]: p for p in definition.get("Parameters") or []}
    if "InputDataUrl" not in declared or "InputDataUrl" in parameters:
        return None
    default = str(declared["InputDataUrl"].get("DefaultValue") or "")
    if not default.startswith("s3://"):
        return None
    target = local_path(default, settings)
    file_target = target if re.search(r"\.(csv|parquet)(\.gz)?$", default) else target / "sales.csv"
    if file_target.is_file() or (target.is_dir() and any(target.iterdir())):
        note = f"No InputDataUrl given: using the seed dataset already in the local store at {default}"
        out(note)
        return note
    from processing.generate import generate_sales, write_frame

    # A pipeline that trains (it has a ForecastHorizon) gets the history; one that only forecasts
    # (batch) gets the history plus the next SEED_FUTURE_DAYS days with known covariates.
    future_days = 0 if "ForecastHorizon" in declared else SEED_FUTURE_DAYS
    out("No InputDataUrl given: generating the seed dataset (processing.generate) ...")
    frame = generate_sales(future_days=future_days)
    write_frame(frame, file_target)
    items = frame["item_id"].nunique() if "item_id" in frame.columns else "?"
    future = f", plus {future_days} future days with known covariates" if future_days else ""
    note = (
        f"No InputDataUrl given: generated the seed dataset ({len(frame)} rows, {items} items{future}) at "
        f"{default} ({file_target}); pass --param InputDataUrl=... to use your own data"
    )
    out(note)
    return note
