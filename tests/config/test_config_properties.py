"""`parse_config` under random mutations of the real cdk.json (issue 12, item 4): any
value of any JSON type in any key, deleted keys, unknown keys. The only outcomes allowed
are a parsed configuration or a ConfigError whose every line names a key, on one line."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving_config.config import ConfigError, parse_config
from tests.conftest import CONTEXT

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
    | st.sampled_from([0, 1, 2, 5, 10, 50, 100, 2048, "instance", "serverless", "linear", "canary", "import", "ml.t2.medium"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def rich_serving() -> dict[str, Any]:
    """cdk.json's `serving`, plus every optional section, so mutations reach them all."""
    raw = copy.deepcopy(CONTEXT["serving"])
    raw["environments"]["staging"].update(
        network={"subnet_ids": [], "security_group_ids": [], "isolation": False,
                 "isolation_off_reason": "the handler pip-installs its requirements.txt at start"},
        encryption={"mode": "create", "key_arn": None},
        alarms={"model_latency_ms": 1000, "email": "oncall@acme.example", "idle_hours": 4, "required": True,
                "topic_arn": "arn:aws:sns:ap-northeast-1:111111111111:oncall"},
        lifecycle={"data_capture_days": 90, "batch_input_days": None, "batch_output_days": 30,
                   "noncurrent_version_days": 7, "incomplete_upload_days": 1},
        access_logs={"bucket": None, "retention_days": 400},
        account="111111111111", region="ap-northeast-1", log_retention_days=30,
    )
    raw["environments"]["dev"]["endpoint"] = {
        "kind": "instance",
        "variants": [{"name": "A", "instance_type": "ml.m5.large", "instance_count": 1, "weight": 0.9},
                     {"name": "B", "instance_count": 1, "weight": 0.1, "model_data": "s3://b/k/model.tar.gz"}],
        "autoscaling": {"min_instances": 1, "max_instances": 4},
        "rollout": {"strategy": "linear", "step_percent": 20, "wait_s": 60, "baking_s": 60, "max_execution_s": 3600},
        "data_capture_percent": 5,
    }
    raw["environments"]["dev"]["batch"].update(max_payload_mb=6, max_concurrent_transforms=2)
    # B's artifact is in S3: the handler cannot be packed into it, so dev runs open, and says why.
    raw["environments"]["dev"]["network"] = {"isolation": False, "isolation_off_reason": "a challenger from S3"}
    # Environments of any name, each with its tier.
    raw["environments"]["qa"] = {"tier": "staging", "retain_data": False}
    raw["environments"]["prod-dr"] = {**raw["environments"]["prod"], "tier": "prod", "region": "us-west-2"}
    raw["model_registry"] = {"environment": "dev"}
    raw["pipeline"] = {"connection_arn": "arn:aws:codeconnections:us-east-1:111111111111:connection/"
                       "12345678-1234-1234-1234-123456789012", "repository": "acme/fraud", "stages": ["dev", "qa", "prod"]}
    return raw


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a document: keys of objects and items of lists, depth first."""
    found = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


def rendered(path: tuple) -> str:
    plain = re.compile(r"[A-Za-z0-9_-]+")
    parts = (f"[{p}]" if isinstance(p, int) else f".{p}" if plain.fullmatch(p) else f"[{json.dumps(p)}]" for p in path)
    return "".join(parts).lstrip(".")


@st.composite
def mutated(draw) -> dict[str, Any]:
    doc = draw(st.sampled_from([CONTEXT["serving"], rich_serving()]))
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(doc)))
        parent = doc
        for part in where[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[where[-1]] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(JSON_VALUES)
    return doc


def assert_parsed_or_refused_by_key(doc: dict[str, Any]) -> None:
    try:
        config = parse_config(doc)
    except ConfigError as error:
        assert error.problems
        known = {rendered(p) for p in paths(doc) + paths(rich_serving())} | {"serving"}
        # Every environment has a tier, written or not (dev, staging and prod are their own).
        environments = doc.get("environments") if isinstance(doc.get("environments"), dict) else {}
        known |= {rendered(("environments", name, "tier")) for name in environments}
        for problem in error.problems:
            assert "\n" not in problem, problem
            key = next((k for k in sorted(known, key=len, reverse=True) if problem.startswith(f"{k}: ")), None)
            assert key is not None, f"names no key: {problem}"
        return
    for env in config.environments.values():  # everything the stack reads must hold together
        assert env.stack_name and env.endpoint_name and env.bucket_name and env.batch.payload_limit_bytes
        assert env.endpoint.payload_limit_bytes and env.project.framework_version
        assert all(v.name for v in getattr(env.endpoint, "variants", ()))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_any_mutation_of_cdk_json_parses_or_is_refused_by_key(doc):
    assert_parsed_or_refused_by_key(doc)


@pytest.mark.parametrize("endpoint, expected", [
    # Once a ZeroDivisionError and a TypeError (issue 12).
    ({"kind": "instance", "instance_count": 2, "rollout": {"strategy": "linear", "step_percent": 0}},
     "environments.prod.endpoint.rollout.step_percent: got 0; allowed: an integer from 1 to 50"),
    ({"kind": "instance", "variants": [{"name": ["A"], "instance_count": 2}]},
     'environments.prod.endpoint.variants[0].name: got ["A"]; allowed: letters, digits and single hyphens'),
    ({"kind": "instance", "variants": [{"name": {"A": 1}, "instance_count": 2}, {"name": {"A": 1}}]},
     "environments.prod.endpoint.variants[1].name: got"),
])
def test_values_that_once_crashed_are_refused(endpoint, expected):
    raw = copy.deepcopy(CONTEXT["serving"])
    raw["environments"]["prod"]["endpoint"] = endpoint
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert expected in str(caught.value)
    assert_parsed_or_refused_by_key(raw)


def test_the_documents_mutated_are_valid_to_begin_with():
    parse_config(CONTEXT["serving"])
    parse_config(rich_serving())
