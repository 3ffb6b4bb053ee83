"""The names of an environment's resources, derived the way the guide derives them.

Created resources carry the environment so that dev, staging and prod can share one
account; imported ones keep the platform team's exact names. Derived names must fit the
services' limits, or CloudFormation fails late: `name_problems` says so at synth.
"""

from __future__ import annotations

import re
from typing import Iterator, Protocol

from sagemaker_serving.settings import SAGEMAKER_NAME, SAGEMAKER_NAME_MAX
from serving_runtime.contract import BUCKET_NAME_MAX

IAM_ROLE_NAME_MAX = 64
# Our derived bucket names: S3's rules (serving_runtime.contract), without dots.
BUCKET_NAME = re.compile(rf"^[a-z0-9][a-z0-9-]{{1,{BUCKET_NAME_MAX - 2}}}[a-z0-9]$")


class ProjectIdentity(Protocol):
    company: str
    team: str
    project: str


def project_prefix(project: ProjectIdentity) -> str:
    """`<team>-<project>`: every environment's prefix starts with it; the pipeline and the
    default registry group are named by it."""
    return f"{project.team}-{project.project}"


def bucket_base_name(project: ProjectIdentity) -> str:
    """`<company>-sm-<team>-<project>`: the buckets' names start with it."""
    return f"{project.company}-sm-{project.team}-{project.project}"


def registry_bucket_name(project: ProjectIdentity) -> str:
    return f"{bucket_base_name(project)}-registry"


def pipeline_stack_name(project: ProjectIdentity) -> str:
    return f"{project_prefix(project)}-pipeline"


def pipeline_check_role_name(project: ProjectIdentity) -> str:
    """The role of the pipeline's check steps; each environment's check role trusts it."""
    return f"{project_prefix(project)}-pipeline-checks"


class EnvironmentNames:
    """Mixed into `stacks.config.Environment`, which has the name, project, endpoint,
    inference_role and bucket these read."""

    @property
    def env_camel(self) -> str:
        return self.name[:1].upper() + self.name[1:]

    @property
    def name_prefix(self) -> str:
        """`<team>-<project>-<environment>`: the stack, the endpoint and the batch jobs start with it."""
        return f"{project_prefix(self.project)}-{self.name}"

    @property
    def stack_name(self) -> str:
        return self.name_prefix

    @property
    def endpoint_name(self) -> str:
        suffix = "serverless" if self.endpoint.kind == "serverless" else "realtime"
        return f"{self.name_prefix}-{suffix}"

    @property
    def endpoint_log_group(self) -> str:
        """Where SageMaker writes the endpoint's container logs."""
        return f"/aws/sagemaker/Endpoints/{self.endpoint_name}"

    @property
    def transform_job_prefix(self) -> str:
        return self.name_prefix

    @property
    def deploy_checks_role_name(self) -> str:
        """The role the pipeline's checks assume in this environment's account."""
        return f"{self.name_prefix}-deploy-checks"

    @property
    def iam_path(self) -> str:
        return f"/{self.project.company}-sagemaker/"

    @property
    def inference_role_name(self) -> str:
        p = self.project
        if self.inference_role == "import":
            return f"SageMaker-{p.team_fullname}-{p.project_camel}-InferenceRole"
        return f"SageMaker-{p.team_fullname}-{p.project_camel}-{self.env_camel}-InferenceRole"

    @property
    def batch_role_name(self) -> str:
        p = self.project
        return f"SageMaker-{p.team_fullname}-{p.project_camel}-{self.env_camel}-BatchRole"

    @property
    def bucket_name(self) -> str:
        base = bucket_base_name(self.project)
        return base if self.bucket == "import" else f"{base}-{self.name}"

    @property
    def tags(self) -> dict[str, str]:
        return {"Team": self.project.team, "Project": self.project.project, "Environment": self.name}

    def name_problems(self) -> Iterator[tuple[tuple[str], str, str]]:
        """(key, value, what is allowed) for each derived name over its service's limit."""
        p, endpoint = self.project, self.endpoint_name
        if not re.match(SAGEMAKER_NAME, endpoint) or len(endpoint) > SAGEMAKER_NAME_MAX:
            yield (("project",), p.project,
                   f"a shorter team or project: endpoint name {endpoint!r} (from team, project and environment "
                   f"'{self.name}') has {len(endpoint)} characters; at most {SAGEMAKER_NAME_MAX}")
        for role in (self.inference_role_name, self.batch_role_name):
            if len(role) > IAM_ROLE_NAME_MAX:
                yield (("team_fullname",), p.team_fullname,
                       f"a shorter team_fullname or project_camel: role name {role!r} has {len(role)} characters; "
                       f"at most {IAM_ROLE_NAME_MAX}")
        if not BUCKET_NAME.match(self.bucket_name) or "--" in self.bucket_name:
            yield (("project",), p.project, f"a shorter company, team or project: bucket name {self.bucket_name!r} "
                   f"must be 3-{BUCKET_NAME_MAX} lowercase letters, digits and single hyphens")
