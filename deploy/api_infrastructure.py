"""The forecast API on AWS: a Lambda function behind an IAM-authenticated HTTPS function URL.

`ensure_forecast_api(settings)` (called by `python -m pipelines.run --target sagemaker`, or
`python -m deploy.api_infrastructure`) creates or updates, idempotently:

  - the function's IAM role `<function>-role`, trusted by lambda.amazonaws.com, allowed to write
    its own logs, to list the project prefix and read its objects (where the PrepareData outputs
    the API serves from live), and to DescribeEndpoint / ListTags / InvokeEndpoint on the
    configured endpoint only (`api_role_policy`);
  - the function `<endpoint>-api`: handler `deploy.api.handler`, python3.12, the code zipped from
    this repository (deploy/api.py and the project modules it imports, found with `ast`), pandas
    from AWS's managed "AWS SDK for pandas" layer for the region (its ARN is read from the public
    SSM parameter `/aws/service/aws-sdk-pandas/<version>/py3.12/x86_64/layer-arn`, or given with
    `--pandas-layer-arn` / FORECAST_PANDAS_LAYER_ARN); the code is uploaded only when it changed;
  - reserved concurrency (throttling: requests beyond it get 429), default 10;
  - a function URL with AuthType AWS_IAM: callers sign requests with SigV4 and need
    `lambda:InvokeFunctionUrl` on the function; nothing is public.

Why a layer and not a container image: the handler needs only pandas (boto3 is in the runtime),
the managed layer is maintained by AWS for every region, and a zip deploys without Docker or ECR.
"""

from __future__ import annotations

import argparse
import ast
import io
import logging
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable, Optional, Sequence

from botocore.exceptions import ClientError

from deploy import clients
from deploy.infrastructure import _code, create_or_update_function, ensure_service_role, trust_policy
from processing.kernel import console
from processing.kernel.settings import Settings, SettingsError, account_of, resolve, sources

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("pipelines", "processing", "evaluation", "deploy", "forecasting")
ENTRY_MODULE = "deploy.api"
HANDLER = "deploy.api.handler"
RUNTIME = "python3.12"
TIMEOUT_SECONDS = 90  # the endpoint's own invocation limit is 60 s, plus reading the data
MEMORY_MB = 1024  # pandas and one prepared-data frame
DEFAULT_CONCURRENCY = 10
ROLE_POLICY_NAME = "forecast-api"
PANDAS_SDK_VERSION = "3.11.0"  # an AWS SDK for pandas release with a python3.12 layer in every region
PANDAS_LAYER_ENV = "FORECAST_PANDAS_LAYER_ARN"
# imported by deploy.api's CLI only (`invoke --url`), never on Lambda; it would pull in the engine
NOT_BUNDLED = ("deploy.endpoint", "pipelines.local")
Log = Callable[[str], None]


def function_name(settings: Settings) -> str:
    return f"{settings.endpoint_name}-api"[:64]


def function_role_name(settings: Settings) -> str:
    return f"{function_name(settings)}-role"[:64]


def pandas_layer_parameter(version: str = PANDAS_SDK_VERSION) -> str:
    """AWS publishes each release's layer ARN for the client's region under this SSM name."""
    return f"/aws/service/aws-sdk-pandas/{version}/py3.12/x86_64/layer-arn"


def pandas_layer_arn(settings: Settings, explicit: Optional[str] = None) -> str:
    """The region's AWS SDK for pandas layer: given, else from the public SSM parameter."""
    arn = explicit or os.environ.get(PANDAS_LAYER_ENV)
    if arn:
        if ":layer:" not in arn or not arn.startswith("arn:aws"):
            raise SettingsError(
                f"{PANDAS_LAYER_ENV} / --pandas-layer-arn {arn!r} is not a Lambda layer version ARN "
                "(arn:aws:lambda:<region>:<account>:layer:<name>:<version>)"
            )
        return arn
    name = pandas_layer_parameter()
    try:
        return clients.client("ssm", settings).get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as error:
        raise SettingsError(
            f"cannot read the AWS SDK for pandas layer ARN from SSM parameter {name} in "
            f"{settings.region}: {_code(error) or error}; pass --pandas-layer-arn or set "
            f"{PANDAS_LAYER_ENV}"
        ) from None


