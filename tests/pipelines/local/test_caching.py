"""Step caching (CacheConfig) in the local runtime: same arguments and input contents within the expiry hit."""

from __future__ import annotations

import datetime
import shutil

import pytest

from pipelines.local import caching, listing, runtime
from pipelines.local.runtime import DefinitionError, load_definition, run_local
from pipelines.local.store import local_path
from processing.kernel.settings import resolve
from tests.pipelines.local.handwritten import CODE_URI, definition, install_scripts, output_ref, processing


@pytest.fixture
def settings():
    settings = resolve()
    install_scripts(settings)
    return settings


def cached_pipeline(data, expire_after="P30D") -> dict:
    """Produce (cached; reads `data`, takes --score from a parameter) -> Consume (not cached)."""
    produce = processing(
        "Produce",
        "produce.py",
        inputs={"data": str(data)},
        arguments=[
            "--out=/opt/ml/processing/output/result",
            {"Std:Join": {"On": "", "Values": ["--score=", {"Get": "Parameters.Score"}]}},
        ],
        outputs=["result"],
        property_files=[("Metrics", "result", "metrics.json")],
    )
    produce["CacheConfig"] = {"Enabled": True, "ExpireAfter": expire_after}
    consume = processing(
        "Consume",
        "consume.py",
        arguments=["--in=/opt/ml/processing/input/produced", "--out=/opt/ml/processing/output/count"],
        inputs={"produced": output_ref("Produce", "result")},
        outputs=["count"],
    )
    return definition([produce, consume], [{"Name": "Score", "Type": "Float", "DefaultValue": 0.2}])


def run(settings, pipeline, parameters=None):
    lines: list = []
    code = run_local(pipeline, parameters or {}, settings, out=lines.append)
    assert code == 0, "\n".join(lines)
    return "\n".join(lines), runtime.load_executions(settings)[0]


def step(record, name):
    return next(s for s in record["steps"] if s["name"] == name)


def test_given_the_same_arguments_and_inputs_then_the_second_run_is_a_cache_hit_reusing_the_outputs(settings, tmp_path):
    data = tmp_path / "sales.csv"
    data.write_text("item_id,value\n007,1\n")
    _, first = run(settings, cached_pipeline(data))
    output, second = run(settings, cached_pipeline(data))

    produce = step(second, "Produce")
    assert produce["status"] == "Succeeded"
    assert produce["CacheHitResult"] == {"SourcePipelineExecutionArn": first["execution_arn"]}
    assert produce["outputs"] == step(first, "Produce")["outputs"]  # the earlier run's S3 locations
    assert first["execution_id"] in produce["outputs"]["result"]
    assert second["properties"]["Produce"] == first["properties"]["Produce"]
    assert f"Produce: Succeeded (cache hit: outputs of execution {first['execution_id']})" in output
    assert "[runtime] cache hit" in open(produce["log"]).read()
    assert f"cache hit (outputs of {first['execution_id']})" in output  # the summary table
    assert "produce.py" not in open(produce["log"]).read()  # the script did not run
    assert step(second, "Consume")["status"] == "Succeeded" and "CacheHitResult" not in step(second, "Consume")
    assert "counted 2" in open(step(second, "Consume")["log"]).read()  # it read the reused outputs
    assert "CacheHitResult" not in step(first, "Produce")

    [entry] = [
        s for s in runtime.pipeline_execution_steps(second)["PipelineExecutionSteps"] if s["StepName"] == "Produce"
    ]
    assert entry["CacheHitResult"] == {"SourcePipelineExecutionArn": first["execution_arn"]}
    listing: list = []
    runtime.list_executions(settings, out=listing.append)
    assert f"cache hit: Produce (from {first['execution_id']})" in listing[1]

    _, third = run(settings, cached_pipeline(data))  # a hit of a hit names the source
    assert step(third, "Produce")["CacheHitResult"] == {"SourcePipelineExecutionArn": first["execution_arn"]}


def test_given_a_changed_parameter_or_changed_input_contents_then_the_step_runs_again(settings, tmp_path):
    data = tmp_path / "sales.csv"
    data.write_text("item_id,value\n007,1\n")
    run(settings, cached_pipeline(data))

    _, other_score = run(settings, cached_pipeline(data), {"Score": "0.3"})
    assert "CacheHitResult" not in step(other_score, "Produce")
    assert "cache miss" in open(step(other_score, "Produce")["log"]).read()

    data.write_text("item_id,value\n007,2\n")  # same file name, new content
    _, new_data = run(settings, cached_pipeline(data))
    assert "CacheHitResult" not in step(new_data, "Produce")

    (local_path(CODE_URI, settings) / "produce.py").write_text(
        (local_path(CODE_URI, settings) / "produce.py").read_text() + "\n# edited\n"
    )
    _, new_code = run(settings, cached_pipeline(data))  # the step's code changed
    assert "CacheHitResult" not in step(new_code, "Produce")
    _, again = run(settings, cached_pipeline(data))
    assert step(again, "Produce")["CacheHitResult"]["SourcePipelineExecutionArn"] == new_code["execution_arn"]


