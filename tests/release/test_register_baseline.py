"""`endpointctl register --baseline-data/--baseline-labels` on the local AWS (moto's
server): the version's baseline is computed through its own handler in the sandboxed
child, as `endpointctl baseline` computes it, stored beside its archive in the registry
bucket and named in its CustomerMetadataProperties; resolving the version finds it."""

from __future__ import annotations

import json
from urllib.parse import urlparse

import boto3
import pytest

from serving_config.model_package import look_up
from tests.cli.test_cli import endpointctl
from tests.release.test_registry import GROUP, REGISTRY_TEMPLATE


@pytest.fixture(scope="module")
def holdout(tmp_path_factory):
    """A model trained with its holdout beside it, as `train-sample` writes them."""
    from endpointctl.training import HOLDOUT_SUFFIX, LABELS_SUFFIX, sidecar, write_sample_model

    model = write_sample_model(tmp_path_factory.mktemp("with-holdout") / "model.tar.gz", rows=3000, seed=5,
                               holdout_rows=300)
    return model, sidecar(model, HOLDOUT_SUFFIX), sidecar(model, LABELS_SUFFIX)


@pytest.fixture(scope="module")
def registered(holdout, tmp_path_factory):
    from devtools.demo import local_aws

    model, data, labels = holdout
    with local_aws() as env:
        boto3.client("cloudformation").create_stack(StackName="rc-fraud-detection-dev",
                                                    TemplateBody=json.dumps(REGISTRY_TEMPLATE))
        done = endpointctl("register", "--model-data", str(model), "--baseline-data", str(data),
                           "--baseline-labels", str(labels))
        local = tmp_path_factory.mktemp("local") / "baseline.json"
        computed = endpointctl("baseline", "--model-data", str(model), "--data", str(data), "--labels", str(labels),
                               "--out", str(local))
        yield {"register": done, "local": local, "computed": computed, "env": env}


def _version(number: int) -> dict:
    sagemaker = boto3.client("sagemaker")
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    arn = next(s["ModelPackageArn"] for s in summaries if s["ModelPackageVersion"] == number)
    return sagemaker.describe_model_package(ModelPackageName=arn)


def _read(url: str) -> bytes:
    where = urlparse(url)
    return boto3.client("s3").get_object(Bucket=where.netloc, Key=where.path.lstrip("/"))["Body"].read()


def test_the_baseline_is_stored_beside_the_archive_and_named_on_the_version(registered):
    import hashlib

    from monitoring import baseline as baselines

    assert registered["register"].returncode == 0, registered["register"].stderr
    package = _version(1)
    properties = package["CustomerMetadataProperties"]
    url = properties["BaselineUrl"]
    archive = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert url.rsplit("/", 1)[0] == archive.rsplit("/", 1)[0]  # beside the archive: the registry readers' prefix
    assert url.rsplit("/", 1)[1].startswith("baseline-") and url.endswith(".json")
    body = _read(url)
    assert hashlib.sha256(body).hexdigest() == properties["BaselineSha256"]
    document = baselines.load(body.decode())
    assert document["rows"] == 300 and document["quality"]["recall"] is not None
    assert f"baseline {url}" in registered["register"].stdout


def test_it_is_the_baseline_endpointctl_baseline_computes(registered):
    """Scored through the handler packed in the version's archive, in the sandbox: the
    same figures as `endpointctl baseline` on the archive and the project's handler."""
    assert registered["computed"].returncode == 0, registered["computed"].stderr
    stored = json.loads(_read(_version(1)["CustomerMetadataProperties"]["BaselineUrl"]))
    assert stored == json.loads(registered["local"].read_text())


def test_resolving_the_version_finds_its_baseline(registered):
    endpointctl("approve", "1", "--reason", "baseline test")
    resolved = look_up(f"{GROUP}:latest-approved", region="us-east-1", registry_account=None,
                       client=boto3.client("sagemaker"))
    assert resolved.version == 1
    assert resolved.baseline_url == _version(1)["CustomerMetadataProperties"]["BaselineUrl"]
    assert resolved.to_context()["baseline_url"] == resolved.baseline_url  # recorded in cdk.context.json too


def test_bad_baseline_input_is_one_line_and_registers_nothing(registered, holdout, tmp_path):
    model, data, labels = holdout
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("0.1,0.2,0.3,0.4,0.5\n0.1,0.2\n")
    short_labels = tmp_path / "labels.csv"
    short_labels.write_text("0\n1\n")
    cases = [
        (("--baseline-labels", str(labels)), "endpointctl register: --baseline-labels: given without --baseline-data"),
        (("--baseline-data", str(tmp_path / "missing.csv")), "endpointctl register: --baseline-data "),
        (("--baseline-data", str(ragged)), f"endpointctl register: --baseline-data {ragged}: holdout line 2 has 2 values"),
        (("--baseline-data", str(data), "--baseline-labels", str(short_labels)),
         f"endpointctl register: --baseline-data {data}: the labels file has 2 labels; the holdout has 300 rows"),
    ]
    before = len(boto3.client("sagemaker").list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"])
    for extra, start in cases:
        result = endpointctl("register", "--model-data", str(model), *extra)
        assert result.returncode == 1 and result.stderr.startswith(start), (extra, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    after = boto3.client("sagemaker").list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    assert len(after) == before
