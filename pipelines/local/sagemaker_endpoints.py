"""Local SageMaker endpoints: endpoint configs and endpoints backed by a real HTTP server process.

`EndpointsMixin` gives LocalSageMakerClient the boto3 methods the deploy handler, the API
and teardown call (create/describe/delete/list endpoint configs and endpoints,
update_endpoint, add_tags/list_tags/delete_tags, get_waiter). An endpoint is a
`deploy.endpoint` server process on 127.0.0.1:settings.endpoint_port (a free port when
that one is taken; the state file `<home>/endpoints/<name>.json` says which);
update_endpoint swaps the model inside the running server, so nothing is dropped.

Records live in `<home>/sagemaker/endpoint-configs/<name>.json` and
`<home>/sagemaker/endpoints/<name>.json`; tags of any ARN in `<home>/sagemaker/tags.json`.

`LocalSageMakerRuntimeClient.invoke_endpoint` posts to that server over loopback HTTP and
raises ModelError like SageMaker when the container answers an error.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import json
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from botocore.response import StreamingBody

# SageMaker's real-time limits: the request body and the time the container may take (one home: the codec)
from deploy.endpoint_codec import INVOCATION_TIMEOUT_SECONDS, REALTIME_PAYLOAD_LIMIT_BYTES
from pipelines.local.errors import LocalClientError
from processing.atomic import write_text_atomic
from processing.kernel.aws_validation import request_problems
from processing.kernel.settings import Settings

DEFAULT_VARIANT = "AllTraffic"
TIMEOUT_MESSAGE = (
    "Your invocation timed out while waiting for a response from container primary. Review the "
    "latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again."
)
PACKAGE_TAG = "model-package-arn"  # the tag the deploy handler puts on models, configs and endpoints


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _to_datetime(value: Any) -> Any:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def _write_json(path: Path, document: Any) -> None:
    write_text_atomic(
        path, json.dumps(document, indent=2, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v))
    )


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _validate(operation: str, params: dict) -> None:
    problems = request_problems("sagemaker", operation, params)
    if problems:
        raise LocalClientError("ValidationException", "; ".join(problems), operation)


def _page(items: list, params: dict, key: str, sort_keys: dict) -> dict:
    """Filter/sort/paginate a list of summaries the way SageMaker's List* calls do."""
    name_key = next(iter(sort_keys.values()))
    if params.get("NameContains"):
        items = [i for i in items if params["NameContains"].lower() in i[name_key].lower()]
    for field, op in (
        ("CreationTimeBefore", "lt"),
        ("CreationTimeAfter", "gt"),
        ("LastModifiedTimeBefore", "lt"),
        ("LastModifiedTimeAfter", "gt"),
    ):
        if params.get(field) is not None:
            bound, attribute = _to_datetime(params[field]), field.replace("Before", "").replace("After", "")
            if isinstance(bound, dt.datetime) and bound.tzinfo is None:
                bound = bound.replace(tzinfo=dt.timezone.utc)
            items = [
                i for i in items if attribute in i and (i[attribute] < bound if op == "lt" else i[attribute] > bound)
            ]
    sort_by = sort_keys.get(params.get("SortBy", "CreationTime"), "CreationTime")
    items.sort(key=lambda i: i[sort_by], reverse=params.get("SortOrder", "Descending") == "Descending")
    start = int(params.get("NextToken") or 0)
    size = int(params.get("MaxResults") or 100)
    response = {key: items[start : start + size]}
    if start + size < len(items):
        response["NextToken"] = str(start + size)
    return response


