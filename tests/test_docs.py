"""The user-facing docs (README.md, CONTRIBUTING.md, docs/*.md) against the code they describe.

A reader who follows a link lands on an existing file and heading; a `--param Name=` they copy
names a real pipeline parameter; a FORECAST_* variable they set is one the code reads; the
parameter tables state each parameter's real type and default; the README's settings table
lists every setting.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from pipelines import batch, training
from processing.kernel import settings as settings_module

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The text without fenced code blocks (their '#' lines are not headings, their brackets not links)."""
    return FENCE.sub("", text)


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays, its target goes
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(_prose(path.read_text(encoding="utf-8"))):
        slug = github_anchor(match.group(2))
        count = seen.get(slug, 0)
        found.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return found


def relative_links(path: Path) -> list[str]:
    text = INLINE_CODE.sub("", _prose(path.read_text(encoding="utf-8")))
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def test_github_anchor_follows_githubs_rules():
    assert github_anchor("The AWS API on loopback (SageMaker, S3 objects, CloudWatch metrics)") == (
        "the-aws-api-on-loopback-sagemaker-s3-objects-cloudwatch-metrics"
    )
    assert github_anchor("Steps run in the image's environment") == "steps-run-in-the-images-environment"
    assert github_anchor("Step caching (`CacheConfig`)") == "step-caching-cacheconfig"
    assert github_anchor("1. Bootstrap (once per account/region)") == "1-bootstrap-once-per-accountregion"


