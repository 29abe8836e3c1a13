"""Monthly costs: one line per priced resource, and the total as a range of whole dollars."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from tiers.config import Config, Cost, Environment
from tiers.docs.labels import provider


@dataclass(frozen=True)
class CostLine:
    """What one thing costs a month: ``fly.io backend (staging)``, 10 to 10 dollars."""

    label: str
    low: float
    high: float
    note: str | None = None

    @property
    def amount(self) -> str:
        return money(self.low, self.high)


def cost_lines(config: Config) -> list[CostLine]:
    """Every priced binding and resource, environment by environment, then project costs.

    >>> cost_lines(plyr)[0]                                      # doctest: +SKIP
    CostLine(label='fly.io backend (staging)', low=10.0, high=10.0, note='shared-cpu-1x, 256MB RAM')
    """
    lines = [line for env in config.environments.values() for line in _environment(env)]
    lines += [_line(cost, name) for name, cost in config.costs.items()]
    return lines


def _environment(env: Environment) -> Iterator[CostLine]:
    for name, binding in env.services.items():
        if binding.cost:
            yield _line(binding.cost, f"{provider(binding.platform)} {name} ({env.name})")
    for kind, resource in (("database", env.database), ("redis", env.redis)):
        if resource and resource.cost:
            yield _line(resource.cost, f"{provider(resource.provider)} {kind} ({env.name})")
    if env.storage and env.storage.cost:
        yield _line(env.storage.cost, f"{provider(env.storage.provider)} storage ({env.name})")


def _line(cost: Cost, label: str) -> CostLine:
    return CostLine(cost.label or label, cost.low, cost.high, cost.note)


def money(low: float, high: float) -> str:
    """A monthly amount as the seed writes it.

    >>> money(10, 10), money(0, 5), money(0.16, 0.16), money(0, 0)
    ('~$10/month', '~$0-5/month', '~$0.16/month', 'free')
    """
    if high == 0:
        return "free"
    if low == high:
        return f"~${_dollars(low)}/month"
    return f"~${_dollars(low)}-{_dollars(high)}/month"


def _dollars(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.2f}"


def total(lines: list[CostLine]) -> str:
    """The sum of the lows and of the highs, each rounded to whole dollars.

    >>> total([CostLine("a", 10, 10), CostLine("b", 0, 5), CostLine("c", 0.16, 0.16)])
    '~$10-15/month'
    """
    low = _whole(sum(line.low for line in lines))
    high = _whole(sum(line.high for line in lines))
    if high == 0 and any(line.high > 0 for line in lines):
        return "under $1/month"
    return money(low, high)


def _whole(value: float) -> int:
    return math.floor(value + 0.5)
