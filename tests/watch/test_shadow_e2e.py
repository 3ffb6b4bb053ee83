"""prod with a challenger as a shadow, end to end on the local AWS (issue 20, item 5):
deploy with the real cdk CLI, read ShadowProductionVariants back from the deployed
endpoint config (local_aws fix 11), serve both deployed archives with
`serve --shadow-model-data`, send traffic, compare, destroy."""

from __future__ import annotations

import json
import time
import urllib.request

import boto3
import pytest

from endpointctl.cli import main
from devtools.demo import billable_leftovers, bootstrap, cdk, deploy_assembly, describe_deployment, local_aws, synth_variant
from endpointctl.local import Capture, LocalEndpoint, ShadowServing
from serving_config.config import load_config

pytestmark = pytest.mark.e2e


def test_prod_with_a_shadow_deploys_serves_both_archives_and_compares(tmp_path, sample_model, retrained_model, capsys):
    prod = load_config().environment("prod")
    endpoint = {**prod.endpoint.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True),
                "kind": "instance", "shadow": {"name": "Challenger", "model_data": str(retrained_model),
                                               "sampling_percent": 100, "instance_count": 1}}
    with local_aws():
        bootstrap(tmp_path)
        assembly = synth_variant(tmp_path / "cdk.out", "prod", model_data=sample_model, endpoint=endpoint)
        deploy_assembly(assembly, prod.stack_name)
        deployed = describe_deployment("prod")
        (shadow,) = deployed.endpoint_config["ShadowProductionVariants"]
        (production,) = deployed.endpoint_config["ProductionVariants"]
        assert (shadow["VariantName"], shadow["InitialVariantWeight"]) == ("Challenger", production["InitialVariantWeight"])
        sagemaker = boto3.client("sagemaker")
        challenger = sagemaker.describe_model(ModelName=shadow["ModelName"])["PrimaryContainer"]
        champion = deployed.model["PrimaryContainer"]
        assert challenger["ModelDataUrl"] != champion["ModelDataUrl"]

        capture = tmp_path / "capture"
        with LocalEndpoint(model_data=champion["ModelDataUrl"], code=champion["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"],
                           capture=Capture(str(capture), prod.endpoint_name, production["VariantName"]),
                           shadow=ShadowServing(challenger["ModelDataUrl"], "Challenger", 100)) as served:
            for i in range(10):
                body = json.dumps({"instances": [[0.2 * i, 1.2, 0.3, 0.8, 0.1]]}).encode()
                request = urllib.request.Request(f"{served.url}/invocations", data=body, method="POST", headers={
                    "Content-Type": "application/json", "X-Amzn-SageMaker-Inference-Id": f"e2e-{i}"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert response.status == 200
            folder = capture / prod.endpoint_name / "Challenger"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and sum(
                    len(p.read_text().splitlines()) for p in folder.rglob("*.jsonl")) < 10:
                time.sleep(0.2)
        assert main(["compare", "--capture", str(capture), "--production", production["VariantName"],
                     "--shadow", "Challenger", "--format", "json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["paired"] == 10 and report["shadow"]["records"] == 10

        cdk("destroy", prod.stack_name, "--app", str(assembly), "--force", output=tmp_path, quiet=True)
        assert billable_leftovers() == {"endpoints": [], "endpoint configs": [], "models": []}