# --- code ---------------------------------------------------------------------------------------
def _module_file(name: str, root: Path) -> Optional[Path]:
    path = root.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _excluded(name: str) -> bool:
    """In NOT_BUNDLED, by whole module names: deploy.endpoint is out, deploy.endpoint_codec is not."""
    return any(name == module or name.startswith(module + ".") for module in NOT_BUNDLED)


def bundle_files(entry: str = ENTRY_MODULE, root: Path = PROJECT_ROOT) -> list[str]:
    """The entry module, every project module it imports (transitively) and their packages'
    __init__ files, as paths relative to the root. Read with `ast`, so a new import in the
    handler's code is bundled without anyone updating a list; NOT_BUNDLED stays out."""
    found: dict[str, Path] = {}
    pending = [entry]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = _module_file(name, root)
        if path is None:
            continue
        found[name] = path
        parts = name.split(".")
        pending += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .artifact import x
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            pending += [n for n in names if n.split(".")[0] in PROJECT_PACKAGES and not _excluded(n)]
    return sorted(str(path.relative_to(root)) for path in found.values())


def build_bundle(root: Path = PROJECT_ROOT) -> bytes:
    """The function's zip, deterministic (fixed timestamps): its hash moves only with the code."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in bundle_files(root=root):
            info = zipfile.ZipInfo(relative, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / relative).read_bytes())
    return buffer.getvalue()


# --- role ---------------------------------------------------------------------------------------
def api_role_policy(settings: Settings) -> dict:
    """Least privilege for deploy.api.handler on Lambda (docs/api.md)."""
    account, region = account_of(settings.role_arn), settings.region
    prefix = settings.prefix.strip("/")
    endpoint = f"arn:aws:sagemaker:{region}:{account}:endpoint/{settings.endpoint_name.lower()}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{function_name(settings)}:*",
            },
            {
                "Sid": "ListServingDataPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{settings.bucket}",
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/", f"{prefix}/*"]}},
            },
            {
                "Sid": "ReadServingData",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{settings.bucket}/{prefix}/*",
            },
            {
                "Sid": "ConfiguredEndpoint",
                "Effect": "Allow",
                "Action": ["sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:ListTags"],
                "Resource": endpoint,
            },
        ],
    }


def ensure_role(settings: Settings, log: Log = logger.info) -> str:
    return ensure_service_role(
        clients.client("iam", settings),
        function_role_name(settings),
        trust_policy(),
        ROLE_POLICY_NAME,
        api_role_policy(settings),
        "Forecast API Lambda: reads prepared data, invokes the endpoint",
        settings.tags,
        "the forecast API",
        log,
    )


# --- function, throttling, URL ------------------------------------------------------------------
def function_environment(settings: Settings) -> dict:
    variables = {
        "FORECAST_TARGET": "sagemaker",
        "FORECAST_BUCKET": settings.bucket or "",
        "FORECAST_PREFIX": settings.prefix,
        "FORECAST_ENDPOINT_NAME": settings.endpoint_name,
        "FORECAST_SERVING_DATA": settings.serving_data_uri or "",
    }
    return {key: value for key, value in variables.items() if value}


def ensure_function(
    settings: Settings,
    role_arn: str,
    layer_arn: str,
    log: Log = logger.info,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    lam = clients.client("lambda", settings)
    name = function_name(settings)
    bundle = build_bundle()
    wanted = {
        "Role": role_arn,
        "Handler": HANDLER,
        "Runtime": RUNTIME,
        "Timeout": TIMEOUT_SECONDS,
        "MemorySize": MEMORY_MB,
        "Layers": [layer_arn],
        "Environment": {"Variables": function_environment(settings)},
        "Description": f"Real-time demand forecasts from endpoint {settings.endpoint_name}",
    }
    return create_or_update_function(lam, name, bundle, wanted, dict(settings.tags), log, sleep)


def ensure_concurrency(settings: Settings, concurrency: int, log: Log = logger.info) -> None:
    """Reserved concurrency caps parallel executions: the throttle (429 beyond it)."""
    if concurrency < 1:
        raise SettingsError(f"--concurrency {concurrency}: give at least 1 (reserved concurrent executions)")
    lam = clients.client("lambda", settings)
    name = function_name(settings)
    if lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") != concurrency:
        log(f"reserving {concurrency} concurrent executions for {name}")
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=concurrency)


def ensure_url(settings: Settings, log: Log = logger.info) -> str:
    """A function URL that only accepts SigV4-signed calls (AuthType AWS_IAM)."""
    lam = clients.client("lambda", settings)
    name = function_name(settings)
    try:
        config = lam.get_function_url_config(FunctionName=name)
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise
        log(f"creating the IAM-authenticated function URL of {name}")
        return lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")["FunctionUrl"]
    if config.get("AuthType") != "AWS_IAM":
        log(f"setting the function URL of {name} to AuthType AWS_IAM (was {config.get('AuthType')})")
        config = lam.update_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    return config["FunctionUrl"]


def ensure_forecast_api(
    settings: Settings,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    layer_arn: Optional[str] = None,
    log: Log = logger.info,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Create or update the API's role, function, throttle and URL; returns their identifiers."""
    if settings.is_local:
        raise SettingsError(
            "the forecast API Lambda exists on the SageMaker target only; locally run python -m deploy.api serve"
        )
    settings.require_sagemaker()
    layer = pandas_layer_arn(settings, layer_arn)
    role_arn = ensure_role(settings, log)
    function_arn = ensure_function(settings, role_arn, layer, log, sleep)
    ensure_concurrency(settings, concurrency, log)
    url = ensure_url(settings, log)
    log(f"forecast API: {url} (IAM auth; POST a JSON body; {concurrency} concurrent executions)")
    return {"function_arn": function_arn, "role_arn": role_arn, "url": url, "layer_arn": layer}


