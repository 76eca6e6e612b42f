"""Build the CreateAutoMLJobV2 request of the AutoML step from the pipeline parameters.

The same function builds the request the step sends, the request `--definition-only` writes
(`default_request()`), and the configuration the local engine trains with, so the three can
never drift apart. Autopilot's own limits are checked here, with errors naming the pipeline
parameter, before a job is paid for; then the request is checked against botocore's model.

Runs inside the SageMaker processing container: standard library + the project bundle.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Iterable, Mapping, Optional, Sequence

from processing.kernel import contracts
from processing.kernel.aws_validation import validate_request
from processing.kernel.contracts import default_filling  # one definition of the default rules: PrepareData's

__all__ = [
    "build_request",
    "default_request",
    "default_filling",
    "job_name_for_execution",
    "limit_problems",
    "filling_problems",
    "AutoMLRequestError",
]

# --- Autopilot time-series limits (docs: "Time-series forecasting resource limits") -------
MAX_HORIZON = 500
MAX_GROUPING_COLUMNS = 5
MAX_NUMERIC_FEATURES = 13
MAX_CATEGORICAL_FEATURES = 10
MAX_QUANTILES = 5
QUANTILE_PATTERN = contracts.QUANTILE_NAME
COUNTRY_PATTERN = re.compile(r"^[A-Z]{2}$")
JOB_NAME_MAX = 32
JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
JOB_NAME_PREFIX = "fc-"

TIME_SERIES_ALGORITHMS = ("cnn-qr", "deepar", "prophet", "npts", "arima", "ets")
TIME_SERIES_OBJECTIVES = ("AverageWeightedQuantileLoss", "MAPE", "MASE", "RMSE", "WAPE")
AGGREGATIONS = contracts.AGGREGATIONS

# Filling rules (API reference, TimeSeriesTransformations.Filling): frontfill only 'none', target
# only; middlefill, backfill and futurefill: zero, value, median, mean, min, max ('nan' is Amazon
# Forecast's, not Autopilot's); the target has no futurefill (its future is what is forecast).
FILL_METHODS = ("zero", "value", "median", "mean", "min", "max")
FILL_RULES_TARGET = {"frontfill": ("none",), "middlefill": FILL_METHODS, "backfill": FILL_METHODS}
FILL_RULES_FEATURE = {
    "frontfill": ("none",),
    "middlefill": FILL_METHODS,
    "backfill": FILL_METHODS,
    "futurefill": FILL_METHODS,
}
FILL_VALUE_PATTERN = re.compile(r"^[a-zA-Z0-9_\-]+$")  # FillingTransformationValue in the API model

CONTENT_TYPE = "text/csv;header=present"

# --- defaults of the pipeline parameters (fit the seed's dataset) -------------------------
DEFAULTS = {
    "item_id_column": "item_id",
    "timestamp_column": "timestamp",
    "target_column": "target_value",
    "grouping_columns": "",
    "frequency": "D",
    "horizon": 14,
    "quantiles": ",".join(contracts.DEFAULT_QUANTILES),
    "holiday_country": "US",
    "algorithms": ",".join(TIME_SERIES_ALGORITHMS),
    "objective_metric": "AverageWeightedQuantileLoss",
    "max_runtime_seconds": 14400,
    "aggregation": "sum",
}
DEFAULT_EXECUTION_ID = "definition-only"


class AutoMLRequestError(ValueError):
    """A pipeline parameter breaks an Autopilot limit; the message names it and how to fix it."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("the AutoML job request is invalid:\n  " + "\n  ".join(self.problems))


# --- job name -------------------------------------------------------------------------------
def job_name_for_execution(execution_id: str, prefix: str = JOB_NAME_PREFIX) -> str:
    """A deterministic AutoML job name for a pipeline execution, so a retried step re-attaches.

    SageMaker execution ids are short ('abc123def456'); anything longer or with other characters
    is sanitised, and clipped with a hash suffix so two long ids never share a name.
    """
    raw = str(execution_id or "").strip()
    if not raw:
        raise AutoMLRequestError(
            ["--execution-id is empty: pass the pipeline execution id (ExecutionVariables.PIPELINE_EXECUTION_ID)"]
        )
    if "/" in raw:  # a full execution ARN: keep its last part, the execution id
        raw = raw.rstrip("/").rsplit("/", 1)[-1]
    clean = re.sub(r"[^a-zA-Z0-9]+", "-", raw).strip("-")
    name = (prefix + clean).strip("-")
    if len(name) > JOB_NAME_MAX or not clean:
        digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:8]
        keep = JOB_NAME_MAX - len(prefix) - len(digest) - 1
        name = f"{prefix}{clean[:keep].strip('-')}-{digest}".replace("--", "-")
    if not JOB_NAME_PATTERN.match(name):  # pragma: no cover - guaranteed by construction
        raise AutoMLRequestError([f"cannot derive an AutoML job name from execution id {execution_id!r}"])
    return name


