"""The dashboard picture (docs/stack.md) is drawn from the synthesized prod dashboard, and
the example release plan (docs/release.md) is what `endpointctl plan` prints for it."""

from __future__ import annotations

import re

from devtools.dashboard_picture import dashboard_body, render
from tests.conftest import ROOT

PICTURE = ROOT / "docs" / "dashboard.svg"


def test_dashboard_picture_matches_the_prod_dashboard(synthesized, request):
    drawn = render(dashboard_body(synthesized.templates["prod"]), title="Dashboard of rc-fraud-detection-prod")
    if request.config.getoption("--snapshot-update"):
        PICTURE.write_text(drawn)
    assert PICTURE.read_text() == drawn, "the dashboard changed: run `make snapshot-update` and commit docs/dashboard.svg"


RELEASE_DOC = ROOT / "docs" / "release.md"  # the example plan lives with the release path it shows
PLAN_BLOCK = re.compile(r"(<!-- release-plan:begin -->\n)(.*?)(<!-- release-plan:end -->)", re.S)
LATENCY = re.compile(r"\d+(\.\d+)? ms\b")


def _without_latencies(text: str) -> str:
    return LATENCY.sub("… ms", text)


def test_example_release_plan_is_what_the_command_prints(release_assemblies, request):
    from endpointctl.plan import make_plan, markdown

    plan = make_plan(release_assemblies["base"], release_assemblies["retrained"], environments=["prod"])
    printed = f"````markdown\n{markdown.render(plan)}````\n"
    document = RELEASE_DOC.read_text()
    if request.config.getoption("--snapshot-update"):
        document = PLAN_BLOCK.sub(lambda m: m.group(1) + printed + m.group(3), document)
        RELEASE_DOC.write_text(document)
    shown = PLAN_BLOCK.search(document).group(2)
    assert _without_latencies(shown) == _without_latencies(printed), (
        "the release plan changed: run `make snapshot-update` (it also rewrites the example in docs/release.md) "
        "and commit docs/release.md")
