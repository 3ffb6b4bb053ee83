"""A challenger as a shadow variant (issue 20): the config's refusals, and the template."""

from __future__ import annotations

import pytest

from serving_config.config import ConfigError, parse_config
from tests.conftest import env_config, serving_settings

SHADOW = {"model_data": "challenger.tar.gz", "sampling_percent": 20}


def prod_with(shadow: dict | None = None, **endpoint_changes) -> dict:
    raw = serving_settings()
    endpoint = raw["environments"]["prod"]["endpoint"]
    endpoint.update(endpoint_changes)
    endpoint["shadow"] = {**SHADOW, **(shadow or {})}
    return raw


def problem(raw: dict) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_config(raw)
    lines = [line for line in str(raised.value).splitlines() if line.strip().startswith("- ")]
    assert len(lines) == 1, str(raised.value)
    return lines[0]


def test_a_shadow_parses_and_takes_the_production_fleet_by_default() -> None:
    endpoint = parse_config(prod_with()).environment("prod").endpoint
    fleet = endpoint.shadow.fleet(endpoint.variants[0])
    assert (fleet.name, fleet.instance_type, fleet.instance_count, fleet.weight) == ("Shadow", "ml.m5.large", 2, 0.2)


@pytest.mark.parametrize("raw, key, rule", [
    (env_config("dev", endpoint={"kind": "serverless", "shadow": SHADOW}),
     "environments.dev.endpoint.shadow", "serverless endpoints take no shadow variant"),
    (prod_with(variants=[{"name": "A", "instance_count": 2}, {"name": "B", "instance_count": 2}],
               instance_type=None, instance_count=None),
     "environments.prod.endpoint.shadow", "no shadow beside several production variants (A, B)"),
    (prod_with({"model_data": "model.tar.gz"}), "environments.prod.endpoint.shadow.model_data",
     "a challenger other than the champion"),
    (prod_with({"model_data": "./model.tar.gz"}), "environments.prod.endpoint.shadow.model_data",
     "a challenger other than the champion"),
    (prod_with({"sampling_percent": 0}), "environments.prod.endpoint.shadow.sampling_percent", "from 1 to 100"),
    (prod_with({"sampling_percent": 101}), "environments.prod.endpoint.shadow.sampling_percent", "from 1 to 100"),
    (prod_with({"name": "AllTraffic"}), "environments.prod.endpoint.shadow.name", "other than the production variant's"),
    (prod_with(data_capture_percent=None), "environments.prod.endpoint.data_capture_percent", "when a shadow is set"),
])
def test_each_refusal_is_one_line_naming_the_rule(raw, key, rule) -> None:
    for endpoint in (e["endpoint"] for e in raw["environments"].values()):
        for unset in [k for k, v in endpoint.items() if v is None and k != "data_capture_percent"]:
            del endpoint[unset]
        if endpoint.get("data_capture_percent", 0) is None:
            del endpoint["data_capture_percent"]
    line = problem(raw)
    assert key in line and rule in line, line


def test_challenger_is_isolated_like_any_model() -> None:
    raw = prod_with({"model_data": "s3://bucket/challenger/model.tar.gz"})
    raw["environments"]["prod"]["network"] = {"isolation": True}
    line = problem(raw)
    assert "endpoint.shadow.model_data" in line and "network.isolation" in line


# ------------------------------------------------------------------ the template

def test_template_has_a_distinct_challenger_in_shadow_production_variants(synthesized) -> None:
    config = synthesized.one("prod-shadow", "AWS::SageMaker::EndpointConfig")["Properties"]
    (production,), (shadow,) = config["ProductionVariants"], config["ShadowProductionVariants"]
    assert shadow["VariantName"] == "Challenger" and shadow["InitialVariantWeight"] == production["InitialVariantWeight"] * 0.5
    assert shadow["ModelName"] != production["ModelName"]
    models = synthesized.resources("prod-shadow", "AWS::SageMaker::Model")
    by_id = {m["Fn::GetAtt"][0] for m in (production["ModelName"], shadow["ModelName"])}
    urls = {str(models[i]["Properties"]["PrimaryContainer"]["ModelDataUrl"]) for i in by_id}
    assert len(urls) == 2, "the challenger serves its own archive"
    assert all(models[i]["Properties"]["EnableNetworkIsolation"] for i in by_id)
    # Capture covers both variants as text, not base64.
    header = config["DataCaptureConfig"]["CaptureContentTypeHeader"]
    assert header == {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]}


