"""Environments of any name: a `tier` (dev, staging, prod) selects today's defaults and
rules, dev, staging and prod are their own tier, `qa` and `prod-dr` synthesize with the
real CLI and appear in endpointctl, and the pipeline deploys `pipeline.stages` in order.
(Their templates are snapshotted with the others: tests/stack/test_snapshots.py.)"""

from __future__ import annotations

import copy
import json
import re

import pytest

from serving_config.config import ConfigError, parse_config
from tests.conftest import CDK_JSON, DR_REGION, serving_settings, with_qa_and_dr

CONNECTION = "arn:aws:codeconnections:eu-west-1:111111111111:connection/abcd1234-ab12-cd34-ef56-abcdef123456"


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(raw)
    return raised.value.problems


def named() -> dict:
    return with_qa_and_dr(serving_settings())


# ------------------------------------------------------------------ tiers


def test_dev_staging_and_prod_are_their_own_tier_without_saying_so():
    config = parse_config(serving_settings())
    assert {name: env.tier for name, env in config.environments.items()} == {
        "dev": "dev", "staging": "staging", "prod": "prod"}
    raw = serving_settings()
    raw["environments"]["prod"]["tier"] = "prod"  # saying it is allowed
    assert parse_config(raw).environment("prod").tier == "prod"


def test_a_tier_selects_the_defaults():
    raw = named()
    raw["environments"]["sandbox"] = {"tier": "dev"}
    raw["model_registry"] = {"environment": "dev"}
    config = parse_config(raw)
    qa, dr, sandbox = (config.environment(name) for name in ("qa", "prod-dr", "sandbox"))
    assert (qa.tier, dr.tier, sandbox.tier) == ("staging", "prod", "dev")
    assert (qa.retain_data, qa.log_retention_days, qa.alarms.idle_hours, qa.alarms.required) == (True, 30, None, False)
    assert (dr.retain_data, dr.log_retention_days, dr.alarms.required, dr.region) == (True, 365, True, DR_REGION)
    assert (sandbox.retain_data, sandbox.alarms.idle_hours) == (False, 24)  # disposable, and says when idle
    assert sandbox.network.isolation and qa.network.isolation and dr.network.isolation


def test_a_prod_tier_environment_keeps_prods_rules():
    raw = named()
    del raw["environments"]["prod-dr"]["alarms"]
    (found,) = problems(raw)
    assert found.startswith("environments.prod-dr.alarms.email: got null; allowed: an e-mail address")
    raw = named()
    raw["environments"]["prod-dr"]["endpoint"]["instance_count"] = 1
    del raw["environments"]["prod-dr"]["endpoint"]["autoscaling"]  # (which would refuse one instance too)
    (found,) = problems(raw)
    assert found.startswith("environments.prod-dr.endpoint.instance_count: got 1; allowed: at least 2 in prod")


# ------------------------------------------------------- refused, one line each


@pytest.mark.parametrize("environments, expected", [
    ({"qa": {}}, 'environments.qa.tier: got null; allowed: "dev" | "staging" | "prod" '
                 "(an environment not named dev, staging or prod says its tier)"),
    ({"qa": {"tier": "test"}}, 'environments.qa.tier: got "test"; allowed: "dev" | "staging" | "prod" '
                               "(an environment not named dev, staging or prod says its tier)"),
    ({"staging": {"tier": "prod", "alarms": {"email": "oncall@acme.example"}}},
     'environments.staging.tier: got "prod"; allowed: "staging" (an environment named after a tier has it)'),
    ({"sandbox": {"tier": "dev"}}, "model_registry.environment: got null; allowed: one of dev, sandbox: each is of "
                                   "tier dev and could host the model registry; name the one whose stack creates it"),
    ({"QA": {"tier": "staging"}}, 'environments.QA: got "QA"; allowed: lowercase letters, digits and single hyphens, '
                                  "starting with a letter (e.g. qa, prod-dr)"),
    ({"prod--dr": {"tier": "staging"}}, 'environments.prod--dr: got "prod--dr"; allowed: lowercase letters, digits '
                                        "and single hyphens, starting with a letter (e.g. qa, prod-dr)"),
    ({"disaster-recovery": {"tier": "staging"}}, 'environments.disaster-recovery: got "disaster-recovery"; allowed: a '
     "shorter environment name: its inference role name 'SageMaker-RiskControl-FraudDetection-DisasterRecovery-"
     "InferenceRole' has 67 characters; at most 64"),
])
def test_a_bad_environment_is_one_line(environments, expected):
    raw = serving_settings()
    for name, env in environments.items():
        raw["environments"][name] = {**raw["environments"].get(name, {}), **env}
    assert problems(raw) == [expected]


