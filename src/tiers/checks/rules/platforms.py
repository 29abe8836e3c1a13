"""Every platform a service is bound to can be driven from here, or the check says so."""

from __future__ import annotations

from collections.abc import Iterator

from tiers.checks.registry import Context, Finding, rule
from tiers.platforms.options import installed


@rule(
    "platform-not-installed",
    "warning",
    "A service runs on a platform tiers cannot deploy to from here",
    "install the package that registers the platform (entry point tiers.platforms), or "
    "deploy that service with the platform's own tools",
)
def platform_not_installed(ctx: Context) -> Iterator[Finding]:
    drivers = installed()
    for name, env in ctx.config.environments.items():
        for service, binding in env.services.items():
            if binding.platform not in drivers:
                yield ctx.finding(
                    ("environments", name, service, "platform"),
                    f"{name} {service} runs on {binding.platform}, which tiers cannot deploy "
                    f"from here: no {binding.platform!r} platform is installed",
                    [name],
                )
