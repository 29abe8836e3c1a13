"""The separation linter: proves the environments share nothing they must not.

>>> from tiers.checks import run
>>> findings = run(config, source)                       # doctest: +SKIP
>>> [f.rule for f in findings]                           # doctest: +SKIP
['shared-bucket']
"""

from tiers.checks import rules as _rules  # registers the built-in rules
from tiers.checks.registry import RULES, SEVERITIES, Finding, Rule, Severity, failing, run
from tiers.checks.sites import cookie_scope, site

del _rules

__all__ = [
    "RULES",
    "SEVERITIES",
    "Finding",
    "Rule",
    "Severity",
    "cookie_scope",
    "failing",
    "run",
    "site",
]
