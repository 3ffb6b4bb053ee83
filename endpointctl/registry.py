"""`endpointctl register | approve | reject`: versions of the model in SageMaker's
model registry, in the model package group the registry environment's stack creates.

`register` preflights the archive, uploads it and the handler's code archive
(content-addressed, so the same bytes are uploaded once), and creates a version with
the image, archives and container environment the endpoint uses, PendingManualApproval,
and a summary of how it decides compared with the currently approved version (the
release plan's scorer and comparison: each archive served through its handler in an
untrusted child, since a pickle is code).
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from endpointctl.aws import client, describe, environment, stack_outputs
from endpointctl.errors import CommandError
from serving_runtime.bundle import source_bundle_bytes
from serving_runtime.image import DEFAULT_PROGRAM, HANDLER_DIR, image_uri
from serving_runtime.preflight import preflight_in_subprocess
from stacks.model_package import list_versions

REGISTRY_PREFIX = "model-registry"
CONTENT_TYPES = ["application/json", "text/csv"]


@dataclass(frozen=True)
class Registry:
    group: str
    bucket: str
    region: str


def registry(env_name: str) -> Registry:
    outputs = stack_outputs(env_name)
    if "ModelPackageGroupName" not in outputs:
        raise CommandError(f"stack of {env_name} has no model registry: deploy it with `npx cdk deploy -c env={env_name}`")
    return Registry(outputs["ModelPackageGroupName"], outputs["ModelRegistryBucketName"],
                    client("sagemaker").meta.region_name)


def image_for(framework_version: str, region: str) -> str:
    try:
        return image_uri(framework_version, region)
    except KeyError:
        raise CommandError(f"the sklearn {framework_version} image is not published in region {region}") from None


def upload_once(data: bytes, bucket: str, key: str) -> str:
    s3 = client("s3")
    try:
        describe(s3.head_object, Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
        describe(s3.put_object, Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


def run_register(args: argparse.Namespace) -> int:
    model_data: Path = args.model_data
    if not model_data.is_file():
        raise CommandError(f"--model-data {model_data} does not exist; train one with `endpointctl train-sample`")
    env = environment(args.env)
    limit = env.endpoint.payload_limit_bytes
    preflight_in_subprocess(model_data, handler_dir=HANDLER_DIR, max_response_bytes=limit,
                            framework_version=env.project.framework_version)
    where = registry(args.env)
    sagemaker = client("sagemaker")
    model_bytes = model_data.read_bytes()
    code_bytes = source_bundle_bytes(HANDLER_DIR)
    model_url = upload_once(model_bytes, where.bucket, f"{REGISTRY_PREFIX}/{where.group}/model-{_digest(model_bytes)}/model.tar.gz")
    code_url = upload_once(code_bytes, where.bucket, f"{REGISTRY_PREFIX}/{where.group}/code-{_digest(code_bytes)}/sourcedir.tar.gz")
    current = approved_versions(sagemaker, where.group)
    with tempfile.TemporaryDirectory(prefix="register-code-") as workdir:
        code_archive = Path(workdir) / "sourcedir.tar.gz"
        code_archive.write_bytes(code_bytes)
        summary = behaviour_summary(model_data, code_archive, current[-1] if current else None)
    # The container environment SklearnModel gives the endpoint's model (constructs/…/model.py).
    container = {
        "Image": image_for(env.project.framework_version, where.region),
        "ModelDataUrl": model_url,
        "Environment": {
            "SAGEMAKER_PROGRAM": DEFAULT_PROGRAM,
            "SAGEMAKER_SUBMIT_DIRECTORY": code_url,
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            "SAGEMAKER_REGION": where.region,
            "HANDLER_MAX_REQUEST_BYTES": str(limit),
        },
    }
    arn = describe(
        sagemaker.create_model_package,
        ModelPackageGroupName=where.group,
        ModelPackageDescription=summary.line[:1024],
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [container],
            "SupportedContentTypes": CONTENT_TYPES,
            "SupportedResponseMIMETypes": CONTENT_TYPES,
        },
        CustomerMetadataProperties={
            "ModelSha256": hashlib.sha256(model_bytes).hexdigest(),
            "CodeSha256": hashlib.sha256(code_bytes).hexdigest(),
            "SourceFile": model_data.name[:256],
            **summary.metadata,
        },
    )["ModelPackageArn"]
    version = arn.rsplit("/", 1)[-1]
    print(f"registered {where.group} version {version}: {arn}")
    print(f"  model {model_url}")
    print(f"  code  {code_url}")
    print(f"  {summary.line}")
    print(f"  status PendingManualApproval: `endpointctl approve {version}` or `endpointctl reject {version} --reason …`")
    return 0


def approved_versions(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    """Approved versions, oldest first."""
    summaries = describe(list_versions, sagemaker, group)
    return sorted((s for s in summaries if s.get("ModelApprovalStatus") == "Approved"),
                  key=lambda s: s["ModelPackageVersion"])


@dataclass(frozen=True)
class BehaviourSummary:
    line: str
    metadata: dict[str, str]


def behaviour_summary(candidate: Path, code: Path, current: dict[str, Any] | None) -> BehaviourSummary:
    """How the candidate decides on the release plan's reference sample (2,000 synthetic
    rows, fixed seed), against the approved version as it was registered (its archives
    fetched from S3); the plan's own scorer and comparison (endpointctl.plan.model_diff)."""
    from endpointctl.plan.artifacts import Archive
    from endpointctl.plan.model_diff import Scorer, Served, compare

    with tempfile.TemporaryDirectory(prefix="register-") as workdir:
        scorer = Scorer(sample=None, workdir=Path(workdir))
        new = Served(Archive(str(candidate), local_file=candidate), Archive(str(code), local_file=code), DEFAULT_PROGRAM)
        sides = [new]
        if current is not None:
            package = describe(client("sagemaker").describe_model_package, ModelPackageName=current["ModelPackageArn"])
            container = package["InferenceSpecification"]["Containers"][0]
            approved = Served(Archive(container["ModelDataUrl"]),
                              Archive(container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]),
                              container["Environment"].get("SAGEMAKER_PROGRAM", DEFAULT_PROGRAM))
            sides.append(approved)
        scorer.score_all(sides)
        after = scorer.results[new.key]
        if "error" in after:
            raise CommandError(after["error"])
        rows = len(after["labels"])
        flagged = sum(after["labels"]) / rows
        if current is None:
            return BehaviourSummary(
                f"first candidate: flags {flagged:.1%} of {rows:,} synthetic transactions; nothing approved to compare with",
                {"FlaggedRate": f"{flagged:.4f}", "SampleRows": str(rows)},
            )
        diff = compare(scorer.results[approved.key], after)
    version = current["ModelPackageVersion"]
    if "skipped" in diff:
        return BehaviourSummary(f"vs approved version {version}: not compared ({diff['skipped']})"[:1024],
                                {"ComparedWithVersion": str(version), "FlaggedRate": f"{flagged:.4f}"})
    return BehaviourSummary(
        f"vs approved version {version}: same decision on {diff['label_agreement']:.1%} of {diff['rows']:,} synthetic "
        f"transactions; flagged {diff['fraud_flag_rate_before']:.1%} -> {diff['fraud_flag_rate_after']:.1%}; "
        f"p99 |change in P(fraud)| {diff['p99_abs_delta_p_fraud']:.4f}",
        {"ComparedWithVersion": str(version), "DecisionAgreement": f"{diff['label_agreement']:.4f}",
         "FlaggedRate": f"{diff['fraud_flag_rate_after']:.4f}", "FlaggedRateBefore": f"{diff['fraud_flag_rate_before']:.4f}",
         "P99ProbabilityShift": f"{diff['p99_abs_delta_p_fraud']:.4f}", "SampleRows": str(diff["rows"])},
    )


