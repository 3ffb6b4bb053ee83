"""The plan as Markdown for a pull request comment (mermaid renders on GitHub)."""

from __future__ import annotations

from endpointctl.plan import alarms, artifacts
from endpointctl.plan.build import Plan, StackPlan

VERDICT_WORDS = {"safe": "safe", "risky": "risky — read the risks", "fails": "**will fail** — see below"}
SEVERITY_WORDS = {"fails": "fails", "breaks_callers": "breaks callers", "data_loss": "data loss",
                  "widens": "widens IAM", "info": "info"}


def render(plan: Plan) -> str:
    lines = [f"# Deploy plan: {plan.verdict}", ""]
    lines += ["| stack | verdict | endpoint | resources changed | cost / month |", "| --- | --- | --- | --- | --- |"]
    for stack in plan.stacks:
        effect = stack.endpoint.effect if stack.endpoint else "—"
        lines.append(f"| {stack.stack} | {stack.verdict} | {effect} | {len(stack.resources)} | {_cost(stack)} |")
    for stack in plan.stacks:
        lines += [""] + _stack(stack)
    return "\n".join(lines) + "\n"


def _cost(stack: StackPlan) -> str:
    before, after = stack.cost["before_usd_month"], stack.cost["after_usd_month"]
    show = lambda v: "—" if v is None else f"${v:,.2f}"  # noqa: E731
    return show(after) if before == after else f"{show(before)} → {show(after)}"


def _stack(stack: StackPlan) -> list[str]:
    title = {"added": " (new stack)", "removed": " (stack removed)"}.get(stack.presence, "")
    lines = [f"## {stack.stack}{title}: {VERDICT_WORDS[stack.verdict]}", ""]
    if not stack.resources:
        return lines + ["Nothing changes."]
    if stack.endpoint:
        lines += [f"**Endpoint**: {stack.endpoint.describe()}", ""]
        lines += _timeline(stack)
    if stack.risks:
        lines += ["| severity | risk |", "| --- | --- |"]
        lines += [f"| {SEVERITY_WORDS[r.severity]} | {_cell(r.message)} |" for r in stack.risks] + [""]
    lines += ["### Resources", "", "| action | logical id | type | why |", "| --- | --- | --- | --- |"]
    lines += [f"| {c.action} | {c.logical_id} | {c.type} | {_cell(c.why)} |" for c in stack.resources] + [""]
    lines += _section("Artifacts", [artifacts.describe(a) for a in stack.artifacts])
    lines += _section("IAM", [_policy(p) for p in stack.iam])
    lines += _section("Alarms", [alarms.describe(a) for a in stack.alarms])
    lines += _section("Data", [f"{d.logical_id} ({d.type}): {d.change}" for d in stack.data])
    lines += _section("Cost", [f"{_cost(stack)} per month (endpointctl cost's model and assumed traffic)"])
    lines += _model(stack)
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section(title: str, items: list[str]) -> list[str]:
    return [f"### {title}", ""] + [f"- {item}" for item in items] + [""] if items else []


def _policy(change) -> str:
    roles = ", ".join(change.roles) or "no role"
    parts = [f"`{change.policy}` ({roles}):"]
    parts += [f"+ {g}" for g in change.granted] + [f"− {g}" for g in change.revoked]
    if change.widens:
        parts.append(f"**widens**: {'; '.join(change.widens)}")
    return "<br>".join(parts)


def _timeline(stack: StackPlan) -> list[str]:
    rollout = stack.endpoint.rollout if stack.endpoint else None
    if rollout is None or rollout.strategy == "no_traffic_shift":
        return []
    lines = ["```mermaid", "gantt", f"  title {stack.endpoint.name}: traffic on the new endpoint config",
             "  dateFormat X", "  axisFormat %M:%S", "  section new config"]
    for i, (label, start, end) in enumerate(rollout.phases()):
        lines.append(f"  {label} :p{i}, {start}, {max(end, start + 1)}")
    if rollout.strategy not in ("serverless",):
        total = max(end for _, _, end in rollout.phases())
        watched = "rollback alarms watched" if rollout.alarms else "no rollback alarms"
        lines += ["  section old fleet", f"  kept, {watched} :o0, 0, {max(total, 1)}"]
    return lines + ["```", ""]


def _model(stack: StackPlan) -> list[str]:
    diff = stack.model_diff
    if diff is None:
        return []
    if "skipped" in diff:
        return ["### Model behaviour", "", f"Not compared: {diff['skipped']}", ""]
    return [
        "### Model behaviour", "",
        f"{diff['before']} → {diff['after']}, scored on {diff['rows']:,} reference rows as the container serves them:", "",
        "| | before | after |", "| --- | --- | --- |",
        f"| fraud-flag rate | {diff['fraud_flag_rate_before']:.2%} | {diff['fraud_flag_rate_after']:.2%} |",
        f"| one-row request | {diff['single_row_ms_before']:.1f} ms | {diff['single_row_ms_after']:.1f} ms |",
        f"| per row in one batch | {diff['batch_ms_per_row_before']:.3f} ms | {diff['batch_ms_per_row_after']:.3f} ms |",
        "",
        f"Labels agree on {diff['label_agreement']:.2%} of rows; |Δ p(fraud)| p99 {diff['p99_abs_delta_p_fraud']:.3f}, "
        f"max {diff['max_abs_delta_p_fraud']:.3f}.", "",
    ]