def test_anchors_number_repeated_headings_and_skip_code_blocks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Notes\n\n```bash\n# not a heading\n```\n\n## Notes\n")
    assert anchors(page) == {"title", "notes", "notes-1"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file_and_heading(doc):
    broken = []
    for target in relative_links(doc):
        path, _, anchor = target.partition("#")
        destination = (doc.parent / path).resolve() if path else doc
        if not destination.exists():
            broken.append(
                f"{target}: no file {destination.relative_to(ROOT) if ROOT in destination.parents else destination}"
            )
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: {destination.name} has no heading with the anchor #{anchor}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def _parameter_names() -> set[str]:
    config = settings_module.resolve({"target": "local"}, environ={})
    return {spec.name for spec in training.parameter_specs(config)} | {
        spec.name for spec in batch.parameter_specs(config)
    }


def test_every_param_the_docs_show_is_a_pipeline_parameter():
    known = _parameter_names()
    unknown = sorted(
        f"{doc.relative_to(ROOT)}: --param {name}="
        for doc in DOCS
        for name in re.findall(r"--param[ =]([A-Za-z]\w*)=", doc.read_text(encoding="utf-8"))
        if name not in known and name != "Name"  # `--param Name=Value` is the syntax, not a parameter
    )
    assert not unknown, f"not a parameter of either pipeline: {unknown}"


def _python_sources() -> str:
    skip = {".git", ".forecast", "node_modules", "build", "dist"}
    files = [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)


def test_every_forecast_variable_the_docs_name_is_read_by_the_code():
    code = _python_sources()
    named = {
        (doc.relative_to(ROOT), variable)
        for doc in DOCS
        for variable in re.findall(r"\bFORECAST_[A-Z][A-Z0-9_]*[A-Z0-9]\b", doc.read_text(encoding="utf-8"))
    }
    unread = sorted(f"{doc}: {variable}" for doc, variable in named if f'"{variable}"' not in code)
    assert not unread, f"environment variables no code reads: {unread}"


def test_the_readme_settings_table_lists_every_setting():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = sorted(variable for variable in settings_module.ENVIRONMENT if f"`{variable}`" not in table)
    assert not missing, f"README.md's Configuration table does not name {missing}"
    assert "`FORECAST_CONFIG`" in table


def _table_rows(text: str) -> dict[str, list[str]]:
    """name -> the row's cells, for every table row whose first cell names parameters (`A`, `B` or A)."""
    rows = {}
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for name in re.findall(r"[A-Z][A-Za-z]+", cells[0].replace("`", "")):
            rows[name] = cells
    return rows


def _literal(cell: str):
    """A default cell's value when it states one plainly (`14`, 0.3, (empty)); None for prose."""
    text = cell.strip()
    if text == "(empty)":
        return ""
    if re.fullmatch(r"`[^`]*`|[\d.]+", text):
        return text.strip("`")
    return None


def _same(stated: str, default) -> bool:
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return float(stated) == float(default)
        except ValueError:
            return False
    return stated == str(default)


@pytest.mark.parametrize(
    "doc, module",
    [("docs/sagemaker.md", training), ("docs/batch.md", batch)],
    ids=["training in sagemaker.md", "batch in batch.md"],
)
def test_the_parameter_tables_state_each_parameters_type_and_default(doc, module):
    # the tables write S3 defaults as templates: s3://<bucket>/<prefix>/...
    config = settings_module.resolve({"target": "local", "bucket": "<bucket>", "prefix": "<prefix>"}, environ={})
    section = (ROOT / doc).read_text(encoding="utf-8").split("## Parameters", 1)[-1]
    section = section.split("## Pipeline parameters", 1)[-1]
    rows = _table_rows(section)
    wrong = []
    for spec in module.parameter_specs(config):
        cells = rows.get(spec.name)
        if cells is None:
            wrong.append(f"{spec.name}: no row")
            continue
        if cells[1].strip("`") != spec.kind:
            wrong.append(f"{spec.name}: type {cells[1]!r}, the code says {spec.kind}")
        stated = _literal(cells[2])
        if stated is not None and not _same(stated, spec.default):
            wrong.append(f"{spec.name}: default {cells[2]!r}, the code says {spec.default!r}")
    assert not wrong, f"{doc}: " + "; ".join(wrong)


def test_the_readme_lists_every_training_parameter():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = readme.split("Pipeline parameters (", 1)[1].split("\n\n", 1)[0]
    config = settings_module.resolve({"target": "local"}, environ={})
    missing = [spec.name for spec in training.parameter_specs(config) if f"`{spec.name}`" not in paragraph]
    assert not missing, f"README.md's list of pipeline parameters misses {missing}"


def test_the_readme_forecast_toml_example_resolves_as_it_says(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = re.search(r"```toml\n(# forecast\.toml.*?)```", readme, re.S)
    assert example, "README.md has no forecast.toml example"
    config = tmp_path / "forecast.toml"
    config.write_text(example.group(1))
    resolved = settings_module.resolve(environ={}, config_file=str(config))
    assert resolved.target == "sagemaker" and resolved.region == "eu-west-1"
    assert resolved.tags["team"] == "planning" and resolved.endpoint_workers == 2


COMMAND = re.compile(
    r"python3? -m ((?:pipelines|deploy|processing|evaluation|benchmarks)\.[a-z_.]+)((?: +[^\s`#|;&)]+)*)"
)
NO_HELP = {"processing.entry"}  # runs the module it is given: its own flags are that module's


def _documented_commands() -> dict:
    """(module, tokens after it) of every `python -m <project module> ...` the docs show, by doc."""
    found: dict = {}
    for doc in DOCS:
        text = re.sub(r"\\\n\s*", " ", doc.read_text(encoding="utf-8"))  # shell line continuations
        for module, rest in COMMAND.findall(text):
            if module not in NO_HELP:
                found.setdefault(module, []).append((doc.relative_to(ROOT), rest.split()))
    return found


def _help(home: Path, module: str, *sub: str) -> str:
    import os
    import subprocess
    import sys

    env = dict(os.environ, FORECAST_HOME=str(home))
    result = subprocess.run(
        [sys.executable, "-m", module, *sub, "--help"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120
    )
    return result.stdout + result.stderr


@pytest.mark.integration
def test_every_flag_the_docs_show_is_an_option_of_that_command(tmp_path):
    unknown = []
    for module, uses in sorted(_documented_commands().items()):
        main_help = _help(tmp_path, module)
        assert "usage:" in main_help, f"python -m {module} --help printed no usage: {main_help[-300:]}"
        usage = main_help.split("options:")[0]  # its {a,b} groups: the subcommands (and choices)
        subcommands = {name for group in re.findall(r"\{([a-z_,-]+)\}", usage) for name in group.split(",")}
        helps: dict = {}  # subcommand -> its --help, run once
        for doc, tokens in uses:
            for token in subcommands.intersection(tokens) - set(helps):
                helps[token] = _help(tmp_path, module, token)
            texts = [main_help] + [helps[token] for token in subcommands.intersection(tokens)]
            for flag in (token.split("=")[0] for token in tokens if token.startswith("--")):
                if not any(re.search(re.escape(flag) + r"(?![\w-])", text) for text in texts):
                    unknown.append(f"{doc}: python -m {module} ... {flag}")
    assert not unknown, f"flags no such command takes: {sorted(set(unknown))}"


def _flags(parser: argparse.ArgumentParser):
    """Every option of a parser and of its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _flags(sub)
        elif action.option_strings:
            yield action


def test_every_flag_for_a_setting_names_its_environment_variables_and_config_key_in_one_form():
    from deploy import api, api_infrastructure, approve, endpoint, monitoring, teardown
    from pipelines import run

    parsers = {
        "pipelines.run": run.parser(),
        "deploy.api": api._parser(),
        "deploy.api_infrastructure": api_infrastructure._parser(),
        "deploy.approve": approve._parser(),
        "deploy.endpoint": endpoint._parser(),
        "deploy.monitoring": monitoring._parser(),
        "deploy.teardown": teardown._parser(),
    }
    wrong, checked = [], 0
    for command, parser in parsers.items():
        for action in _flags(parser):
            text = " ".join((action.help or "").split())
            # the setting a flag stands for: its name, or the one whose variable its help names
            named = {
                field for variable, field in settings_module.ENVIRONMENT.items() if re.search(rf"\b{variable}\b", text)
            }
            if action.dest in settings_module.CONFIG_KEYS:
                named.add(action.dest)
            for setting in named:
                checked += 1
                if settings_module.sources(setting) not in text:
                    wrong.append(f"python -m {command} {action.option_strings[0]}: {text!r}")
    assert checked >= 15  # --region, --target, --bucket, --port, --home, ... across the commands
    assert not wrong, "flags whose help does not say " + "'(or VARIABLE; key in forecast.toml)': " + "; ".join(wrong)


def test_sagemaker_md_lists_every_field_of_evaluates_champion_section():
    """docs/sagemaker.md's champion paragraph names each field Evaluate writes (the *_shown texts
    the ChallengerLost message reads included), so a reader of evaluation.json finds them all."""
    from evaluation import champion

    report = {"forecast_metrics": {"wape": {"value": 0.2}}}
    section = champion.comparison(report, report, {"model_package_version": 3}, "WAPE", 0.0)
    text = (ROOT / "docs" / "sagemaker.md").read_text(encoding="utf-8")
    paragraph = text.split("### Champion versus challenger", 1)[1].split("\n## ", 1)[0]
    missing = [key for key in section if f"`{key}`" not in paragraph]
    assert not missing, f"docs/sagemaker.md's champion section does not name {missing}"
