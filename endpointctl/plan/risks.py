"""What a plan warns about, and the verdict those warnings add up to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

Severity = Literal["fails", "breaks_callers", "data_loss", "widens", "info"]
# What makes `endpointctl plan` exit 3: the deploy fails, breaks callers or loses data.
BLOCKING: tuple[Severity, ...] = ("fails", "breaks_callers", "data_loss")
SEVERITY_ORDER: tuple[Severity, ...] = ("fails", "breaks_callers", "data_loss", "widens", "info")


@dataclass(frozen=True)
class Risk:
    severity: Severity
    message: str

    def as_json(self) -> dict[str, str]:
        return {"severity": self.severity, "message": self.message}


def verdict(risks: Iterable[Risk]) -> str:
    """`fails` if any risk fails the deploy; `risky` for callers broken, data lost or
    permissions widened; `safe` otherwise."""
    severities = {risk.severity for risk in risks}
    if "fails" in severities:
        return "fails"
    if severities & {"breaks_callers", "data_loss", "widens"}:
        return "risky"
    return "safe"


def blocking(risks: Iterable[Risk]) -> bool:
    return any(risk.severity in BLOCKING for risk in risks)


def ordered(risks: Iterable[Risk]) -> list[Risk]:
    unique = list(dict.fromkeys(risks))
    return sorted(unique, key=lambda risk: SEVERITY_ORDER.index(risk.severity))