# --- parameter parsing ----------------------------------------------------------------------
def parse_quantiles(value: Any) -> list[str]:
    """'p10,p50,p90' (or a list) -> ['p10', 'p50', 'p90']."""
    if isinstance(value, str):
        return contracts.parse_list(value)
    return [str(v).strip() for v in (value or []) if str(v).strip()]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return contracts.parse_list(value)
    return [str(v).strip() for v in value if str(v).strip()]


def _as_int(value: Any, parameter: str, problems: list[str]) -> Optional[int]:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        problems.append(f"{parameter}={value!r} is not a whole number")
        return None
    return number


# --- filling and aggregation ----------------------------------------------------------------
def filling_problems(
    filling: Mapping[str, Any], target_column: str, known_columns: Optional[Iterable[str]] = None
) -> list[str]:
    """Every way `filling` breaks Autopilot's per-column fill rules."""
    problems = []
    known = set(known_columns) if known_columns is not None else None
    for column, rules in filling.items():
        where = f"filling[{column!r}]"
        if known is not None and column not in known:
            problems.append(f"{where}: no such column in the training data (columns: {', '.join(sorted(known))})")
        if not isinstance(rules, Mapping) or not rules:
            problems.append(
                f"{where}: expected a map of fill rules such as "
                '{"middlefill": "zero", "backfill": "value", "backfill_value": "0"}, '
                f"got {rules!r}"
            )
            continue
        allowed = FILL_RULES_TARGET if column == target_column else FILL_RULES_FEATURE
        for key, rule in rules.items():
            if key.endswith("_value"):
                base = key[: -len("_value")]
                if base not in allowed:
                    problems.append(f"{where}: {key} has no matching rule ({', '.join(allowed)})")
                elif rules.get(base) != "value":
                    problems.append(f"{where}: {key} is set but {base} is {rules.get(base)!r}, not 'value'")
                if not FILL_VALUE_PATTERN.match(str(rule)):
                    problems.append(
                        f"{where}: {key}={rule!r} must be letters, digits, '_' or '-' "
                        "(the API accepts no decimal point)"
                    )
                continue
            if key not in allowed:
                kind = "the target" if column == target_column else "a feature"
                problems.append(f"{where}: {key!r} is not a fill rule for {kind} (use {', '.join(allowed)})")
            elif rule not in allowed[key]:
                problems.append(f"{where}: {key}={rule!r} is not one of {', '.join(allowed[key])}")
            elif rule == "value" and f"{key}_value" not in rules:
                problems.append(f"{where}: {key} is 'value' but {key}_value is missing")
    return problems


