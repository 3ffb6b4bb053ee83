"""The names of an environment's resources, derived the way the guide derives them.

Created resources carry the environment so that dev, staging and prod can share one
account; imported ones keep the platform team's exact names. Derived names must fit the
services' limits, or CloudFormation fails late: `name_problems` says so at synth.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Iterator, Literal, Protocol

from serving_config.settings import SAGEMAKER_NAME_MAX
from serving_runtime.contract import BUCKET_NAME_MAX

if TYPE_CHECKING:
    from serving_config.config import Endpoint, Project
    from serving_config.settings import AccessLogSettings

IAM_ROLE_NAME_MAX = 64
# An environment's name is part of its bucket's, stack's and SageMaker names: lowercase,
# single hyphens. How long it may be depends on the team and project (`name_problems`).
ENVIRONMENT_NAME = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
ENVIRONMENT_NAME_ALLOWED = "lowercase letters, digits and single hyphens, starting with a letter (e.g. qa, prod-dr)"
# A transform job is <name_prefix>-<UTC date>-<time>-<4 hex>: the time says when, the
# hex keeps two jobs started in the same second apart.
TRANSFORM_JOB_SUFFIX = "-%Y%m%d-%H%M%S-"
# A name is blamed on the environment when a name as short as "dev" would fit.
SHORT_ENVIRONMENT_NAME = "dev"


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


def pipeline_artifacts_bucket_name(project: ProjectIdentity) -> str:
    """As long as the registry's bucket name, which `ServingConfig.problems` checks."""
    return f"{bucket_base_name(project)}-pipeline"


def pipeline_check_role_name(project: ProjectIdentity) -> str:
    """The role of the pipeline's check steps; each environment's check role trusts it."""
    return f"{project_prefix(project)}-pipeline-checks"


class EnvironmentNames:
    """Mixed into `serving_config.config.Environment`, which declares what the names are
    derived from (listed here for readers and type checkers; pydantic never sees them)."""

    if TYPE_CHECKING:
        name: str
        project: Project
        endpoint: Endpoint
        inference_role: Literal["create", "import"]
        bucket: Literal["create", "import"]
        access_logs: AccessLogSettings

    @property
    def env_camel(self) -> str:
        """PascalCase: dev -> Dev, prod-dr -> ProdDr (role names, construct ids)."""
        return "".join(part[:1].upper() + part[1:] for part in self.name.split("-"))

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

    def transform_job_name(self, started: time.struct_time | None = None) -> str:
        return (f"{self.transform_job_prefix}{time.strftime(TRANSFORM_JOB_SUFFIX, started or time.gmtime())}"
                f"{secrets.token_hex(2)}")

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
    def access_log_bucket_name(self) -> str:
        """Where the data bucket's access logs go: the configured bucket, or the one the
        stack creates (named in the environment that hosts the registry, so that the
        pipeline in its account can log into it too)."""
        return self.access_logs.bucket or f"{self.bucket_name}-logs"

    @property
    def tags(self) -> dict[str, str]:
        return {"Team": self.project.team, "Project": self.project.project, "Environment": self.name}

    def limited_names(self) -> list[tuple[str, str, str, int]]:
        """(what, name, the environment's part of it, its service's limit) for each name
        derived from the environment's."""
        return [
            ("endpoint name", self.endpoint_name, self.name, SAGEMAKER_NAME_MAX),
            ("transform job name", self.transform_job_name(time.gmtime(0)), self.name, SAGEMAKER_NAME_MAX),
            ("inference role name", self.inference_role_name, self.env_camel, IAM_ROLE_NAME_MAX),
            ("batch role name", self.batch_role_name, self.env_camel, IAM_ROLE_NAME_MAX),
            ("bucket name", self.bucket_name, self.name, BUCKET_NAME_MAX),
            ("access-log bucket name", self.access_log_bucket_name, self.name, BUCKET_NAME_MAX),
        ]

    def name_problems(self) -> Iterator[tuple[tuple[str, ...], str, str]]:
        """(key, value, what is allowed) for the derived names over their services' limits:
        one line on the environment's name when a name as short as "dev" would fit, else
        one per name on the project's names (no environment name would fit)."""
        p = self.project
        too_long = [(what, name, len(name) - len(part), limit) for what, name, part, limit in self.limited_names()
                    if len(name) > limit]
        blamed = [(what, name, limit) for what, name, rest, limit in too_long
                  if rest + len(SHORT_ENVIRONMENT_NAME) <= limit]
        if blamed:
            what, name, limit = max(blamed, key=lambda found: len(found[1]) - found[2])
            yield (("environments", self.name), self.name,
                   f"a shorter environment name: its {what} {name!r} has {len(name)} characters; at most {limit}")
            return
        for what, name, _, limit in too_long:
            key, value, shorter = ((("team_fullname",), p.team_fullname, "team_fullname or project_camel")
                                   if "role" in what else (("project",), p.project, "company, team or project"))
            yield key, value, f"a shorter {shorter}: {what} {name!r} has {len(name)} characters; at most {limit}"
        if "--" in self.bucket_name:
            yield (("project",), p.project, f"a company, team and project with single hyphens: bucket name "
                   f"{self.bucket_name!r} must have no '--'")