def test_the_registry_host_is_named_or_the_only_dev_tier_environment():
    assert parse_config(named()).registry_environment == "dev"
    raw = named()
    raw["environments"]["sandbox"] = {"tier": "dev"}
    raw["model_registry"] = {"environment": "sandbox"}
    assert parse_config(raw).registry_environment == "sandbox"
    only_named = {**serving_settings(), "environments": {"qa": {"tier": "staging"}, "prod-dr": {"tier": "prod",
                  "alarms": {"email": "oncall@acme.example"}}}}
    assert parse_config(only_named).registry_environment == "qa"  # no dev tier: the first, as before


def test_the_json_schema_takes_named_environments_with_a_tier():
    import jsonschema

    from serving_config.schema import schemas

    (serving,) = [schema for path, schema in schemas().items() if path.name == "serving.schema.json"]
    validator = jsonschema.Draft202012Validator(serving)
    assert not list(validator.iter_errors(named()))
    for name, env in (("qa", {}), ("qa", {"tier": "uat"}), ("QA", {"tier": "staging"}), ("prod", {"tier": "dev"})):
        raw = named()
        raw["environments"][name] = env
        assert list(validator.iter_errors(raw)), (name, env)


# ------------------------------------------------------------------- names


def test_every_derived_name_fits_at_the_longest_accepted_name():
    """The longest name accepted for this team and project (13 letters: the role names'
    64 are the tightest) fits every limit; one more letter is refused in one line."""
    from serving_config.settings import SAGEMAKER_NAME

    raw = serving_settings()
    raw["environments"]["abcdefghijklm"] = {"tier": "staging", "endpoint": {"kind": "serverless"}}
    env = parse_config(raw).environment("abcdefghijklm")
    for what, name, _, limit in env.limited_names():
        assert len(name) <= limit, (what, name)
    job = env.transform_job_name()
    assert re.fullmatch(SAGEMAKER_NAME.strip("^$"), job) and len(job) <= 63
    assert env.env_camel == "Abcdefghijklm"
    raw["environments"]["abcdefghijklmn"] = raw["environments"].pop("abcdefghijklm")
    assert len(problems(raw)) == 1


def test_names_of_a_hyphenated_environment():
    env = parse_config(named()).environment("prod-dr")
    assert (env.stack_name, env.endpoint_name, env.bucket_name) == (
        "rc-fraud-detection-prod-dr", "rc-fraud-detection-prod-dr-realtime", "acme-sm-rc-fraud-detection-prod-dr")
    assert env.env_camel == "ProdDr"
    assert env.inference_role_name == "SageMaker-RiskControl-FraudDetection-ProdDr-InferenceRole"
    assert env.tags["Environment"] == "prod-dr"


# ----------------------------------------------------------------- pipeline


def with_pipeline(raw: dict, stages: list[str] | None = None) -> dict:
    raw["pipeline"] = {"connection_arn": CONNECTION, "repository": "acme/fraud-endpoint"}
    if stages is not None:
        raw["pipeline"]["stages"] = stages
    return raw


