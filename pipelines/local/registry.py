"""The local model registry: model package groups and versioned packages in SQLite.

Why SQLite: several processes write at once (a pipeline's RegisterModel step, the approval CLI,
the deploy handler), and version numbers must never repeat. Every write runs in one
`BEGIN IMMEDIATE` transaction (the version is allocated inside it); the database is in WAL mode
so readers never block the writer. Standard library only.

Rows hold the request documents (inference specification, metrics, metadata) as JSON; the
boto3 response shapes are built by `pipelines.local.sagemaker_registry`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterator, Optional

APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")
DATABASE_FILE = "registry.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_package_groups (
    name          TEXT PRIMARY KEY COLLATE NOCASE,
    description   TEXT,
    tags          TEXT NOT NULL DEFAULT '[]',
    next_version  INTEGER NOT NULL DEFAULT 1,
    created_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS model_packages (
    group_name              TEXT NOT NULL COLLATE NOCASE REFERENCES model_package_groups(name),
    version                 INTEGER NOT NULL,
    description             TEXT,
    approval_status         TEXT NOT NULL,
    approval_description    TEXT,
    inference_specification TEXT,
    model_metrics           TEXT,
    customer_metadata       TEXT NOT NULL DEFAULT '{}',
    metadata_properties     TEXT,
    pipeline_execution_arn  TEXT,
    extra                   TEXT NOT NULL DEFAULT '{}',
    tags                    TEXT NOT NULL DEFAULT '[]',
    client_token            TEXT,
    created_at              REAL NOT NULL,
    modified_at             REAL NOT NULL,
    PRIMARY KEY (group_name, version)
);
CREATE INDEX IF NOT EXISTS model_packages_status ON model_packages(group_name, approval_status);
CREATE TABLE IF NOT EXISTS approval_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name   TEXT NOT NULL COLLATE NOCASE,
    version      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    description  TEXT,
    at           REAL NOT NULL
);
"""

_JSON_COLUMNS = (
    "inference_specification",
    "model_metrics",
    "customer_metadata",
    "metadata_properties",
    "extra",
    "tags",
)


