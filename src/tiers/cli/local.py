"""`tiers up`, `tiers down`, `tiers status`: the local platform."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tiers.cli import app, io

if TYPE_CHECKING:
    from tiers.config import Config
    from tiers.platforms.base import Platform


def _platform(config: Path) -> Platform:
    """The one-machine platform these commands drive (``tiers up`` and friends)."""
    from tiers.config import load
    from tiers.platforms.base import load_platform

    return load_platform("local")(load(config).config, config.resolve().parent)


@app.command()
def up(
    environments: Annotated[
        list[str] | None, typer.Argument(help="Environments (default: all).")
    ] = None,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
) -> None:
    """Start the environments on this machine (idempotent) and print their URLs.

    An environment that fails to start is reported and stopped; the others carry on.
    """
    from tiers.cli.deploy import pipeline_for
    from tiers.errors import OperationError, UsageError
    from tiers.platforms.base import enforcing

    pipeline = pipeline_for(config, state)
    known = pipeline.config.environments
    names = environments or list(known)
    for name in names:
        if name not in known:
            raise UsageError(f"no environment {name!r}; known: {', '.join(known)}")
    failed = []
    for name in names:
        try:
            what = pipeline.up(name)
        except OperationError as exc:
            io.error(str(exc))
            failed.append(name)
            continue
        urls = [b.url for b in known[name].services.values() if b.url]
        io.out(f"{name}: {what}  {'  '.join(urls)}")
        if said := known[name].open_gate(enforcing()):
            kind, _, text = said.partition(": ")
            io.error(text, prefix=kind)
    if failed:
        raise OperationError(
            f"{', '.join(failed)} did not start (see above); fix it and run `tiers up` again"
        )


@app.command()
def down(config: io.ConfigOption = Path("tiers.toml")) -> None:
    """Stop every process, site and data service the local platform started."""
    _platform(config).down()
    io.out("down: nothing of this project runs any more")


@app.command()
def status(
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
    json_: io.JsonOption = False,
) -> None:
    """Every environment: processes, health, URLs, version, migration head, last deploy.

    Exits 1 when a tier that was brought up or deployed (and not stopped since) does not
    serve: a process not running, a health path that does not answer 2xx.
    """
    from tiers.config import load
    from tiers.errors import OperationError

    model = load(config).config
    platform = _platform(config)
    report = platform.status()
    _deployments(report, model, config.resolve().parent, state)
    _migrations(report, model, config.resolve().parent, platform)
    if json_:
        io.out(json.dumps(report, indent=2))
    else:
        _render(report)
    failing = [env["environment"] for env in report if env["problems"]]
    if failing:
        raise OperationError(
            f"{', '.join(failing)} should serve and does not; `tiers up {' '.join(failing)}`"
        )


def _render(report: list[dict[str, Any]]) -> None:
    if report and report[0]["supervisor"] != "running":
        io.out("the supervisor is not running: no process of this project runs; `tiers up`")
    for env in report:
        name, problems = env["environment"], env["problems"]
        shown = {"serving": "serving", "stopped": "not running"}.get(env["state"])
        io.out(f"{name}: {shown or 'not serving: ' + '; '.join(problems)}")
        if deployed := env.get("deployment"):
            io.out(
                f"  deployment {deployed['id']} ({deployed['kind']}): {deployed['version']} "
                f"{(deployed['commit'] or '')[:12]} {deployed['state']}"
            )
        for key in ("behind", "migrations"):
            if summary := (env.get(key) or {}).get("summary"):
                io.out(f"  {summary}")
        for p in env["processes"]:
            io.out(f"  {p['name']}: {p['state']} pid {p['pid']} restarts {p['restarts']}")
        if gate := env.get("gate"):
            where = f" on {gate['address']}" if gate["address"] else ""
            where += f" (/verify on {gate['verify']})" if gate.get("verify") else ""
            io.out(f"  access gate{where}: {gate['state']}, {gate['answer']}")
        for service, s in env["services"].items():
            fields = s["health"] or {}
            detail = " ".join(
                f"{k}={v}" for k, v in fields.items() if isinstance(v, str | int | float | bool)
            )
            io.out(f"  {service} {s['url']}: {s['answer']}{'  ' + detail if detail else ''}")


def _deployments(
    report: list[dict[str, Any]], config: Config, project_dir: Path, state: str | None
) -> None:
    """Add each environment's newest deployment, when there is a state store to read."""
    if state is None and not (project_dir / ".tiers" / "state.db").exists():
        return
    from tiers.state import StateStore
    from tiers.status import behind, behind_line

    with StateStore.open(state, project_dir) as store:
        lag = behind(config, project_dir, store)
        for env in report:
            if (late := lag.get(env["environment"])) is not None:
                env["behind"] = {**late.to_json(), "summary": behind_line(late)}
            found = store.history(env["environment"], limit=1)
            if not found:
                continue
            last = found[0].to_json()
            lock = store.locked(env["environment"])
            if last["state"] == "running" and (lock is None or lock.abandoned):
                last["state"] = "interrupted"
            env["deployment"] = {
                k: last[k] for k in ("id", "kind", "version", "commit", "state", "started_at")
            }


def _migrations(
    report: list[dict[str, Any]], config: Config, project_dir: Path, platform: Platform
) -> None:
    """Add what a tier running the work tree has not migrated yet (when it should serve)."""
    from tiers.status import pending

    serving = [env["environment"] for env in report if env["state"] != "stopped"]
    found = pending(config, project_dir, serving, lambda env: platform.database_url(env.name))
    for env in report:
        if (late := found.get(env["environment"])) is not None:
            env["migrations"] = late.to_json()


@app.command()
def logs(
    environment: Annotated[str, typer.Argument(help="The environment.")],
    process: Annotated[
        str | None, typer.Argument(help="SERVICE.PROCESS, e.g. backend.worker (default: all).")
    ] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines of each.")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    config: io.ConfigOption = Path("tiers.toml"),
) -> None:
    """Print the logs of an environment's processes, each line prefixed with its process."""
    _platform(config).logs(environment, process, lines, follow, io.out)


@app.command()
def dev(
    with_: Annotated[
        list[str] | None, typer.Option("--with", help="Also run an optional service (repeatable).")
    ] = None,
    config: io.ConfigOption = Path("tiers.toml"),
) -> None:
    """Run the local tier in the foreground, logs multiplexed; Ctrl-C stops it."""
    from tiers.config import load
    from tiers.errors import UsageError

    model = load(config).config
    platform = _platform(config)
    local = [e for e in model.environments.values() if e.local]
    if not local:
        raise UsageError('no environment has trigger = "local"; add one to run `tiers dev`')
    name = local[0].name
    unknown = [s for s in with_ or [] if s not in model.services]
    if unknown:
        raise UsageError(f"--with {unknown[0]}: no such service")
    from tiers.pipeline.delivery import deliver_local

    deliver_local(platform, model, config.resolve().parent, name)  # refused before it starts
    since = platform.log_position(name)  # what an earlier run wrote is not shown again
    try:
        platform.up(name, with_optional=tuple(with_ or ()))
        urls = [b.url for b in local[0].services.values() if b.url]
        io.out(f"{name}: {'  '.join(urls)}  (Ctrl-C stops)")
        platform.logs(name, None, 0, True, io.raw, colour=io.colour(), since=since)
    except KeyboardInterrupt:
        pass
    finally:
        platform.stop_environment(name)  # and the supervisor and Caddy, if nothing else runs
        io.out(f"{name}: stopped")
