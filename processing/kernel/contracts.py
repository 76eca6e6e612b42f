"""The contracts shared by the pipeline definitions, the step scripts and the local runtime.

Standard library only: step scripts import this inside SageMaker containers (Python 3.12),
so nothing here may pull in the SDK, pandas or the local engine.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Sequence

# --- training pipeline step names (public: they appear in Studio and in property paths) ---
STEP_PREPARE = "PrepareData"
STEP_AUTOML = "AutoML"
STEP_BACKTEST = "BacktestForecast"
STEP_EVALUATE = "Evaluate"
STEP_GATE = "QualityGate"
STEP_REGISTER = "RegisterModel"
STEP_DEPLOY = "Deploy"
STEP_FAIL = "QualityTooLow"
STEP_CHAMPION = "ChampionForecast"  # issue 15: the Approved champion forecasts the same holdout
STEP_CHAMPION_GATE = "ChampionGate"
STEP_CHALLENGER_LOST = "ChallengerLost"

# --- batch pipeline step names ---
STEP_RESOLVE_MODEL = "ResolveModel"
STEP_CREATE_MODEL = "CreateModel"
STEP_PREPARE_BATCH = "PrepareBatchInput"
STEP_BATCH_FORECAST = "BatchForecast"
STEP_REPORT = "Report"
STEP_MONITOR = "MonitorForecasts"
FORECAST_HISTORY_PREFIX = "forecast-history"  # <prefix>/forecast-history/<execution>/forecasts.csv
ACCURACY_HISTORY_PREFIX = "accuracy-history"  # <prefix>/accuracy-history/<execution>/accuracy.json

# --- container layout ---
PROCESSING_ROOT = "/opt/ml/processing"
CODE_DIR = PROCESSING_ROOT + "/code"  # the uploaded project bundle (PYTHONPATH)
INPUT_DIR = PROCESSING_ROOT + "/input"
OUTPUT_DIR = PROCESSING_ROOT + "/output"

# --- PrepareData outputs: output name -> file written inside it ---
PREP_TRAIN = "train"  # train/train.csv: the AutoML training CSV (header present)
PREP_HOLDOUT = "holdout"  # holdout/holdout.csv: actuals of the last ForecastHorizon periods
PREP_BACKTEST = "backtest"  # backtest/part-*.csv: history + holdout rows with empty target
PREP_PROFILE = "profile"  # profile/profile.json: data profile
TRAIN_FILE = "train.csv"
HOLDOUT_FILE = "holdout.csv"
PROFILE_FILE = "profile.json"

# --- forecast output layout (Autopilot batch transform, `<input>.out`) ---
MEAN_COLUMN = "mean"
DEFAULT_QUANTILES = ("p10", "p50", "p90")
# Autopilot's quantile names: the ForecastQuantile pattern of the API reference (and botocore's
# model), p1..p99 with no leading zero and no decimals. Every layer checks names with this one.
QUANTILE_NAME = re.compile(r"^p[1-9]\d?$")
# Autopilot's aggregation methods (TimeSeriesTransformations.Aggregation) and their pandas names
AGGREGATIONS = ("sum", "avg", "first", "min", "max")


def default_filling(target: str, covariates: Sequence[str]) -> Dict[str, Dict[str, str]]:
    """Autopilot Transformations.Filling for the defaults PrepareData applies and the AutoML request
    states (here, not in data_prep, so the AutoML and RegisterModel steps never import pandas)."""
    filling = {target: {"middlefill": "zero", "backfill": "zero"}}
    for column in covariates:
        filling[column] = {"middlefill": "zero", "backfill": "zero", "futurefill": "zero"}
    return filling


PANDAS_AGGREGATION = {"sum": "sum", "avg": "mean", "first": "first", "min": "min", "max": "max"}


def quantile_fraction(name: object) -> Optional[float]:
    """'p10' -> 0.1; None for a name Autopilot refuses (p0, p100, p05, p99.9, 0.1)."""
    return int(name[1:]) / 100.0 if isinstance(name, str) and QUANTILE_NAME.match(name) else None


# --- batch transform requests (both transform steps; docs/batch.md) ---
# As AWS's Autopilot time-series batch transform sample (amazon-sagemaker-examples,
# autopilot/autopilot_time_series.ipynb): MaxPayloadInMB 0 streams each whole-series file
# (at most 100 MB an invocation), InvocationsTimeoutInSeconds 3600 (the API's maximum).
TRANSFORM_MAX_PAYLOAD_MB = 0
TRANSFORM_INVOCATIONS_TIMEOUT_SECONDS = 3600
# Input files are cut by bytes, whole series per file, to at most this size: under the
# 6 MB default payload even where streaming is not available, and many requests per job.
TRANSFORM_FILE_MAX_BYTES = 5 * 1024 * 1024

# --- AutoML step result (a property file read with JsonGet) ---
AUTOML_RESULT_NAME = "AutoMLResult"
AUTOML_RESULT_FILE = "automl_result.json"
# keys: job_name, job_arn, best_candidate_name, model_name, inference_containers (list of
# {Image, ModelDataUrl, Environment}), objective_metric {name, value}, reports {...}

# --- Evaluate step result (a property file read with JsonGet) ---
EVALUATION_RESULT_NAME = "EvaluationReport"
EVALUATION_FILE = "evaluation.json"
QUALITY_GATE_VALUE_PATH = "quality_gate.value"  # JsonGet path the QualityGate reads (always a number)
QUALITY_GATE_MESSAGE_PATH = "quality_gate.message"  # why the gate passed or not (QualityTooLow quotes it)
# the gate value of an undefined metric: a number (JSON null cannot be compared) no threshold admits
QUALITY_GATE_UNDEFINED_VALUE = 1.7976931348623157e308  # the largest double (sys.float_info.max)
QUALITY_METRICS = {  # QualityMetric parameter value -> key in forecast_metrics
    "WAPE": "wape",
    "MAPE": "mape",
    "MASE": "mase",
    "RMSE": "rmse",
    "MAE": "mae",
    "WQL": "wql",
}

# --- ChampionForecast step result (read by Evaluate) and the champion section of evaluation.json ---
CHAMPION_OUTPUT = "champion"
CHAMPION_FILE = "champion.json"  # {"status": "available"|"none"|"unavailable", ...}
CHAMPION_FORECASTS_DIR = "forecasts"  # the champion's <file>.out forecasts, beside champion.json
CHAMPION_STATUS_PATH = "champion.status"  # "compared" when the gate compares with the champion
CHAMPION_CHALLENGER_VALUE_PATH = "champion.challenger_value"
CHAMPION_VALUE_PATH = "champion.champion_value"
CHAMPION_LIMIT_PATH = "champion.limit"  # champion_value x (1 + ChallengerTolerance)
# what ChallengerTolerance means, in the CLI's and the Evaluate step's errors alike
CHALLENGER_TOLERANCE_MEANING = "0.05 lets a challenger be up to 5% worse than the champion"
CHAMPION_VERSION_PATH = "champion.version"
# the same three values as text in the CLI's metric format ("0.62%"), for the ChallengerLost message
CHAMPION_CHALLENGER_SHOWN_PATH = "champion.challenger_shown"
CHAMPION_SHOWN_PATH = "champion.champion_shown"
CHAMPION_LIMIT_SHOWN_PATH = "champion.limit_shown"

# --- RegisterModel step result ---
REGISTRATION_RESULT_NAME = "Registration"
REGISTRATION_FILE = "registration.json"
MODEL_PACKAGE_ARN_PATH = "model_package_arn"

# --- ResolveModel step result (batch) ---
RESOLVED_MODEL_NAME = "ResolvedModel"
RESOLVED_MODEL_FILE = "resolved_model.json"
# Evaluate measures it on the holdout, RegisterModel stores it, ResolveModel and the batch report read it
HORIZON_SPREAD_KEY = "horizon_spread_factor"

# --- CreateModel step result (batch) ---
BATCH_MODEL_NAME = "BatchModel"
BATCH_MODEL_FILE = "batch_model.json"  # {"model_name", "model_package_arn"}

# --- Autopilot ForecastFrequency -> pandas offset alias and seasonal period ---
_FREQ_UNITS = {
    # unit: (pandas alias, season length used by seasonal naive and MASE)
    "min": ("min", 60),
    "H": ("h", 24),
    "D": ("D", 7),
    "W": ("W-SUN", 52),
    "M": ("MS", 12),
    "Y": ("YS", 1),
}


def split_frequency(freq: str) -> tuple[int, str]:
    """'3D' -> (3, 'D'); raises ValueError naming the accepted forms."""
    freq = freq.strip()
    for unit in sorted(_FREQ_UNITS, key=len, reverse=True):
        if freq.endswith(unit):
            count = freq[: -len(unit)] or "1"
            if count.isdigit() and int(count) >= 1:
                return int(count), unit
    raise ValueError(
        f"ForecastFrequency {freq!r} is not one of Autopilot's forms: "
        "an optional count followed by min, H, D, W, M or Y (for example D, 1H, 15min, W)"
    )


def pandas_frequency(freq: str) -> str:
    """The pandas offset alias for an Autopilot ForecastFrequency ('D' -> 'D', 'W' -> 'W-SUN')."""
    count, unit = split_frequency(freq)
    alias = _FREQ_UNITS[unit][0]
    return alias if count == 1 else f"{count}{alias}"


def season_length(freq: str) -> int:
    """Seasonal period for seasonal-naive forecasts and MASE: 7 daily, 52 weekly, 12 monthly..."""
    count, unit = split_frequency(freq)
    base = _FREQ_UNITS[unit][1]
    return max(1, base // count) if base % count == 0 else 1


def parse_list(value: str | None) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']: pipeline parameters carry lists as comma-separated strings."""
    if not value:
        return []
    return [part.strip() for part in str(value).split(",") if part.strip()]