class RegistryError(Exception):
    """A registry rule was broken; `code` is the AWS error code the SageMaker stand-in raises."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def to_datetime(seconds: float) -> datetime.datetime:
    """Stored epoch seconds -> the timezone-aware datetime boto3 returns."""
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def _now() -> float:
    """The current time at the microsecond precision the API's datetimes carry.

    Stored times then round-trip exactly, so CreationTimeAfter=<a version's CreationTime>
    excludes that version, as on SageMaker.
    """
    return datetime.datetime.now(datetime.timezone.utc).timestamp()


def _where(*conditions: tuple) -> tuple:
    """A SQL WHERE clause and its values from (clause, value) pairs; empty values are left out."""
    kept = [(clause, value) for clause, value in conditions if value is not None and value != ""]
    return ("WHERE " + " AND ".join(c for c, _ in kept)) if kept else "", [v for _, v in kept]


def _created_between(after: Any, before: Any) -> tuple:
    """The CreationTimeAfter / CreationTimeBefore filters, as _where pairs."""
    return ("created_at > ?", _epoch(after)), ("created_at < ?", _epoch(before))


def _epoch(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.timezone.utc).timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class Registry:
    """Model package groups and their numbered versions, safe under concurrent processes."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)

    @classmethod
    def at_home(cls, home: Path | str) -> "Registry":
        from processing.kernel.settings import ensure_home

        return cls(ensure_home(home) / DATABASE_FILE)

    # --- plumbing --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA busy_timeout = 60000")
        connection.execute("PRAGMA foreign_keys = ON")
        try:
            yield connection
        finally:
            connection.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken up front, so read-then-write is safe."""
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @staticmethod
    def _row(row: Optional[sqlite3.Row]) -> Optional[dict]:
        if row is None:
            return None
        record = dict(row)
        for column in _JSON_COLUMNS:
            if column in record and record[column] is not None:
                record[column] = json.loads(record[column])
        for column in ("created_at", "modified_at"):
            if column in record:
                record[column] = to_datetime(record[column])
        return record

    # --- groups ----------------------------------------------------------------------------
    def create_group(self, name: str, description: Optional[str] = None, tags: Optional[list] = None) -> dict:
        with self.transaction() as connection:
            if connection.execute("SELECT 1 FROM model_package_groups WHERE name = ?", (name,)).fetchone():
                raise RegistryError("ValidationException", f"Model Package Group already exists: {name}")
            connection.execute(
                "INSERT INTO model_package_groups (name, description, tags, created_at) VALUES (?, ?, ?, ?)",
                (name, description, json.dumps(tags or []), _now()),
            )
            row = connection.execute("SELECT * FROM model_package_groups WHERE name = ?", (name,)).fetchone()
        return self._row(row)

    def get_group(self, name: str) -> Optional[dict]:
        with self._connect() as connection:
            return self._row(
                connection.execute("SELECT * FROM model_package_groups WHERE name = ?", (name,)).fetchone()
            )

    def list_groups(
        self,
        name_contains: Optional[str] = None,
        created_after: Any = None,
        created_before: Any = None,
        sort_by: str = "CreationTime",
        sort_order: str = "Descending",
    ) -> list[dict]:
        where, values = _where(
            ("instr(lower(name), lower(?)) > 0", name_contains), *_created_between(created_after, created_before)
        )
        column = "name" if sort_by == "Name" else "created_at"
        direction = "ASC" if sort_order == "Ascending" else "DESC"
        with self._connect() as connection:
            rows = connection.execute(
                f"SELECT * FROM model_package_groups {where} ORDER BY {column} {direction}, name {direction}", values
            ).fetchall()
        return [self._row(row) for row in rows]

    def delete_group(self, name: str) -> None:
        with self.transaction() as connection:
            if not connection.execute("SELECT 1 FROM model_package_groups WHERE name = ?", (name,)).fetchone():
                raise RegistryError("ValidationException", f"ModelPackageGroup {name} does not exist.")
            count = connection.execute("SELECT count(*) FROM model_packages WHERE group_name = ?", (name,)).fetchone()[
                0
            ]
            if count:
                raise RegistryError(
                    "ConflictException",
                    f"Model Package Group {name} still has {count} model package version(s); "
                    "delete them first (DeleteModelPackage).",
                )
            connection.execute("DELETE FROM model_package_groups WHERE name = ?", (name,))

    # --- packages --------------------------------------------------------------------------
    def create_package(
        self,
        group: str,
        *,
        approval_status: str = "PendingManualApproval",
        description: Optional[str] = None,
        inference_specification: Optional[dict] = None,
        model_metrics: Optional[dict] = None,
        customer_metadata: Optional[dict] = None,
        metadata_properties: Optional[dict] = None,
        extra: Optional[dict] = None,
        tags: Optional[list] = None,
        client_token: Optional[str] = None,
    ) -> dict:
        """Allocate the group's next version number and store the package, atomically."""
        if approval_status not in APPROVAL_STATUSES:
            raise RegistryError(
                "ValidationException", f"ModelApprovalStatus {approval_status!r} is not one of {APPROVAL_STATUSES}"
            )
        now = _now()
        lineage = (metadata_properties or {}).get("GeneratedBy")
        with self.transaction() as connection:
            group_row = connection.execute("SELECT * FROM model_package_groups WHERE name = ?", (group,)).fetchone()
            if group_row is None:
                raise RegistryError(
                    "ValidationException",
                    f"Model Package Group {group} does not exist; create it with CreateModelPackageGroup first.",
                )
            group = group_row["name"]
            if client_token:
                existing = connection.execute(
                    "SELECT * FROM model_packages WHERE group_name = ? AND client_token = ?", (group, client_token)
                ).fetchone()
                if existing is not None:  # a retried request: answer with the package it created
                    return self._row(existing)
            version = group_row["next_version"]
            connection.execute("UPDATE model_package_groups SET next_version = ? WHERE name = ?", (version + 1, group))
            connection.execute(
                "INSERT INTO model_packages (group_name, version, description, approval_status, "
                "inference_specification, model_metrics, customer_metadata, metadata_properties, "
                "pipeline_execution_arn, extra, tags, client_token, created_at, modified_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    group,
                    version,
                    description,
                    approval_status,
                    _dump(inference_specification),
                    _dump(model_metrics),
                    json.dumps(customer_metadata or {}),
                    _dump(metadata_properties),
                    lineage,
                    json.dumps(extra or {}),
                    json.dumps(tags or []),
                    client_token,
                    now,
                    now,
                ),
            )
            connection.execute(
                "INSERT INTO approval_history (group_name, version, status, description, at) VALUES (?, ?, ?, ?, ?)",
                (group, version, approval_status, "created", now),
            )
            row = connection.execute(
                "SELECT * FROM model_packages WHERE group_name = ? AND version = ?", (group, version)
            ).fetchone()
        return self._row(row)

    def get_package(self, group: str, version: int) -> Optional[dict]:
        with self._connect() as connection:
            return self._row(
                connection.execute(
                    "SELECT * FROM model_packages WHERE group_name = ? AND version = ?", (group, version)
                ).fetchone()
            )

    def list_packages(
        self,
        group: Optional[str] = None,
        approval_status: Optional[str] = None,
        created_after: Any = None,
        created_before: Any = None,
        name_contains: Optional[str] = None,
        sort_by: str = "CreationTime",
        sort_order: str = "Ascending",
    ) -> list[dict]:
        where, values = _where(
            ("group_name = ?", group),
            ("approval_status = ?", approval_status),
            *_created_between(created_after, created_before),
            ("instr(lower(group_name), lower(?)) > 0", name_contains),
        )
        direction = "ASC" if sort_order == "Ascending" else "DESC"
        order = (
            f"group_name {direction}, version {direction}"
            if sort_by == "Name"
            else f"created_at {direction}, version {direction}"
        )
        with self._connect() as connection:
            rows = connection.execute(f"SELECT * FROM model_packages {where} ORDER BY {order}", values).fetchall()
        return [self._row(row) for row in rows]

    def update_package(
        self,
        group: str,
        version: int,
        *,
        approval_status: Optional[str] = None,
        approval_description: Optional[str] = None,
        customer_metadata: Optional[dict] = None,
        customer_metadata_to_remove: Optional[list] = None,
        inference_specification: Optional[dict] = None,
        extra: Optional[dict] = None,
    ) -> dict:
        if approval_status is not None and approval_status not in APPROVAL_STATUSES:
            raise RegistryError(
                "ValidationException", f"ModelApprovalStatus {approval_status!r} is not one of {APPROVAL_STATUSES}"
            )
        now = _now()
        with self.transaction() as connection:
            row = self._row(
                connection.execute(
                    "SELECT * FROM model_packages WHERE group_name = ? AND version = ?", (group, version)
                ).fetchone()
            )
            if row is None:
                raise RegistryError("ValidationException", f"Model package {group}/{version} does not exist.")
            metadata = dict(row["customer_metadata"] or {})
            metadata.update(customer_metadata or {})
            for key in customer_metadata_to_remove or ():
                metadata.pop(key, None)
            merged_extra = dict(row["extra"] or {})
            merged_extra.update(extra or {})
            connection.execute(
                "UPDATE model_packages SET approval_status = ?, approval_description = ?, customer_metadata = ?, "
                "inference_specification = ?, extra = ?, modified_at = ? WHERE group_name = ? AND version = ?",
                (
                    approval_status or row["approval_status"],
                    approval_description if approval_description is not None else row["approval_description"],
                    json.dumps(metadata),
                    _dump(
                        inference_specification
                        if inference_specification is not None
                        else row["inference_specification"]
                    ),
                    json.dumps(merged_extra),
                    now,
                    row["group_name"],
                    version,
                ),
            )
            if approval_status is not None:
                connection.execute(
                    "INSERT INTO approval_history (group_name, version, status, description, at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (row["group_name"], version, approval_status, approval_description, now),
                )
            updated = connection.execute(
                "SELECT * FROM model_packages WHERE group_name = ? AND version = ?", (row["group_name"], version)
            ).fetchone()
        return self._row(updated)

    def delete_package(self, group: str, version: int) -> None:
        with self.transaction() as connection:
            deleted = connection.execute(
                "DELETE FROM model_packages WHERE group_name = ? AND version = ?", (group, version)
            ).rowcount
            if not deleted:
                raise RegistryError("ValidationException", f"Model package {group}/{version} does not exist.")

    def history(self, group: str, version: int) -> list[dict]:
        """Every approval status a version has had, oldest first (the audit trail)."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT status, description, at FROM approval_history WHERE group_name = ? AND version = ? ORDER BY id",
                (group, version),
            ).fetchall()
        return [{"status": r["status"], "description": r["description"], "at": to_datetime(r["at"])} for r in rows]


def _dump(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value, sort_keys=True)
