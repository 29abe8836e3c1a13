"""`tiers deploy`, `tiers rollback`, `tiers history`: the pipeline and its record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from tiers.cli import app, io

if TYPE_CHECKING:
    from tiers.pipeline.deploy import Pipeline
    from tiers.state import Deployment, StateStore

WaitOption = Annotated[
    bool, typer.Option("--wait", help="Queue behind a deploy in progress instead of refusing.")
]
OnlyOption = Annotated[
    str | None,
    typer.Option("--environment", help="Only this environment (a CI job with its secrets)."),
]
EnvArgument = Annotated[str, typer.Argument(help="The environment.")]


def _store(config: Path, state: str | None) -> StateStore:
    from tiers.state import StateStore

    return StateStore.open(state, config.resolve().parent)


def pipeline_for(config: Path, state: str | None) -> Pipeline:
    from tiers.config import load
    from tiers.pipeline.deploy import Pipeline
    from tiers.pipeline.report import Reporter

    loaded = load(config)
    reporter = Reporter(live=io.colour(), emit=io.raw)
    return Pipeline(loaded.config, config, _store(config, state), reporter)


@app.command()
def deploy(
    environment: EnvArgument,
    ref: Annotated[
        str | None,
        typer.Option("--ref", help="Branch, tag or commit (default: what the trigger follows)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and change nothing.")
    ] = False,
    wait: WaitOption = False,
    service: Annotated[
        list[str] | None,
        typer.Option("--service", help="Deploy only this service (repeatable)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Deploy what the tier before never ran (needs --reason)."),
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why --force: recorded with the deployment.")
    ] = None,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
) -> None:
    """Build REF from git, migrate, start beside the old version, switch, drain, record."""
    pipeline = pipeline_for(config, state)
    env = pipeline.environment(environment)
    target = pipeline.target(env, ref)
    if dry_run:
        from tiers.pipeline.commit import refuse_errors

        shipped = pipeline.at(target, forced="a dry run refuses nothing before its plan")
        for line in shipped.plan(environment, target):
            io.out(line)
        for line in shipped.unset_secrets(environment):  # the real deploy refuses these
            io.error(f"{line}; a deploy refuses until then", prefix="warning")
        if _forced(force, reason) is None:  # what the real run would refuse
            assert shipped.shipped is not None
            refuse_errors(shipped.shipped, target.version, None)
            shipped.check_promotion(shipped.environment(environment), target)
        return
    _interrupt_on_sigterm()
    done = pipeline.deploy(
        environment, target, wait=wait, services=service, forced=_forced(force, reason)
    )
    from tiers.platforms.base import enforcing

    if said := env.open_gate(enforcing()):
        kind, _, text = said.partition(": ")
        io.error(text, prefix=kind)
    io.out(
        f"{environment}: {done.version} ({(done.commit or '')[:12]}) serves; deployment {done.id}"
    )


@app.command()
def rollback(
    environment: EnvArgument,
    to: Annotated[
        str | None,
        typer.Option("--to", help="A version (or commit) that ran before (default: the last)."),
    ] = None,
    db: Annotated[
        Literal["keep", "downgrade", "restore"],
        typer.Option(
            "--db",
            help="keep the database; downgrade its migrations to the target's head; or "
            "restore the snapshot taken before the deploy being undone.",
        ),
    ] = "keep",
    force: Annotated[
        bool,
        typer.Option("--force", help="Downgrade or restore even when it loses data."),
    ] = False,
    wait: WaitOption = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and change nothing.")
    ] = False,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
) -> None:
    """Serve an earlier release again, without a rebuild; the database as --db says."""
    from tiers.state import Deployment

    if not dry_run:
        _interrupt_on_sigterm()
    pipeline = pipeline_for(config, state)
    done = pipeline.rollback(environment, to, db=db, force=force, wait=wait, dry_run=dry_run)
    if not isinstance(done, Deployment):
        for line in done:
            io.out(line)
        return
    io.out(f"{environment}: {done.version} serves again; rollback {done.id} (--db {db})")


@app.command()
def history(
    environment: EnvArgument,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first.")] = 20,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
    json_: io.JsonOption = False,
) -> None:
    """Every deployment of ENV: version, commit, who, when, steps, end state."""
    from tiers.config import load

    if environment not in load(config).config.environments:
        from tiers.errors import UsageError

        raise UsageError(f"no environment {environment!r} in {config}")
    from tiers.state import StateStore

    with StateStore.reading(state, config.resolve().parent) as store:
        found = store.history(environment, limit)
        lock = store.locked(environment)
        held = lock is not None and not lock.abandoned
    if json_:
        io.out(json.dumps([_json(d, held) for d in found], indent=2))
        return
    if not found:
        io.out(f"{environment}: no deployment yet")
    for d in found:
        io.out(_line(d, held))
        for step in d.steps:
            took = f"{step.duration_ms / 1000:.1f} s" if step.duration_ms is not None else ""
            detail = f"  {step.detail.splitlines()[0]}" if step.detail else ""
            io.out(f"    {step.name:<9} {step.outcome:<7} {took:>7}{detail}")


@app.command()
def release(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run the preflight, print every step, change nothing.")
    ] = False,
    force_branch: Annotated[
        bool,
        typer.Option("--force-branch", help="Reset a diverged frontend branch to the release."),
    ] = False,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
) -> None:
    """Tag what staging runs, move the frontend branch, push, and deploy production."""
    from tiers.pipeline.release import Releaser

    releaser = Releaser(pipeline_for(config, state))
    plan = releaser.preflight(allow_non_ff=force_branch)
    for line in plan.lines():
        io.out(line)
    if dry_run:
        io.out("dry run: nothing changed")
        return
    _interrupt_on_sigterm()
    for line in releaser.release(plan):
        io.out(line)


@app.command("on-push")
def on_push(
    branch: Annotated[str, typer.Option("--branch", help="The branch pushed to.")],
    after: Annotated[str, typer.Option("--after", help="The commit pushed.")],
    before: Annotated[
        str | None, typer.Option("--before", help="What the branch was before (GitHub's before).")
    ] = None,
    environment: OnlyOption = None,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
) -> None:
    """For CI: deploy the environments following BRANCH, only the services the push touched."""
    from tiers.pipeline.triggers import Triggers

    _interrupt_on_sigterm()
    triggers = Triggers(pipeline_for(config, state))
    for line in triggers.on_push(branch, before, after, environment):
        io.out(line)


@app.command("on-release")
def on_release(
    tag: Annotated[str, typer.Argument(help="The release tag published.")],
    environment: OnlyOption = None,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
) -> None:
    """For CI: deploy TAG to the environments that follow releases (once)."""
    from tiers.pipeline.triggers import Triggers

    _interrupt_on_sigterm()
    for line in Triggers(pipeline_for(config, state)).on_release(tag, environment):
        io.out(line)


def _forced(force: bool, reason: str | None) -> str | None:
    from tiers.errors import UsageError

    if force and not (reason and reason.strip()):
        raise UsageError("--force needs --reason TEXT: it is recorded with the deployment")
    if reason and not force:
        raise UsageError("--reason goes with --force")
    return reason.strip() if force and reason else None


def _interrupt_on_sigterm() -> None:
    """A CI job cancelled sends SIGTERM: end the deploy as cleanly as Ctrl-C does."""
    import signal

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _state(d: Deployment, locked: bool) -> str:
    if d.state == "running" and not locked:
        return "interrupted (tiers was stopped; the next deploy or rollback repairs it)"
    return d.state


def _line(d: Deployment, locked: bool) -> str:
    when = d.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    heads = f"migrations {d.migration_before or '-'} → {d.migration_after or '-'}"
    commit = (d.commit or "")[:12]
    state = _state(d, locked)
    return f"#{d.id} {d.kind} {d.version} ({commit}) by {d.actor} at {when}: {state}; {heads}"


def _json(d: Deployment, locked: bool) -> dict[str, object]:
    out = d.to_json()
    if d.state == "running" and not locked:
        out["state"] = "interrupted"
    return out
