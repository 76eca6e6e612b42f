"""Hand-written pipeline definitions for the runtime tests (the JSON shapes the SDK v3 renders)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from pipelines.local.store import local_path

BUCKET = "test-bucket"
CODE_URI = f"s3://{BUCKET}/code/"


def out_uri(step: str, output: str) -> dict:
    return {
        "Std:Join": {
            "On": "/",
            "Values": [f"s3://{BUCKET}/executions", {"Get": "Execution.PipelineExecutionId"}, step, output],
        }
    }


def output_ref(step: str, output: str) -> dict:
    return {"Get": f"Steps.{step}.ProcessingOutputConfig.Outputs['{output}'].S3Output.S3Uri"}


def processing(
    name: str, script: str, arguments=(), inputs=None, outputs=(), property_files=(), depends_on=None, environment=None
) -> dict:
    """A Processing step as Pipeline.definition() renders it, running code/<script>."""
    processing_inputs = [
        {
            "InputName": "code",
            "S3Input": {
                "S3Uri": CODE_URI,
                "LocalPath": "/opt/ml/processing/code",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
                "S3CompressionType": "None",
            },
        }
    ]
    for input_name, uri in (inputs or {}).items():
        processing_inputs.append(
            {
                "InputName": input_name,
                "S3Input": {
                    "S3Uri": uri,
                    "LocalPath": f"/opt/ml/processing/input/{input_name}",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                    "S3CompressionType": "None",
                },
            }
        )
    step = {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}
            },
            "AppSpecification": {
                "ImageUri": "image",
                "ContainerEntrypoint": ["python3", f"/opt/ml/processing/code/{script}"],
                # the SDK leaves ContainerArguments out without arguments: SageMaker refuses an empty list
                **({"ContainerArguments": list(arguments)} if arguments else {}),
            },
            "RoleArn": "arn:aws:iam::000000000000:role/r",
            "ProcessingInputs": processing_inputs,
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": output,
                        "S3Output": {
                            "S3Uri": out_uri(name, output),
                            "LocalPath": f"/opt/ml/processing/output/{output}",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                    for output in outputs
                ]
            },
            "Environment": dict(
                environment or {"PYTHONPATH": "/opt/ml/processing/code", "FORECAST_TARGET": "sagemaker"}
            ),
        },
        "DisplayName": f"{name} display",
        "Description": f"{name} description",
    }
    if property_files:
        step["PropertyFiles"] = [
            {"PropertyFileName": pf, "OutputName": out, "FilePath": path} for pf, out, path in property_files
        ]
    if depends_on:
        step["DependsOn"] = list(depends_on)
    return step


def definition(steps: list, parameters: list) -> dict:
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": parameters,
        "PipelineExperimentConfig": {
            "ExperimentName": {"Get": "Execution.PipelineName"},
            "TrialName": {"Get": "Execution.PipelineExecutionId"},
        },
        "Steps": steps,
    }


SCRIPTS = {
    # writes a metrics JSON and a data file; echoes what the runtime gave it
    "produce.py": """
        import json, os, sys
        from pathlib import Path
        args = dict(a.split("=", 1) for a in sys.argv[1:])
        out = Path(args["--out"]); out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"quality_gate": {"value": float(args["--score"])},
                                                      "items": [{"name": "a"}, {"name": "b"}]}))
        (out / "data" ).mkdir(exist_ok=True)
        (out / "data" / "rows.csv").write_text("x\\n1\\n2\\n")
        print("target", os.environ.get("FORECAST_TARGET"), "install", os.environ.get("FORECAST_INSTALL_REQUIREMENTS"),
              "omp", os.environ.get("OMP_WAIT_POLICY"))
        print("label", args.get("--label"))
    """,
    # reads the previous step's data through its mapped input folder
    "consume.py": """
        import sys
        from pathlib import Path
        args = dict(a.split("=", 1) for a in sys.argv[1:])
        rows = (Path(args["--in"]) / "data" / "rows.csv").read_text().split()
        out = Path(args["--out"]); out.mkdir(parents=True, exist_ok=True)
        (out / "count.txt").write_text(str(len(rows) - 1))
        print("counted", len(rows) - 1)
    """,
    "crash.py": """
        import sys
        print("about to fail")
        raise SystemExit("ValueError: column 'target_value' is missing from sales.csv")
    """,
    # fails while the file --unless names does not exist (a fault fixed between attempts)
    "flaky.py": """
        import sys
        from pathlib import Path
        args = dict(a.split("=", 1) for a in sys.argv[1:])
        if not Path(args["--unless"]).exists():
            raise SystemExit("ValueError: the fault is still there")
        out = Path(args["--out"]); out.mkdir(parents=True, exist_ok=True)
        (out / "done.txt").write_text("done")
        print("flaky step done")
    """,
    # sleeps (a step to kill) until the file --unless names exists, then returns at once
    "sleep_unless.py": """
        import sys, time
        from pathlib import Path
        args = dict(a.split("=", 1) for a in sys.argv[1:])
        if not Path(args["--unless"]).exists():
            print("sleeping", flush=True)
            time.sleep(600)
        print("awake")
    """,
    # prints the variables its arguments name, as it sees them
    "show_env.py": """
        import os, sys
        for name in sys.argv[1:]:
            print(f"{name}={os.environ.get(name)}")
    """,
    "sleep.py": """
        import time, sys
        print("sleeping", flush=True)
        time.sleep(60)
    """,
}


def install_scripts(settings) -> None:
    """Put the test scripts where the definitions' code input points (the local store)."""
    code = local_path(CODE_URI, settings)
    code.mkdir(parents=True, exist_ok=True)
    for name, body in SCRIPTS.items():
        (code / name).write_text(textwrap.dedent(body))


