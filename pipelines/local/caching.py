"""Step caching (SageMaker's CacheConfig) for the local runtime.

A step with `"CacheConfig": {"Enabled": true, "ExpireAfter": "P30D"}` is not run again when an
earlier execution of the same pipeline ran it successfully, within the expiry, with the same
cache key; its properties (and so its output locations) are reused, and the step record says
`CacheHitResult: {SourcePipelineExecutionArn: ...}` as ListPipelineExecutionSteps does.

The key follows SageMaker's default cache key attributes of a processing step (AppSpecification,
Environment, ProcessingInputs), with one strengthening: each input's files are hashed by content,
so data (or step code) edited in place under the same URI is a miss, not a stale hit.

The lookup reads only the executions that ran the step with that key, through an index of
successes kept beside the executions (pipelines.local.listing.candidate_records).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

from pipelines.local.store import list_prefix
from processing.kernel.settings import Settings

# the step types the local runtime caches, and the request members that make their cache key
KEY_MEMBERS = {"Processing": ("AppSpecification", "Environment", "ProcessingInputs")}
_DURATION = re.compile(
    r"^P?(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$",
    re.IGNORECASE,
)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CacheConfig:
    enabled: bool
    expire_after: Optional[datetime.timedelta]  # None: no expiry given
    expire_text: Optional[str] = None


def parse_expire_after(text: str) -> datetime.timedelta:
    """ISO 8601 durations as SageMaker accepts them: 'P30D', 'p30d', '30d', 'T16m', 'P4DT12H'."""
    match = _DURATION.match(str(text).strip())
    if not match or not any(match.groups()) or str(text).strip().upper().endswith("T"):
        raise ValueError(f"ExpireAfter {text!r} is not an ISO 8601 duration (for example P30D, PT12H, P4DT12H)")
    years, months, weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return datetime.timedelta(
        days=365 * years + 30 * months + 7 * weeks + days, hours=hours, minutes=minutes, seconds=seconds
    )


def cache_config(step: Mapping[str, Any]) -> Optional[CacheConfig]:
    """The step's CacheConfig (None when it has none); raises ValueError for a bad ExpireAfter."""
    config = step.get("CacheConfig")
    if not isinstance(config, Mapping):
        return None
    expire = config.get("ExpireAfter")
    return CacheConfig(
        enabled=bool(config.get("Enabled")),
        expire_after=parse_expire_after(expire) if expire is not None else None,
        expire_text=expire,
    )


def check(step: Mapping[str, Any]) -> Optional[str]:
    """Why the step's CacheConfig cannot be used (None when it can); for the definition's static checks."""
    try:
        cache_config(step)
    except ValueError as error:
        return f"step {step.get('Name')}: CacheConfig: {error}"
    return None


def content_digest(uri: str, settings: Settings) -> str:
    """sha256 over the relative names and bytes of every file under `uri` (store URI or local path)."""
    digest = hashlib.sha256()
    for relative, path in sorted(list_prefix(uri, settings)):
        digest.update(relative.encode("utf-8") + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def step_key(step_type: str, arguments: Mapping[str, Any], settings: Settings) -> Optional[str]:
    """The cache key of a step's resolved arguments (None for a type the local runtime does not cache)."""
    members = KEY_MEMBERS.get(step_type)
    if members is None:
        return None
    keyed: dict = {name: arguments.get(name) for name in members}
    contents = {}
    for item in arguments.get("ProcessingInputs") or []:
        source = item.get("S3Input") or {}
        if source.get("S3Uri"):
            contents[item.get("InputName")] = content_digest(source["S3Uri"], settings)
    keyed["InputContents"] = contents
    return hashlib.sha256(json.dumps([step_type, keyed], sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class CacheHit:
    source_execution_id: str
    source_execution_arn: str
    step: dict  # the source's step record
    properties: Any  # the source step's properties


def find_hit(
    records: Iterable[Mapping[str, Any]],
    *,
    pipeline_name: str,
    step_name: str,
    key: str,
    expire_after: Optional[datetime.timedelta],
    settings: Settings,
    exclude: str,
    now: Optional[datetime.datetime] = None,
) -> Optional[CacheHit]:
    """The most recent successful run of the step with this key, within the expiry, outputs still there."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    found: list = []
    for record in records:
        if record.get("pipeline_name") != pipeline_name or record.get("execution_id") == exclude:
            continue
        step = next((s for s in record.get("steps") or [] if s.get("name") == step_name), None)
        if not step or step.get("status") != "Succeeded" or step.get("cache_key") != key or not step.get("end_time"):
            continue
        ended = datetime.datetime.fromisoformat(step["end_time"])
        if expire_after is not None and now - ended > expire_after:
            continue
        properties = (record.get("properties") or {}).get(step_name)
        if properties is None or not _outputs_present(step, settings):
            continue
        found.append((step["end_time"], record, step, properties))
    if not found:
        return None
    _, record, step, properties = max(found, key=lambda entry: entry[0])
    source = (step.get("CacheHitResult") or {}).get("SourcePipelineExecutionArn") or record["execution_arn"]
    source_id = source.rstrip("/").rsplit("/", 1)[-1]
    return CacheHit(source_execution_id=source_id, source_execution_arn=source, step=dict(step), properties=properties)


def _outputs_present(step: Mapping[str, Any], settings: Settings) -> bool:
    for uri in (step.get("outputs") or {}).values():
        try:
            if isinstance(uri, str) and not list_prefix(uri, settings):
                return False
        except (ValueError, OSError):
            return False
    return True


__all__ = [
    "CacheConfig",
    "CacheHit",
    "cache_config",
    "check",
    "content_digest",
    "find_hit",
    "parse_expire_after",
    "step_key",
]
