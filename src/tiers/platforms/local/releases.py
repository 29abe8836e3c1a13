"""Releases on the local platform: build one, start it beside the live one, switch, drain.

An *instance* is one release of one service in one environment: its processes under the
supervisor, named ``ENV.SERVICE.PROCESS@TAG``, listening on a port of their own, or a
static site directory. What each site serves is recorded in the environment's
``live.json``; switching rewrites the file Caddy reads the upstream (or root) from, so no
client connection is dropped, and the old instance is stopped only afterwards (SIGTERM:
the server finishes the requests it has, then exits).

A service with a ``lock`` file builds into a virtualenv keyed by that file's content (and
the build command and Python version), kept under the user's cache (``cache_dir()``:
``$TIERS_HOME``, by default ``~/.cache/tiers``) and shared by every release and project:
a code-only deploy reuses it and takes seconds.

>>> releases = LocalReleases(platform)                                   # doctest: +SKIP
>>> instance = releases.start("staging", "backend", release, source, venv, tag="12")
>>> releases.wait_healthy(instance, timeout=60)
>>> old = releases.switch(instance)
>>> releases.stop(old)
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import venv as venv_module
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tiers.errors import PlatformError
from tiers.files import atomic_write
from tiers.platforms.base import Instance
from tiers.platforms.local.gate import LocalGate, app_variables
from tiers.platforms.local.ports import free_port, http_ok
from tiers.platforms.local.supervisor import GUARDED, die_with_parent
from tiers.platforms.runtime import Release, process_env
from tiers.redaction import clean

if TYPE_CHECKING:
    from tiers.platforms.local.platform import LocalPlatform

__all__ = ["Instance", "LocalReleases", "cache_dir", "run_command"]

BUILD_TIMEOUT = 1800
STOP_GRACE = 10.0
SETTLE = 1.0  # seconds between a switch and the old instance's SIGTERM
STEADY = 1.0  # seconds every process must stay up before its instance takes traffic
_POLL = 0.05  # seconds between two looks at a starting instance
_LOG_LINES = 20
# All a process takes from whoever ran tiers (PATH too, after its own bin directory).
_PASSED = ("HOME", "LANG", "LC_ALL", "TZ")


def cache_dir() -> Path:
    """Where tiers keeps its per-user cache (built virtualenvs): ``$TIERS_HOME``, else
    ``$XDG_CACHE_HOME/tiers``, else ``~/.cache/tiers``."""
    if home := os.environ.get("TIERS_HOME"):
        return Path(home)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tiers"


class LocalReleases:
    def __init__(self, platform: LocalPlatform) -> None:
        self.platform = platform
        self.config = platform.config

    # -- build ------------------------------------------------------------------------------

    def build(self, service: str, source: Path) -> tuple[Path | None, str]:
        """Run the service's build for the release in ``source``; (virtualenv, what happened)."""
        spec = self.config.services[service]
        cwd = source / spec.root
        if not spec.build:
            return None, "nothing to build"
        if not spec.lock:
            run_command(spec.build, cwd, _path_env(None), f"{service}: build", inherit=True)
            return None, "built"
        lock = cwd / spec.lock
        if not lock.is_file():
            raise PlatformError(f"{service}: lock file {spec.lock} is not in the release")
        key = hashlib.sha256(
            f"{sys.version}\n{spec.build}\n".encode() + lock.read_bytes()
        ).hexdigest()[:16]
        venv = cache_dir() / "venvs" / f"{service}-{key}"
        with _locked(venv.with_suffix(".lock")):
            if (venv / ".tiers-built").exists():
                return venv, f"reused {venv.name} ({spec.lock} unchanged)"
            shutil.rmtree(venv, ignore_errors=True)
            try:
                venv_module.create(venv, with_pip=True)
            except (OSError, subprocess.CalledProcessError) as exc:
                raise PlatformError(
                    f"{service}: cannot make a virtualenv in {venv}: {exc}"
                ) from None
            run_command(spec.build, cwd, _path_env(venv), f"{service}: build", inherit=True)
            (venv / ".tiers-built").write_text(spec.lock + "\n")
        return venv, f"built {venv.name}"

    # -- run --------------------------------------------------------------------------------

    def variables(
        self,
        environment: str,
        service: str,
        release: Release,
        venv: Path | None,
        port: int | None,
        secrets: bool = True,
    ) -> dict[str, str]:
        """All a process (or release command) of ``service`` gets: the declared facts,
        ``TIERS_*``, ``PORT``, the binding's ``env``, where to check the access gate's
        assertion (``TIERS_ACCESS_*``, see ``tiers.platforms.local.gate``) and the secrets
        delivered for it (neither when ``secrets`` is false), PATH (its virtualenv's
        ``bin`` first) and HOME, LANG, LC_ALL and TZ; nothing else of the caller's
        environment."""
        platform = self.platform
        env = self.config.environments[environment]
        sqlite = platform.sqlite(env)
        variables = process_env(
            self.config,
            environment,
            service,
            release=release,
            port=port,
            bucket=lambda _role, name: str(platform.bucket_dir(env, name)),
            database_url=f"sqlite:///{sqlite}" if sqlite else None,
        )
        delivered = platform.secrets.get((environment, service), {}) if secrets else {}
        gate = app_variables(env, service, LocalGate(platform).port(env)) if secrets else {}
        return {**_passed(), **variables, **gate, **delivered, **_path_env(venv)}

    def release_command(
        self, environment: str, service: str, release: Release, source: Path, venv: Path | None
    ) -> str:
        """Run the service's release command (migrations) for this release; its output."""
        spec = self.config.services[service]
        if not spec.release_command:
            return ""
        variables = self.variables(environment, service, release, venv, None)
        return run_command(
            spec.release_command, source / spec.root, variables, f"{service}: release"
        )

    def downgrade(
        self,
        environment: str,
        service: str,
        release: Release,
        source: Path,
        venv: Path | None,
        target: str,
    ) -> str:
        spec = self.config.services[service]
        if not spec.downgrade_command:
            raise PlatformError(f"{service} declares no downgrade_command")
        variables = self.variables(environment, service, release, venv, None)
        variables["TIERS_MIGRATION_TARGET"] = target
        return run_command(
            spec.downgrade_command, source / spec.root, variables, f"{service}: downgrade"
        )

    def start(
        self,
        environment: str,
        service: str,
        release: Release,
        source: Path,
        venv: Path | None,
        tag: str,
        dev: bool = False,
    ) -> Instance:
        """Start the release's processes (or prepare its site) beside the live instance.

        ``tag`` tells instances apart (a deployment id; empty for the work tree); ``dev``
        runs the service's ``dev`` commands where it has them.
        """
        spec = self.config.services[service]
        binding = self.config.environments[environment].services[service]
        base = Instance(
            environment,
            service,
            tag,
            release.version,
            release.commit,
            source=str(source),
            venv=str(venv) if venv else None,
        )
        commands = spec.dev if dev and spec.dev else spec.processes
        if commands:
            port = free_port() if binding.url else None
            variables = self.variables(environment, service, release, venv, port)
            names = []
            for process, command in commands.items():
                name = f"{environment}.{service}.{process}" + (f"@{tag}" if tag else "")
                self.platform.supervisor.start(
                    name, command, cwd=str(source / spec.root), env=variables, restart="always"
                )
                names.append(name)
            return Instance(**{**asdict(base), "processes": tuple(names), "port": port})
        if spec.kind == "frontend" and binding.url:
            # a site's files are public: no secret goes near them
            variables = self.variables(environment, service, release, None, None, False)
            site = self._site(environment, service, source, variables, tag)
            return Instance(**{**asdict(base), "site": str(site)})
        return base

    def _site(
        self, environment: str, service: str, source: Path, variables: dict[str, str], tag: str
    ) -> Path:
        spec = self.config.services[service]
        env = self.config.environments[environment]
        target = self.platform.env_dir(env) / "sites" / (f"{service}@{tag}" if tag else service)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source / (spec.output or spec.root), target)
        names = ["TIERS_ENVIRONMENT", "TIERS_VERSION", *spec.vars.values()]
        lines = [f"window.{n} = {json.dumps(variables[n])};" for n in names if n in variables]
        (target / "config.js").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return target

    def wait_healthy(self, instance: Instance, timeout: float) -> None:
        """Return once the health path answers 2xx and every process that the answer
        does not vouch for has stayed up ``STEADY`` seconds (a worker that dies on start
        is caught); a lone process with a health path is ready when it answers.

        The steady window runs from each process's start, not from this call, so it
        overlaps the boot instead of following it, and instances started together are
        waited for side by side. A site (no processes) is ready at once.
        """
        spec = self.config.services[instance.service]
        url = (
            f"http://127.0.0.1:{instance.port}{spec.health}"
            if spec.health and instance.port
            else None
        )
        vouched = url is not None and len(instance.processes) == 1
        began = time.monotonic()
        deadline = began + timeout
        while instance.processes:
            young = self._young(instance, time.monotonic() - began)
            ready = vouched or not young
            if ready and (url is None or http_ok(url)):
                return
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"{instance.service}: {spec.health} did not answer within {timeout:g}s"
                    + self._tail(instance)
                )
            # until the steady window ends only an exit could be seen: look once, at its end
            time.sleep(_POLL if ready else min(young, max(0.0, deadline - time.monotonic())))

    def _young(self, instance: Instance, waited: float) -> float:
        """How long until every process of ``instance`` has been up ``STEADY`` seconds;
        PlatformError with its log when one has exited or been restarted. (A supervisor
        from before ``uptime`` was reported counts from when the wait began.)"""
        running = {p["name"]: p for p in self.platform.supervisor.processes()}
        left = 0.0
        for name in instance.processes:
            process = running.get(name)
            if process is None or process["restarts"] or process["state"] != "running":
                code = process["exit_code"] if process else None
                raise PlatformError(
                    f"{name.partition('.')[2]} exited with code {code} on start"
                    + self._tail(instance)
                )
            uptime = process.get("uptime")
            left = max(left, STEADY - (waited if uptime is None else float(uptime)))
        return left

    def _tail(self, instance: Instance) -> str:
        lines = []
        for name in instance.processes:
            lines += self.platform.supervisor.logs(name, _LOG_LINES)
        return "; its log ends:\n" + "\n".join(lines) if lines else ""

    # -- switch and stop --------------------------------------------------------------------

    def live(self, environment: str) -> dict[str, Instance]:
        """What serves each service of ``environment`` now, as last switched."""
        path = self._live_file(environment)
        if not path.exists():
            return {}
        data = json.loads(path.read_text())
        return {service: Instance.from_json(item) for service, item in data.items()}

    def switch(self, instance: Instance) -> Instance | None:
        """Send the service's traffic to ``instance``; returns the instance it replaced."""
        binding = self.config.environments[instance.environment].services[instance.service]
        port = urlsplit(binding.url).port if binding.url else None
        caddy = self.platform.caddy()
        name = f"{instance.environment}-{instance.service}"
        env = self.config.environments[instance.environment]
        # a protected site is made with its gate in front: it never serves without it
        front = LocalGate(self.platform).front(env, name) if port is not None else []
        if port is not None and instance.port is not None:
            caddy.set_site(name, port, upstream=f"127.0.0.1:{instance.port}", front=front)
        elif port is not None and instance.site is not None:
            caddy.set_site(name, port, root_dir=Path(instance.site), front=front)
        live = self.live(instance.environment)
        previous = live.get(instance.service)
        live[instance.service] = instance
        self._save(instance.environment, live)
        return previous

    def stop(self, instance: Instance, drain: float = STOP_GRACE, switched: bool = False) -> None:
        """Stop ``instance``: SIGTERM, so its servers finish the requests they hold, and
        SIGKILL for what is still running after ``drain`` seconds. An instance just
        ``switched`` away from first gets a moment for requests already routed to it."""
        if switched and instance.port is not None and instance.processes:
            time.sleep(SETTLE)  # a request routed just before the switch reaches it first
        stop = functools.partial(self.platform.supervisor.stop, grace=drain)
        with ThreadPoolExecutor(max(1, len(instance.processes))) as pool:  # side by side
            list(pool.map(stop, instance.processes))
        if instance.site is not None:
            shutil.rmtree(instance.site, ignore_errors=True)

    def running(self, instance: Instance) -> bool:
        """True when every process of ``instance`` runs (a site is always ready)."""
        if instance.site is not None:
            return Path(instance.site).is_dir()
        if not self.platform.supervisor.alive():
            return False
        states = {p["name"]: p["state"] for p in self.platform.supervisor.processes()}
        return all(states.get(name) == "running" for name in instance.processes)

    def strays(self, environment: str) -> list[str]:
        """Processes of ``environment`` that no live instance owns (an interrupted deploy's)."""
        owned = {n for i in self.live(environment).values() for n in i.processes}
        return [
            p["name"]
            for p in self.platform.supervisor.processes()
            if p["name"].startswith(f"{environment}.")
            and "@" in p["name"]
            and p["name"] not in owned
        ]

    def _live_file(self, environment: str) -> Path:
        return self.platform.env_dir(self.config.environments[environment]) / "live.json"

    def _save(self, environment: str, live: dict[str, Instance]) -> None:
        body = json.dumps({s: asdict(i) for s, i in live.items()}, indent=2)
        atomic_write(self._live_file(environment), body + "\n")


