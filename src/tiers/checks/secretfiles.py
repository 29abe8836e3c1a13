"""What the secret rules read of a project's secrets store, and what they never claim.

The store is ``secrets/`` beside the tiers.toml checked; a tiers.toml that is no file on
disk (the text a commit carries, as deploy checks it) has no store to read, and the rules
that need one say nothing of it. Names, fingerprints and recipients need no key. Values
are read only where an identity held here opens the tier; a tier nobody here can read is
passed over in silence.
"""

from __future__ import annotations

from pathlib import Path

from tiers import secrets
from tiers.checks.registry import Context
from tiers.checks.rules.secrets import resource_secrets
from tiers.config import Environment
from tiers.config.source import Key
from tiers.errors import UsageError


def project_dir(ctx: Context) -> Path | None:
    """The directory of the tiers.toml checked; None when it is not a file on disk."""
    path = ctx.source.path
    return path.resolve().parent if path.is_file() else None


def shown(env: str) -> str:
    return f"{secrets.DIRECTORY}/{env}.yaml"


def entries(ctx: Context, env: str) -> list[secrets.Entry] | None:
    """The tier's secrets (no values); None when it has no secrets file."""
    root = project_dir(ctx)
    if root is None or not secrets.has_file(root, env):
        return None
    return secrets.entries(root, env)


def recipients(ctx: Context, env: str) -> list[str]:
    """The age public keys the tier's file is wrapped for; none when it has no file."""
    root = project_dir(ctx)
    if root is None or not secrets.has_file(root, env):
        return []
    return secrets.recipients(root, env)


def readable(ctx: Context, env: str) -> dict[str, str] | None:
    """The tier's values when an identity here opens its file; else None."""
    root = project_dir(ctx)
    if root is None or not secrets.has_file(root, env):
        return None
    try:
        return secrets.values(root, env)
    except UsageError:  # no identity here opens it, or none is usable: claim nothing
        return None


def needed(env: Environment) -> dict[str, Key]:
    """Each secret the environment's services and resources need, and where it is named."""
    key: Key = ("environments", env.name)
    found: dict[str, Key] = {}
    for service, binding in env.services.items():
        for index, name in enumerate(binding.secrets or []):
            found.setdefault(name, (*key, service, "secrets", index))
    for name, where in resource_secrets(env):
        found.setdefault(name, where)
    return found