# --------------------------------------------------------------------------------------------
# the control plane
# --------------------------------------------------------------------------------------------
class EndpointsMixin:
    """boto3-shaped endpoint operations over local records and `deploy.endpoint` processes."""

    settings: Settings

    # -- storage --
    @property
    def _sm_dir(self) -> Path:
        return self.settings.home_path / "sagemaker"

    def _config_path(self, name: str) -> Path:
        return self._sm_dir / "endpoint-configs" / f"{name}.json"

    def _endpoint_path(self, name: str) -> Path:
        return self._sm_dir / "endpoints" / f"{name}.json"

    @contextmanager
    def _locked(self, what: str, wait: bool = True) -> Iterator[None]:
        """A cross-process lock (flock) so the CLI, the runtime and tests can't interleave updates.

        wait=False raises BlockingIOError at once when another caller holds it. The kernel drops a
        dead holder's lock, so a held lock means a live operation."""
        path = self._sm_dir / "locks" / f"{what}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- endpoint configs --
    def create_endpoint_config(self, **params: Any) -> dict:
        _validate("CreateEndpointConfig", params)
        name = params["EndpointConfigName"]
        arn = self.arn("endpoint-config", name)
        with self._locked("endpoint-configs"):
            if self._config_path(name).exists():
                raise LocalClientError(
                    "ValidationException",
                    f'Cannot create already existing endpoint configuration "{arn}".',
                    "CreateEndpointConfig",
                )
            for variant in params["ProductionVariants"]:
                self._describe_model_or_error(variant.get("ModelName"), "CreateEndpointConfig")
            record = {key: value for key, value in params.items() if key != "Tags"}
            record |= {"EndpointConfigArn": arn, "CreationTime": _now().isoformat()}
            _write_json(self._config_path(name), record)
        if params.get("Tags"):
            self.add_tags(ResourceArn=arn, Tags=params["Tags"])
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict:  # noqa: N803 - boto3 names
        record = _read_json(self._config_path(EndpointConfigName))
        if record is None:
            raise LocalClientError(
                "ValidationException",
                f'Could not find endpoint configuration "{self.arn("endpoint-config", EndpointConfigName)}".',
                "DescribeEndpointConfig",
            )
        return record | {"CreationTime": _to_datetime(record["CreationTime"])}

    def delete_endpoint_config(self, EndpointConfigName: str) -> dict:  # noqa: N803
        self.describe_endpoint_config(EndpointConfigName=EndpointConfigName)
        self._config_path(EndpointConfigName).unlink(missing_ok=True)
        self._forget_tags(self.arn("endpoint-config", EndpointConfigName))
        return {}

    def list_endpoint_configs(self, **params: Any) -> dict:
        _validate("ListEndpointConfigs", params)
        folder = self._sm_dir / "endpoint-configs"
        items = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            record = _read_json(path)
            if record:
                items.append(
                    {
                        "EndpointConfigName": record["EndpointConfigName"],
                        "EndpointConfigArn": record["EndpointConfigArn"],
                        "CreationTime": _to_datetime(record["CreationTime"]),
                    }
                )
        return _page(items, params, "EndpointConfigs", {"Name": "EndpointConfigName", "CreationTime": "CreationTime"})

    # -- endpoints --
    def create_endpoint(self, **params: Any) -> dict:
        """Start the server for the config's model and wait for /ping (status InService or Failed)."""
        _validate("CreateEndpoint", params)
        name, config_name = params["EndpointName"], params["EndpointConfigName"]
        arn = self.arn("endpoint", name)
        with self._locked(f"endpoint-{name}"):
            if self._endpoint_path(name).exists():
                raise LocalClientError(
                    "ValidationException", f'Cannot create already existing endpoint "{arn}".', "CreateEndpoint"
                )
            config = self._config_or_error(config_name, "CreateEndpoint")
            now = _now().isoformat()
            record = {
                "EndpointName": name,
                "EndpointArn": arn,
                "EndpointConfigName": config_name,
                "EndpointStatus": "Creating",
                "CreationTime": now,
                "LastModifiedTime": now,
            }
            _write_json(self._endpoint_path(name), record)
            if params.get("Tags"):
                self.add_tags(ResourceArn=arn, Tags=params["Tags"])
            try:
                model_dir, package_arn, image = self._serving_model(config, "CreateEndpoint")
                state = self._serve(name, model_dir, package_arn)
                record |= {"EndpointStatus": "InService", "DeployedImage": image, "LocalUrl": state["url"]}
            except Exception as error:  # noqa: BLE001 - like SageMaker: the failure shows in describe
                record |= {"EndpointStatus": "Failed", "FailureReason": f"{type(error).__name__}: {error}"[:1024]}
            record["LastModifiedTime"] = _now().isoformat()
            _write_json(self._endpoint_path(name), record)
        return {"EndpointArn": arn}

    def update_endpoint(self, **params: Any) -> dict:
        """Swap the running server to the new config's model (or start it again when its process died,
        even with the same config); on failure keep serving the old one.

        Like SageMaker, an update while another create/update runs is refused at once ("Cannot update
        in-progress endpoint"), not queued: concurrent deployers must decide again on what won.
        """
        _validate("UpdateEndpoint", params)
        name, config_name = params["EndpointName"], params["EndpointConfigName"]
        lock = ExitStack()
        try:
            lock.enter_context(self._locked(f"endpoint-{name}", wait=False))
        except BlockingIOError:
            record = self._endpoint_record_or_error(name, "UpdateEndpoint")
            raise LocalClientError(
                "ValidationException",
                f'Cannot update in-progress endpoint "{record["EndpointArn"]}".',
                "UpdateEndpoint",
            ) from None
        with lock:  # no other operation runs now, so a Creating/Updating record is a dead process's
            record = self._endpoint_record_or_error(name, "UpdateEndpoint")
            if record["EndpointStatus"] == "Deleting":
                raise LocalClientError(
                    "ValidationException",
                    f'Cannot update in-progress endpoint "{record["EndpointArn"]}".',
                    "UpdateEndpoint",
                )
            config = self._config_or_error(config_name, "UpdateEndpoint")
            previous = dict(record)
            if previous["EndpointStatus"] in ("Creating", "Updating"):  # left by a process that died
                previous["EndpointStatus"] = "InService"
            previous.pop("PendingDeploymentSummary", None)
            now = _now().isoformat()
            record |= {
                "EndpointStatus": "Updating",
                "LastModifiedTime": now,  # SageMaker shows where it goes
                "PendingDeploymentSummary": {"EndpointConfigName": config_name, "StartTime": now},
            }
            _write_json(self._endpoint_path(name), record)
            try:
                model_dir, package_arn, image = self._serving_model(config, "UpdateEndpoint")
                state = self._serve(name, model_dir, package_arn)
                record = previous | {
                    "EndpointConfigName": config_name,
                    "EndpointStatus": "InService",
                    "DeployedImage": image,
                    "LocalUrl": state["url"],
                }
                record.pop("FailureReason", None)
            except Exception as error:  # noqa: BLE001 - SageMaker rolls back and reports why
                record = previous | {
                    "FailureReason": f"Update failed, kept the previous configuration: {type(error).__name__}: {error}"[
                        :1024
                    ]
                }
            record["LastModifiedTime"] = _now().isoformat()
            _write_json(self._endpoint_path(name), record)
        return {"EndpointArn": record["EndpointArn"]}

    def describe_endpoint(self, EndpointName: str) -> dict:  # noqa: N803
        record = self._endpoint_record_or_error(EndpointName, "DescribeEndpoint")
        if record["EndpointStatus"] in ("Creating", "Updating"):
            record = self._settled_record(EndpointName, record)
        status = record["EndpointStatus"]
        if status == "InService" and not self._endpoint_module().running_state(self.settings.home_path, EndpointName):
            # SageMaker: "OutOfService: Endpoint is not available to take incoming requests"; here the
            # server process is gone (stopped by hand, killed, crashed). Approving again restarts it.
            status = "OutOfService"
        response = {key: record[key] for key in ("EndpointName", "EndpointArn", "EndpointConfigName")}
        config = _read_json(self._config_path(record["EndpointConfigName"])) or {}
        response["ProductionVariants"] = (
            [
                {
                    "VariantName": variant.get("VariantName", DEFAULT_VARIANT),
                    "DeployedImages": [
                        {
                            "SpecifiedImage": record.get("DeployedImage") or "local",
                            "ResolvedImage": record.get("DeployedImage") or "local",
                            "ResolutionTime": _to_datetime(record["LastModifiedTime"]),
                        }
                    ],
                    "CurrentWeight": float(variant.get("InitialVariantWeight", 1.0)),
                    "DesiredWeight": float(variant.get("InitialVariantWeight", 1.0)),
                    "CurrentInstanceCount": int(variant.get("InitialInstanceCount", 1)),
                    "DesiredInstanceCount": int(variant.get("InitialInstanceCount", 1)),
                }
                for variant in config.get("ProductionVariants", [])
            ]
            if status in ("InService", "Updating", "OutOfService")
            else []
        )
        response |= {
            "EndpointStatus": status,
            "CreationTime": _to_datetime(record["CreationTime"]),
            "LastModifiedTime": _to_datetime(record["LastModifiedTime"]),
        }
        if record.get("FailureReason"):
            response["FailureReason"] = record["FailureReason"]
        if status == "Updating" and record.get("PendingDeploymentSummary"):
            pending = record["PendingDeploymentSummary"]
            response["PendingDeploymentSummary"] = {
                "EndpointConfigName": pending["EndpointConfigName"],
                "StartTime": _to_datetime(pending["StartTime"]),
            }
        return response

    def delete_endpoint(self, EndpointName: str) -> dict:  # noqa: N803
        with self._locked(f"endpoint-{EndpointName}"):
            record = self._endpoint_record_or_error(EndpointName, "DeleteEndpoint")
            self._endpoint_module().stop(self.settings.home_path, EndpointName)
            self._endpoint_path(EndpointName).unlink(missing_ok=True)
            self._forget_tags(record["EndpointArn"])
        return {}

    def list_endpoints(self, **params: Any) -> dict:
        _validate("ListEndpoints", params)
        folder = self._sm_dir / "endpoints"
        items = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            record = _read_json(path)
            if not record:
                continue
            summary = self.describe_endpoint(EndpointName=record["EndpointName"])
            items.append(
                {
                    key: summary[key]
                    for key in ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
                }
            )
        if params.get("StatusEquals"):
            items = [i for i in items if i["EndpointStatus"] == params["StatusEquals"]]
        return _page(items, params, "Endpoints", {"Name": "EndpointName", "CreationTime": "CreationTime"})

    # -- tags (any ARN) --
    def _tags_path(self) -> Path:
        return self._sm_dir / "tags.json"

    def add_tags(self, ResourceArn: str, Tags: list) -> dict:  # noqa: N803
        _validate("AddTags", {"ResourceArn": ResourceArn, "Tags": Tags})
        with self._locked("tags"):
            store = _read_json(self._tags_path()) or {}
            current = store.get(ResourceArn, {})
            current.update({tag["Key"]: tag["Value"] for tag in Tags})
            store[ResourceArn] = current
            _write_json(self._tags_path(), store)
        return {"Tags": Tags}

    def list_tags(self, ResourceArn: str, **params: Any) -> dict:  # noqa: N803
        _validate("ListTags", {"ResourceArn": ResourceArn, **params})
        tags = (_read_json(self._tags_path()) or {}).get(ResourceArn, {})
        return {"Tags": [{"Key": key, "Value": value} for key, value in tags.items()]}

    def delete_tags(self, ResourceArn: str, TagKeys: list) -> dict:  # noqa: N803
        _validate("DeleteTags", {"ResourceArn": ResourceArn, "TagKeys": TagKeys})
        with self._locked("tags"):
            store = _read_json(self._tags_path()) or {}
            for key in TagKeys:
                store.get(ResourceArn, {}).pop(key, None)
            _write_json(self._tags_path(), store)
        return {}

    def _forget_tags(self, arn: str) -> None:
        with self._locked("tags"):
            store = _read_json(self._tags_path()) or {}
            if store.pop(arn, None) is not None:
                _write_json(self._tags_path(), store)

    # -- waiters (the two the deploy path and teardown use) --
    def get_waiter(self, name: str) -> "_EndpointWaiter":
        if name not in _EndpointWaiter.ACCEPTORS:
            raise ValueError(f"the local client has no waiter {name!r}; it has {sorted(_EndpointWaiter.ACCEPTORS)}")
        return _EndpointWaiter(self, name)

    # -- internals --
    def _serve(self, name: str, model_dir: Path, package_arn: Optional[str]) -> dict:
        """Swap the model of a running server (no downtime), or start one; returns its state."""
        module, home = self._endpoint_module(), self.settings.home_path
        if module.running_state(home, name):
            module.reload(home, name, model_dir, package_arn)
            return module.read_state(home, name)
        return module.start(
            name,
            model_dir,
            home=home,
            port=self.settings.endpoint_port,
            model_package_arn=package_arn,
            workers=self.settings.endpoint_workers,
        )

    def _settled_record(self, name: str, record: dict) -> dict:
        """A Creating/Updating record whose operation no longer holds the endpoint's lock belongs to a
        process that died mid-deploy: an update left the old server running, a create left nothing."""
        lock = ExitStack()
        try:
            lock.enter_context(self._locked(f"endpoint-{name}", wait=False))
        except BlockingIOError:
            return record  # the operation is running
        with lock:
            record = self._endpoint_record_or_error(name, "DescribeEndpoint")  # it may have just finished
        if record["EndpointStatus"] == "Updating":
            return record | {"EndpointStatus": "InService"}
        if record["EndpointStatus"] == "Creating":
            return record | {
                "EndpointStatus": "Failed",
                "FailureReason": "the local process creating the endpoint died before it was InService",
            }
        return record

    @staticmethod
    def _endpoint_module():
        from deploy import endpoint  # the server module (stdlib + pandas); the engine loads in the server

        return endpoint

    def _endpoint_record_or_error(self, name: str, operation: str) -> dict:
        record = _read_json(self._endpoint_path(name))
        if record is None:
            raise LocalClientError(
                "ValidationException", f'Could not find endpoint "{self.arn("endpoint", name)}".', operation
            )
        return record

    def _config_or_error(self, name: str, operation: str) -> dict:
        record = _read_json(self._config_path(name))
        if record is None:
            raise LocalClientError(
                "ValidationException",
                f'Could not find endpoint configuration "{self.arn("endpoint-config", name)}".',
                operation,
            )
        return record

    def _describe_model_or_error(self, model_name: Optional[str], operation: str) -> dict:
        try:
            return self.describe_model(ModelName=model_name)
        except LocalClientError as error:
            raise LocalClientError(
                "ValidationException", f'Could not find model "{self.arn("model", str(model_name))}".', operation
            ) from error

    def _serving_model(self, config: dict, operation: str) -> tuple[Path, Optional[str], Optional[str]]:
        """(local model directory or archive, model package ARN, image) for the config's first variant."""
        variant = config["ProductionVariants"][0]
        model = self._describe_model_or_error(variant["ModelName"], operation)
        containers = model.get("Containers") or ([model["PrimaryContainer"]] if model.get("PrimaryContainer") else [])
        package_arn = next((c["ModelPackageName"] for c in containers if c.get("ModelPackageName")), None)
        if containers and not any(c.get("ModelDataUrl") for c in containers) and package_arn:
            package = self.describe_model_package(ModelPackageName=package_arn)
            containers = package.get("InferenceSpecification", {}).get("Containers", [])
        with_data = [c for c in containers if c.get("ModelDataUrl")]
        if not with_data:
            raise LocalClientError(
                "ValidationException",
                f"model {variant['ModelName']!r} has no container with a ModelDataUrl to serve",
                operation,
            )
        container = with_data[0]
        if package_arn is None:  # a model built from the package's containers: the deploy handler tags it
            package_arn = self._tagged_package_arn(
                model.get("ModelArn") or self.arn("model", variant["ModelName"]), config.get("EndpointConfigArn")
            )
        return local_model_path(container["ModelDataUrl"], self.settings), package_arn, container.get("Image")

    def _tagged_package_arn(self, *arns: Optional[str]) -> Optional[str]:
        for arn in arns:
            if not arn:
                continue
            for tag in self.list_tags(ResourceArn=arn).get("Tags", []):
                if tag["Key"] == PACKAGE_TAG:
                    return tag["Value"]
        return None


