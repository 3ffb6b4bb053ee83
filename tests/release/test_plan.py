"""`endpointctl plan` over pairs of cloud assemblies synthesized for real (the app's
stacks, nag packs and all), one synth per variant per session: a retrained model, an
alarm threshold, an instance type, a renamed endpoint, prod turned serverless, a
fixed-name resource replaced, retain_data off, an IAM action added, and no change."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from endpointctl.plan import make_plan
from endpointctl.plan.synth import synth_assembly
from tests.conftest import serving_settings
from tests.cli.test_cli import endpointctl

def _with(serving: dict, env: str, **overrides) -> dict:
    changed = copy.deepcopy(serving)
    changed["environments"][env].update(overrides)
    return changed


def _endpoint(serving: dict, env: str, **overrides) -> dict:
    changed = copy.deepcopy(serving)
    changed["environments"][env]["endpoint"].update(overrides)
    return changed


@pytest.fixture(scope="session")
def assemblies(sample_model, release_assemblies, tmp_path_factory) -> dict[str, Path]:
    """name -> cloud assembly; `base` holds dev, staging and prod on model v1, `retrained`
    the same on v2 (conftest); each other variant changes one thing, in one stack."""
    base = serving_settings(model_data=str(sample_model))
    prod_alarms = {**base["environments"]["prod"].get("alarms", {}), "model_latency_ms": 1500}
    variants = {
        "dev-again": (base, ("dev",)),
        "prod-alarm-threshold": (_with(base, "prod", alarms=prod_alarms), ("prod",)),
        "prod-instance-type": (_endpoint(base, "prod", instance_type="ml.m5.xlarge"), ("prod",)),
        "prod-serverless": (_with(base, "prod", endpoint={"kind": "serverless", "memory_mb": 4096,
                                                          "max_concurrency": 20}), ("prod",)),
        "dev-instance-renamed": (_with(base, "dev", endpoint={"kind": "instance", "instance_type": "ml.m5.large",
                                                              "instance_count": 1}), ("dev",)),
        # The IAM path holds the company; the role keeps its custom name: replaced in place of itself.
        "company-renamed": ({**base, "company": "acme2"}, ("prod",)),
        "prod-retain-off": (_with(base, "prod", retain_data=False), ("prod",)),
        "prod-in-vpc": (_with(base, "prod", network={"subnet_ids": ["subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"],
                                                     "security_group_ids": ["sg-0a1b2c3d4e5f60718"]}), ("prod",)),
    }
    root = tmp_path_factory.mktemp("assemblies")
    built = {name: synth_assembly(serving, envs, root / name) for name, (serving, envs) in variants.items()}
    return {**release_assemblies, **built}


def plan_of(assemblies, head: str, *envs: str, base: str = "base") -> dict:
    return make_plan(assemblies[base], assemblies[head], environments=list(envs) or None).as_json()


def only_stack(plan: dict) -> dict:
    (stack,) = plan["stacks"]
    return stack


def actions(stack: dict) -> dict[str, str]:
    return {r["logical_id"]: r["action"] for r in stack["resources"]}


def severities(stack: dict) -> set[str]:
    return {r["severity"] for r in stack["risks"]}


def find(stack: dict, resource_type: str) -> dict[str, str]:
    return {r["logical_id"]: r["action"] for r in stack["resources"] if r["type"] == resource_type}


# ------------------------------------------------------------------------- the cases


@pytest.fixture(scope="session")
def retrained_run(assemblies):
    return endpointctl("plan", "--base", str(assemblies["base"]), "--head", str(assemblies["retrained"]),
                       "--format", "json")


def test_retrained_model_updates_every_endpoint_with_its_rollout(retrained_run):
    assert retrained_run.returncode == 0, retrained_run.stderr
    plan = json.loads(retrained_run.stdout)
    assert plan["verdict"] == "safe"
    stacks = {s["stack"]: s for s in plan["stacks"]}
    assert set(stacks) == {"rc-fraud-detection-dev", "rc-fraud-detection-staging", "rc-fraud-detection-prod"}
    for stack in stacks.values():
        assert set(find(stack, "AWS::SageMaker::Model").values()) == {"replace"}  # endpoint's and batch model
        assert set(find(stack, "AWS::SageMaker::EndpointConfig").values()) == {"replace"}
        # cdk diff misses this one: the endpoint changes only through the replaced config's GetAtt.
        assert set(find(stack, "AWS::SageMaker::Endpoint").values()) == {"update"}
        assert stack["endpoint"]["effect"] == "update" and stack["endpoint"]["breaks_callers"] is False
        assert {a["kind"] for a in stack["artifacts"]} == {"model"}
        before, after = stack["artifacts"][0]["before"]["asset_hash"], stack["artifacts"][0]["after"]["asset_hash"]
        assert before != after and len(after) == 64
    dev, prod = stacks["rc-fraud-detection-dev"], stacks["rc-fraud-detection-prod"]
    assert dev["endpoint"]["rollout"]["strategy"] == "serverless"
    rollout = prod["endpoint"]["rollout"]
    assert (rollout["strategy"], rollout["step_percent"], rollout["wait_s"], rollout["baking_s"]) == ("canary", 10, 300, 600)
    assert rollout["rollback_alarms"] == ["rc-fraud-detection-prod-realtime-AllTraffic-ModelLatency",
                                          "rc-fraud-detection-prod-realtime-AllTraffic-ServerErrors"]
    # the new archive's read grant takes the old one's place: a move, not a widening
    assert all(not p["widens"] for s in stacks.values() for p in s["iam"]["policies"])
    assert prod["cost"]["before_usd_month"] == prod["cost"]["after_usd_month"] > 100


def test_retrained_model_behaviour_is_compared_on_the_reference_sample(retrained_run):
    plan = json.loads(retrained_run.stdout)
    diffs = [s["model_diff"] for s in plan["stacks"]]
    # The same model everywhere: the same behaviour (prod's isolated model carries the handler
    # inside a repacked archive, so it is scored apart and only its timings differ).
    behaviour = ("rows", "label_agreement", "fraud_flag_rate_before", "fraud_flag_rate_after",
                 "p99_abs_delta_p_fraud", "max_abs_delta_p_fraud")
    assert all({k: d[k] for k in behaviour} == {k: diffs[0][k] for k in behaviour} for d in diffs)
    diff = diffs[0]
    assert diff["rows"] == 2000
    assert 0 < diff["label_agreement"] < 1  # another seed is another model
    assert 0 <= diff["p99_abs_delta_p_fraud"] <= diff["max_abs_delta_p_fraud"] <= 1
    assert diff["fraud_flag_rate_before"] != diff["fraud_flag_rate_after"]
    assert diff["single_row_ms_before"] > 0 and diff["batch_ms_per_row_after"] > 0


def test_retrained_plan_in_markdown_draws_the_canary(assemblies):
    result = endpointctl("plan", "--base", str(assemblies["base"]), "--head", str(assemblies["retrained"]),
                         "--env", "prod")
    assert result.returncode == 0, result.stderr
    assert "```mermaid\ngantt" in result.stdout
    assert "10 % (canary) :p0, 0, 300" in result.stdout and "100 %, baking :p1, 300, 900" in result.stdout
    assert "### Model behaviour" in result.stdout and "fraud-flag rate" in result.stdout


def test_alarm_threshold_only_touches_the_alarm(assemblies):
    stack = only_stack(plan_of(assemblies, "prod-alarm-threshold", "prod"))
    assert actions(stack) == {"AlarmsModelLatencyAlarm7B529A72": "update"}
    assert stack["endpoint"]["effect"] == "unchanged"
    assert stack["alarms"] == [{"alarm": "rc-fraud-detection-prod-realtime-AllTraffic-ModelLatency",
                                "change": "Threshold", "before": 1_000_000, "after": 1_500_000}]
    assert stack["model_diff"] is None and stack["artifacts"] == [] and stack["verdict"] == "safe"


def test_instance_type_change_under_autoscaling_fails(assemblies):
    stack = only_stack(plan_of(assemblies, "prod-instance-type", "prod"))
    assert find(stack, "AWS::SageMaker::EndpointConfig") == {"EndpointConfig24AD0A28": "replace"}
    assert find(stack, "AWS::SageMaker::Model") == {}
    assert stack["endpoint"]["effect"] == "update"
    # The reference (guide endpoint-scaling-update): changing a registered variant's instance type fails.
    fails = [r["message"] for r in stack["risks"] if r["severity"] == "fails"]
    assert len(fails) == 1 and "AllTraffic changes instance type (ml.m5.large → ml.m5.xlarge)" in fails[0]
    from endpointctl.cost import monitor_lines

    monitor = sum(line.monthly_usd for line in monitor_lines("ml.m5.large"))  # the live-model monitor's, unchanged
    assert stack["cost"]["after_usd_month"] - monitor == pytest.approx(
        2 * (stack["cost"]["before_usd_month"] - monitor), rel=0.01)


def test_endpoint_renamed_breaks_its_callers(assemblies):
    stack = only_stack(plan_of(assemblies, "dev-instance-renamed", "dev"))
    endpoint = stack["endpoint"]
    assert (endpoint["effect"], endpoint["old_name"], endpoint["name"]) == (
        "replace", "rc-fraud-detection-dev-serverless", "rc-fraud-detection-dev-realtime")
    assert endpoint["breaks_callers"] is True
    assert "breaks_callers" in severities(stack)
    # dev keeps no data: the old endpoint's log group goes with it
    assert {"logical_id": "EndpointLogsC54E4891", "type": "AWS::Logs::LogGroup",
            "change": "replaced, data deleted"} in stack["data"]


def test_prod_turned_serverless_is_a_new_endpoint(assemblies):
    stack = only_stack(plan_of(assemblies, "prod-serverless", "prod"))
    assert stack["endpoint"]["effect"] == "replace" and stack["endpoint"]["breaks_callers"] is True
    assert find(stack, "AWS::ApplicationAutoScaling::ScalableTarget") == {"AutoscalingAllTraffic50E43F55": "remove"}
    assert stack["cost"]["after_usd_month"] < stack["cost"]["before_usd_month"]


def test_instance_endpoint_kept_under_its_name_cannot_turn_serverless(assemblies):
    """The same change with the endpoint's name kept: UpdateEndpoint refuses it."""
    from endpointctl.plan.build import plan_stack
    from endpointctl.plan.assembly import load_assembly

    base = load_assembly(assemblies["base"], option="--base").stacks["rc-fraud-detection-prod"]
    head = load_assembly(assemblies["prod-serverless"], option="--head").stacks["rc-fraud-detection-prod"]
    template = copy.deepcopy(head.template)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::SageMaker::Endpoint":
            resource["Properties"]["EndpointName"] = "rc-fraud-detection-prod-realtime"
    plan = plan_stack("prod", base, type(head)(name=head.name, template=template, assets=head.assets)).as_json()
    assert plan["endpoint"]["effect"] == "update"
    assert any("refuses to turn an instance-backed endpoint serverless" in r["message"] for r in plan["risks"]
               if r["severity"] == "fails")


