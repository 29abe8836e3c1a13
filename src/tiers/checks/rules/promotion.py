"""Triggers, branches and the promotion path: development → staging → production."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator

from tiers.checks.registry import Context, Finding, rule

_RANK = {"local": 0, "push": 1, "manual": 2, "release": 2}


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
    envs = list(ctx.config.environments.values())
    release = ctx.config.project.release
    for before, env in itertools.pairwise(envs):
        key = ("environments", env.name, "trigger")
        if _RANK[env.trigger.kind] < _RANK[before.trigger.kind]:
            yield ctx.finding(
                key,
                f"{env.name} ({env.trigger.describe()}) comes after "
                f"{before.name} ({before.trigger.describe()}) but would feed it",
                [before.name, env.name],
            )
        elif (
            env.trigger.kind == "release"
            and before.trigger.kind == "push"
            and before.trigger.branch != release.branch
        ):
            yield ctx.finding(
                key,
                f"{env.name} is released from {release.branch}, but "
                f"{before.name} runs {before.trigger.branch}: production would "
                "ship what staging never ran",
                [before.name, env.name],
            )
    first_release = next((e for e in envs if e.trigger.kind == "release"), None)
    if first_release and not any(
        e.trigger.kind == "push" for e in envs[: envs.index(first_release)]
    ):
        yield ctx.finding(
            ("environments", first_release.name, "trigger"),
            f"{first_release.name} is released but no push-triggered tier comes "
            "before it to run the release first",
            [first_release.name],
        )


@rule(
    "database-without-migrations",
    "error",
    "An environment has a database but nothing migrates it",
    "set release_command on the service that owns the schema, like "
    'release_command = "uv run alembic upgrade head"',
)
def migrations(ctx: Context) -> Iterator[Finding]:
    for name, env in ctx.config.environments.items():
        if env.database is None:
            continue
        bound = [ctx.config.services[s] for s in env.services if s in ctx.config.services]
        if not any(s.release_command for s in bound if s.kind != "frontend"):
            yield ctx.finding(
                ("environments", name, "database"),
                f"{name} has database "
                f"{env.database.name} but none of its services has a release_command",
                [name],
            )