def prestart_server(settings: Settings) -> None:
    """Start the endpoint's server process ahead of a deploy (deploy.endpoint_server.prestart): its
    interpreter and the engine's imports then overlap the steps before it instead of CreateEndpoint's
    wait for /ping. No endpoint exists until CreateEndpoint, as on SageMaker; the process only
    becomes the endpoint's server when `create_endpoint` starts one (an endpoint already running is
    updated in place, so none is started ahead then)."""
    from deploy import endpoint_server

    if EndpointsMixin._endpoint_module().running_state(settings.home_path, settings.endpoint_name):
        return
    endpoint_server.prestart(settings.home_path, settings.endpoint_workers)


def local_model_path(uri: str, settings: Settings) -> Path:
    """The local store path of a ModelDataUrl (s3://bucket/key -> <home>/s3/bucket/key)."""
    if not uri.startswith("s3://"):
        return Path(uri)
    try:
        from pipelines.local.store import local_path
    except ImportError:  # the store module not there yet: the contract's mapping
        bucket, _, key = uri[len("s3://") :].partition("/")
        return settings.home_path / "s3" / bucket / key
    return Path(local_path(uri, settings))


class _EndpointWaiter:
    """boto3-like waiter: wait(EndpointName=..., WaiterConfig={"Delay", "MaxAttempts"})."""

    ACCEPTORS = {"endpoint_in_service": ("InService", ("Failed",)), "endpoint_deleted": (None, ("Failed",))}

    def __init__(self, client: EndpointsMixin, name: str):
        self.client, self.name = client, name

    def wait(self, EndpointName: str, WaiterConfig: Optional[dict] = None) -> None:  # noqa: N803
        from botocore.exceptions import WaiterError

        success, failures = self.ACCEPTORS[self.name]
        config = WaiterConfig or {}
        delay, attempts = float(config.get("Delay", 1)), int(config.get("MaxAttempts", 60))
        for _ in range(attempts):
            try:
                status = self.client.describe_endpoint(EndpointName=EndpointName)["EndpointStatus"]
            except LocalClientError:
                if success is None:
                    return
                raise
            if status == success:
                return
            if status in failures:
                raise WaiterError(self.name, f"endpoint {EndpointName} is {status}", {"EndpointStatus": status})
            time.sleep(delay)
        raise WaiterError(self.name, "Max attempts exceeded", {})


