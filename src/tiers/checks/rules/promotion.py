"""Triggers, branches and the promotion path: development → staging → production."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator

from tiers.checks.registry import Context, Finding, rule
from tiers.config import Environment


@rule(
    "duplicate-trigger",
    "error",
    "Two environments have the same trigger",
    'give each environment its own trigger: local, { push = "main" }, { release = "github" }',
)
def duplicate_trigger(ctx: Context) -> Iterator[Finding]:
    seen: dict[str, str] = {}
    for name, env in ctx.config.environments.items():
        if env.trigger.kind == "manual":
            continue
        what = env.trigger.describe()
        if what in seen:
            yield ctx.finding(
                ("environments", name, "trigger"),
                f"{seen[what]} and {name} are both deployed on {what}",
                [seen[what], name],
            )
        else:
            seen[what] = name


@rule(
    "shared-branch",
    "error",
    "Two environments build a service from the same branch",
    "let production track its own branch (production-fe) that releases move forward",
)
def shared_branch(ctx: Context) -> Iterator[Finding]:
    users: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, env in ctx.config.environments.items():
        for service, binding in env.services.items():
            if binding.branch and not env.local:
                users[(service, binding.branch)].append(name)
    for (service, branch), envs in users.items():
        if len(envs) > 1:
            yield ctx.finding(
                ("environments", envs[1], service, "branch"),
                f"{' and '.join(envs)} both build {service} from branch {branch}: "
                f"{envs[1]} would ship every change {envs[0]} gets",
                envs,
            )


@rule(
    "promotion-order",
    "error",
    "The environments are not a promotion path",
    "list environments in promotion order (local first, then push-triggered, then "
    "release-triggered) and cut releases from the branch the tier before production runs",
)
def promotion_order(ctx: Context) -> Iterator[Finding]:
    problem = _first_break(ctx)
    if problem:
        name, message, envs = problem
        yield ctx.finding(("environments", name, "trigger"), message, envs)


def _first_break(ctx: Context) -> tuple[str, str, list[str]] | None:
    """The first place the path breaks; one mistake in the order is one finding."""
    # A tier deployed by hand may sit anywhere on the path; the others must be in order.
    envs = [e for e in ctx.config.environments.values() if e.trigger.kind != "manual"]
    branch = ctx.config.project.release.branch
    for before, env in itertools.pairwise(envs):
        if env.trigger.rank < before.trigger.rank:
            message = (
                f"{env.name} ({env.trigger.describe()}) comes after "
                f"{before.name} ({before.trigger.describe()}) but would feed it"
            )
            return env.name, message, [before.name, env.name]
        fed = env.trigger.kind == "release" and before.trigger.kind == "push"
        if fed and before.trigger.branch != branch:
            message = (
                f"{env.name} is released from {branch}, but {before.name} runs "
                f"{before.trigger.branch}: production would ship what staging never ran"
            )
            return env.name, message, [before.name, env.name]
    first = next((e for e in envs if e.trigger.kind == "release"), None)
    if first and not any(e.trigger.kind == "push" for e in envs[: envs.index(first)]):
        message = f"{first.name} is released but no push-triggered tier runs the release first"
        return first.name, message, [first.name]
    return None


def preproduction(ctx: Context) -> list[Environment]:
    """Deployed tiers that come before production (the first release-triggered tier)."""
    envs = list(ctx.config.environments.values())
    last = next((i for i, e in enumerate(envs) if e.trigger.kind == "release"), len(envs) - 1)
    return [e for e in envs[:last] if not e.local]


@rule(
    "database-without-migrations",
    "error",
    "An environment has a database but nothing migrates it",
    "set release_command on the service that owns the schema, like "
    'release_command = "uv run alembic upgrade head"',
)
def migrations(ctx: Context) -> Iterator[Finding]:
    services = ctx.config.services
    missing = [
        env.name
        for env in ctx.config.environments.values()
        if env.database is not None
        and not any(
            services[s].release_command for s in env.services if services[s].kind != "frontend"
        )
    ]
    if missing:
        owner = next((n for n, s in services.items() if s.kind == "api"), None)
        key = ("services", owner) if owner else ("environments", missing[0], "database")
        verb = "has a database" if len(missing) == 1 else "have databases"
        message = f"{_and(missing)} {verb} but no service there has a release_command"
        yield ctx.finding(key, message, missing)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
