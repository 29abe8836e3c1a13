"""The built-in rules; importing this package registers them in ``RULES``."""

from tiers.checks.rules import access, domains, isolation, platforms, promotion, secrets, store

__all__ = ["access", "domains", "isolation", "platforms", "promotion", "secrets", "store"]
