"""The content-addressed code bundle: contents, hash, local copy and S3 upload (moto)."""

from __future__ import annotations

import shutil
from pathlib import Path

import boto3

from pipelines import code_bundle
from processing.kernel.settings import resolve
from tests.pipelines.definition_support import BUCKET, REGION, sagemaker_settings


def _tree(root: Path) -> Path:
    for relative, text in {
        "processing/__init__.py": "",
        "processing/prepare.py": "print('prep')\n",
        "processing/requirements/prepare.txt": "pyarrow\n",
        "processing/__pycache__/prepare.cpython-311.pyc": "x",
        "evaluation/evaluate.py": "print('eval')\n",
        "pipelines/__init__.py": "",
        "processing/kernel/contracts.py": "A = 1\n",
        "pipelines/run.py": "import sagemaker\n",
        "forecasting/engine.py": "import lightgbm\n",
    }.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_given_the_project_then_the_bundle_holds_step_code_only():
    files = dict(code_bundle.bundle_files())
    assert {
        "processing/entry.py",
        "processing/kernel/contracts.py",
        "processing/kernel/settings.py",
        "processing/kernel/aws_validation.py",
        "processing/requirements/evaluate.txt",
    } <= set(files)
    assert "deploy/clients.py" not in files  # steps call AWS through plain boto3, never the local factory
    assert not any(p.startswith(("forecasting/", "tests/", "deploy/")) or "__pycache__" in p for p in files)
    assert not any(p.startswith("pipelines/") for p in files)  # the kernel moved into processing/kernel/


def test_given_a_tree_when_a_file_changes_then_the_hash_changes_and_only_then(tmp_path):
    root = _tree(tmp_path / "project")
    first = code_bundle.bundle_hash(root)
    assert code_bundle.bundle_hash(root) == first
    (root / "forecasting" / "engine.py").write_text("changed\n")  # not bundled
    assert code_bundle.bundle_hash(root) == first
    (root / "processing" / "prepare.py").write_text("print('v2')\n")
    assert code_bundle.bundle_hash(root) != first
    settings = sagemaker_settings()
    assert (
        code_bundle.bundle_uri(settings, root)
        == f"s3://{BUCKET}/demand-forecasting/code/{code_bundle.bundle_hash(root)}/"
    )


def test_given_the_local_target_when_uploading_twice_then_files_land_in_the_store_once(tmp_path):
    root = _tree(tmp_path / "project")
    settings = resolve({"home": str(tmp_path / "home")}, environ={})
    lines: list[str] = []
    uri = code_bundle.upload(settings, root, log=lines.append)
    folder = tmp_path / "home" / "s3" / "forecast-local" / code_bundle.bundle_prefix(settings, root)
    assert uri == f"s3://forecast-local/{code_bundle.bundle_prefix(settings, root)}"
    assert (folder / "processing" / "prepare.py").read_text() == "print('prep')\n"
    assert (folder / "processing" / "requirements" / "prepare.txt").is_file()
    assert not (folder / "pipelines" / "run.py").exists()
    code_bundle.upload(settings, root, log=lines.append)
    assert lines[-1].endswith("already in the local store")


def test_given_moto_when_uploading_twice_then_the_second_upload_is_skipped(tmp_path, moto_endpoint):
    root = _tree(tmp_path / "project")
    settings = sagemaker_settings()
    s3 = boto3.session.Session(region_name=REGION).client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    lines: list[str] = []
    uri = code_bundle.upload(settings, root, log=lines.append)
    prefix = code_bundle.bundle_prefix(settings, root)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert keys == {
        prefix + p
        for p in (
            "processing/__init__.py",
            "processing/prepare.py",
            "processing/requirements/prepare.txt",
            "evaluation/evaluate.py",
            "processing/kernel/contracts.py",
            code_bundle.MARKER,
        )
    }
    first_modified = s3.head_object(Bucket=BUCKET, Key=prefix + "processing/prepare.py")["LastModified"]
    code_bundle.upload(settings, root, log=lines.append)
    assert lines[-1] == f"code bundle {uri} already uploaded"
    assert s3.head_object(Bucket=BUCKET, Key=prefix + "processing/prepare.py")["LastModified"] == first_modified


# --- the container boundary --------------------------------------------------------------------------
import ast  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402

IMPORT_NAMES = {"scikit-learn": "sklearn", "python-dateutil": "dateutil", "pillow": "PIL", "pyyaml": "yaml"}


def _container_packages() -> set[str]:
    """Import names of what the processing image has (pipelines/processing_image.toml)."""
    from pipelines import processing_image

    return {IMPORT_NAMES.get(name, name.replace("-", "_")) for name in processing_image.load().packages}


CONTAINER_PACKAGES = _container_packages()
BUNDLE_MODULES = {"processing", "evaluation"}


def _required_packages() -> set[str]:
    names = set()
    for path in (code_bundle.PROJECT_ROOT / "processing" / "requirements").glob("*.txt"):
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower())
    return names


def _imports(tree: ast.Module):
    """(module name, where) for imports at module level ('top') and inside functions ('lazy');
    imports guarded by try/except ImportError are optional and skipped."""

    def names(node):
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
            return [node.module]
        return []

    for node in tree.body:
        if isinstance(node, ast.Try):
            continue
        for name in names(node):
            yield name, "top"
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                for name in names(inner):
                    yield name, "lazy"


def test_given_the_bundle_then_every_import_is_available_in_the_processing_container():
    allowed_third_party = CONTAINER_PACKAGES | _required_packages()
    problems = []
    for relative, path in code_bundle.bundle_files():
        if not relative.endswith(".py"):
            continue
        for name, where in _imports(ast.parse(path.read_text())):
            root = name.split(".")[0]
            if root in sys.stdlib_module_names or root in allowed_third_party:
                continue
            if name in BUNDLE_MODULES or root in ("processing", "evaluation"):
                continue
            problems.append(f"{relative}: imports {name} ({where})")
    assert problems == [], "imports the scikit-learn processing container cannot satisfy:\n" + "\n".join(problems)
