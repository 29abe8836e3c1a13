"""tiers.toml: read it, validate it, and hand out the typed model.

This package is the only code that reads tiers.toml; everything else takes a Config.

>>> from tiers.config import load
>>> config, source = load("tiers.toml")            # doctest: +SKIP
>>> config.environments["staging"].trigger.describe()   # doctest: +SKIP
'push to main'
"""

from tiers.config.load import DEFAULT_FILE, Loaded, load, load_text
from tiers.config.model import (
    Access,
    Binding,
    Config,
    Cost,
    Database,
    Environment,
    OAuth,
    Redis,
    Service,
    Storage,
    Trigger,
    host_of,
)
from tiers.config.source import Source

__all__ = [
    "DEFAULT_FILE",
    "Access",
    "Binding",
    "Config",
    "Cost",
    "Database",
    "Environment",
    "Loaded",
    "OAuth",
    "Redis",
    "Service",
    "Source",
    "Storage",
    "Trigger",
    "host_of",
    "load",
    "load_text",
]
