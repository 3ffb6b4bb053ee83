"""The names of an environment's resources, derived the way the guide derives them.

Created resources carry the environment so that dev, staging and prod can share one
account; imported ones keep the platform team's exact names. Derived names must fit the
services' limits, or CloudFormation fails late: `name_problems` says so at synth.
"""

from __future__ import annotations

import re
from typing import Iterator

from sagemaker_serving.settings import SAGEMAKER_NAME, SAGEMAKER_NAME_MAX

IAM_ROLE_NAME_MAX = 64
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class ProjectNames:
    """Mixed into `stacks.config.Project` (company, team, project): the names of what
    serves every environment, the delivery pipeline's."""

    @property
    def project_prefix(self) -> str:
        """`<team>-<project>`: the pipeline, its stack and its roles start with it."""
        return f"{self.team}-{self.project}"

    @property
    def pipeline_stack_name(self) -> str:
        return f"{self.project_prefix}-pipeline"

    @property
    def pipeline_check_role_name(self) -> str:
        """The role of the pipeline's checks, which every environment's check role trusts."""
        return f"{self.project_prefix}-pipeline-checks"

    @property
    def pipeline_artifacts_bucket_name(self) -> str:
        """As long as the registry's bucket name, which `ServingConfig.problems` checks."""
        return f"{self.company}-sm-{self.team}-{self.project}-pipeline"


class EnvironmentNames:
    """Mixed into `stacks.config.Environment`, which has the name, project, endpoint,
    inference_role, bucket and access_logs these read."""

    @property
    def env_camel(self) -> str:
        return self.name[:1].upper() + self.name[1:]

    @property
    def name_prefix(self) -> str:
        """`<team>-<project>-<environment>`: the stack, the endpoint and the batch jobs start with it."""
        return f"{self.project.team}-{self.project.project}-{self.name}"

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
        p = self.project
        base = f"{p.company}-sm-{p.team}-{p.project}"
        return base if self.bucket == "import" else f"{base}-{self.name}"

    @property
    def access_log_bucket_name(self) -> str:
        """Where the data bucket's access logs go: the configured bucket, or the one the
        stack creates (named, so the pipeline in this account can log into it too)."""
        return self.access_logs.bucket or f"{self.bucket_name}-logs"

    @property
    def check_role_name(self) -> str:
        """The role the pipeline's checks assume in this environment's account."""
        return f"{self.name_prefix}-deploy-checks"

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
        for bucket in (self.bucket_name, self.access_log_bucket_name if self.bucket == "create" and not self.access_logs.bucket else None):
            if bucket is not None and (not BUCKET_NAME.match(bucket) or "--" in bucket):
                yield (("project",), p.project, f"a shorter company, team or project: bucket name {bucket!r} "
                       "must be 3-63 lowercase letters, digits and single hyphens")
