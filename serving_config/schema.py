"""The JSON Schema of cdk.json, generated from the configuration's own classes.

`schema/serving.schema.json` describes the `serving` context; `schema/cdk.schema.json`
is cdk.json as a whole (the same definitions under `context.serving`), for an editor to
check cdk.json while you type. Regenerate with `python -m serving_config.schema`;
tests/config/test_schema.py fails when a committed file is stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from serving_config.config import ServingConfig
from serving_config.paths import PROJECT_ROOT

SCHEMA_DIR = PROJECT_ROOT / "schema"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schemas() -> dict[Path, dict]:
    serving = {"$schema": DRAFT, **ServingConfig.model_json_schema(by_alias=True)}
    defs = serving.pop("$defs")
    cdk_json = {
        "$schema": DRAFT,
        "title": "cdk.json",
        "type": "object",
        "properties": {"context": {"type": "object", "properties": {"serving": {"$ref": "#/$defs/ServingConfig"}}}},
        "$defs": {**defs, "ServingConfig": {k: v for k, v in serving.items() if k != "$schema"}},
    }
    return {SCHEMA_DIR / "serving.schema.json": {**serving, "$defs": defs}, SCHEMA_DIR / "cdk.schema.json": cdk_json}


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2) + "\n"


if __name__ == "__main__":
    for path, schema in schemas().items():
        path.write_text(render(schema))
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")