def add_column_arguments(parser, grouping: bool = True, frequency: bool = True) -> None:
    """The column flags the definitions pass to every step script (`columns` in training.py and
    batch.py), declared once with the pipeline parameters' defaults."""
    parser.add_argument("--item-id-column", default="item_id")
    parser.add_argument("--timestamp-column", default="timestamp")
    parser.add_argument("--target-column", default="target_value")
    if grouping:
        parser.add_argument("--grouping-columns", default="", help="comma-separated; empty for none")
    if frequency:
        parser.add_argument("--frequency", default="D", help="Autopilot ForecastFrequency (D, W, M, 1H, 15min, ...)")


# --- the training schema, carried in the model package's CustomerMetadataProperties ---
# Autopilot requires inference input with exactly the training data's columns (same names,
# same order). RegisterModel writes them, ResolveModel reads them, PrepareBatchInput writes
# exactly them. A metadata value is at most 256 characters of [\p{L}\p{Z}\p{N}_.:/=+\-@]:
# names are space-separated, other characters escaped as =XX (UTF-8 bytes), and a long list
# continues in training_columns_2, training_columns_3, ...
TRAINING_COLUMNS_KEY = "training_columns"
_METADATA_VALUE_LIMIT = 256
_PLAIN_PUNCTUATION = set("_.:/+-@")


