"""The SQLite model registry: version numbering, transactions, concurrency, audit trail."""

from __future__ import annotations

import datetime
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines.local.registry import Registry, RegistryError


@pytest.fixture
def registry(tmp_path) -> Registry:
    store = Registry(tmp_path / "registry.sqlite")
    store.create_group("demand-forecasting", "AutoML forecasting models")
    return store


def test_given_a_group_when_packages_are_created_then_versions_count_up_from_one(registry):
    first = registry.create_package("demand-forecasting", customer_metadata={"metric_wape": "0.2"})
    second = registry.create_package("demand-forecasting", approval_status="Approved")

    assert (first["version"], second["version"]) == (1, 2)
    assert first["approval_status"] == "PendingManualApproval"
    assert first["customer_metadata"] == {"metric_wape": "0.2"}
    assert isinstance(first["created_at"], datetime.datetime) and first["created_at"].tzinfo is not None


def test_given_a_deleted_latest_version_then_its_number_is_never_reused(registry):
    registry.create_package("demand-forecasting")
    registry.create_package("demand-forecasting")
    registry.delete_package("demand-forecasting", 2)

    assert registry.create_package("demand-forecasting")["version"] == 3


def test_given_the_same_client_token_then_the_first_package_is_returned(registry):
    first = registry.create_package("demand-forecasting", client_token="exec-1")
    again = registry.create_package("demand-forecasting", client_token="exec-1")

    assert again["version"] == first["version"] == 1
    assert len(registry.list_packages("demand-forecasting")) == 1


def test_given_a_missing_group_then_creating_a_package_says_to_create_the_group(registry):
    with pytest.raises(RegistryError, match="Model Package Group other does not exist; create it"):
        registry.create_package("other")


def test_given_a_duplicate_group_then_creation_fails_and_names_are_case_insensitive(registry):
    with pytest.raises(RegistryError, match="already exists: Demand-Forecasting"):
        registry.create_group("Demand-Forecasting")
    assert registry.get_group("DEMAND-FORECASTING")["name"] == "demand-forecasting"


def test_given_a_group_with_versions_then_it_cannot_be_deleted(registry):
    registry.create_package("demand-forecasting")

    with pytest.raises(RegistryError, match="still has 1 model package version") as raised:
        registry.delete_group("demand-forecasting")
    assert raised.value.code == "ConflictException"
    registry.delete_package("demand-forecasting", 1)
    registry.delete_group("demand-forecasting")
    assert registry.get_group("demand-forecasting") is None


def test_given_status_changes_then_the_history_keeps_every_one_with_its_reason(registry):
    registry.create_package("demand-forecasting")
    registry.update_package("demand-forecasting", 1, approval_status="Approved", approval_description="good")
    updated = registry.update_package(
        "demand-forecasting",
        1,
        approval_status="Rejected",
        approval_description="drift",
        customer_metadata={"note": "x"},
    )

    assert updated["approval_status"] == "Rejected" and updated["approval_description"] == "drift"
    assert updated["modified_at"] >= updated["created_at"]
    assert [(h["status"], h["description"]) for h in registry.history("demand-forecasting", 1)] == [
        ("PendingManualApproval", "created"),
        ("Approved", "good"),
        ("Rejected", "drift"),
    ]


def test_given_an_invalid_status_then_nothing_is_written(registry):
    with pytest.raises(RegistryError, match="'Maybe' is not one of"):
        registry.create_package("demand-forecasting", approval_status="Maybe")
    assert registry.list_packages() == []


def test_given_a_failure_inside_a_transaction_then_it_is_rolled_back(registry):
    with pytest.raises(RuntimeError, match="boom"):
        with registry.transaction() as connection:
            connection.execute("UPDATE model_package_groups SET next_version = 99")
            raise RuntimeError("boom")

    assert registry.create_package("demand-forecasting")["version"] == 1


def test_given_filters_then_listing_selects_and_sorts(registry):
    for status in ("Approved", "Rejected", "Approved"):
        registry.create_package("demand-forecasting", approval_status=status)

    approved = registry.list_packages("demand-forecasting", approval_status="Approved", sort_order="Descending")

    assert [p["version"] for p in approved] == [3, 1]
    assert [p["version"] for p in registry.list_packages(sort_order="Ascending")] == [1, 2, 3]


@pytest.mark.integration
def test_given_concurrent_writer_processes_then_every_version_number_is_unique(tmp_path):
    path = tmp_path / "registry.sqlite"
    Registry(path).create_group("demand-forecasting")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})
        from pipelines.local.registry import Registry
        store = Registry({str(path)!r})
        for _ in range(15):
            store.create_package("demand-forecasting", customer_metadata={{"writer": sys.argv[1]}})
    """)
    writers = [subprocess.Popen([sys.executable, "-c", script, str(n)]) for n in range(4)]

    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0, 0]
    versions = sorted(p["version"] for p in Registry(path).list_packages("demand-forecasting"))
    assert versions == list(range(1, 61))


def test_given_filters_when_listing_then_status_time_window_and_name_narrow_the_result(registry):
    registry.create_group("other-models")
    first = registry.create_package("demand-forecasting", approval_status="Approved")
    second = registry.create_package("demand-forecasting")
    registry.create_package("other-models", approval_status="Approved")

    def versions(**filters):
        return [(p["group_name"], p["version"]) for p in registry.list_packages(**filters)]

    assert versions(group="demand-forecasting", approval_status="Approved") == [("demand-forecasting", 1)]
    assert versions(group="demand-forecasting", created_after=first["created_at"]) == [("demand-forecasting", 2)]
    assert versions(group="demand-forecasting", created_before=second["created_at"]) == [("demand-forecasting", 1)]
    assert versions(name_contains="OTHER") == [("other-models", 1)]
    assert [g["name"] for g in registry.list_groups(name_contains="demand")] == ["demand-forecasting"]
    assert (
        registry.list_groups(created_after=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1))
        == []
    )
