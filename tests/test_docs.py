"""The README's dashboard picture is drawn from the synthesized prod dashboard."""

from __future__ import annotations

from endpointctl.dashboard_picture import dashboard_body, render
from tests.conftest import ROOT

PICTURE = ROOT / "docs" / "dashboard.svg"


def test_dashboard_picture_matches_the_prod_dashboard(synthesized, request):
    drawn = render(dashboard_body(synthesized.templates["prod"]), title="Dashboard of rc-fraud-detection-prod")
    if request.config.getoption("--snapshot-update"):
        PICTURE.write_text(drawn)
    assert PICTURE.read_text() == drawn, "the dashboard changed: run `make snapshot-update` and commit docs/dashboard.svg"