def test_fixed_name_resource_replaced_fails(assemblies):
    stack = only_stack(plan_of(assemblies, "company-renamed", "prod"))
    assert actions(stack)["InferenceRole6A056ECE"] == "replace"
    fails = [r["message"] for r in stack["risks"] if r["severity"] == "fails"]
    assert any(m.startswith("InferenceRole6A056ECE (AWS::IAM::Role) must be replaced (create-only Path changes)")
               and "SageMaker-RiskControl-FraudDetection-Prod-InferenceRole" in m for m in fails)
    # the bucket gets the new company's name: a new bucket, the old one kept (Retain)
    assert actions(stack)["Bucket83908E77"] == "replace"
    assert {"logical_id": "Bucket83908E77", "type": "AWS::S3::Bucket",
            "change": "replaced, old one kept (UpdateReplacePolicy Retain)"} in stack["data"]


def test_retain_data_off_in_prod_is_data_loss(assemblies):
    result = endpointctl("plan", "--base", str(assemblies["base"]), "--head", str(assemblies["prod-retain-off"]),
                         "--env", "prod", "--format", "json")
    assert result.returncode == 3, result.stderr
    stack = only_stack(json.loads(result.stdout))
    lost = {r["message"].split(" ")[0] for r in stack["risks"] if r["severity"] == "data_loss"}
    assert {"Bucket83908E77", "DataKey17AFBB84", "EndpointLogsC54E4891"} <= lost
    assert stack["endpoint"]["effect"] == "unchanged"


