"""The committed JSON Schema of cdk.json is the configuration's own, and checks cdk.json."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from serving_config.schema import render, schemas
from tests.conftest import CDK_JSON, ROOT


@pytest.mark.parametrize("path, schema", list(schemas().items()), ids=lambda p: getattr(p, "name", ""))
def test_committed_schema_is_fresh(path, schema):
    assert path.read_text() == render(schema), (
        f"{path.relative_to(ROOT)} is stale: run `python -m serving_config.schema` and commit it")


def test_cdk_json_is_valid_by_the_schema_and_a_typo_is_not():
    schema = json.loads((ROOT / "schema" / "cdk.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(CDK_JSON))
    broken = copy.deepcopy(CDK_JSON)
    broken["context"]["serving"]["environments"]["dev"]["endpoint"]["memroy_mb"] = 2048
    broken["context"]["serving"]["environments"]["prod"]["endpoint"]["instance_count"] = 0
    assert len(list(validator.iter_errors(broken))) == 2



def test_schema_takes_a_shadow_on_an_instance_endpoint_only():
    validator = jsonschema.Draft202012Validator(json.loads((ROOT / "schema" / "cdk.schema.json").read_text()))
    with_shadow = copy.deepcopy(CDK_JSON)
    environments = with_shadow["context"]["serving"]["environments"]
    environments["prod"]["endpoint"]["shadow"] = {"model_data": "challenger.tar.gz", "sampling_percent": 25}
    assert not list(validator.iter_errors(with_shadow))
    environments["prod"]["endpoint"]["shadow"]["sampling_percent"] = 101  # SageMaker's share is at most 100 %
    environments["dev"]["endpoint"] = {"kind": "serverless", "shadow": {"model_data": "c.tar.gz", "sampling_percent": 5}}
    assert len(list(validator.iter_errors(with_shadow))) == 2
