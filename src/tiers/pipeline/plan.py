"""A plan: the ordered steps of a deploy or rollback, data first.

Each step says what it will do (the commands, targets and addresses each platform
contributed), which ``--dry-run`` prints, and carries the action the runner executes and
records; so what a dry run shows is what runs, step for step (pyinfra's split between
planning and executing).

>>> print("\\n".join(plan.lines()))                               # doctest: +SKIP
deploy staging: main → 4be1c0d2a9f3 as version 4be1c0d
  build     export 4be1c0d2a9f3 to .tiers/releases/; backend: pip install ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Plan", "Step"]


@dataclass(frozen=True)
class Step:
    """One step: its name, what it does in words, and how."""

    name: str
    says: str
    act: Callable[[], str | None]
    """Does the step; what it returns is recorded with it (``reused backend-4f2a``)."""
    fails: Callable[[Exception], Exception] | None = None
    """Puts back what a failure of this step left (the database, the new instances) and
    gives the error the user sees; None: the run's own ending handles it."""


@dataclass
class Plan:
    title: str
    steps: list[Step] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The plan as ``--dry-run`` prints it: the title, then a line per step."""
        return [self.title, *(f"  {s.name:<9} {s.says}" for s in self.steps)]
