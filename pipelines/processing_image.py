"""The processing image and its Python environment, read from processing_image.toml.

The definition (its ImageUri), the local runtime (the step environment it builds) and the tests
all read this one file, so the image a step runs in on SageMaker and the environment it runs
in locally cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import tomllib
from pathlib import Path
from typing import Mapping

ENV_FILE = Path(__file__).resolve().with_name("processing_image.toml")


@dataclasses.dataclass(frozen=True)
class ProcessingImage:
    framework: str  # the SDK's image table key ("sklearn")
    version: str  # "1.9-0"
    python: str  # minor version of the image's interpreter, "3.12"
    packages: Mapping[str, str]  # what steps may import: name -> exact version
    image_only: Mapping[str, str]  # also in the image, not installed locally
    source: Mapping[str, str]  # repository, path, commit, date
    path: Path
    digest: str  # sha256 of the file: the local environment's cache key

    def requirements(self) -> list[str]:
        """`name==version` lines for pip, in the file's order."""
        return [f"{name}=={version}" for name, version in self.packages.items()]

    def describe(self) -> str:
        """One line for messages: image, Python and the headline pins."""
        heads = ", ".join(
            f"{name} {self.packages[name]}" for name in ("pandas", "numpy", "scikit-learn") if name in self.packages
        )
        return f"scikit-learn image {self.version}: Python {self.python}, {heads}"

    def source_text(self) -> str:
        return f"{self.source['repository']} {self.source['path']} at {self.source['commit'][:12]}"


class ImageFileError(ValueError):
    """processing_image.toml is missing a field or malformed."""


@functools.lru_cache(maxsize=None)
def load(path: Path = ENV_FILE) -> ProcessingImage:
    raw = Path(path).read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ImageFileError(f"{path}: not valid TOML: {error}") from None
    try:
        image, source, packages = data["image"], data["source"], data["packages"]
        fields = dict(framework=str(image["framework"]), version=str(image["version"]), python=str(image["python"]))
        source = {key: str(source[key]) for key in ("repository", "path", "commit")} | {
            key: str(value) for key, value in source.items()
        }
    except KeyError as error:
        raise ImageFileError(
            f"{path}: missing {error.args[0]!r} (needs [image] framework, version, "
            "python; [source] repository, path, commit; [packages])"
        ) from None
    if not packages:
        raise ImageFileError(f"{path}: [packages] is empty")
    bad = [
        f"{name} = {version!r}"
        for name, version in packages.items()
        if not isinstance(version, str) or not version or any(c in version for c in "<>=!~*, ")
    ]
    if bad:
        raise ImageFileError(f'{path}: [packages] must pin exact versions (name = "1.2.3"); got {", ".join(bad)}')
    if fields["python"].count(".") != 1:
        raise ImageFileError(f'{path}: [image] python must be a minor version like "3.12", got {fields["python"]!r}')
    return ProcessingImage(
        packages=dict(packages),
        image_only=dict(data.get("image_only") or {}),
        source=source,
        path=Path(path),
        digest=hashlib.sha256(raw).hexdigest(),
        **fields,
    )
