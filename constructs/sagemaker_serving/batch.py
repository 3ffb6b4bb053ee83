"""What Batch Transform needs: a role, a model that runs as it, and a launcher policy.

`CreateTransformJob` takes a model name and no role: the job runs as the *model's*
execution role. So batch gets its own model (same image, code and artifact) whose role
may read `batch-input/` and write `batch-output/`, and the endpoint's role never can.
The launcher needs no `iam:PassRole`: no role is passed. It may start jobs only with
the batch model, and read this stack's outputs, which is all `endpointctl transform` needs.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from sagemaker_serving.image import SklearnImage
from sagemaker_serving.model import ModelData, SklearnModel, SourceBundle, sagemaker_principal
from serving_config.settings import NetworkSettings
from sagemaker_serving.nag import acknowledge_wildcard_resource
from serving_config.settings import BATCH_INPUT_PREFIX, BATCH_OUTPUT_PREFIX

INPUT_PREFIX = BATCH_INPUT_PREFIX
OUTPUT_PREFIX = BATCH_OUTPUT_PREFIX
TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"


class BatchTransform(Construct):
    """Batch Transform's model, its execution role and the launcher policy (module docstring).

    Props: `bucket` (inputs under batch-input/, outputs under batch-output/); `role_name`
    and `role_path` (the model's execution role); `image`, `model_data`, `source` (the
    model, as the endpoint's); `job_name_prefix` (the only job names the launcher may
    use); `max_payload_bytes` (the handler's request limit: a mini-batch);
    `kms_key` (the bucket's key, default none); `network` (default isolated, no VPC).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket: s3.IBucket,
        role_name: str,
        role_path: str,
        image: SklearnImage,
        model_data: ModelData,
        source: SourceBundle,
        job_name_prefix: str,
        max_payload_bytes: int,
        kms_key: kms.IKey | None = None,
        network: NetworkSettings = NetworkSettings(),
    ) -> None:
        super().__init__(scope, id)
        self.bucket = bucket
        self.job_name_prefix = job_name_prefix
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            path=role_path,
            assumed_by=sagemaker_principal(self),
            description="Execution role of the batch transform model: reads batch-input/, writes batch-output/",
        )
        bucket_arn = bucket.bucket_arn
        inputs, outputs = f"{bucket_arn}/{INPUT_PREFIX}*", f"{bucket_arn}/{OUTPUT_PREFIX}*"
        self.role.add_to_principal_policy(
            iam.PolicyStatement(sid="ReadInputs", actions=["s3:GetObject"], resources=[inputs])
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WriteOutputs", actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[outputs]
            )
        )
        self.role.add_to_principal_policy(_list_prefixes(bucket_arn, INPUT_PREFIX))
        if kms_key is not None:
            kms_key.grant(self.role, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")  # the bucket is SSE-KMS; outputs are encrypted with it
        self.model = SklearnModel(
            self,
            "Model",
            role=self.role,
            image=image,
            model_data=model_data,
            source=source,
            log_group_prefix=TRANSFORM_LOG_GROUP,
            max_request_bytes=max_payload_bytes,
            network=network,  # in the endpoint's VPC; isolated (a job reads whole datasets) unless turned off
        )

        self.launcher_policy = self._launcher_policy(
            job_name_prefix=job_name_prefix, role_path=role_path, inputs=inputs, outputs=outputs, kms_key=kms_key)

    def _launcher_policy(self, *, job_name_prefix: str, role_path: str, inputs: str, outputs: str,
                         kms_key: kms.IKey | None) -> iam.ManagedPolicy:
        """Start jobs with the batch model only, upload inputs, read outputs and the stack."""
        stack = cdk.Stack.of(self)
        bucket_arn = self.bucket.bucket_arn
        job_arns = stack.format_arn(service="sagemaker", resource="transform-job", resource_name=f"{job_name_prefix}-*")
        launcher_policy = iam.ManagedPolicy(
            self,
            "LauncherPolicy",
            description=f"Start, watch and stop {job_name_prefix}-* transform jobs; upload inputs, read outputs",
            path=role_path,
        )
        launcher_policy.add_statements(
            # Without the condition a launcher could start a job named like ours with any
            # model in the account, and so run as that model's role.
            iam.PolicyStatement(
                sid="StartJobsWithTheBatchModel",
                actions=["sagemaker:CreateTransformJob"],
                resources=[job_arns],
                conditions={"ArnEquals": {"sagemaker:ModelArn": self.model.model_arn}},
            ),
            iam.PolicyStatement(
                sid="WatchStopAndTagJobs",  # AddTags: endpointctl tags the jobs it starts
                actions=["sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob", "sagemaker:AddTags"],
                resources=[job_arns],
            ),
        )
        this_stack = stack.format_arn(service="cloudformation", resource="stack", resource_name=f"{stack.stack_name}/*")
        launcher_policy.add_statements(
            iam.PolicyStatement(sid="UploadInputs", actions=["s3:PutObject"], resources=[inputs]),
            iam.PolicyStatement(sid="ReadOutputs", actions=["s3:GetObject"], resources=[outputs]),
            _list_prefixes(bucket_arn, INPUT_PREFIX, OUTPUT_PREFIX),
            # endpointctl reads the batch model, bucket and key from the stack's outputs.
            iam.PolicyStatement(sid="ReadStackOutputs", actions=["cloudformation:DescribeStacks"], resources=[this_stack]),
        )
        if kms_key is not None:
            launcher_policy.add_statements(iam.PolicyStatement(
                sid="UseDataKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[kms_key.key_arn]
            ))
        for construct in (self.role, launcher_policy):
            acknowledge_wildcard_resource(construct, inputs, "objects under batch-input/ only: the job reads what it is given")
            acknowledge_wildcard_resource(construct, outputs, "objects under batch-output/ only: one object per input, named by SageMaker")
        acknowledge_wildcard_resource(
            launcher_policy, job_arns, f"only transform jobs named {job_name_prefix}-*: one name per run"
        )
        acknowledge_wildcard_resource(
            launcher_policy, this_stack, "this stack only: CloudFormation appends the stack id to its ARN"
        )
        return launcher_policy

    @property
    def input_uri(self) -> str:
        return f"s3://{self.bucket.bucket_name}/{INPUT_PREFIX}"

    @property
    def output_uri(self) -> str:
        return f"s3://{self.bucket.bucket_name}/{OUTPUT_PREFIX}"

    @property
    def model_name(self) -> str:
        return self.model.model_name


def _list_prefixes(bucket_arn: str, *prefixes: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="ListBatchPrefixes",
        actions=["s3:ListBucket"],
        resources=[bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
    )