def test_shadow_alarms_notify_their_own_topic_and_are_not_rollback_alarms(synthesized) -> None:
    template = synthesized.templates["prod-shadow"]
    alarms = synthesized.resources("prod-shadow", "AWS::CloudWatch::Alarm")
    shadow_alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in alarms.values()
                     if "-Challenger-" in str(a["Properties"]["AlarmName"])}
    assert {name.rsplit("-", 2)[-2] for name in shadow_alarms} == {"ServerErrors", "ModelLatency", "MemoryUtilization"}
    topics = synthesized.resources("prod-shadow", "AWS::SNS::Topic")
    (notify_id,) = [k for k in topics if k.startswith("ShadowNotifyTopic")]
    for alarm in shadow_alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": notify_id}]
    endpoint = synthesized.one("prod-shadow", "AWS::SageMaker::Endpoint")["Properties"]
    rollback = [a["AlarmName"] for a in endpoint["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]]
    assert rollback and not set(rollback) & set(shadow_alarms)
    assert "Champion vs challenger" in str(template["Resources"])


# ------------------------------------------------------------------ the plan

@pytest.fixture(scope="session")
def shadow_assembly(sample_model, retrained_model, tmp_path_factory):
    """prod on model v1 with model v2 as a 50 % shadow (the base is release_assemblies' v1,
    the promotion release_assemblies' v2 without a shadow)."""
    from endpointctl.plan.synth import synth_assembly

    serving = serving_settings(model_data=str(sample_model))
    serving["environments"]["prod"]["endpoint"]["shadow"] = {"model_data": str(retrained_model), "sampling_percent": 50}
    return synth_assembly(serving, ("prod",), tmp_path_factory.mktemp("shadow") / "cdk.out")


def _prod_plan(base, head) -> dict:
    from endpointctl.plan import make_plan

    (stack,) = make_plan(base, head, environments=["prod"]).as_json()["stacks"]
    return stack


def _info(stack: dict) -> str:
    return "\n".join(r["message"] for r in stack["risks"] if r["severity"] == "info")


def test_plan_of_adding_a_shadow_moves_no_traffic_and_adds_its_hours(release_assemblies, shadow_assembly):
    stack = _prod_plan(release_assemblies["base"], shadow_assembly)
    assert stack["endpoint"]["effect"] == "update"
    # Not blocking: the one widening is the inference role reading the challenger's archive too.
    assert {r["severity"] for r in stack["risks"]} <= {"info", "widens"}
    info = _info(stack)
    assert "shadow Shadow added (2 x ml.m5.large, copied 50 % of the requests" in info
    assert "no caller traffic moves" in info and "ShadowProductionVariants is create-only" in info
    # Two more ml.m5.large instances: the month's bill grows by their hours.
    assert stack["cost"]["after_usd_month"] - stack["cost"]["before_usd_month"] == pytest.approx(2 * 0.115 * 730, abs=0.02)


def test_plan_of_promoting_is_the_production_update_under_the_canary(shadow_assembly, release_assemblies):
    stack = _prod_plan(shadow_assembly, release_assemblies["retrained"])
    info = _info(stack)
    assert "promotion — the production variant now serves the challenger's archive" in info
    assert stack["endpoint"]["rollout"]["strategy"] == "canary"
    assert stack["endpoint"]["rollout"]["rollback_alarms"] == [
        "rc-fraud-detection-prod-realtime-AllTraffic-ModelLatency", "rc-fraud-detection-prod-realtime-AllTraffic-ServerErrors"]


def test_plan_of_dropping_the_shadow(shadow_assembly, release_assemblies):
    info = _info(_prod_plan(shadow_assembly, release_assemblies["base"]))
    assert "shadow Shadow removed (the challenger is dropped)" in info
