"""Every transform request of the seed data fits its payload limit (issue 18).

With SplitType None a batch transform sends each input file as one request, so each file the
PrepareData (backtest) and PrepareBatchInput (batch) steps write for the default seed data must
fit the MaxPayloadInMB the transform step sets, as the local runtime enforces it (and SageMaker).
"""

from __future__ import annotations

import json

import pytest

from pipelines.local import limits
from processing import batch_input, prepare
from processing.generate import generate_sales
from processing.kernel import contracts
from tests.pipelines.definition_support import batch_definition, default_parameters, step, training_definition

pytestmark = pytest.mark.integration  # prepares the seed dataset and runs its steps' code on it


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory):
    """The transform inputs both pipelines write for the seed data, with the definitions' defaults."""
    root = tmp_path_factory.mktemp("seed")
    history, batch = root / "sales.csv", root / "batch.csv"
    generate_sales().to_csv(history, index=False)
    generate_sales(future_days=14).to_csv(batch, index=False)
    training = default_parameters(training_definition())
    assert (
        prepare.main(
            [f"--input={history}", f"--output-dir={root / 'prep'}", f"--horizon={training['ForecastHorizon']}"]
        )
        == 0
    )
    profile = json.loads((root / "prep" / contracts.PREP_PROFILE / contracts.PROFILE_FILE).read_text())
    (root / "model").mkdir()
    (root / "model" / contracts.RESOLVED_MODEL_FILE).write_text(
        json.dumps({"model_package_arn": "arn", "training_columns": profile["train_columns"]})
    )
    items_per_file = default_parameters(batch_definition())["ItemsPerFile"]
    assert (
        batch_input.main(
            [
                f"--input={batch}",
                f"--output-dir={root / 'shards'}",
                f"--model-dir={root / 'model'}",
                f"--items-per-file={items_per_file}",
            ]
        )
        == 0
    )
    return {
        contracts.STEP_BACKTEST: (training_definition(), sorted((root / "prep" / "backtest").glob("*.csv"))),
        contracts.STEP_BATCH_FORECAST: (batch_definition(), sorted((root / "shards").glob("*.csv"))),
    }


@pytest.mark.parametrize("transform_step", [contracts.STEP_BACKTEST, contracts.STEP_BATCH_FORECAST])
def test_every_transform_request_of_the_seed_fits_its_payload_limit(seed_files, transform_step):
    definition, files = seed_files[transform_step]
    arguments = step(definition, transform_step)["Arguments"]
    assert arguments["TransformInput"]["SplitType"] == "None"  # one request per file
    assert arguments["MaxPayloadInMB"] == contracts.TRANSFORM_MAX_PAYLOAD_MB
    assert arguments["ModelClientConfig"] == {
        "InvocationsTimeoutInSeconds": contracts.TRANSFORM_INVOCATIONS_TIMEOUT_SECONDS
    }
    assert len(files) > 1  # the seed is cut into several requests
    for file in files:
        limits.check_transform_payload(arguments, file.stat().st_size, file.name)
        # and each fits even the 6 MB default, where streaming (MaxPayloadInMB 0) is not available
        assert file.stat().st_size <= contracts.TRANSFORM_FILE_MAX_BYTES < limits.DEFAULT_MAX_PAYLOAD_MB * limits.MB