# --- the request ----------------------------------------------------------------------------
def limit_problems(
    *,
    horizon: Any,
    grouping_columns: Sequence[str],
    quantiles: Sequence[str],
    holiday_country: str,
    algorithms: Sequence[str],
    objective_metric: str,
    numeric_features: Sequence[str],
    categorical_features: Sequence[str],
    aggregation: str,
    max_runtime_seconds: Any,
    job_name: str,
    timesteps: Optional[int] = None,
) -> list[str]:
    """Autopilot's limits, phrased in terms of the pipeline parameters."""
    problems: list[str] = []
    h = _as_int(horizon, "ForecastHorizon", problems)
    if h is not None:
        if h < 1 or h > MAX_HORIZON:
            problems.append(f"ForecastHorizon={h} is outside 1..{MAX_HORIZON} (Autopilot's maximum horizon)")
        elif timesteps is not None and h > timesteps // 4:
            problems.append(
                f"ForecastHorizon={h} is more than a quarter of the {timesteps} time steps in the "
                f"training data; use at most {max(timesteps // 4, 0)} or provide more history"
            )
    if len(grouping_columns) > MAX_GROUPING_COLUMNS:
        problems.append(
            f"GroupingColumns has {len(grouping_columns)} columns ({', '.join(grouping_columns)}); "
            f"Autopilot accepts at most {MAX_GROUPING_COLUMNS}"
        )
    if len(set(grouping_columns)) != len(grouping_columns):
        problems.append(f"GroupingColumns lists a column twice: {', '.join(grouping_columns)}")
    if not 1 <= len(quantiles) <= MAX_QUANTILES:
        problems.append(
            f"ForecastQuantiles has {len(quantiles)} quantiles; use 1 to {MAX_QUANTILES}, for example p10,p50,p90"
        )
    for q in quantiles:
        if not QUANTILE_PATTERN.match(q):
            problems.append(
                f"ForecastQuantiles: {q!r} is not a quantile name like p10, p50 or p90 "
                "(pattern ^p[1-9]\\d?$; write 0.1 as p10)"
            )
    if len(set(quantiles)) != len(quantiles):
        problems.append(f"ForecastQuantiles lists a quantile twice: {', '.join(quantiles)}")
    if holiday_country and not COUNTRY_PATTERN.match(holiday_country):
        problems.append(
            f"HolidayCountry={holiday_country!r} must be one ISO 3166 two-letter upper-case code "
            "such as US or DE (or empty for none)"
        )
    unknown = [a for a in algorithms if a not in TIME_SERIES_ALGORITHMS]
    if unknown:
        problems.append(
            f"AutoMLAlgorithms: {', '.join(unknown)} not time-series algorithm(s); "
            f"choose from {', '.join(TIME_SERIES_ALGORITHMS)}"
        )
    if objective_metric not in TIME_SERIES_OBJECTIVES:
        problems.append(
            f"ObjectiveMetric={objective_metric!r} is not a time-series objective; "
            f"choose from {', '.join(TIME_SERIES_OBJECTIVES)}"
        )
    if len(numeric_features) > MAX_NUMERIC_FEATURES:
        problems.append(
            f"the training data has {len(numeric_features)} numeric features "
            f"({', '.join(numeric_features)}); Autopilot accepts at most {MAX_NUMERIC_FEATURES}: "
            "drop some columns from the input"
        )
    if len(categorical_features) > MAX_CATEGORICAL_FEATURES:
        problems.append(
            f"the training data has {len(categorical_features)} categorical features "
            f"({', '.join(categorical_features)}); Autopilot accepts at most "
            f"{MAX_CATEGORICAL_FEATURES}: drop some columns from the input"
        )
    if aggregation not in AGGREGATIONS:
        problems.append(f"aggregation={aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
    runtime = _as_int(max_runtime_seconds, "MaxAutoMLRuntimeSeconds", problems)
    if runtime is not None and runtime < 1:
        problems.append(f"MaxAutoMLRuntimeSeconds={runtime} must be at least 1")
    if not JOB_NAME_PATTERN.match(job_name or ""):
        problems.append(
            f"AutoML job name {job_name!r} must be 1-{JOB_NAME_MAX} letters, digits and inner "
            "hyphens (pattern [a-zA-Z0-9](-*[a-zA-Z0-9]){0,31})"
        )
    return problems


def build_request(
    *,
    train_uri: str,
    output_uri: str,
    job_name: str,
    role_arn: str,
    item_id_column: str = DEFAULTS["item_id_column"],
    timestamp_column: str = DEFAULTS["timestamp_column"],
    target_column: str = DEFAULTS["target_column"],
    grouping_columns: Any = DEFAULTS["grouping_columns"],
    frequency: str = DEFAULTS["frequency"],
    horizon: Any = DEFAULTS["horizon"],
    quantiles: Any = DEFAULTS["quantiles"],
    holiday_country: Optional[str] = DEFAULTS["holiday_country"],
    algorithms: Any = DEFAULTS["algorithms"],
    objective_metric: str = DEFAULTS["objective_metric"],
    max_runtime_seconds: Any = DEFAULTS["max_runtime_seconds"],
    covariates: Iterable[str] = (),
    static_columns: Iterable[str] = (),
    filling: Optional[Mapping[str, Mapping[str, str]]] = None,
    aggregation: str = DEFAULTS["aggregation"],
    timesteps: Optional[int] = None,
    tags: Optional[Mapping[str, str]] = None,
    validate: bool = True,
    service_model: Any = None,
) -> dict:
    """The CreateAutoMLJobV2 request (TimeSeriesForecastingJobConfig) for these parameters.

    `covariates` are the numeric time-varying columns (related time series) and
    `static_columns` the per-item constants, both from the PrepareData profile. `filling`
    overrides the default rules (processing.kernel.contracts.default_filling) rule by rule. Raises AutoMLRequestError for
    broken Autopilot limits and RequestValidationError for anything botocore's model rejects.
    """
    grouping = _as_list(grouping_columns)
    quantile_names = parse_quantiles(quantiles)
    algorithm_names = [a.lower() for a in _as_list(algorithms)]
    covariate_names = list(covariates)
    static_names = list(static_columns)
    country = (holiday_country or "").strip()
    problems = limit_problems(
        horizon=horizon,
        grouping_columns=grouping,
        quantiles=quantile_names,
        holiday_country=country,
        algorithms=algorithm_names,
        objective_metric=objective_metric,
        numeric_features=covariate_names,
        categorical_features=static_names,
        aggregation=aggregation,
        max_runtime_seconds=max_runtime_seconds,
        job_name=job_name,
        timesteps=timesteps,
    )
    try:
        contracts.split_frequency(frequency)
    except ValueError as error:
        problems.append(str(error))

    rules = default_filling(target_column, covariate_names)
    for column, column_rules in (filling or {}).items():  # merged rule by rule, as PrepareData does
        if isinstance(column_rules, Mapping):
            rules[column] = {**rules.get(column, {}), **{str(k): str(v) for k, v in column_rules.items()}}
        else:
            rules[column] = column_rules
    known = [target_column] + covariate_names + static_names if (covariate_names or static_names) else None
    problems += filling_problems(rules, target_column, known_columns=known)
    if problems:
        raise AutoMLRequestError(problems)

    config: dict = {
        "ForecastFrequency": frequency,
        "ForecastHorizon": int(str(horizon).strip()),
        "ForecastQuantiles": quantile_names,
        "TimeSeriesConfig": {
            "TargetAttributeName": target_column,
            "TimestampAttributeName": timestamp_column,
            "ItemIdentifierAttributeName": item_id_column,
        },
        "Transformations": {
            "Filling": rules,
            "Aggregation": {target_column: aggregation},
        },
        "CompletionCriteria": {"MaxAutoMLJobRuntimeInSeconds": int(str(max_runtime_seconds).strip())},
    }
    if grouping:
        config["TimeSeriesConfig"]["GroupingAttributeNames"] = grouping
    if country:
        config["HolidayConfig"] = [{"CountryCode": country}]
    if algorithm_names:
        config["CandidateGenerationConfig"] = {"AlgorithmsConfig": [{"AutoMLAlgorithms": algorithm_names}]}

    request: dict = {
        "AutoMLJobName": job_name,
        "AutoMLJobInputDataConfig": [
            {
                "ChannelType": "training",
                "ContentType": CONTENT_TYPE,
                "CompressionType": "None",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": train_uri}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "AutoMLProblemTypeConfig": {"TimeSeriesForecastingJobConfig": config},
        "RoleArn": role_arn,
        "AutoMLJobObjective": {"MetricName": objective_metric},
    }
    if tags:
        request["Tags"] = [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    if validate:  # service_model: the client's own, so the step loads SageMaker's model once
        validate_request("sagemaker", "CreateAutoMLJobV2", request, service_model)
    return request


def default_request(settings: Any = None, execution_id: str = DEFAULT_EXECUTION_ID, **overrides: Any) -> dict:
    """The request the AutoML step sends with the pipeline's default parameters.

    Data locations follow the pipeline's layout, <prefix>/executions/<id>/<step>/<output>
    (pipelines.steps.execution_uri); the training channel is PrepareData's `train` output.
    """
    if settings is None:
        from processing.kernel.settings import resolve

        settings = resolve()
    values: dict = dict(DEFAULTS)
    values.update(
        train_uri=settings.s3_uri("executions", execution_id, contracts.STEP_PREPARE, contracts.PREP_TRAIN),
        output_uri=settings.s3_uri("executions", execution_id, contracts.STEP_AUTOML, "job"),
        job_name=job_name_for_execution(execution_id),
        role_arn=settings.effective_role_arn,
        tags=dict(settings.tags),
    )
    values.update(overrides)
    return build_request(**values)
