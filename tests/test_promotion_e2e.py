"""Deploy what was approved, end to end on the local AWS with the real cdk CLI: deploy dev
as configured (it creates the model registry), register three versions, approve the
second and reject the third, point dev at `<group>:latest-approved`, deploy it again, and
find the approved version deployed — recorded in cdk.context.json, and never a pending
or rejected one.

Each synth runs in its own project folder (a cdk.json with the configuration under test
and `app` pointing at this repository's app.py), so cdk.context.json lands there."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from serving_runtime.image import PROJECT_ROOT
from tests.conftest import CDK_JSON, serving_config
from tests.test_cli import endpointctl

pytestmark = pytest.mark.e2e
GROUP = "rc-fraud-detection"
LATEST = f"{GROUP}:latest-approved"
CONTEXT_KEY = f"model-package:account=caller:region=us-east-1:reference={LATEST}"


def project(folder: Path, serving: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    document = copy.deepcopy(CDK_JSON)
    document["app"] = f"{sys.executable} {PROJECT_ROOT / 'app.py'}"
    document["context"]["serving"] = serving
    (folder / "cdk.json").write_text(json.dumps(document, indent=1))
    return folder


def cdk_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    binary = PROJECT_ROOT / "node_modules" / ".bin" / "cdk"
    env = {**os.environ, "PATH": f"{binary.parent}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(binary), *args, "--no-notices", "--no-version-reporting"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


def deployed_models(stack_name: str) -> list[dict]:
    sagemaker = boto3.client("sagemaker")
    resources = boto3.client("cloudformation").list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    names = [r["PhysicalResourceId"].rsplit("/", 1)[-1] for r in resources if r["ResourceType"] == "AWS::SageMaker::Model"]
    return [sagemaker.describe_model(ModelName=name) for name in names]


@pytest.fixture(scope="module")
def second_model(tmp_path_factory):
    from endpointctl.training import write_sample_model

    return write_sample_model(tmp_path_factory.mktemp("model2") / "model.tar.gz", rows=3000, seed=99)


@pytest.fixture(scope="module")
def promotion(tmp_path_factory, sample_model, second_model):
    from endpointctl.demo import ACCOUNT, REGION, local_aws

    work = tmp_path_factory.mktemp("promotion")
    seen: dict = {}
    with local_aws():
        as_configured = serving_config(model_data=str(sample_model))
        first = project(work / "as-configured", as_configured)
        for step in (("bootstrap", f"aws://{ACCOUNT}/{REGION}"), ("deploy", "-c", "env=dev", "--require-approval", "never")):
            done = cdk_in(first, *step)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        for argv in (("register", "--model-data", str(sample_model)), ("register", "--model-data", str(second_model)),
                     ("approve", "2", "--reason", "better recall"), ("register", "--model-data", str(sample_model)),
                     ("reject", "3", "--reason", "trained on the wrong month")):
            done = endpointctl(*argv)
            assert done.returncode == 0, done.stderr
        sagemaker = boto3.client("sagemaker")
        seen["versions"] = {
            s["ModelPackageVersion"]: sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"])
            for s in sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
        }

        raw = copy.deepcopy(as_configured)
        raw["environments"]["dev"]["model_package"] = LATEST
        approved = project(work / "latest-approved", raw)
        seen["models_before"] = deployed_models("rc-fraud-detection-dev")
        seen["deploy"] = cdk_in(approved, "deploy", "-c", "env=dev", "--require-approval", "never")  # an update
        seen["context"] = json.loads((approved / "cdk.context.json").read_text())
        seen["models"] = deployed_models("rc-fraud-detection-dev")
        seen["outputs"] = {o["OutputKey"]: o["OutputValue"] for o in boto3.client("cloudformation").describe_stacks(
            StackName="rc-fraud-detection-dev")["Stacks"][0]["Outputs"]}

        # Version 2 is rejected after it was recorded: a synth from the record reproduces it,
        # a refreshed one (the pipeline's) finds nothing approved and stops.
        endpointctl("reject", "2", "--reason", "drift found after approval")
        seen["recorded_synth"] = cdk_in(approved, "synth", "-c", "env=dev", "--quiet")
        seen["recorded_template"] = json.loads((approved / "cdk.out" / "rc-fraud-detection-dev.template.json").read_text())
        seen["refreshed_synth"] = cdk_in(approved, "synth", "-c", "env=dev", "-c", "model_package_refresh=true", "--quiet")

        missing = copy.deepcopy(raw)
        missing["environments"]["dev"]["model_package"] = "no-such-group:latest-approved"
        seen["missing_group"] = cdk_in(project(work / "missing-group", missing), "synth", "-c", "env=dev", "--quiet")
    return seen


def test_latest_approved_deploys_the_approved_version_and_its_handler(promotion):
    assert promotion["deploy"].returncode == 0, promotion["deploy"].stderr[-3000:]
    approved = promotion["versions"][2]
    url = approved["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert url != promotion["versions"][1]["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    models = promotion["models"]
    assert len(models) == 2  # the endpoint's model and the batch model
    for model in models:
        container = model["PrimaryContainer"]
        assert container["ModelDataUrl"] == url
        assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
        assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"  # inside the archive
    assert promotion["outputs"]["ModelPackageArn"] == approved["ModelPackageArn"]
    # before: the configured model.tar.gz, as a CDK asset
    assert all(m["PrimaryContainer"]["ModelDataUrl"].startswith("s3://cdk-hnb659fds-assets-")
               for m in promotion["models_before"])


def test_the_resolution_is_recorded_in_cdk_context_json(promotion):
    recorded = promotion["context"][CONTEXT_KEY]
    approved = promotion["versions"][2]
    assert recorded["version"] == 2 and recorded["arn"] == approved["ModelPackageArn"]
    assert recorded["model_data_url"] == approved["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]


def test_pending_and_rejected_versions_are_never_resolved(promotion):
    assert promotion["versions"][1]["ModelApprovalStatus"] == "PendingManualApproval"
    assert promotion["versions"][3]["ModelApprovalStatus"] == "Rejected"  # newer than 2, yet not resolved
    assert promotion["context"][CONTEXT_KEY]["version"] == 2
    refreshed = promotion["refreshed_synth"]
    assert refreshed.returncode != 0
    assert (f"cdk synth: model_package: group '{GROUP}' has no Approved version (1 PendingManualApproval, "
            "2 Rejected); approve one with `endpointctl approve VERSION`\n") in refreshed.stderr
    assert "Traceback" not in refreshed.stderr


def test_a_recorded_resolution_is_reproduced_without_asking_aws(promotion):
    assert promotion["recorded_synth"].returncode == 0, promotion["recorded_synth"].stderr[-2000:]
    urls = {json.dumps(r["Properties"]["PrimaryContainer"]["ModelDataUrl"])
            for r in promotion["recorded_template"]["Resources"].values() if r["Type"] == "AWS::SageMaker::Model"}
    assert urls == {json.dumps(promotion["context"][CONTEXT_KEY]["model_data_url"])}


def test_a_group_that_does_not_exist_stops_the_synth_in_one_line(promotion):
    failed = promotion["missing_group"]
    assert failed.returncode != 0
    lines = [line for line in failed.stderr.splitlines() if line.startswith("cdk synth:")]
    assert lines == ["cdk synth: model_package: group 'no-such-group' does not exist (account (caller), region "
                     "us-east-1); deploy the stack that creates it, then `endpointctl register`"]
