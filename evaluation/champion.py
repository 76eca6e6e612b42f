"""Champion versus challenger on the same holdout: the `champion` section of evaluation.json.

The Evaluate step scores the champion's forecasts (written by the ChampionForecast step)
with exactly the code that scores the candidate (``scoring.evaluate``), then compares the
QualityMetric:

    passed = challenger <= champion x (1 + ChallengerTolerance)

The ChampionGate reads ``champion.status``, ``champion.challenger_value`` and
``champion.limit`` with JsonGet. Every value the gate or the fail message reads is always
present and numeric (0.0 when there is nothing to compare), so the condition evaluates on
SageMaker whatever happened; ``status`` says whether the comparison applies:

* ``compared``: a champion forecast the holdout and both were scored;
* ``none``: the group has no Approved version (the gate behaves as before issue 15);
* ``unavailable``: there is a champion but no comparable forecast of it (other horizon,
  quantiles or frequency, a failed transform, forecasts that miss holdout points);
  ``reason`` says why, and the evaluation's warnings repeat it.

Container-safe: stdlib, numpy, pandas (via scoring).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

from evaluation import scoring
from processing import tables
from processing.kernel import contracts
from processing.kernel.metric_format import format_metric

SHOWN_FIELDS = ("challenger", "champion", "limit")
MAX_SHOWN_DECIMALS = 6
COMPARED_KEYS = ("wape", "wql", "mape", "mase", "rmse", "mae", "bias", "coverage")


def check_tolerance(tolerance: float) -> float:
    value = float(tolerance)
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"--param ChallengerTolerance={tolerance} must be a number >= 0 ({contracts.CHALLENGER_TOLERANCE_MEANING})"
        )
    return value


def read_champion(folder: "str | Path") -> dict:
    """champion.json written by the ChampionForecast step (a file or its folder)."""
    return tables.read_json(folder, contracts.CHAMPION_FILE, "--champion", "the ChampionForecast step writes it")


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _metrics(report: Mapping[str, Any]) -> Dict[str, Optional[float]]:
    fm = report.get("forecast_metrics") or {}
    return {k: _number((fm.get(k) or {}).get("value")) for k in COMPARED_KEYS}


def comparison(
    challenger_report: Mapping[str, Any],
    champion_report: Optional[Mapping[str, Any]],
    info: Mapping[str, Any],
    metric: str,
    tolerance: float,
    reason: str = "",
) -> Dict[str, Any]:
    """The champion section; ``champion_report`` is None when the champion could not be scored."""
    name, key = scoring.gate_metric(metric)
    tolerance = check_tolerance(tolerance)
    challenger = _metrics(challenger_report)
    version = info.get("model_package_version")
    section: Dict[str, Any] = {
        "status": "none" if info.get("status") == "none" else "unavailable",
        "metric": name,
        "key": key,
        "tolerance": tolerance,
        "challenger_value": challenger[key] if challenger[key] is not None else 0.0,
        "champion_value": 0.0,
        "limit": 0.0,
        "passed": True,
        # as a user reads them (0.0062 -> "0.62%"): the ChallengerLost message joins these, since a
        # pipeline expression (Join/JsonGet) cannot round
        "challenger_shown": "",
        "champion_shown": "",
        "limit_shown": "",
        "model_package_arn": info.get("model_package_arn") or "",
        "version": version if version is not None else 0,
        "reason": reason or info.get("reason") or "",
        "challenger_metrics": challenger,
        "champion_metrics": None,
        "champion_registered_metrics": info.get("registered_metrics") or {},
    }
    if champion_report is None:
        return _shown(section)
    champion = _metrics(champion_report)
    section["champion_metrics"] = champion
    if champion[key] is None or challenger[key] is None:
        side = "champion's" if champion[key] is None else "challenger's"
        section["reason"] = f"the {side} {name} is undefined on this holdout; nothing to compare"
        return _shown(section)
    limit = champion[key] * (1.0 + tolerance)
    section.update(
        status="compared", champion_value=champion[key], limit=limit, passed=bool(challenger[key] <= limit), reason=""
    )
    return _shown(section)


def _shown(section: Dict[str, Any]) -> Dict[str, Any]:
    """The *_shown fields: each value in the CLI's metric format (processing.kernel.metric_format).
    A losing challenger just above the limit gets more decimals, all three alike, so the
    ChallengerLost message never reads "WAPE 11.80% is above ... = 11.80%"."""
    values = {field: section["limit" if field == "limit" else f"{field}_value"] for field in SHOWN_FIELDS}
    decimals = 2
    while (
        not section["passed"]
        and decimals < MAX_SHOWN_DECIMALS
        and format_metric(section["key"], values["challenger"], decimals)
        == format_metric(section["key"], values["limit"], decimals)
    ):
        decimals += 1
    for field, value in values.items():
        section[f"{field}_shown"] = format_metric(section["key"], value, decimals)
    return section


def score_champion(
    folder: "str | Path",
    actuals,
    history,
    columns: scoring.Columns,
    quantiles: Sequence[str],
    frequency: str,
    metric: str,
    threshold: float,
):
    """(champion.json, the champion's scoring.Evaluation or None, reason when None)."""
    info = read_champion(folder)
    if info.get("status") != "available":
        return info, None, info.get("reason", "")
    forecasts_dir = Path(folder) / contracts.CHAMPION_FORECASTS_DIR
    try:
        forecasts = scoring.load_forecasts(forecasts_dir, columns, quantiles)
        evaluation = scoring.evaluate(forecasts, actuals, history, columns, quantiles, frequency, metric, threshold)
    except ValueError as error:
        return info, None, f"the champion's forecasts could not be scored on this holdout: {error}"
    return info, evaluation, ""


def attach(report: Dict[str, Any], section: Dict[str, Any]) -> None:
    """Put the section in the report and say in its warnings when a champion was not compared."""
    report["champion"] = scoring.json_safe(section)
    if section["status"] == "unavailable":
        report.setdefault("warnings", []).append(
            f"champion version {section['version']} was not compared: {section['reason']}"
        )