def remove_forecast_api(settings: Settings, log: Log = logger.info) -> list[str]:
    """Delete the URL, the function and its role; what existed is returned (teardown lists these)."""
    lam, iam = clients.client("lambda", settings), clients.client("iam", settings)
    name, role = function_name(settings), function_role_name(settings)
    removed = []
    for what, call in (
        ("function URL", lambda: lam.delete_function_url_config(FunctionName=name)),
        ("Lambda function", lambda: lam.delete_function(FunctionName=name)),
        ("IAM role policy", lambda: iam.delete_role_policy(RoleName=role, PolicyName=ROLE_POLICY_NAME)),
        ("IAM role", lambda: iam.delete_role(RoleName=role)),
    ):
        try:
            call()
        except ClientError as error:
            if _code(error) not in ("ResourceNotFoundException", "NoSuchEntity"):
                raise
            continue
        removed.append(what)
        log(f"deleted {what} of the forecast API ({name})")
    return removed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.api_infrastructure",
        description="Create or update (or --remove) the forecast API on AWS Lambda.",
    )
    parser.add_argument("--region", default=None, help=f"AWS region (or {sources('region')})")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"reserved concurrent executions, the throttle (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--pandas-layer-arn",
        default=None,
        help=f"the AWS SDK for pandas layer (default: from SSM; or {PANDAS_LAYER_ENV})",
    )
    parser.add_argument("--remove", action="store_true", help="delete the URL, function and role")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    console.setup()
    args = _parser().parse_args(argv)
    try:
        settings = resolve({"region": args.region, "target": "sagemaker"})
        if args.remove:
            remove_forecast_api(settings)
        else:
            ensure_forecast_api(settings, concurrency=args.concurrency, layer_arn=args.pandas_layer_arn)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
