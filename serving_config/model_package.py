"""A model package reference — `<group>:latest-approved` or one version's ARN — resolved
to one exact *Approved* version of the model registry.

The synth resolves it once and records the answer in `cdk.context.json`, the way the
CDK records its own lookups: the next synth reads the file instead of AWS, so it is
reproducible, and a pull request shows the version change as a diff of that file.
A missing entry is looked up with boto3 (honouring AWS_ENDPOINT_URL); the pipeline's
synth passes `-c model_package_refresh=true` so an approval is deployed at once.

A version that is PendingManualApproval or Rejected is never resolved. No CDK import:
`endpointctl` shares this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from serving_runtime.contract import SAGEMAKER_NAME_BOUNDED

LATEST_APPROVED = "latest-approved"
GROUP_NAME = SAGEMAKER_NAME_BOUNDED
GROUP_REFERENCE = re.compile(rf"^(?P<group>{GROUP_NAME}):{LATEST_APPROVED}$")
PACKAGE_ARN = re.compile(
    rf"^arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z]{{2}}(-[a-z]+)+-\d):(?P<account>\d{{12}}):"
    rf"model-package/(?P<group>{GROUP_NAME})/(?P<version>\d+)$"
)
# Both forms in one pattern without named groups, for the configuration's schema.
REFERENCE_PATTERN = (rf"^({GROUP_NAME}:{LATEST_APPROVED}|arn:aws[a-z-]*:sagemaker:[a-z]{{2}}(-[a-z]+)+-\d:\d{{12}}:"
                     rf"model-package/{GROUP_NAME}/\d+)$")
ALLOWED = f"'<group>:{LATEST_APPROVED}' or arn:aws:sagemaker:REGION:ACCOUNT:model-package/GROUP/VERSION"
CONTEXT_FILE = Path("cdk.context.json")
# The version's CustomerMetadataProperties key naming its baseline's s3:// URL.
BASELINE_URL_PROPERTY = "BaselineUrl"
REFRESH_CONTEXT_KEY = "model_package_refresh"


@dataclass(frozen=True)
class RegistrySettings:
    """The model package group, the bucket of its archives, and the environment whose
    stack creates both (the other environments' accounts may read them)."""

    group_name: str
    bucket_name: str
    environment: str = "dev"
    # The delivery pipeline's artifacts bucket (in the registry's account and region),
    # whose access logs go to the registry environment's log bucket; None: no pipeline.
    pipeline_artifacts_bucket: str | None = None


@dataclass(frozen=True)
class DeploymentChecks:
    """The role a pipeline's checks assume in an environment: its name, and the one
    role (in the pipeline's account) allowed to assume it."""

    role_name: str
    trusted_role_arn: str


class ModelPackageError(ValueError):
    """A reference that cannot be deployed; the message is one line."""


@dataclass(frozen=True)
class ResolvedPackage:
    """One approved version: what the synth deploys."""

    arn: str
    group: str
    version: int
    model_data_url: str
    image: str
    # The version's baseline (`endpointctl register --baseline-data`), beside its archive;
    # None: registered without one (or recorded before baselines were).
    baseline_url: str | None = None

    def to_context(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_context(value: Any) -> "ResolvedPackage":
        return ResolvedPackage(**value)


def reference_problem(reference: Any) -> str | None:
    """Why `reference` is not a model package reference (None when it is)."""
    if isinstance(reference, str) and (GROUP_REFERENCE.match(reference) or PACKAGE_ARN.match(reference)):
        return None
    return f"got {json.dumps(reference)}; allowed: {ALLOWED}"


def context_key(reference: str, *, region: str, registry_account: str | None) -> str:
    """Like the CDK's own keys (`availability-zones:account=…:region=…`)."""
    return f"model-package:account={registry_account or 'caller'}:region={region}:reference={reference}"


def resolve(
    reference: str,
    *,
    region: str,
    registry_account: str | None,
    context: Any,
    sagemaker_client: Callable[[str], Any],
    context_file: Path | None = CONTEXT_FILE,
    refresh: bool = False,
) -> ResolvedPackage:
    """The recorded answer (`context.get(key)`: a mapping, or the app's context), or a
    live lookup recorded in `context_file`."""
    key = context_key(reference, region=region, registry_account=registry_account)
    recorded = None if refresh else context.get(key)
    if recorded is not None:
        return ResolvedPackage.from_context(recorded)
    from botocore.exceptions import BotoCoreError

    try:
        resolved = look_up(reference, region=region, registry_account=registry_account, client=sagemaker_client(region))
    except BotoCoreError as error:  # no credentials, no network, no region: one line, before anything deploys
        raise ModelPackageError(f"model_package: cannot look up {reference} in {region}: {error}") from None
    if context_file is not None:
        record(context_file, key, resolved.to_context())
    return resolved


def record(context_file: Path, key: str, value: Any) -> None:
    """Read-modify-write one key of cdk.context.json, keeping the others."""
    current = json.loads(context_file.read_text()) if context_file.is_file() else {}
    if current.get(key) != value:
        current[key] = value
        context_file.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def look_up(reference: str, *, region: str, registry_account: str | None, client: Any) -> ResolvedPackage:
    """Ask SageMaker for the one version `reference` names; refuse anything not Approved."""
    from botocore.exceptions import ClientError

    problem = reference_problem(reference)
    if problem:
        raise ModelPackageError(f"model_package: {problem}")
    arn_match = PACKAGE_ARN.match(reference)
    if arn_match:
        if arn_match["region"] != region:
            raise ModelPackageError(
                f"model_package: {reference} is in region {arn_match['region']}, the environment deploys to {region}; "
                "SageMaker deploys a package only in its own region (register it there)"
            )
        try:
            package = client.describe_model_package(ModelPackageName=reference)
        except ClientError as error:
            raise ModelPackageError(f"model_package: {reference}: {_message(error)}") from None
        return _approved(package, reference)

    group = GROUP_REFERENCE.match(reference)["group"]  # type: ignore[index]
    group_id = f"arn:aws:sagemaker:{region}:{registry_account}:model-package-group/{group}" if registry_account else group
    where = f"account {registry_account or '(caller)'}, region {region}"
    try:
        client.describe_model_package_group(ModelPackageGroupName=group_id)
    except ClientError as error:
        if "does not exist" in _message(error) or "not found" in _message(error).lower():
            raise ModelPackageError(
                f"model_package: group {group!r} does not exist ({where}); deploy the stack that creates it, "
                "then `endpointctl register`"
            ) from None
        raise ModelPackageError(f"model_package: group {group!r}: {_message(error)}") from None
    summaries = list_versions(client, group_id)
    approved = [s for s in summaries if s.get("ModelApprovalStatus") == "Approved"]
    if not approved:
        counts = _status_counts(summaries)
        raise ModelPackageError(
            f"model_package: group {group!r} has no Approved version ({counts or 'no versions registered'}); "
            "approve one with `endpointctl approve VERSION`"
        )
    latest = max(approved, key=lambda s: s["ModelPackageVersion"])
    package = client.describe_model_package(ModelPackageName=latest["ModelPackageArn"])
    return _approved(package, reference)


def list_versions(client: Any, group_id: str) -> list[dict[str, Any]]:
    """Every version of a group (the API pages at 100)."""
    summaries: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"ModelPackageGroupName": group_id, "MaxResults": 100}
    while True:
        page = client.list_model_packages(**kwargs)
        summaries += page.get("ModelPackageSummaryList", [])
        if not page.get("NextToken"):
            return summaries
        kwargs["NextToken"] = page["NextToken"]


def _approved(package: Mapping[str, Any], reference: str) -> ResolvedPackage:
    status = package.get("ModelApprovalStatus")
    arn = package["ModelPackageArn"]
    if status != "Approved":
        raise ModelPackageError(
            f"model_package: {arn} is {status}; only Approved versions deploy "
            f"(`endpointctl approve {package.get('ModelPackageVersion', 'VERSION')}`)"
        )
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    if len(containers) != 1 or "ModelDataUrl" not in containers[0]:
        raise ModelPackageError(f"model_package: {arn} has {len(containers)} containers; expected one with a ModelDataUrl "
                                "(register versions with `endpointctl register`)")
    return ResolvedPackage(
        arn=arn,
        group=package["ModelPackageGroupName"],
        version=int(package["ModelPackageVersion"]),
        model_data_url=containers[0]["ModelDataUrl"],
        image=containers[0]["Image"],
        baseline_url=package.get("CustomerMetadataProperties", {}).get(BASELINE_URL_PROPERTY),
    )


def _status_counts(summaries: list[Mapping[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for summary in summaries:
        status = summary.get("ModelApprovalStatus", "unknown")
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _message(error: Any) -> str:
    return error.response.get("Error", {}).get("Message", str(error))
