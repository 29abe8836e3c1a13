"""Every deployed environment declares the secrets it needs, and the tiers agree."""

from __future__ import annotations

from collections.abc import Iterator

from tiers.checks.registry import Context, Finding, rule


def _needs_secrets(ctx: Context, service: str) -> bool:
    known = ctx.config.services.get(service)
    return known is not None and known.kind != "frontend"


@rule(
    "secrets-undeclared",
    "error",
    "A deployed environment declares no secrets",
    'list the names of the secrets the service needs: secrets = ["DATABASE_URL", ...]',
)
def undeclared(ctx: Context) -> Iterator[Finding]:
    for name, env in ctx.config.environments.items():
        if env.local:
            continue
        for service, binding in env.services.items():
            if _needs_secrets(ctx, service) and not binding.secrets:
                yield ctx.finding(
                    ("environments", name, service), f"{name} {service} declares no secrets", [name]
                )


@rule(
    "secrets-differ",
    "error",
    "A secret one tier needs is missing from another's list",
    "declare the same secret names in every deployed tier (values differ; names agree); "
    "reference one list from the other with ${environments.production.backend.secrets}",
)
def differ(ctx: Context) -> Iterator[Finding]:
    deployed = [env for env in ctx.config.environments.values() if not env.local]
    for service in ctx.config.services:
        lists = {
            e.name: set(e.services[service].secrets)
            for e in deployed
            if service in e.services and e.services[service].secrets
        }
        wanted = set().union(*lists.values()) if lists else set()
        for name, have in lists.items():
            for missing in sorted(wanted - have):
                others = [n for n, s in lists.items() if missing in s]
                yield ctx.finding(
                    ("environments", name, service, "secrets"),
                    f"{service} needs "
                    f"{missing} in {', '.join(others)} but {name} does not declare it",
                    [name, *others],
                )