# --------------------------------------------------------------------------------------------
# the data plane
# --------------------------------------------------------------------------------------------
class LocalSageMakerRuntimeClient:
    """invoke_endpoint over loopback HTTP to the endpoint's server process."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def invoke_endpoint(
        self,
        EndpointName: str,
        Body: Any,
        ContentType: str = "text/csv",  # noqa: N803
        Accept: Optional[str] = None,
        **params: Any,
    ) -> dict:
        operation = "InvokeEndpoint"
        problems = request_problems(
            "sagemaker-runtime",
            operation,
            {
                "EndpointName": EndpointName,
                "Body": Body,
                "ContentType": ContentType,
                **({"Accept": Accept} if Accept else {}),
                **params,
            },
        )
        if problems:
            raise LocalClientError("ValidationError", "; ".join(problems), operation)
        from deploy import endpoint

        state = endpoint.running_state(self.settings.home_path, EndpointName)
        if state is None:
            arn = f"arn:aws:sagemaker:{self.settings.effective_region}:000000000000:endpoint/{EndpointName.lower()}"
            raise LocalClientError(
                "ValidationError",
                f"Endpoint {EndpointName} of account 000000000000 not "
                f"found. (no running local server for {arn}; deploy by approving a model "
                "package or start one with python -m deploy.endpoint start)",
                operation,
            )
        payload = Body.read() if hasattr(Body, "read") else Body
        payload = payload.encode() if isinstance(payload, str) else bytes(payload)
        if len(payload) > REALTIME_PAYLOAD_LIMIT_BYTES:  # refused by SageMaker's front end, as on AWS
            error = LocalClientError(
                "413", f"HTTP content length exceeded {REALTIME_PAYLOAD_LIMIT_BYTES} bytes.", operation
            )
            error.response["ResponseMetadata"] = {"HTTPStatusCode": 413}
            raise error
        headers = {"Content-Type": ContentType}
        if Accept:
            headers["Accept"] = Accept
        try:
            status, response_headers, answer = endpoint.http_request(
                state["url"] + "/invocations", "POST", payload, headers, timeout=INVOCATION_TIMEOUT_SECONDS
            )
        except TimeoutError:
            raise self._model_error(EndpointName, 0, TIMEOUT_MESSAGE, "server") from None
        except OSError as error:
            raise LocalClientError(
                "ServiceUnavailable",
                f"the local endpoint {EndpointName} at {state['url']} did not answer: {error}",
                operation,
            ) from None
        if status != 200:
            message = endpoint._error_message(answer)
            raise self._model_error(EndpointName, status, message, "client" if status < 500 else "server")
        content_type = response_headers.get("content-type", "text/csv")
        return {
            "Body": StreamingBody(io.BytesIO(answer), len(answer)),
            "ContentType": content_type,
            "InvokedProductionVariant": DEFAULT_VARIANT,
            "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": response_headers},
        }

    def _model_error(self, name: str, status: int, message: str, kind: str) -> LocalClientError:
        """SageMaker's ModelError (HTTP 424): the container failed, answered an error or timed out."""
        region = self.settings.effective_region
        logs = (
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:"
            f"group=/aws/sagemaker/Endpoints/{name} in account 000000000000 for more information."
        )
        error = LocalClientError(
            "ModelError",
            f'Received {kind} error ({status}) from primary with message "{message}". See {logs}',
            "InvokeEndpoint",
        )
        error.response |= {
            "OriginalStatusCode": status,
            "OriginalMessage": message,
            "LogStreamArn": f"arn:aws:logs:{region}:000000000000:log-group:/aws/sagemaker/Endpoints/{name}",
        }
        error.response["ResponseMetadata"] = {"HTTPStatusCode": 424}
        return error