def test_iam_action_added_is_a_widening(assemblies):
    stack = only_stack(plan_of(assemblies, "prod-in-vpc", "prod"))
    widened = [w for p in stack["iam"]["policies"] for w in p["widens"]]
    assert any(w.startswith("ec2:CreateNetworkInterface") for w in widened)
    assert "widens" in severities(stack)
    policy = next(p for p in stack["iam"]["policies"] if p["policy"].startswith("InferenceRoleDefaultPolicy"))
    assert policy["roles"] == ["InferenceRole6A056ECE"] and policy["added"]


def test_identical_assemblies_are_safe_and_list_nothing(assemblies):
    result = endpointctl("plan", "--base", str(assemblies["base"]), "--head", str(assemblies["dev-again"]),
                         "--env", "dev", "--format", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["verdict"] == "safe"
    stack = only_stack(plan)
    assert stack["endpoint"]["effect"] == "unchanged"
    for key in ("resources", "risks", "artifacts", "alarms", "data"):
        assert stack[key] == [], key
    assert stack["iam"] == {"policies": []} and stack["model_diff"] is None


def test_a_stack_on_one_side_only_is_added_or_removed(assemblies):
    plan = plan_of(assemblies, "prod-alarm-threshold")  # head holds prod only
    presence = {s["stack"]: s["presence"] for s in plan["stacks"]}
    assert presence == {"rc-fraud-detection-dev": "removed", "rc-fraud-detection-staging": "removed",
                        "rc-fraud-detection-prod": "both"}
    dev = next(s for s in plan["stacks"] if s["stack"] == "rc-fraud-detection-dev")
    assert dev["endpoint"]["effect"] == "remove" and dev["endpoint"]["breaks_callers"] is True
    assert set(actions(dev).values()) == {"remove"}


def test_json_keeps_the_issue_keys(assemblies):
    stack = only_stack(plan_of(assemblies, "prod-alarm-threshold", "prod"))
    assert {"stack", "resources", "endpoint", "risks", "artifacts", "iam", "alarms", "cost", "model_diff"} <= set(stack)
    assert {"name", "effect", "rollout", "breaks_callers"} <= set(stack["endpoint"])
    assert set(stack["cost"]) == {"before_usd_month", "after_usd_month"}


def test_bad_input_is_one_line(assemblies, tmp_path):
    result = endpointctl("plan", "--base", str(tmp_path), "--head", str(assemblies["base"]))
    assert result.returncode == 1
    assert result.stderr.strip() == f"endpointctl plan: --base {tmp_path}: not a cloud assembly (no manifest.json); " \
                                    "pass the folder `cdk synth` wrote (cdk.out)"
    unknown = endpointctl("plan", "--base", str(assemblies["base"]), "--head", str(assemblies["base"]), "--env", "qa")
    assert unknown.returncode == 1 and len(unknown.stderr.strip().splitlines()) <= 2 and "Traceback" not in unknown.stderr


def test_replacement_rule_is_cfn_lints_registry_schema(assemblies):
    """The create-only properties read from cfn-lint's bundled schemas are what cfn-lint
    itself reports, for every resource type the app synthesizes."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    from endpointctl.plan.assembly import load_assembly
    from endpointctl.plan.resources import create_only_properties

    types = {r["Type"] for stack in load_assembly(assemblies["base"], option="--base").stacks.values()
             for r in stack.resources.values()}
    assert {"AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint"} <= types
    for resource_type in sorted(types):
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
        expected = [p for p in schema.get("createOnlyProperties") or [] if p.startswith("/properties/")]
        assert ["/properties/" + "/".join(p) for p in create_only_properties(resource_type)] == expected, resource_type


def test_the_shipped_reference_sample_is_the_documented_one():
    from endpointctl.plan.model_diff import DEFAULT_SAMPLE, DEFAULT_SAMPLE_ROWS, default_sample_text

    assert DEFAULT_SAMPLE.read_text() == default_sample_text()
    assert len(DEFAULT_SAMPLE.read_text().splitlines()) == DEFAULT_SAMPLE_ROWS
