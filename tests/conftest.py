"""Shared fixtures: one trained sample model and one synthesized app per session."""

from __future__ import annotations

import copy
import io
import json
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# jsii starts `node` from PATH on first import of aws_cdk: use the project's Node 22.
os.environ["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

CDK_JSON = json.loads((ROOT / "cdk.json").read_text())
CONTEXT: dict[str, Any] = CDK_JSON["context"]


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """An uncompressed tar of (name, content): tests gzip it, or break it, as they need."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def serving_settings(**overrides: Any) -> dict[str, Any]:
    """A deep copy of cdk.json's `serving` object with top-level overrides."""
    raw = copy.deepcopy(CONTEXT["serving"])
    raw.update(overrides)
    return raw


def env_config(name: str, endpoint: dict | None = None, **env_overrides: Any) -> dict[str, Any]:
    """cdk.json's `serving` object with one environment's keys overridden."""
    raw = serving_settings()
    merged = {**raw["environments"][name], **env_overrides}
    if endpoint is not None:
        merged["endpoint"] = endpoint
    raw["environments"][name] = merged
    return raw


# A second region for disaster recovery (the local AWS's is us-east-1).
DR_REGION = "us-west-2"


def with_qa_and_dr(raw: dict[str, Any]) -> dict[str, Any]:
    """A `serving` object plus environments of other names: `qa` (tier staging) and
    `prod-dr` (tier prod, prod's endpoint and alarms, in another region)."""
    raw = copy.deepcopy(raw)
    raw["environments"]["qa"] = {"tier": "staging",
                                 "endpoint": {"kind": "serverless", "memory_mb": 2048, "max_concurrency": 10}}
    raw["environments"]["prod-dr"] = {**copy.deepcopy(raw["environments"]["prod"]), "tier": "prod", "region": DR_REGION}
    return raw


@pytest.fixture(scope="session")
def sample_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample model, with a baseline beside it (model.baseline.json) as train-sample
    writes one, so environments that capture synthesize their monitor."""
    from endpointctl.training import sample_baseline, write_sample_model

    model = write_sample_model(tmp_path_factory.mktemp("model") / "model.tar.gz", rows=3000)
    sample_baseline(model, rows=500, seed=7)
    return model


@pytest.fixture(scope="session")
def retrained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample model retrained with another seed: a model release."""
    from endpointctl.training import write_sample_model

    from endpointctl.training import sample_baseline

    model = write_sample_model(tmp_path_factory.mktemp("model-v2") / "model.tar.gz", rows=3000, seed=8)
    sample_baseline(model, rows=500, seed=8)  # a new version ships its own baseline
    return model


@pytest.fixture(scope="session")
def release_assemblies(sample_model: Path, retrained_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """Cloud assemblies of dev, staging and prod before (`base`) and after (`retrained`)
    a model release, synthesized as `cdk synth` does (endpointctl.plan.synth)."""
    from endpointctl.plan.synth import synth_assembly

    root = tmp_path_factory.mktemp("release")
    environments = ("dev", "staging", "prod")
    return {
        "base": synth_assembly(serving_settings(model_data=str(sample_model)), environments, root / "base"),
        "retrained": synth_assembly(serving_settings(model_data=str(retrained_model)), environments, root / "retrained"),
    }


@pytest.fixture(scope="session")
def loaded_handler(sample_model: Path, tmp_path_factory: pytest.TempPathFactory):
    from serving_runtime.archive import unpack_model
    from serving_config.paths import HANDLER_DIR
    from serving_runtime.loader import load_handler

    model_dir = unpack_model(sample_model, tmp_path_factory.mktemp("model-dir"))
    return load_handler(model_dir, HANDLER_DIR)


# ---------------------------------------------------------------- the synthesized app


@dataclass
class Synthesized:
    outdir: Path
    templates: dict[str, dict]  # by case name
    stacks: dict[str, Any]  # ServingStack by case name

    def resources(self, case: str, type_: str) -> dict[str, dict]:
        return {k: v for k, v in self.templates[case]["Resources"].items() if v["Type"] == type_}

    def one(self, case: str, type_: str) -> dict:
        found = self.resources(case, type_)
        assert len(found) == 1, f"{case}: expected one {type_}, found {list(found)}"
        return next(iter(found.values()))


def _cases(sample_model: Path, challenger: Path) -> dict[str, dict[str, Any]]:
    """Each case is (environment name, serving config): cdk.json's three environments,
    plus variations a reviewer needs to see: pinned region with imported role and
    bucket, an A/B split, environments of other names (qa, prod-dr), and prod with a challenger
    as a shadow."""
    model = str(sample_model)
    base = serving_settings(model_data=model)
    pinned = serving_settings(model_data=model)
    pinned["environments"]["prod"].update(
        account="111111111111",
        region="ap-northeast-1",
        inference_role="import",
        bucket="import",
        alarms={"email": "oncall@acme.example"},
        encryption={"mode": "import", "key_arn": "arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
        network={"subnet_ids": ["subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"],
                 "security_group_ids": ["sg-0a1b2c3d4e5f60718"], "isolation": True},
    )
    ab = serving_settings(model_data=model)
    ab["environments"]["staging"] = {
        "endpoint": {
            "kind": "instance",
            "variants": [
                {"name": "Champion", "instance_type": "ml.m5.large", "instance_count": 2, "weight": 0.9},
                {"name": "Challenger", "instance_type": "ml.m5.large", "instance_count": 1, "weight": 0.1,
                 "model_data": model},
            ],
            "rollout": {"strategy": "linear", "step_percent": 25, "wait_s": 120, "baking_s": 300},
        },
        "network": {"subnet_ids": ["subnet-0a1b2c3d4e5f60718"], "security_group_ids": ["sg-0a1b2c3d4e5f60718"]},
    }
    named = with_qa_and_dr(base)
    shadow = serving_settings(model_data=model)
    shadow["environments"]["prod"]["endpoint"]["shadow"] = {
        "name": "Challenger", "model_data": str(challenger), "sampling_percent": 50,
        "instance_count": 1, "autoscaling": {"min_instances": 1, "max_instances": 2},
    }
    return {
        "dev": {"env": "dev", "serving": base},
        "staging": {"env": "staging", "serving": base},
        "prod": {"env": "prod", "serving": base},
        "prod-pinned-imported": {"env": "prod", "serving": pinned},
        "staging-ab": {"env": "staging", "serving": ab},
        "qa": {"env": "qa", "serving": named},
        "prod-dr": {"env": "prod-dr", "serving": named},
        "prod-shadow": {"env": "prod", "serving": shadow},
    }


def build_app(cases: dict[str, dict[str, Any]], outdir: Path):
    import aws_cdk as cdk

    from stacks.app_stacks import registry_options
    from stacks.checks import add_nag_packs
    from serving_config.config import parse_config
    from stacks.serving_stack import ServingStack

    app = cdk.App(context=CONTEXT, outdir=str(outdir))
    stacks = {}
    for case, spec in cases.items():
        config = parse_config(spec["serving"])
        environment = config.environment(spec["env"])
        construct_id = "".join(part.capitalize() for part in case.split("-"))
        # As app.py builds it: the registry environment's stack (dev) holds the model registry.
        stacks[case] = ServingStack(app, construct_id, environment=environment, **registry_options(config, environment))
    add_nag_packs(app)
    return app, stacks


@pytest.fixture(scope="session")
def synthesized(sample_model: Path, retrained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stacks = build_app(_cases(sample_model, retrained_model), outdir)
    assembly = app.synth()  # raises if any cdk-nag finding is unacknowledged
    templates = {case: assembly.get_stack_artifact(stack.artifact_id).template for case, stack in stacks.items()}
    return Synthesized(outdir=outdir, templates=templates, stacks=stacks)


# ------------------------------------------------------------ running in parallel
# `make test` runs the suite on pytest-xdist workers. Tests that share an expensive
# module fixture (a deploy, a moto server, the image's servers) stay on one worker, so it
# is set up once; so do the tests that read the session's synth. Every other test goes
# wherever a worker is free. (xdist's own `loadgroup` cannot be used: it renames node ids,
# which pytest 9 no longer allows.) Workers write the groups they collected; the
# controller's scheduler reads them. A plain `pytest` run is not affected.
GROUPS_FILE = "SERVING_TEST_GROUPS"


# Session fixtures too costly to build on two workers: their users share one.
SHARED_SESSION_FIXTURES = ("release_assemblies", "synthesized")


def _shared_setup(item: pytest.Item) -> str | None:
    """The group of a test: the first costly session fixture it uses (six stacks
    synthesized for a release, the five of the synth), else its module if it uses a
    fixture shared beyond one test that the module defines (or any module-scoped one; one
    group per value of a parametrized one)."""
    for name in SHARED_SESSION_FIXTURES:
        if name in item.fixturenames:
            return name
    fixture_defs = getattr(item, "_fixtureinfo").name2fixturedefs
    module_id = item.nodeid.split("::")[0]
    shared = [name for name in item.fixturenames if fixture_defs.get(name) and (
        fixture_defs[name][-1].scope == "module"
        or (fixture_defs[name][-1].scope == "session" and fixture_defs[name][-1].baseid == module_id))]
    if shared:
        callspec = getattr(item, "callspec", None)
        params = [str(callspec.params[n]) for n in shared if callspec and n in callspec.params]
        return module_id + "".join(f"[{p}]" for p in params)
    return None


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        import tempfile

        os.environ[GROUPS_FILE] = tempfile.mkstemp(prefix="test-groups-", suffix=".json")[1]  # workers inherit it


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput") and os.environ.get(GROUPS_FILE):
        groups = {item.nodeid: group for item in items if (group := _shared_setup(item))}
        # Longest first: deploys, then the shared set-ups, then single tests.
        items.sort(key=lambda item: (not item.get_closest_marker("e2e"), item.nodeid not in groups))
        partial = Path(f"{os.environ[GROUPS_FILE]}.{os.getpid()}")
        partial.write_text(json.dumps(groups))
        os.replace(partial, os.environ[GROUPS_FILE])  # every worker collects the same tests


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class SharedSetupScheduling(LoadScopeScheduling):
        """xdist's scope scheduling with our groups as scopes; each other test alone."""

        def _split_scope(self, nodeid: str) -> str:
            if not hasattr(self, "_groups"):
                self._groups = json.loads(Path(os.environ[GROUPS_FILE]).read_text() or "{}")
            return self._groups.get(nodeid, nodeid)

    config.option.loadscopereorder = False  # keep the order the workers sorted
    return SharedSetupScheduling(config, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and os.environ.get(GROUPS_FILE):
        Path(os.environ.pop(GROUPS_FILE)).unlink(missing_ok=True)


def project_model() -> Path:
    """cdk.json's model_data (model.tar.gz beside it), as `make demo` trains it. Written
    once, atomically: deploys on parallel workers read it while another may be writing."""
    path = ROOT / "model.tar.gz"
    if not path.exists():
        from endpointctl.training import write_sample_model

        partial = write_sample_model(ROOT / f".model.tar.gz.{os.getpid()}")
        os.replace(partial, path)
    return path


@pytest.fixture(autouse=True)
def _deploys_find_the_project_model(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("e2e"):
        project_model()
