"""Provider names of resources: one spelling each, so two tiers compare by name.

``Neon`` is ``neon`` and ``cloudflare-r2`` is ``r2``; a name tiers does not know is
refused with the known ones, so no two spellings of one provider slip past the checks.

>>> provider("storage")(" Cloudflare-R2 ")
'r2'
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

KNOWN = {
    "database": (
        "local", "sqlite", "neon", "supabase", "fly", "rds", "cloud-sql", "azure",
        "render", "railway", "heroku", "crunchy-bridge", "digitalocean", "aiven",
    ),
    "redis": (
        "local", "docker", "fly", "upstash", "redis-cloud", "elasticache", "memorystore",
        "render", "railway", "heroku", "digitalocean", "aiven",
    ),
    "storage": ("local", "r2", "s3", "gcs", "azure-blob", "b2", "tigris", "minio", "spaces"),
    "observability": (
        "local", "logfire", "sentry", "datadog", "honeycomb", "grafana", "new-relic", "otlp",
    ),
}  # fmt: skip
"""Provider names by resource."""

ALIASES = {
    "cloudflare-r2": "r2",
    "aws-s3": "s3",
    "amazon-s3": "s3",
    "google-cloud-storage": "gcs",
    "backblaze": "b2",
    "backblaze-b2": "b2",
    "digitalocean-spaces": "spaces",
    "fly-io": "fly",
    "flyio": "fly",
    "neon-tech": "neon",
    "aws-rds": "rds",
    "amazon-rds": "rds",
    "google-cloud-sql": "cloud-sql",
    "upstash-redis": "upstash",
    "aws-elasticache": "elasticache",
    "pydantic-logfire": "logfire",
    "newrelic": "new-relic",
    "opentelemetry": "otlp",
}
"""Other spellings of known providers, after lower-casing and turning ``_ . space`` to ``-``."""


def provider(resource: str) -> Callable[[str], str]:
    """The validator of a ``resource``'s provider: the one spelling, or a ValueError."""
    known = KNOWN[resource]

    def check(value: str) -> str:
        name = re.sub(r"[\s_.]+", "-", value.strip().lower())
        name = ALIASES.get(name, name)
        if name in known:
            return name
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown {resource} provider {value!r}; {hint}known: {', '.join(known)}")

    return check
