"""A shadow variant in the plan: added, changed, removed, or promoted (issue 20).

Reference ("Watching a live endpoint"): `ShadowProductionVariants`, `ProductionVariants`
and `DataCaptureConfig` are create-only, so any of these changes replaces the endpoint
config and updates the endpoint in place (same name, callers keep calling it); SageMaker
returns only the production variant's answer, so adding, changing or removing a shadow
moves no caller traffic. The share copied to the shadow is its weight's share of the
production variant's weight (docs/shadow.md, "The share").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from endpointctl.plan.risks import Risk
from endpointctl.plan.template import properties, show, target


@dataclass(frozen=True)
class Shadow:
    name: str
    model_id: str | None
    model_data: str  # the model's ModelDataUrl as the template shows it: what "the same archive" means
    instance_type: str | None
    instance_count: Any
    share_percent: float | None


def _model_data(template: dict, model_id: str | None) -> str:
    container = properties(template, model_id).get("PrimaryContainer") or {}
    return show(container.get("ModelDataUrl") or container.get("ModelPackageName"))


def shadow_of(template: dict, config_id: str | None) -> Shadow | None:
    config = properties(template, config_id)
    shadows, production = config.get("ShadowProductionVariants") or [], config.get("ProductionVariants") or []
    if not shadows:
        return None
    shadow = shadows[0]
    weight, base = shadow.get("InitialVariantWeight", 1.0), (production[0].get("InitialVariantWeight", 1.0) if production else None)
    share = min(100.0, 100 * weight / base) if isinstance(weight, (int, float)) and isinstance(base, (int, float)) and base else None
    model_id = target(shadow.get("ModelName"))
    return Shadow(shadow.get("VariantName", "?"), model_id, _model_data(template, model_id), shadow.get("InstanceType"),
                  shadow.get("InitialInstanceCount"), share)


def production_model_data(template: dict, config_id: str | None) -> str | None:
    production = properties(template, config_id).get("ProductionVariants") or []
    return _model_data(template, target(production[0].get("ModelName"))) if len(production) == 1 else None


def _fleet(shadow: Shadow) -> str:
    share = f"{shadow.share_percent:g} %" if shadow.share_percent is not None else "an unknown share"
    return f"{shadow.instance_count} x {shadow.instance_type}, copied {share} of the requests"


def shadow_rules(old_template: dict, new_template: dict, old_config: str | None, new_config: str | None,
                 name: str | None, rollout_text: str) -> list[Risk]:
    """What the deploy does to the shadow, in words a reviewer checks against the reference."""
    before, after = shadow_of(old_template, old_config), shadow_of(new_template, new_config)
    if before is None and after is None:
        return []
    no_move = ("the endpoint config is replaced (ShadowProductionVariants is create-only) and the endpoint updated in "
               "place; no caller traffic moves: callers get only the production variant's answers (reference, "
               "\"Watching a live endpoint\"). The update still runs under the endpoint's rollout (AWS documents "
               f"no exception for a shadow-only change): {rollout_text}")
    if before is None:
        return [Risk("info", f"endpoint {name}: shadow {after.name} added ({_fleet(after)}; model {after.model_data}): "
                             f"{no_move}. Its instances bill from the deploy on (cost below)")]
    if after is None:
        promoted = production_model_data(new_template, new_config) == before.model_data
        if promoted:
            return [Risk("info", f"endpoint {name}: promotion — the production variant now serves the challenger's "
                                 f"archive ({before.model_data}, shadow {before.name} until now) and the shadow is "
                                 f"removed; callers move to it under the rollout: {rollout_text}")]
        return [Risk("info", f"endpoint {name}: shadow {before.name} removed (the challenger is dropped): {no_move}")]
    changed = [what for what, old, new in (("model", before.model_data, after.model_data),
                                           ("fleet", _fleet(before), _fleet(after)), ("name", before.name, after.name))
               if old != new]
    if not changed:
        return []
    return [Risk("info", f"endpoint {name}: shadow {after.name} changes {', '.join(changed)} "
                         f"({_fleet(before)} → {_fleet(after)}): {no_move}")]
