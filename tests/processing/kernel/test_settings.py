"""Settings resolve once: flags > FORECAST_* environment > config file > defaults."""

from __future__ import annotations

import pytest

from processing.kernel.settings import SettingsError, account_of, resolve


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "forecast.toml"
    path.write_text(
        'bucket = "from-config"\nprefix = "cfg-prefix"\nregion = "ap-south-1"\n'
        'role_arn = "arn:aws:iam::111111111111:role/config"\n[tags]\nteam = "planning"\n'
    )
    return str(path)


def test_given_all_sources_then_flags_beat_environment_beat_config_beat_defaults(config):
    environ = {"FORECAST_BUCKET": "from-env", "FORECAST_PREFIX": "env-prefix"}
    settings = resolve({"bucket": "from-flag", "config_file": config}, environ=environ)
    assert settings.bucket == "from-flag"  # flag over env and config
    assert settings.prefix == "env-prefix"  # env over config
    assert settings.region == "ap-south-1"  # config over default
    assert settings.training_pipeline_name == "DemandForecastTraining"  # default
    assert settings.tags == {"team": "planning"}
    assert settings.config_file == config


def test_given_region_spellings_then_forecast_region_then_aws_region_then_aws_default_region_win():
    assert resolve(environ={"AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"
    assert resolve(environ={"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-2"}).region == "eu-west-2"
    assert resolve({"region": "us-west-2"}, environ={"AWS_REGION": "eu-west-2"}).region == "us-west-2"


def test_given_a_role_then_the_target_is_sagemaker_and_the_reason_says_why():
    settings = resolve(environ={"FORECAST_ROLE_ARN": "arn:aws:iam::1:role/r"})
    assert (settings.target, settings.target_reason) == ("sagemaker", "a SageMaker role is configured")
    local = resolve(environ={})
    assert (local.target, local.target_reason) == ("local", "no SageMaker role is configured")
    forced = resolve({"target": "local"}, environ={"FORECAST_ROLE_ARN": "arn:aws:iam::1:role/r"})
    assert (forced.target, forced.target_reason) == ("local", "set by --target")


def test_given_sagemaker_without_settings_then_each_error_is_one_line_saying_how_to_set_it():
    with pytest.raises(
        SettingsError,
        match=r"^no AWS region: pass --region or set FORECAST_REGION, AWS_REGION or AWS_DEFAULT_REGION, the first one set; region in forecast.toml$",
    ):
        resolve({"target": "sagemaker"}, environ={}).require_sagemaker()
    with pytest.raises(SettingsError, match=r"^no SageMaker execution role: pass --role-arn or set FORECAST_ROLE_ARN"):
        resolve({"target": "sagemaker", "region": "eu-west-1"}, environ={}).require_sagemaker()
    with pytest.raises(SettingsError, match=r"^no S3 bucket: pass --bucket or set FORECAST_BUCKET"):
        resolve(
            {"target": "sagemaker", "region": "eu-west-1", "role_arn": "arn:aws:iam::1:role/r"}, environ={}
        ).require_sagemaker()


def test_given_a_bad_config_file_then_the_error_names_it(tmp_path):
    path = tmp_path / "forecast.toml"
    path.write_text('buckett = "x"\n')
    with pytest.raises(
        SettingsError, match=r"forecast.toml: unknown setting\(s\) buckett \(did you mean 'bucket'\?\);"
    ):
        resolve({"config_file": str(path)}, environ={})
    with pytest.raises(SettingsError, match="config file .*missing.toml does not exist"):
        resolve({"config_file": str(tmp_path / "missing.toml")}, environ={})


def test_given_tags_in_the_environment_then_they_parse_and_bad_ones_are_named():
    assert resolve(environ={"FORECAST_TAGS": "team=planning, cost=42"}).tags == {"team": "planning", "cost": "42"}
    with pytest.raises(SettingsError, match=r"\$FORECAST_TAGS: tags must look like key=value"):
        resolve(environ={"FORECAST_TAGS": "oops"})


def test_given_the_cli_flags_then_run_resolves_the_same_precedence(config):
    from pipelines.run import parser, settings_from_args

    args = parser().parse_args(["--config", config, "--prefix", "flag-prefix"])
    settings = settings_from_args(args, environ={"FORECAST_BUCKET": "from-env"})
    assert (settings.prefix, settings.bucket, settings.region) == ("flag-prefix", "from-env", "ap-south-1")
    assert settings.target == "sagemaker" and settings.target_reason == "a SageMaker role is configured"


def test_given_no_worker_setting_then_the_endpoint_uses_every_core():
    import os

    assert resolve(environ={}).effective_endpoint_workers == (os.cpu_count() or 1)
    assert resolve(environ={"FORECAST_ENDPOINT_WORKERS": "3"}).effective_endpoint_workers == 3


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_given_a_bad_worker_count_then_the_error_names_the_variable(value):
    with pytest.raises(SettingsError, match=r"\$FORECAST_ENDPOINT_WORKERS: endpoint_workers must be a whole number"):
        resolve(environ={"FORECAST_ENDPOINT_WORKERS": value})


def test_given_holiday_settings_then_country_and_columns_are_normalised():
    settings = resolve(environ={"FORECAST_HOLIDAY_COUNTRY": "de", "FORECAST_HOLIDAY_COLUMNS": "is_holiday, closed"})

    assert (settings.holiday_country, settings.holiday_columns) == ("DE", ("is_holiday", "closed"))
    assert resolve(environ={}).holiday_country == "US"
    assert resolve(environ={"FORECAST_HOLIDAY_COUNTRY": "none"}).holiday_country == ""
    with pytest.raises(SettingsError, match="holiday_country must be a two-letter ISO 3166 code"):
        resolve(environ={"FORECAST_HOLIDAY_COUNTRY": "USA"})


@pytest.mark.parametrize(
    "arn, account",
    [("arn:aws:iam::123456789012:role/x", "123456789012"), ("arn:aws:iam::000000000000:role/a/b", "000000000000")],
)
def test_given_a_role_arn_then_its_account_is_found(arn, account):
    assert account_of(arn) == account


def test_given_a_role_name_instead_of_an_arn_then_the_error_names_the_setting_and_the_expected_form():
    with pytest.raises(
        SettingsError,
        match=r"FORECAST_ROLE_ARN 'MyRole' has no account id; expected arn:aws:iam::<account>:role/<name>",
    ):
        account_of("MyRole")


def test_given_an_unknown_config_key_then_the_error_lists_each_known_key_once_as_typed_in_the_file(tmp_path):
    path = tmp_path / "forecast.toml"
    path.write_text('zzz = "x"\nregion = "eu-west-1"\n')
    with pytest.raises(SettingsError) as raised:
        resolve({"config_file": str(path)}, environ={})
    message = str(raised.value)
    assert "\n" not in message and "did you mean" not in message  # nothing close to zzz
    unknown, known = message.split("; known: ")
    assert unknown.endswith("unknown setting(s) zzz")
    keys = known.split(", ")
    assert keys.count("region") == 1 and len(keys) == len(set(keys))  # AWS_REGION & co. map to region too
    assert "target_reason" not in keys and "config_file" not in keys  # set by resolve, not by the user
    for key in keys:  # each one a config file accepts
        path.write_text(f"{key} = 1\n" if key.endswith(("_port", "_workers")) else f'{key} = "local"\n')
        try:
            resolve({"config_file": str(path)}, environ={})
        except SettingsError as error:
            assert "unknown setting" not in str(error), key