def package_of(sagemaker: Any, group: str, version: str) -> dict[str, Any]:
    if not version.isdigit() or int(version) < 1:
        raise CommandError(f"VERSION: got {version!r}; allowed: a version number of group {group} (1, 2, …)")
    for summary in describe(list_versions, sagemaker, group):
        if summary.get("ModelPackageVersion") == int(version):
            return summary
    raise CommandError(f"group {group} has no version {version}")


def set_status(args: argparse.Namespace, status: str, description: str) -> int:
    where = registry(args.env)
    sagemaker = client("sagemaker")
    package = package_of(sagemaker, where.group, args.version)
    before = package.get("ModelApprovalStatus")
    if before == status:
        print(f"{where.group} version {args.version} is already {status}")
        return 0
    describe(sagemaker.update_model_package, ModelPackageArn=package["ModelPackageArn"],
             ModelApprovalStatus=status, ApprovalDescription=description[:1024])
    print(f"{where.group} version {args.version}: {before} -> {status}")
    if status == "Approved":
        print("  the pipeline starts on this approval; a synth resolving "
              f"'{where.group}:latest-approved' now deploys version {args.version}")
    return 0


def run_approve(args: argparse.Namespace) -> int:
    return set_status(args, "Approved", args.reason or "approved with endpointctl approve")


def run_reject(args: argparse.Namespace) -> int:
    if not args.reason.strip():
        raise CommandError("--reason: got an empty reason; allowed: a sentence saying why the version is rejected")
    return set_status(args, "Rejected", args.reason)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


COMMANDS = {"register": run_register, "approve": run_approve, "reject": run_reject}
