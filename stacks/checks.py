"""The cdk-nag packs every synth runs (the app and the tests share this)."""

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks


def add_nag_packs(app: cdk.App) -> None:
    # The compliance packs a risk-control team's auditors ask of prod run on every
    # environment: one code path, and dev cannot drift from what prod must pass.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), HIPAASecurityChecks(app), NIST80053R5Checks(app))