def test_the_pipeline_deploys_by_tier_unless_stages_say_otherwise():
    config = parse_config(with_pipeline(named()))
    assert [e.name for e in config.pipeline_environments] == ["dev", "staging", "qa", "prod", "prod-dr"]
    config = parse_config(with_pipeline(named(), ["qa", "dev", "prod-dr"]))
    assert [e.name for e in config.pipeline_environments] == ["qa", "dev", "prod-dr"]
    assert problems(with_pipeline(named(), ["dev", "uat", "dev"])) == [
        'pipeline.stages[1]: got "uat"; allowed: an environment configured (dev, staging, prod, qa, prod-dr), each once',
        'pipeline.stages[2]: got "dev"; allowed: an environment configured (dev, staging, prod, qa, prod-dr), each once',
    ]
    assert problems(with_pipeline(named(), [])) == ["pipeline.stages: got []; allowed: a non-empty list of environments"]


def test_the_pipeline_stack_runs_its_stages_in_the_configured_order():
    """In process, without the nag packs (tests/release/test_pipeline.py runs them on its own)."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from stacks.app_stacks import build_stacks
    from tests.release.test_pipeline import ARTIFACT, S3_ARCHIVE_OPEN

    raw = with_pipeline(with_qa_and_dr(serving_settings(model_data=ARTIFACT)), ["dev", "qa", "staging", "prod-dr", "prod"])
    for i, env in enumerate(raw["environments"].values()):
        env.update(account=f"{i + 1}" * 12, region=env.get("region") or "eu-west-1", network=S3_ARCHIVE_OPEN)
    config = parse_config(raw)
    stack = build_stacks(cdk.App(context=CDK_JSON["context"]), config, env_name="dev", pipeline=True, refresh=False)
    (pipeline,) = Template.from_stack(stack).find_resources("AWS::CodePipeline::Pipeline").values()
    stages = [s["Name"] for s in pipeline["Properties"]["Stages"]]
    assert [s for s in stages if s not in ("Source", "Build", "UpdatePipeline", "Assets")] == [
        "Dev", "Qa", "Staging", "ProdDr", "Prod"]
    actions = {s["Name"]: [a["Name"] for a in sorted(s["Actions"], key=lambda a: a["RunOrder"])]
               for s in pipeline["Properties"]["Stages"]}
    # A release plan and an approval before every environment of tier prod.
    for stage in ("ProdDr", "Prod"):
        assert actions[stage][:2] == ["ReleasePlan", "ApproveProd"] and actions[stage][-1] == f"SmokeTest{stage}"
    assert "ReleasePlan" not in actions["Qa"] and actions["Qa"][-1] == "SmokeTestQa"


# ------------------------------------------------------------- endpointctl


@pytest.fixture
def qa_and_dr_cdk_json(tmp_path, monkeypatch):
    import serving_config.config

    document = copy.deepcopy(CDK_JSON)
    document["context"]["serving"] = named()
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps(document))
    monkeypatch.setattr(serving_config.config, "CDK_JSON", path)
    return path


def test_endpointctl_takes_any_configured_environment(qa_and_dr_cdk_json, capsys):
    from endpointctl.cli import main

    assert main(["cost", "--env", "prod-dr"]) == 0
    assert capsys.readouterr().out.startswith("rc-fraud-detection-prod-dr (instance)")
    assert main(["cost", "--env", "qa"]) == 0
    assert capsys.readouterr().out.startswith("rc-fraud-detection-qa (serverless)")
    assert main(["status", "--env", "uat"]) == 1
    err = capsys.readouterr().err
    assert err == "endpointctl status: env: 'uat' is not an environment; allowed: dev, staging, prod, qa, prod-dr\n"


def test_endpointctl_help_lists_no_fixed_environments(capsys):
    from endpointctl.cli import build_parser

    for command in ("status", "cost", "transform", "smoke-test", "register"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        assert "dev, staging, prod" not in capsys.readouterr().out


# ------------------------------------------------- app.py and the real cdk CLI


def test_cdk_synth_c_env_qa_and_prod_dr(tmp_path, sample_model):
    from tests.release.test_promotion_e2e import cdk_in, project

    folder = project(tmp_path / "named", with_qa_and_dr(serving_settings(model_data=str(sample_model))))
    for env, endpoint, region in (("qa", "rc-fraud-detection-qa-serverless", None),
                                  ("prod-dr", "rc-fraud-detection-prod-dr-realtime", DR_REGION)):
        done = cdk_in(folder, "synth", "-c", f"env={env}", "--quiet")
        assert done.returncode == 0, done.stderr[-3000:]
        manifest = json.loads((folder / "cdk.out" / "manifest.json").read_text())
        artifact = manifest["artifacts"][f"rc-fraud-detection-{env}"]
        assert artifact["environment"].endswith(f"/{region or 'unknown-region'}")
        template = json.loads((folder / "cdk.out" / f"rc-fraud-detection-{env}.template.json").read_text())
        (config,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Endpoint"]
        assert config["Properties"]["EndpointName"] == endpoint


def test_cdk_synth_refuses_an_unknown_tier_and_two_registry_hosts_one_line_each(tmp_path):
    from tests.release.test_promotion_e2e import cdk_in, project

    for environments, problem in (
        ({"qa": {"tier": "uat"}}, 'environments.qa.tier: got "uat"; allowed: "dev" | "staging" | "prod" '
                                  "(an environment not named dev, staging or prod says its tier)"),
        ({"sandbox": {"tier": "dev"}}, "model_registry.environment: got null; allowed: one of dev, sandbox: each is "
                                       "of tier dev and could host the model registry; name the one whose stack creates it"),
    ):
        raw = serving_settings()
        raw["environments"].update(environments)
        failed = cdk_in(project(tmp_path / next(iter(environments)), raw), "synth", "-c", "env=dev", "--quiet")
        assert failed.returncode != 0 and "Traceback" not in failed.stderr
        assert [line for line in failed.stderr.splitlines() if line.startswith(("cdk synth", "  - "))] == [
            "cdk synth: invalid configuration in cdk.json context 'serving':", f"  - {problem}"]


# ------------------------------------------------------------ the local AWS


@pytest.mark.e2e
def test_qa_and_prod_dr_deploy_on_the_local_aws_and_answer_endpointctl(tmp_path, sample_model, monkeypatch, capsys):
    """qa in the local AWS's region, prod-dr in DR_REGION (bootstrapped there too), each
    deployed with the real CLI; endpointctl finds each in its own region."""
    import boto3

    import serving_config.config
    from endpointctl.cli import main
    from devtools.demo import ACCOUNT, bootstrap, cdk, local_aws
    from tests.release.test_promotion_e2e import cdk_in, project

    folder = project(tmp_path / "named", with_qa_and_dr(serving_settings(model_data=str(sample_model))))
    monkeypatch.setattr(serving_config.config, "CDK_JSON", folder / "cdk.json")
    with local_aws():
        bootstrap(tmp_path)
        cdk("bootstrap", f"aws://{ACCOUNT}/{DR_REGION}", output=tmp_path / "bootstrap-dr.out", quiet=True, cwd=tmp_path)
        for env in ("qa", "prod-dr"):
            done = cdk_in(folder, "deploy", "-c", f"env={env}", "--require-approval", "never")
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        capsys.readouterr()

        assert main(["status", "--env", "qa"]) == 0
        assert capsys.readouterr().out.startswith("endpoint rc-fraud-detection-qa-serverless: InService")
        assert main(["status", "--env", "prod-dr"]) == 0
        status = capsys.readouterr().out
        assert status.startswith("endpoint rc-fraud-detection-prod-dr-realtime: InService")
        assert "variant AllTraffic: 2 instance(s)" in status

        home = {s["StackName"] for s in boto3.client("cloudformation").describe_stacks()["Stacks"]}
        dr = {s["StackName"] for s in boto3.client("cloudformation", region_name=DR_REGION).describe_stacks()["Stacks"]}
        assert "rc-fraud-detection-qa" in home and "rc-fraud-detection-prod-dr" not in home
        assert "rc-fraud-detection-prod-dr" in dr
        sagemaker = boto3.client("sagemaker", region_name=DR_REGION)
        endpoint = sagemaker.describe_endpoint(EndpointName="rc-fraud-detection-prod-dr-realtime")
        config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        assert config["DataCaptureConfig"]["DestinationS3Uri"] == "s3://acme-sm-rc-fraud-detection-prod-dr/data-capture/"