def _passed() -> dict[str, str]:
    return {name: os.environ[name] for name in _PASSED if name in os.environ}


def _path_env(venv: Path | None) -> dict[str, str]:
    first = venv / "bin" if venv else Path(sys.executable).parent
    out = {"PATH": f"{first}{os.pathsep}{os.environ.get('PATH', '')}"}
    if venv:
        out["VIRTUAL_ENV"] = str(venv)
    return out


def run_command(
    command: str, cwd: Path, env: dict[str, str], what: str, *, inherit: bool = False
) -> str:
    """Run a command from tiers.toml in a shell; its output, or PlatformError with its tail.

    It gets ``env`` alone (a release command or a downgrade gets what the service's
    processes get); a build, with ``inherit``, also the caller's environment (its package
    index, proxy and certificates settings).

    The command and everything it starts die with tiers (killed outright or
    interrupted), so a migration never runs on unwatched after a deploy has ended.
    """
    with subprocess.Popen(  # a command from tiers.toml, run by a shell
        GUARDED.format(command=command),
        shell=True,
        cwd=cwd,
        env={**os.environ, **env} if inherit else env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - no threads run in the child
    ) as shell:
        try:
            output, _ = shell.communicate(timeout=BUILD_TIMEOUT)
        except BaseException as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise PlatformError(f"{what}: `{command}` ran past {BUILD_TIMEOUT}s") from None
            raise
    if shell.returncode != 0:
        last = clean("\n".join(output.splitlines()[-_LOG_LINES:]))
        raise PlatformError(
            f"{what}: `{command}` failed with exit code {shell.returncode}:\n{last}"
        )
    return output


class _locked:
    """An exclusive lock on a file, held across processes (two builds of one venv wait)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.path.open("w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        self.handle.close()
