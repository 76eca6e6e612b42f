"""Settings, resolved once: CLI flags > FORECAST_* environment > config file > defaults.

Standard library only (step scripts resolve settings inside containers too). Everything
else in the project receives a `Settings` object instead of reading the environment.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Optional

CONFIG_FILE_NAME = "forecast.toml"
LOCAL_ACCOUNT = "000000000000"


HOME_MARKER = ".forecast-home"  # written when a local home is created; teardown --include-data needs it
# what a local home holds (an older home without the marker is recognised by holding nothing else)
HOME_ENTRIES = frozenset(
    {
        HOME_MARKER,
        "s3",
        "executions",
        "sagemaker",
        "endpoints",
        "cloudwatch",  # the loopback CloudWatch's metrics.jsonl (pipelines/local/aws_services.py)
        "registry.sqlite",
        "registry.sqlite-wal",
        "registry.sqlite-shm",
        "registry.sqlite-journal",
    }
)


def ensure_home(home: "Path | str") -> Path:
    """Create the local home (FORECAST_HOME) with its marker file, and return it.

    A folder that already exists is marked only when it is empty or holds nothing but what a
    home holds, so pointing FORECAST_HOME at a folder of your own never makes it removable.
    """
    home = Path(home)
    marker = home / HOME_MARKER
    if marker.is_file():
        return home
    home.mkdir(parents=True, exist_ok=True)
    if all(entry.name in HOME_ENTRIES for entry in home.iterdir()):
        marker.write_text(
            "This folder is a demand-forecasting local home (FORECAST_HOME); "
            "python -m deploy.teardown --include-data may remove it.\n"
        )
    return home


def is_home(home: "Path | str") -> bool:
    """True when the folder carries the marker ensure_home writes."""
    return (Path(home) / HOME_MARKER).is_file()


@dataclasses.dataclass(frozen=True)
class Settings:
    target: str = "local"  # "local" or "sagemaker"
    target_reason: str = "default"  # why this target was chosen (printed first by the CLI)
    region: Optional[str] = None
    role_arn: Optional[str] = None
    bucket: Optional[str] = None
    prefix: str = "demand-forecasting"
    training_pipeline_name: str = "DemandForecastTraining"
    batch_pipeline_name: str = "DemandForecastBatch"
    model_package_group: str = "demand-forecasting"
    endpoint_name: str = "demand-forecast"
    deploy_function_name: str = "demand-forecast-deploy"
    tags: Mapping[str, str] = dataclasses.field(default_factory=lambda: {"project": "demand-forecasting"})
    home: str = ".forecast"  # local state: object store, registry, executions
    endpoint_port: int = 8080  # local endpoint (SageMaker container contract)
    api_port: int = 8081  # local real-time forecast API
    studio_port: int = 8090  # local Studio (python -m pipelines.studio)
    endpoint_workers: Optional[int] = None  # local endpoint model worker processes; default: the cores
    holiday_country: str = "US"  # the API's holiday calendar (the training pipeline's HolidayCountry)
    holiday_columns: tuple = ("is_holiday",)  # covariates that are holiday flags (filled from the calendar)
    serving_data_uri: Optional[str] = None  # forecast API history; default: the latest PrepareData output
    # local processing steps: "image" (the processing image's environment, built once; the host's
    # Python with a warning when no Python of the image's version is found), "strict" (that
    # fallback is an error: CI), "host" (this machine's Python and packages, steps still isolated)
    step_env: str = "image"
    step_python: Optional[str] = None  # an interpreter to run local steps with, as is
    # local processing steps: "fork" (forked from a per-execution server that imported numpy,
    # pandas and boto3 once: pipelines/local/launcher.py) or "spawn" (a fresh interpreter each)
    step_launcher: str = "fork"
    cache_dir: Optional[str] = None  # the step environment's cache; default ~/.cache/sagemaker-demand-forecasting
    config_file: Optional[str] = None

    # --- derived -------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return self.target == "local"

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser().resolve()

    @property
    def effective_region(self) -> str:
        """Local runs need some region for ARNs; SageMaker runs must have one configured."""
        return self.region or "us-east-1"

    @property
    def effective_endpoint_workers(self) -> int:
        return self.endpoint_workers or os.cpu_count() or 1

    @property
    def effective_bucket(self) -> str:
        return self.bucket or ("forecast-local" if self.is_local else "")

    @property
    def effective_role_arn(self) -> str:
        return self.role_arn or f"arn:aws:iam::{LOCAL_ACCOUNT}:role/forecast-local"

    @property
    def cache_path(self) -> Path:
        """Where built things that outlive FORECAST_HOME go (the local step environment)."""
        if self.cache_dir:
            return Path(self.cache_dir).expanduser().resolve()
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base).expanduser().resolve() / "sagemaker-demand-forecasting"

    def s3_uri(self, *parts: str) -> str:
        """s3://<bucket>/<prefix>/<parts...>"""
        keys = [self.prefix.strip("/")] + [p.strip("/") for p in parts if p]
        return "s3://" + self.effective_bucket + "/" + "/".join(k for k in keys if k)

    def require_region(self) -> None:
        """The one "no region" error, naming every source the region is resolved from."""
        if not self.region:
            raise SettingsError(f"no AWS region: pass --region or set {sources('region')}")

    def require_sagemaker(self) -> None:
        """One-line errors saying how to set what the SageMaker target needs."""
        self.require_region()
        if not self.role_arn:
            raise SettingsError(
                "no SageMaker execution role: pass --role-arn or set FORECAST_ROLE_ARN "
                "(python -m pipelines.bootstrap creates one)"
            )
        if not self.bucket:
            raise SettingsError("no S3 bucket: pass --bucket or set FORECAST_BUCKET")

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says how to set it."""


def account_of(role_arn: Optional[str]) -> str:
    """The account id in the role ARN (arn:aws:iam::<account>:role/...): no STS call needed."""
    parts = (role_arn or "").split(":")
    if len(parts) < 6 or not parts[4].isdigit():
        raise SettingsError(
            f"FORECAST_ROLE_ARN {role_arn!r} has no account id; expected arn:aws:iam::<account>:role/<name>"
        )
    return parts[4]


# environment variable -> field (AWS_* spellings are the ones the AWS CLI and SDKs use)
ENVIRONMENT = {
    "FORECAST_TARGET": "target",
    "FORECAST_REGION": "region",
    "AWS_REGION": "region",
    "AWS_DEFAULT_REGION": "region",
    "FORECAST_ROLE_ARN": "role_arn",
    "FORECAST_BUCKET": "bucket",
    "FORECAST_PREFIX": "prefix",
    "FORECAST_TRAINING_PIPELINE_NAME": "training_pipeline_name",
    "FORECAST_BATCH_PIPELINE_NAME": "batch_pipeline_name",
    "FORECAST_MODEL_PACKAGE_GROUP": "model_package_group",
    "FORECAST_ENDPOINT_NAME": "endpoint_name",
    "FORECAST_DEPLOY_FUNCTION_NAME": "deploy_function_name",
    "FORECAST_TAGS": "tags",
    "FORECAST_HOME": "home",
    "FORECAST_ENDPOINT_PORT": "endpoint_port",
    "FORECAST_API_PORT": "api_port",
    "FORECAST_STUDIO_PORT": "studio_port",
    "FORECAST_SERVING_DATA": "serving_data_uri",
    "FORECAST_ENDPOINT_WORKERS": "endpoint_workers",
    "FORECAST_HOLIDAY_COUNTRY": "holiday_country",
    "FORECAST_HOLIDAY_COLUMNS": "holiday_columns",
    "FORECAST_STEP_ENV": "step_env",
    "FORECAST_STEP_PYTHON": "step_python",
    "FORECAST_STEP_LAUNCHER": "step_launcher",
    "FORECAST_CACHE_DIR": "cache_dir",
}
STEP_ENV_MODES = ("image", "strict", "host")
STEP_LAUNCHERS = ("fork", "spawn")
_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
# what a config file may set, each key once as it is typed there (several variables map to `region`)
CONFIG_KEYS = tuple(sorted(set(_FIELDS) - {"target_reason", "config_file"}))


def _coerce(name: str, value: Any, source: str) -> Any:
    if value is None:
        return None
    if name in ("endpoint_port", "api_port", "studio_port"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{source}: {name} must be an integer port, got {value!r}") from None
    if name == "endpoint_workers":
        try:
            workers = int(value)
        except (TypeError, ValueError):
            workers = 0
        if workers < 1:
            raise SettingsError(
                f"{source}: endpoint_workers must be a whole number of processes, at least 1; got {value!r}"
            )
        return workers
    if name == "holiday_columns":
        names = value if isinstance(value, (list, tuple)) else str(value).split(",")
        return tuple(str(n).strip() for n in names if str(n).strip())
    if name == "holiday_country":
        country = str(value).strip().upper()
        if country == "NONE":
            return ""
        if country and (len(country) != 2 or not country.isalpha()):
            raise SettingsError(
                f"{source}: holiday_country must be a two-letter ISO 3166 code such as US "
                f"(or empty for none), got {value!r}"
            )
        return country
    if name == "tags":
        if isinstance(value, Mapping):
            return {str(k): str(v) for k, v in value.items()}
        tags = {}
        for pair in str(value).split(","):
            if not pair.strip():
                continue
            key, sep, val = pair.partition("=")
            if not sep or not key.strip():
                raise SettingsError(f"{source}: tags must look like key=value,key=value; got {pair!r}")
            tags[key.strip()] = val.strip()
        return tags
    if name == "target" and value not in ("local", "sagemaker"):
        raise SettingsError(f"{source}: target must be 'local' or 'sagemaker', got {value!r}")
    if name == "step_env" and value not in STEP_ENV_MODES:
        raise SettingsError(f"{source}: step_env must be one of {', '.join(STEP_ENV_MODES)}, got {value!r}")
    if name == "step_launcher" and value not in STEP_LAUNCHERS:
        raise SettingsError(f"{source}: step_launcher must be one of {', '.join(STEP_LAUNCHERS)}, got {value!r}")
    return str(value)


def _read_config(path: Path) -> dict:
    import tomllib  # Python 3.11+; only the CLI host reads config files

    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path}: not valid TOML: {error}") from None
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise SettingsError(
            f"{path}: unknown setting(s) {', '.join(_with_suggestion(key) for key in unknown)}; "
            f"known: {', '.join(CONFIG_KEYS)}"
        )
    return {key: _coerce(key, value, str(path)) for key, value in data.items()}


def sources(name: str) -> str:
    """Where setting `name` comes from when its flag is not given, for the flag's --help, in one form:
    "FORECAST_REGION, AWS_REGION or AWS_DEFAULT_REGION, the first one set; region in forecast.toml"."""
    if name not in CONFIG_KEYS:
        raise KeyError(f"{name!r} is not a setting; settings: {', '.join(CONFIG_KEYS)}")
    variables = [variable for variable, field in ENVIRONMENT.items() if field == name]
    if len(variables) > 1:
        spelled = ", ".join(variables[:-1]) + " or " + variables[-1] + ", the first one set"
    else:
        spelled = variables[0]
    return f"{spelled}; {name} in {CONFIG_FILE_NAME}"


def _with_suggestion(key: str) -> str:
    """`key`, with the nearest config key when one is close (a typo), as "buckett (did you mean 'bucket'?)"."""
    from processing.kernel.hints import suggest

    return f"{key}{suggest(key, CONFIG_KEYS)}"


def resolve(
    flags: Optional[Mapping[str, Any]] = None,
    environ: Optional[Mapping[str, str]] = None,
    config_file: Optional[str] = None,
) -> Settings:
    """Resolve settings once. `flags` holds CLI values (None means not given)."""
    environ = os.environ if environ is None else environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}

    path_text = flags.get("config_file") or config_file or environ.get("FORECAST_CONFIG")
    path = Path(path_text) if path_text else Path(CONFIG_FILE_NAME)
    if path_text and not path.is_file():
        raise SettingsError(f"config file {path} does not exist (from --config or FORECAST_CONFIG)")
    values: dict = _read_config(path) if path.is_file() else {}
    if path.is_file():
        values["config_file"] = str(path)

    env_values: dict = {}
    for variable, name in ENVIRONMENT.items():
        if environ.get(variable) and name not in env_values:  # first spelling listed wins
            env_values[name] = _coerce(name, environ[variable], f"${variable}")
    values.update(env_values)
    values.update(
        {k: _coerce(k, v, f"--{k.replace('_', '-')}") for k, v in flags.items() if k in _FIELDS and k != "config_file"}
    )

    explicit_target = flags.get("target") or env_values.get("target") or values.get("target")
    if explicit_target:
        origin = (
            "--target"
            if flags.get("target")
            else "FORECAST_TARGET"
            if env_values.get("target")
            else str(values.get("config_file"))
        )
        values["target"], values["target_reason"] = explicit_target, f"set by {origin}"
    elif values.get("role_arn"):
        values["target"], values["target_reason"] = "sagemaker", "a SageMaker role is configured"
    else:
        values["target"], values["target_reason"] = "local", "no SageMaker role is configured"
    return Settings(**values)
