"""Alarms: thresholds and settings changed, alarms added or removed, and the
endpoint's rollback list (DeploymentConfig.AutoRollbackConfiguration) before → after."""

from __future__ import annotations

from typing import Any

from endpointctl.plan.template import literal, of_type, show

ALARM = "AWS::CloudWatch::Alarm"
WATCHED = ("Threshold", "ComparisonOperator", "EvaluationPeriods", "DatapointsToAlarm", "MetricName", "Namespace",
           "Statistic", "ExtendedStatistic", "Period", "TreatMissingData", "Metrics", "ActionsEnabled")


def _alarms(template: dict) -> dict[str, dict]:
    """Alarm properties by alarm name (the logical id when CloudFormation names it)."""
    return {literal(r.get("Properties", {}).get("AlarmName")) or lid: r.get("Properties", {})
            for lid, r in of_type(template, ALARM).items()}


def rollback_alarms(template: dict) -> list[str]:
    names = []
    for resource in of_type(template, "AWS::SageMaker::Endpoint").values():
        deployment = resource.get("Properties", {}).get("DeploymentConfig") or {}
        for alarm in deployment.get("AutoRollbackConfiguration", {}).get("Alarms", []):
            names.append(show(alarm.get("AlarmName")))
    return names


def diff_alarms(old_template: dict, new_template: dict) -> list[dict[str, Any]]:
    old, new = _alarms(old_template), _alarms(new_template)
    found: list[dict[str, Any]] = []
    for name in sorted(new.keys() - old.keys()):
        found.append({"alarm": name, "change": "added"})
    for name in sorted(old.keys() - new.keys()):
        found.append({"alarm": name, "change": "removed"})
    for name in sorted(old.keys() & new.keys()):
        for key in WATCHED:
            if old[name].get(key) != new[name].get(key):
                found.append({"alarm": name, "change": key, "before": old[name].get(key), "after": new[name].get(key)})
    old_rollback, new_rollback = rollback_alarms(old_template), rollback_alarms(new_template)
    for name in new_rollback:
        if name not in old_rollback:
            found.append({"alarm": name, "change": "added to the rollback list"})
    for name in old_rollback:
        if name not in new_rollback:
            found.append({"alarm": name, "change": "removed from the rollback list"})
    return found


def describe(entry: dict[str, Any]) -> str:
    if "before" in entry:
        return f"{entry['alarm']}: {entry['change']} {show(entry['before'])} → {show(entry['after'])}"
    return f"{entry['alarm']}: {entry['change']}"