def gated_pipeline(threshold: float = 0.5) -> dict:
    """Produce -> Consume -> Gate(score <= threshold) -> if: Notify (no-op Lambda); else: TooLow (Fail)."""
    score = {
        "Std:JsonGet": {"PropertyFile": {"Get": "Steps.Produce.PropertyFiles.Metrics"}, "Path": "quality_gate.value"}
    }
    produce = processing(
        "Produce",
        "produce.py",
        arguments=[
            "--out=/opt/ml/processing/output/result",
            {"Std:Join": {"On": "", "Values": ["--score=", {"Get": "Parameters.Score"}]}},
            {
                "Std:Join": {
                    "On": "",
                    "Values": ["--label=", {"Get": "Parameters.Label"}, "-", {"Get": "Execution.PipelineExecutionId"}],
                }
            },
        ],
        outputs=["result"],
        property_files=[("Metrics", "result", "metrics.json")],
    )
    consume = processing(
        "Consume",
        "consume.py",
        arguments=["--in=/opt/ml/processing/input/produced", "--out=/opt/ml/processing/output/count"],
        inputs={"produced": output_ref("Produce", "result")},
        outputs=["count"],
    )
    fail = {
        "Name": "TooLow",
        "Type": "Fail",
        "Arguments": {
            "ErrorMessage": {
                "Std:Join": {
                    "On": " ",
                    "Values": ["Quality too low: score", score, "above threshold", {"Get": "Parameters.Threshold"}],
                }
            }
        },
    }
    after = processing(
        "AfterGate",
        "consume.py",
        arguments=["--in=/opt/ml/processing/input/produced", "--out=/opt/ml/processing/output/count"],
        inputs={"produced": output_ref("Produce", "result")},
        outputs=["count"],
    )
    gate = {
        "Name": "Gate",
        "Type": "Condition",
        "DependsOn": ["Consume"],
        "Arguments": {
            "Conditions": [
                {"Type": "LessThanOrEqualTo", "LeftValue": score, "RightValue": {"Get": "Parameters.Threshold"}}
            ],
            "IfSteps": [after],
            "ElseSteps": [fail],
        },
    }
    parameters = [
        {"Name": "Score", "Type": "Float", "DefaultValue": 0.2},
        {"Name": "Threshold", "Type": "Float", "DefaultValue": threshold},
        {"Name": "Label", "Type": "String", "DefaultValue": "run"},
    ]
    return definition([produce, consume, gate], parameters)


def read_text(settings, uri: str) -> str:
    return Path(local_path(uri, settings)).read_text()