def _escape_column(name: str) -> str:
    return "".join(
        ch if (ch.isalnum() or ch in _PLAIN_PUNCTUATION) else "".join(f"={byte:02X}" for byte in ch.encode("utf-8"))
        for ch in str(name)
    )


def _unescape_column(text: str) -> str:
    out, index = bytearray(), 0
    while index < len(text):
        if text[index] == "=" and _is_hex(text[index + 1 : index + 3]):
            out.append(int(text[index + 1 : index + 3], 16))
            index += 3
        else:
            out.extend(text[index].encode("utf-8"))
            index += 1
    return out.decode("utf-8")


def _is_hex(pair: str) -> bool:
    return len(pair) == 2 and all(ch in "0123456789ABCDEFabcdef" for ch in pair)


def encode_training_columns(columns) -> dict:
    """CustomerMetadataProperties entries holding the column list (order kept)."""
    entries, current = [], ""
    for name in columns:
        token = _escape_column(name)
        if len(token) > _METADATA_VALUE_LIMIT:
            raise ValueError(
                f"column name {name!r} is too long to register ({len(token)} > "
                f"{_METADATA_VALUE_LIMIT} characters once escaped)"
            )
        candidate = f"{current} {token}" if current else token
        if len(candidate) > _METADATA_VALUE_LIMIT:
            entries.append(current)
            candidate = token
        current = candidate
    if current:
        entries.append(current)
    return {
        (TRAINING_COLUMNS_KEY if i == 0 else f"{TRAINING_COLUMNS_KEY}_{i + 1}"): value
        for i, value in enumerate(entries)
    }


def decode_training_columns(metadata) -> list:
    """The column list from CustomerMetadataProperties ([] when the package has none)."""
    metadata = dict(metadata or {})
    values, index = [], 1
    while True:
        key = TRAINING_COLUMNS_KEY if index == 1 else f"{TRAINING_COLUMNS_KEY}_{index}"
        if key not in metadata:
            break
        values.append(str(metadata[key]))
        index += 1
    return [_unescape_column(token) for value in values for token in value.split()]