def test_given_an_expired_or_missing_source_then_there_is_no_hit(settings, tmp_path):
    data = tmp_path / "sales.csv"
    data.write_text("item_id,value\n007,1\n")
    _, first = run(settings, cached_pipeline(data))
    produce = step(first, "Produce")
    ended = datetime.datetime.fromisoformat(produce["end_time"])
    common = dict(
        pipeline_name=first["pipeline_name"],
        step_name="Produce",
        key=produce["cache_key"],
        settings=settings,
        exclude="another",
    )
    records = runtime.load_executions(settings)
    assert (
        caching.find_hit(
            records, expire_after=datetime.timedelta(days=30), now=ended + datetime.timedelta(days=29), **common
        )
        is not None
    )
    assert (
        caching.find_hit(
            records, expire_after=datetime.timedelta(days=30), now=ended + datetime.timedelta(days=31), **common
        )
        is None
    )
    shutil.rmtree(local_path(produce["outputs"]["result"], settings))  # its outputs are gone: nothing to reuse
    assert caching.find_hit(records, expire_after=None, **common) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("P30D", datetime.timedelta(days=30)),
        ("p30d", datetime.timedelta(days=30)),
        ("30d", datetime.timedelta(days=30)),
        ("T16m", datetime.timedelta(minutes=16)),
        ("P4DT12H", datetime.timedelta(days=4, hours=12)),
        ("30dT5h", datetime.timedelta(days=30, hours=5)),
        ("P1Y", datetime.timedelta(days=365)),
        ("P2W", datetime.timedelta(days=14)),
    ],
)
def test_expire_after_reads_iso_8601_durations_as_sagemaker_accepts_them(text, expected):
    assert caching.parse_expire_after(text) == expected


def test_a_bad_expire_after_fails_before_anything_runs(tmp_path):
    pipeline = cached_pipeline(tmp_path / "x.csv", expire_after="30 days")
    with pytest.raises(
        DefinitionError,
        match=r"step Produce: CacheConfig: ExpireAfter '30 days' is not an "
        r"ISO 8601 duration \(for example P30D, PT12H, P4DT12H\)",
    ):
        load_definition(pipeline)


def test_the_cache_check_reads_only_the_executions_indexed_under_the_step_and_key(settings, tmp_path):
    data = tmp_path / "sales.csv"
    data.write_text("item_id,value\n007,1\n")
    _, first = run(settings, cached_pipeline(data))
    _, other = run(settings, cached_pipeline(data), {"Score": "0.3"})  # another key: a miss
    key = step(first, "Produce")["cache_key"]
    assert step(other, "Produce")["cache_key"] != key

    found = listing.candidate_records(settings, first["pipeline_name"], "Produce", key)
    assert [r["execution_id"] for r in found] == [first["execution_id"]]
    assert listing.candidate_records(settings, first["pipeline_name"], "Consume", key) == []
    assert listing.candidate_records(settings, "AnotherPipeline", "Produce", key) == []

    _, hit = run(settings, cached_pipeline(data))
    assert step(hit, "Produce")["CacheHitResult"] == {"SourcePipelineExecutionArn": first["execution_arn"]}
    indexed = listing.candidate_records(settings, first["pipeline_name"], "Produce", key)
    assert sorted(r["execution_id"] for r in indexed) == sorted([first["execution_id"], hit["execution_id"]])

    shutil.rmtree(runtime.executions_dir(settings) / first["execution_id"])  # deleted since: skipped
    assert [r["execution_id"] for r in listing.candidate_records(settings, first["pipeline_name"], "Produce", key)] == [
        hit["execution_id"]
    ]
    lines: list = []
    runtime.list_executions(settings, out=lines.append)  # the index is not listed as an execution
    assert not any(listing.INDEX_DIR in line for line in lines)


def test_a_history_written_before_the_index_is_indexed_once_and_still_hits(settings, tmp_path):
    data = tmp_path / "sales.csv"
    data.write_text("item_id,value\n007,1\n")
    _, first = run(settings, cached_pipeline(data))
    index = runtime.executions_dir(settings) / listing.INDEX_DIR
    shutil.rmtree(index)  # as a home from before the index

    _, second = run(settings, cached_pipeline(data))
    assert step(second, "Produce")["CacheHitResult"] == {"SourcePipelineExecutionArn": first["execution_arn"]}
    assert (index / "v1").exists()
    key = step(first, "Produce")["cache_key"]
    found = listing.candidate_records(settings, first["pipeline_name"], "Produce", key)
    assert sorted(r["execution_id"] for r in found) == sorted([first["execution_id"], second["execution_id"]])
