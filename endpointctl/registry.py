"""`endpointctl register | approve | reject`: versions of the model in SageMaker's
model registry, in the model package group the registry environment's stack creates.

`register` preflights the archive, uploads it with the handler packed under `code/`
(content-addressed, so the same bytes are uploaded once; model and handler are approved
together, and an isolated container can load them), and creates a version with the
image, archive and container environment the endpoint uses, PendingManualApproval,
and a summary of how it decides compared with the currently approved version (the
release plan's scorer and comparison: each archive served through its handler in an
untrusted child, since a pickle is code).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from endpointctl.aws import client, describe, environment, stack_outputs
from endpointctl.errors import CommandError
from serving_config.settings import REGISTRY_ARCHIVE_PREFIX
from serving_runtime.bundle import source_bundle_bytes
from serving_runtime.contract import (CODE_IN_ARCHIVE, DEFAULT_PROGRAM, MODEL_ARCHIVE, SUPPORTED_CONTENT_TYPES,
                                     archive_with_code, container_environment)
from serving_config.paths import HANDLER_DIR
from serving_runtime.image import image_uri
from serving_runtime.preflight import preflight_in_subprocess
from serving_config.model_package import BASELINE_URL_PROPERTY, list_versions

REGISTRY_PREFIX = REGISTRY_ARCHIVE_PREFIX.rstrip("/")
CONTENT_TYPES = list(SUPPORTED_CONTENT_TYPES)


@dataclass(frozen=True)
class Registry:
    group: str
    bucket: str
    region: str


def registry_environment(args: argparse.Namespace) -> str:
    from serving_config.config import load_config

    return args.env or load_config().registry_environment


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


def packed_archive(model_data: Path) -> bytes:
    """One archive, model and handler approved together, loadable by an isolated container."""
    return archive_with_code(model_data, HANDLER_DIR)


def run_register(args: argparse.Namespace) -> int:
    model_data: Path = args.model_data
    if not model_data.is_file():
        raise CommandError(f"--model-data {model_data} does not exist; train one with `endpointctl train-sample`")
    if args.baseline_labels is not None and args.baseline_data is None:
        raise CommandError("--baseline-labels: given without --baseline-data; allowed: the labels of that holdout, "
                           "with it")
    for flag, given in (("--baseline-data", args.baseline_data), ("--baseline-labels", args.baseline_labels)):
        if given is not None and not given.is_file():
            raise CommandError(f"{flag} {given} does not exist")
    env = environment(registry_environment(args))
    limit = env.endpoint.payload_limit_bytes
    preflight_in_subprocess(model_data, handler_dir=HANDLER_DIR, max_response_bytes=limit,
                            framework_version=env.project.framework_version)
    where = registry(env.name)
    sagemaker = client("sagemaker")
    packed = packed_archive(model_data)
    model_url = upload_once(packed, where.bucket, f"{REGISTRY_PREFIX}/{where.group}/{_digest(packed)}/{MODEL_ARCHIVE}")
    current = approved_versions(sagemaker, where.group)
    with tempfile.TemporaryDirectory(prefix="register-") as workdir:
        archive = Path(workdir) / "model.tar.gz"
        archive.write_bytes(packed)
        baseline = version_baseline(args, archive, where, archive_key=_digest(packed))
        summary = behaviour_summary(archive, current[-1] if current else None)
    # The container environment SklearnModel gives an endpoint's model (constructs/…/model.py);
    # a deploy sets each model's own HANDLER_MAX_REQUEST_BYTES and SAGEMAKER_REGION.
    container = {
        "Image": image_for(env.project.framework_version, where.region),
        "ModelDataUrl": model_url,
        "Environment": container_environment(submit_directory=CODE_IN_ARCHIVE, region=where.region,
                                             max_request_bytes=limit),
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
            "ModelSha256": hashlib.sha256(model_data.read_bytes()).hexdigest(),
            "ArchiveSha256": hashlib.sha256(packed).hexdigest(),
            "HandlerSha256": hashlib.sha256(source_bundle_bytes(HANDLER_DIR)).hexdigest(),
            "SourceFile": model_data.name[:256],
            **summary.metadata,
            **baseline,
        },
    )["ModelPackageArn"]
    version = arn.rsplit("/", 1)[-1]
    print(f"registered {where.group} version {version}: {arn}")
    print(f"  archive {model_url} (model, and the handler under code/)")
    if baseline:
        print(f"  baseline {baseline[BASELINE_URL_PROPERTY]}: environments deploying this version are monitored against it")
    print(f"  {summary.line}")
    print(f"  status PendingManualApproval: `endpointctl approve {version}` or `endpointctl reject {version} --reason …`")
    return 0


def version_baseline(args: argparse.Namespace, archive: Path, where: Registry, *, archive_key: str) -> dict[str, str]:
    """The version's baseline (`--baseline-data`, `--baseline-labels`), computed as
    `endpointctl baseline` does (the archive served through its own handler, in the
    sandboxed child) and stored beside the archive, content-addressed; the
    CustomerMetadataProperties naming it (none without --baseline-data)."""
    from endpointctl.watch import build_baseline

    if args.baseline_data is None:
        return {}
    document = build_baseline(model_data=str(archive), code=CODE_IN_ARCHIVE, program=DEFAULT_PROGRAM,
                              data=args.baseline_data, labels=args.baseline_labels,
                              flags=("--baseline-data", "--baseline-labels"))
    body = (json.dumps(document, indent=1) + "\n").encode()
    key = f"{REGISTRY_PREFIX}/{where.group}/{archive_key}/baseline-{_digest(body)}.json"
    return {BASELINE_URL_PROPERTY: upload_once(body, where.bucket, key),
            "BaselineSha256": hashlib.sha256(body).hexdigest()}


def approved_versions(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    """Approved versions, oldest first."""
    summaries = describe(list_versions, sagemaker, group)
    return sorted((s for s in summaries if s.get("ModelApprovalStatus") == "Approved"),
                  key=lambda s: s["ModelPackageVersion"])


@dataclass(frozen=True)
class BehaviourSummary:
    line: str
    metadata: dict[str, str]


def behaviour_summary(candidate: Path, current: dict[str, Any] | None) -> BehaviourSummary:
    """How the candidate decides on the release plan's reference sample (2,000 synthetic
    rows, fixed seed), against the approved version as it was registered (its archive
    fetched from S3); the plan's own scorer and comparison (endpointctl.plan.model_diff)."""
    from endpointctl.plan.artifacts import Archive
    from endpointctl.plan.model_diff import Scorer, Served, compare

    def served(model: Archive, environment: dict[str, str]) -> Served:
        return Served(model, Archive(environment.get("SAGEMAKER_SUBMIT_DIRECTORY", CODE_IN_ARCHIVE)),
                      environment.get("SAGEMAKER_PROGRAM", DEFAULT_PROGRAM))

    with tempfile.TemporaryDirectory(prefix="register-") as workdir:
        scorer = Scorer(sample=None, workdir=Path(workdir))
        new = served(Archive(str(candidate), local_file=candidate), {})
        sides = [new]
        if current is not None:
            package = describe(client("sagemaker").describe_model_package, ModelPackageName=current["ModelPackageArn"])
            container = package["InferenceSpecification"]["Containers"][0]
            approved = served(Archive(container["ModelDataUrl"]), container.get("Environment", {}))
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
    where = registry(registry_environment(args))
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
