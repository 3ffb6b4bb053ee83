"""Synthesized templates as JSON snapshots under tests/__snapshots__/, for PR review.

Asset hashes (64 hex digits) are replaced before comparing, so a diff shows real
changes only. That would also hide a code tarball that changes on every synth, so
test_stack.py checks the bundle is reproducible. Update with `make snapshot-update`,
after reading the diff.
"""

from __future__ import annotations

import json
import re

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

ASSET_HASH = re.compile(r"[0-9a-f]{64}")
# CDK Pipelines names each asset's publishing destination <hash>:<account>-<region>-<8 hex
# derived from the asset>: the suffix moves with the asset as its hash does.
ASSET_DESTINATION = re.compile(r"(<asset-hash>:\d{12}-[a-z0-9-]+?-\d)-[0-9a-f]{8}\b")


def normalized(template: dict) -> dict:
    text = ASSET_HASH.sub("<asset-hash>", json.dumps(template, sort_keys=True))
    return json.loads(ASSET_DESTINATION.sub(r"\1-<destination>", text))


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("case", ["dev", "staging", "prod", "prod-pinned-imported", "staging-ab", "qa", "prod-dr",
                                  "prod-shadow"])
def test_template_snapshot(synthesized, snapshot_json, case):
    assert normalized(synthesized.templates[case]) == snapshot_json
