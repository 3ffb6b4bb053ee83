"""The monitor's wiring in the templates (issue 21's gaps): an hour without capture is
no_data, not a failed run; a quality run without labels runs without that input; an
environment deploying a registry version is watched against that version's baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CONTEXT, serving_settings
from tests.watch.test_monitoring_stack import _definition, _policy_statements

REGISTRY_BUCKET = "acme-sm-rc-fraud-detection-registry"
ARCHIVE_KEY = "model-registry/rc-fraud-detection/0123456789abcdef"
BASELINE_URL = f"s3://{REGISTRY_BUCKET}/{ARCHIVE_KEY}/baseline-fedcba9876543210.json"
REGISTRY_ACCOUNT = "111111111111"


def _workflow(template: dict) -> dict:
    return json.loads(_definition(template).replace('"<token>"', '"TOKEN"').replace("<token>", "TOKEN"))


# ------------------------------------------------------------- an hour without capture

def test_the_window_is_listed_before_any_job_and_an_empty_one_skips_it(synthesized):
    states = _workflow(synthesized.templates["prod"])["States"]
    assert states["Names"]["Next"] == "FindCapture"
    find = states["FindCapture"]
    assert find["Resource"] == "arn:aws:states:::aws-sdk:s3:listObjectsV2"
    assert find["Arguments"]["MaxKeys"] == 1
    # The same prefix the capture input downloads: the production variant's, the window's partition.
    assert find["Arguments"]["Prefix"] == "{% 'data-capture/rc-fraud-detection-prod-realtime/AllTraffic/' & $partition %}"
    capture_input = next(i for i in states["RunDriftJob"]["Arguments"]["ProcessingInputs"] if i["InputName"] == "capture")
    assert capture_input["S3Input"]["S3Uri"].endswith(" & $partition %}")
    assert "data-capture/rc-fraud-detection-prod-realtime/AllTraffic/" in capture_input["S3Input"]["S3Uri"]
    assert find["Assign"] == {"captured": "{% $states.result.KeyCount > 0 %}"} and find["Next"] == "WhichCheck"
    choices = states["WhichCheck"]["Choices"]
    assert choices[0] == {"Condition": "{% $not($captured) %}", "Next": "PublishNoData"}  # first: drift and quality alike
    assert choices[1]["Next"] == "FindLabels" and states["WhichCheck"]["Default"] == "RunDriftJob"


def test_no_data_publishes_what_the_job_would_for_an_empty_window_and_ends_the_run(synthesized, sample_model):
    """The workflow's own Records 0 is monitoring.monitor.metric_data of a no_data report,
    dimension for dimension: the silent-monitor alarm reads the same series either way."""
    from endpointctl.training import BASELINE_SUFFIX, sidecar
    from monitoring import baseline as baselines
    from monitoring.monitor import Monitor, metric_data

    report = Monitor(baselines.load(str(sidecar(sample_model, BASELINE_SUFFIX)))).report()
    assert report["verdict"] == "no_data"
    dimensions = {"EndpointName": "rc-fraud-detection-prod-realtime", "VariantName": "AllTraffic",
                  "Check": "{% $kind %}"}
    expected = metric_data(report, dimensions)
    no_data = _workflow(synthesized.templates["prod"])["States"]["PublishNoData"]
    assert no_data["Resource"] == "arn:aws:states:::aws-sdk:cloudwatch:putMetricData" and no_data["End"] is True
    assert no_data["Arguments"]["Namespace"] == "FraudModel/Monitoring"
    assert no_data["Arguments"]["MetricData"] == expected  # [Records 0, Count]
    assert no_data["Output"]["verdict"] == "no_data" and no_data["Output"]["records"] == 0
    # With a shadow, the shadow's series says no data too.
    shadow = _workflow(synthesized.templates["prod-shadow"])["States"]["PublishNoData"]["Arguments"]["MetricData"]
    assert [next(d["Value"] for d in m["Dimensions"] if d["Name"] == "VariantName") for m in shadow] == [
        "AllTraffic", "Challenger"]


def test_a_quality_run_without_labels_runs_without_the_labels_input(synthesized):
    states = _workflow(synthesized.templates["prod"])["States"]
    find = states["FindLabels"]
    assert find["Resource"] == "arn:aws:states:::aws-sdk:s3:listObjectsV2"
    assert (find["Arguments"]["Prefix"], find["Arguments"]["MaxKeys"], find["Next"]) == ("ground-truth/", 1, "RunQualityJob")
    labels = find["Assign"]["labelInputs"]
    assert labels.startswith("{% $states.result.KeyCount > 0 ? [{") and labels.endswith("}] : [] %}")
    assert '"InputName": "ground-truth"' in labels and '"LocalPath": "/opt/ml/processing/input/ground-truth"' in labels
    inputs = states["RunQualityJob"]["Arguments"]["ProcessingInputs"]
    assert inputs.startswith("{% $append([") and inputs.endswith("], $labelInputs) %}")
    for name in ("code", "baseline", "capture"):
        assert f'"InputName": "{name}"' in inputs
    # The job still names the folder: monitoring.job reads a missing one as no labels.
    assert '"--ground-truth", "/opt/ml/processing/input/ground-truth"' in \
        states["RunQualityJob"]["Arguments"]["AppSpecification"]["ContainerArguments"]


def test_jsonata_of_keeps_json_as_json_and_unwraps_templates():
    from sagemaker_serving.monitoring import jsonata_of

    plain = {"a": [1, "two", None, True], "b": {"c": 0.5}}
    assert json.loads(jsonata_of(plain)) == plain  # JSON is JSONata: the constants are unchanged
    assert jsonata_of({"S3Uri": "{% 's3://b/' & $partition %}"}) == "{\"S3Uri\": ('s3://b/' & $partition)}"


def test_the_workflow_lists_only_this_endpoints_capture_and_the_labels(synthesized):
    by_sid = {s.get("Sid"): s for s in _policy_statements(synthesized.templates["prod"], "MonitoringWorkflowRole")}
    listing = by_sid["ListCaptureAndLabels"]
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [
        "data-capture/rc-fraud-detection-prod-realtime/*", "ground-truth/*"]}}


def test_the_silent_alarm_fires_on_hours_with_no_record_as_on_no_report(synthesized):
    silent = next(r["Properties"] for r in synthesized.resources("prod", "AWS::CloudWatch::Alarm").values()
                  if r["Properties"].get("AlarmName") == "rc-fraud-detection-prod-realtime-monitor-silent")
    assert (silent["MetricName"], silent["Statistic"], silent["Threshold"]) == ("Records", "Maximum", 1)
    assert silent["ComparisonOperator"] == "LessThanThreshold" and silent["TreatMissingData"] == "breaching"


# ------------------------------------------------------------- a registry version's baseline

def _package(baseline_url: str | None):
    from serving_config.model_package import ResolvedPackage
    from serving_runtime.image import image_uri

    return ResolvedPackage(
        arn=f"arn:aws:sagemaker:us-east-1:{REGISTRY_ACCOUNT}:model-package/rc-fraud-detection/4",
        group="rc-fraud-detection", version=4, model_data_url=f"s3://{REGISTRY_BUCKET}/{ARCHIVE_KEY}/model.tar.gz",
        image=image_uri(CONTEXT["serving"]["framework_version"], "us-east-1"), baseline_url=baseline_url)


@pytest.fixture(scope="module")
def package_templates(tmp_path_factory, sample_model):
    """prod deploying version 4 of the registry in another account: with its baseline,
    without one, and with one named in config (which wins)."""
    import aws_cdk as cdk

    from serving_config.config import parse_config
    from stacks.checks import add_nag_packs
    from stacks.serving_stack import ServingStack

    app = cdk.App(context=CONTEXT, outdir=str(tmp_path_factory.mktemp("package.out")))
    raw = serving_settings(model_data=str(sample_model))  # the package's archive replaces it
    raw["environments"]["prod"].update(account="333333333333", region="us-east-1",
                                       model_package="rc-fraud-detection:latest-approved")
    named = json.loads(json.dumps(raw))
    named_baseline = tmp_path_factory.mktemp("named") / "named.baseline.json"
    named_baseline.write_text("{}")
    named["environments"]["prod"]["monitoring"] = {"baseline": str(named_baseline)}
    stacks = {}
    for case, serving, url in (("with", raw, BASELINE_URL), ("without", raw, None), ("named", named, BASELINE_URL)):
        stacks[case] = ServingStack(app, f"Prod{case.capitalize()}", environment=parse_config(serving).environment("prod"),
                                    model_package=_package(url))
    add_nag_packs(app)
    assembly = app.synth()  # raises on any unacknowledged cdk-nag finding
    return {case: (assembly.get_stack_artifact(s.artifact_id).template, s) for case, s in stacks.items()}


def test_a_registry_version_is_watched_against_its_own_baseline(package_templates):
    template, _ = package_templates["with"]
    states = _workflow(template)["States"]
    for state in ("RunDriftJob",):
        baseline = next(i for i in states[state]["Arguments"]["ProcessingInputs"] if i["InputName"] == "baseline")
        assert baseline["S3Input"]["S3Uri"] == BASELINE_URL
        assert baseline["S3Input"]["LocalPath"] == "/opt/ml/processing/input/baseline"
    assert f'"S3Uri": "{BASELINE_URL}"' in states["RunQualityJob"]["Arguments"]["ProcessingInputs"]


def test_the_job_reads_exactly_that_object_and_decrypts_through_s3_only(package_templates):
    template, _ = package_templates["with"]
    by_sid = {s.get("Sid"): s for s in _policy_statements(template, "MonitoringJobRole")}
    assert by_sid["ReadBaseline"]["Action"] == "s3:GetObject"
    assert by_sid["ReadBaseline"]["Resource"] == f"arn:aws:s3:::{BASELINE_URL.removeprefix('s3://')}"
    decrypt = by_sid["DecryptRegistryArchives"]
    assert decrypt["Action"] == "kms:Decrypt"
    assert json.dumps(decrypt["Resource"]).count(f":kms:us-east-1:{REGISTRY_ACCOUNT}:key/*") == 1
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": {
        "Fn::Join": ["", ["s3.us-east-1.", {"Ref": "AWS::URLSuffix"}]]}}}


def test_a_version_registered_without_a_baseline_says_why_it_is_not_watched(package_templates):
    from aws_cdk.assertions import Annotations, Match

    template, stack = package_templates["without"]
    assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    found = Annotations.from_stack(stack).find_info("*", Match.string_like_regexp(
        "no live-model monitor: version 4 of rc-fraud-detection was registered without a baseline: register it with "
        "`endpointctl register --baseline-data holdout.csv`"))
    assert len(found) == 1


def test_a_baseline_named_in_config_wins_over_the_versions(package_templates):
    template, _ = package_templates["named"]
    by_sid = {s.get("Sid"): s for s in _policy_statements(template, "MonitoringJobRole")}
    assert REGISTRY_BUCKET not in json.dumps(by_sid["ReadBaseline"]["Resource"])  # the asset, not the registry
    baseline = next(i for i in _workflow(template)["States"]["RunDriftJob"]["Arguments"]["ProcessingInputs"]
                    if i["InputName"] == "baseline")
    assert baseline["S3Input"]["S3Uri"] != BASELINE_URL


def test_a_baseline_url_that_is_not_an_s3_json_object_is_refused():
    from sagemaker_serving.monitoring import MonitorBaseline

    with pytest.raises(ValueError, match=r"^monitoring baseline: got 's3://bucket/'; allowed: s3://bucket/key.json$"):
        MonitorBaseline.from_registered_package("s3://bucket/")
    assert Path(MonitorBaseline.from_registered_package(BASELINE_URL).key).name.startswith("baseline-")


@pytest.mark.parametrize("case", ["prod", "prod-shadow", "prod-pinned-imported"])
def test_every_state_is_reachable_and_every_path_ends(synthesized, case):
    """Each Next, Default and Choice names a state; every state is reached from StartAt;
    the ends are the two publishing states."""
    workflow = _workflow(synthesized.templates[case])
    states = workflow["States"]

    def successors(state: dict) -> list[str]:
        return [t for t in [state.get("Next"), state.get("Default"), *(c["Next"] for c in state.get("Choices", []))] if t]

    seen, todo = set(), [workflow["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in seen:
            assert name in states, f"{name} is named but not defined"
            seen.add(name)
            todo += successors(states[name])
    assert seen == set(states)
    assert {n for n, s in states.items() if s.get("End")} == {"PublishMetrics", "PublishNoData"}


def test_a_shadows_hour_is_its_own_input_and_only_when_it_holds_capture(synthesized):
    """The job monitors and compares the shadow from its own capture folder: listed like
    production's, handed to the job only when the hour holds some (an empty S3 prefix is
    not an input to give SageMaker)."""
    states = _workflow(synthesized.templates["prod-shadow"])["States"]
    assert states["FindCapture"]["Next"] == "FindShadowCapture"
    find = states["FindShadowCapture"]
    assert find["Resource"] == "arn:aws:states:::aws-sdk:s3:listObjectsV2" and find["Next"] == "WhichCheck"
    assert "data-capture/rc-fraud-detection-prod-realtime/Challenger/" in find["Arguments"]["Prefix"]
    assert '"InputName": "shadow-capture"' in find["Assign"]["shadowInputs"]
    for job in ("RunDriftJob", "RunQualityJob"):
        assert "$shadowInputs" in states[job]["Arguments"]["ProcessingInputs"]
    assert "FindShadowCapture" not in _workflow(synthesized.templates["prod"])["States"]
