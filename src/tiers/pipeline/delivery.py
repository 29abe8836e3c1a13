"""Each service's secrets, read from the tier's store and handed to its platform.

A service gets exactly what its binding declares in that environment: the names in
``secrets = [...]``, and the environment's ``database.url_secret`` / ``redis.url_secret``
under the variable its ``vars`` gives ``database_url`` / ``redis_url``. Values are
decrypted in memory from ``secrets/<env>.yaml`` as it is now, never from a release's
commit, so a rollback runs with today's values. A name without a value refuses, before
anything starts, naming it and the command that sets it; a dry run only warns (``unset``).

>>> wanted = declared(config, env, ["backend"])      # doctest: +SKIP
{'backend': {'OAUTH_ENCRYPTION_KEY': 'OAUTH_ENCRYPTION_KEY'}}
>>> read(project_dir, "staging", wanted)
{'backend': {'OAUTH_ENCRYPTION_KEY': '…'}}
"""

from __future__ import annotations

from pathlib import Path

from tiers.config import Config, Environment
from tiers.errors import OperationError
from tiers.platforms.base import Platform
from tiers.redaction import register
from tiers.secrets import Store

__all__ = ["changed", "declared", "deliver_local", "fingerprints", "read", "unset"]

Wanted = dict[str, dict[str, str]]
"""service → (variable its processes get → the secret that holds its value)."""


def declared(config: Config, env: Environment, services: list[str]) -> Wanted:
    """What each of ``services`` is given in ``env``: variable → secret name."""
    out: Wanted = {}
    for service in services:
        wanted = {name: name for name in env.services[service].secrets or []}
        facts = config.services[service].vars
        for fact, part in (("database_url", env.database), ("redis_url", env.redis)):
            secret = getattr(part, "url_secret", None)
            if secret and part is not None and part.url is None and fact in facts:
                wanted[facts[fact]] = secret
        out[service] = wanted
    return out


def names(wanted: Wanted) -> list[str]:
    return sorted({name for each in wanted.values() for name in each.values()})


def read(project_dir: Path, environment: str, wanted: Wanted) -> dict[str, dict[str, str]]:
    """Each service's ``variable → value``, decrypted in memory; an OperationError naming
    each secret without a value (and a UsageError from the store when no key here opens
    the tier)."""
    needed = names(wanted)
    if not needed:
        return {service: {} for service in wanted}
    store = Store(project_dir)
    held = store.values(environment) if store.exists(environment) else {}
    missing = [name for name in needed if name not in held]
    if missing:
        raise OperationError("\n".join(_unset(store, environment, wanted, missing)))
    register(held[name] for name in needed)  # masked in everything tiers writes from now on
    return {s: {var: held[name] for var, name in each.items()} for s, each in wanted.items()}


def unset(project_dir: Path, environment: str, wanted: Wanted) -> list[str]:
    """A line for each secret ``wanted`` names that has no value in the tier, naming the
    command that sets it: read from the file's names, so no key is needed (a dry run
    warns with these; a deploy refuses with them)."""
    needed = names(wanted)
    if not needed:
        return []
    store = Store(project_dir)
    have = {e.name for e in store.entries(environment)} if store.exists(environment) else set()
    return _unset(store, environment, wanted, [n for n in needed if n not in have])


def fingerprints(project_dir: Path, environment: str, wanted: Wanted) -> dict[str, str]:
    """The fingerprint of each secret ``wanted`` names (no key needed): what a deployment
    records of them, never their values."""
    needed = names(wanted)
    if not needed:
        return {}
    known = {e.name: e.fingerprint or "" for e in Store(project_dir).entries(environment)}
    return {name: known.get(name, "") for name in needed}


def changed(before: dict[str, str] | None, now: dict[str, str]) -> list[str]:
    """The secrets whose fingerprint differs from ``before`` (a deployment's record)."""
    if before is None:
        return []
    return sorted(n for n in {*before, *now} if before.get(n) != now.get(n))


def deliver_local(platform: Platform, config: Config, project_dir: Path, environment: str) -> None:
    """Hand ``platform`` the secrets of each of ``environment``'s services it runs."""
    env = config.environments[environment]
    ours = [s for s, b in env.services.items() if b.platform == platform.name]
    for service, values in read(project_dir, environment, declared(config, env, ours)).items():
        platform.deliver(environment, service, values)


def _unset(store: Store, environment: str, wanted: Wanted, missing: list[str]) -> list[str]:
    first = "" if store.exists(environment) else f"`tiers secrets init {environment}`, then "
    return [
        f"{environment}: the secret {name} ({_users(wanted, name)}) has no value in "
        f"{environment}; set it with {first}`tiers secrets set {environment} {name}`"
        for name in missing
    ]


def _users(wanted: Wanted, name: str) -> str:
    users = [service for service, each in wanted.items() if name in each.values()]
    return f"{' and '.join(users)} {'needs' if len(users) == 1 else 'need'} it"
