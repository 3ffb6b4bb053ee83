"""Which model an environment serves, and the SageMaker models that serve it."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from sagemaker_serving.image import SklearnImage
from sagemaker_serving.model import ModelData, SklearnModel, SourceBundle, sagemaker_principal
from serving_config.settings import NetworkSettings
from serving_config.paths import HANDLER_DIR, PROJECT_ROOT
from serving_runtime.contract import DEFAULT_PROGRAM
from serving_runtime.image import image_uri
from serving_runtime.preflight import preflight_in_subprocess
from serving_config.config import Environment, ServerlessEndpoint
from serving_config.model_package import ResolvedPackage

SERVERLESS_NOT_ISOLATED = (
    "serverless endpoints take no network isolation (SageMaker); this environment's batch model is isolated"
)


class ServedModels(Construct):
    """The endpoint's models, one per distinct artifact (`Model`, `Model2`, … in variant
    order), their execution role, and the artifact the batch model serves.

    Props: `environment` — `model_data` (the default artifact: an s3:// URL, or a local
    .tar.gz preflighted once at synth), each variant's own `model_data` (default the
    environment's), `network` (isolated unless turned off with a reason; a serverless
    endpoint's models cannot be, and the synth says so — the batch model still is),
    the shadow's `model_data` (a challenger: the same checks as any model),
    `inference_role` (created, or the platform team's, imported); `handler_dir` (default
    the project's `inference/`); `model_package` (default none: an approved registry
    version whose archive, handler inside, replaces `model_data` everywhere).

    The role and models are children of the stack, not of this construct: their logical
    ids come from their construct paths and must not move under a deployed stack.
    """

    def __init__(self, scope: Construct, id: str, *, environment: Environment, handler_dir: Path = HANDLER_DIR,
                 model_package: ResolvedPackage | None = None) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        env = environment
        if model_package is not None:
            check_package_image(stack, model_package, env)
        self.image = SklearnImage(env.project.framework_version)
        self.source = SourceBundle.from_directory(handler_dir, program=DEFAULT_PROGRAM)
        self.batch_network = env.network
        self.endpoint_network = env.network
        if isinstance(env.endpoint, ServerlessEndpoint) and env.network.isolation:
            self.endpoint_network = NetworkSettings(isolation=False, isolation_off_reason=SERVERLESS_NOT_ISOLATED)
        self.default_model = model_package.model_data_url if model_package is not None else env.model_data
        self._artifacts: dict[str, ModelData] = {}
        if model_package is not None:
            # A registered version: preflighted when registered; its handler is inside, approved with the model.
            self._artifacts[self.default_model] = ModelData.from_registered_package(self.default_model)
        self.role = inference_role(stack, env)
        self.models: dict[str, SklearnModel] = {}
        for reference in self._endpoint_references(env):
            if reference not in self.models:
                self.models[reference] = SklearnModel(
                    stack, "Model" if not self.models else f"Model{len(self.models) + 1}",
                    role=self.role, image=self.image, model_data=self._artifact(reference, env), source=self.source,
                    log_group_prefix=env.endpoint_log_group, max_request_bytes=env.endpoint.payload_limit_bytes,
                    network=self.endpoint_network,
                )
        self.batch_model_data = self._artifact(self.default_model, env)

    def model_for(self, variant_model_data: str | None = None) -> SklearnModel:
        """The model serving a variant's `model_data` (None: the environment's)."""
        return self.models[variant_model_data or self.default_model]

    def _endpoint_references(self, env: Environment) -> list[str]:
        if isinstance(env.endpoint, ServerlessEndpoint):
            return [self.default_model]
        shadow = [env.endpoint.shadow.model_data] if env.endpoint.shadow is not None else []
        # The challenger last: preflighted and isolated as any model (issue 20).
        return [v.model_data or self.default_model for v in env.endpoint.variants] + shadow

    def _artifact(self, reference: str, env: Environment) -> ModelData:
        if reference not in self._artifacts:  # one preflight per artifact
            self._artifacts[reference] = resolve_model_data(
                reference, payload_limit_bytes=env.endpoint.payload_limit_bytes, handler_dir=self.source.directory,
                framework_version=env.project.framework_version,
            )
        return self._artifacts[reference]


def resolve_model_data(
    reference: str, *, payload_limit_bytes: int, handler_dir: Path, framework_version: str
) -> ModelData:
    """An s3:// URL as it is; a local artifact only once the preflight accepts it,
    so a broken model stops the synth instead of an endpoint ten minutes later."""
    if reference.startswith("s3://"):
        return ModelData.from_s3_url(reference)
    path = Path(reference)
    path = path if path.is_absolute() else PROJECT_ROOT / path
    if path.is_file():
        preflight_in_subprocess(
            path, handler_dir=handler_dir, max_response_bytes=payload_limit_bytes, framework_version=framework_version
        )
    return ModelData.from_asset(path)


def check_package_image(stack: cdk.Stack, package: ResolvedPackage, env: Environment) -> None:
    """The version must have been registered for the image this stack runs: the
    archive was preflighted against that image's scikit-learn."""
    region = stack.region if not cdk.Token.is_unresolved(stack.region) else package.arn.split(":")[3]
    expected = image_uri(env.project.framework_version, region)
    if package.image != expected:
        raise ValueError(
            f"model_package: version {package.version} of {package.group} was registered for {package.image}; "
            f"{env.name} runs {expected} (framework_version {env.project.framework_version}): register it again"
        )


def inference_role(stack: cdk.Stack, env: Environment) -> iam.IRole:
    """The endpoint's models' execution role: created here, or the platform team's, imported."""
    if env.inference_role == "import":
        arn = stack.format_arn(
            service="iam",
            region="",
            resource="role",
            resource_name=f"{env.iam_path.strip('/')}/{env.inference_role_name}",
        )
        # The platform team owns this role and its policies: never modify it.
        return iam.Role.from_role_arn(stack, "InferenceRole", arn, mutable=False)
    return iam.Role(
        stack,
        "InferenceRole",
        role_name=env.inference_role_name,
        path=env.iam_path,
        assumed_by=sagemaker_principal(stack),
        description="Execution role of the endpoint's model: reads its artifact and code, pulls the image, writes logs",
    )
