"""Where a model's container runs. No CDK import: the app's config parses into it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelNetwork:
    """In a VPC (subnets and security groups), and/or with no network at all
    (isolation). The default is SageMaker's own network."""

    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    isolation: bool = False
