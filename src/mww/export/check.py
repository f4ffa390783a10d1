"""One named check of the ESPHome device contract: the unit every verifier report is made of."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Check:
    """One named check: passed or not, with a one-line detail and, when failed, a one-line fix."""

    name: str
    passed: bool
    detail: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.passed:
            self.fix = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view of the check."""
        return asdict(self)
