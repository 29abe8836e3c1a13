"""Bring an environment up on this machine from its parts, and take it down again.

``up`` gives the environment its own redis-server and PostgreSQL cluster (when its
provider is ``local``), a directory per bucket, the release command, its process groups
under the supervisor and a Caddy site per service URL. State lives in
``.tiers/local/`` beside tiers.toml. A static frontend is copied per environment and
given ``config.js`` (``window.NAME = value`` for each variable it reads), so one source
directory serves every tier with its own API.

>>> platform = LocalPlatform(config, Path("."))                 # doctest: +SKIP
>>> platform.up("development")
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tiers.config import Config, Environment
from tiers.errors import PlatformError
from tiers.platforms.base import Artifact, Instance
from tiers.platforms.local.caddy import Caddy
from tiers.platforms.local.gate import LocalGate, process_name
from tiers.platforms.local.ports import free_port, http_ok, port_in_use
from tiers.platforms.local.postgres import PostgresCluster
from tiers.platforms.local.redis import RedisServer
from tiers.platforms.local.releases import LocalReleases, run_command
from tiers.platforms.local.supervisor import SupervisorClient, spawn
from tiers.platforms.runtime import Release

__all__ = ["LocalPlatform"]

HEALTH_TIMEOUT = 60.0
STEADY = 1.5  # seconds a process without a health path must stay up to count as started
_LOG_LINES = 15
_STOPPED = "stopped"  # in an environment's directory: brought down on purpose


class LocalPlatform:
    """Every environment of a project on this machine (see ``tiers.platforms.base``)."""

    name = "local"
    options = None  # the local platform takes no keys of its own
    enforces_access = True  # the gate behind Caddy's forward_auth: tiers.platforms.local.gate

    def __init__(self, config: Config, project_dir: Path) -> None:
        self.config = config
        self.project_dir = project_dir.resolve()
        self.state = self.project_dir / ".tiers" / "local"
        self.supervisor = SupervisorClient(self.state / "supervisor.sock")
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        """What ``deliver`` gave each (environment, service): in memory, never on disk."""

    # -- parts ------------------------------------------------------------------------------

    def env_dir(self, env: Environment) -> Path:
        """The environment's state: its data services, buckets, sites and live.json."""
        return self.state / "environments" / env.name

    def redis(self, env: Environment) -> RedisServer | None:
        redis = env.redis
        if redis is None or redis.provider != "local" or not redis.url:
            return None
        return RedisServer(self.env_dir(env), urlsplit(redis.url).port or 6379, env.name)

    def postgres(self, env: Environment) -> tuple[PostgresCluster, str] | None:
        db = env.database
        if db is None or db.provider != "local" or db.engine != "postgresql" or not db.url:
            return None
        parts = urlsplit(db.url)
        cluster = PostgresCluster(self.env_dir(env), parts.port or 5432, env.name)
        return cluster, parts.path.lstrip("/") or db.name

    def sqlite(self, env: Environment) -> Path | None:
        """The SQLite file of a local ``engine = "sqlite"`` database (relative paths live
        in the environment's state directory)."""
        db = env.database
        if db is None or db.provider != "local" or db.engine != "sqlite":
            return None
        path = Path(db.url.removeprefix("sqlite:///") if db.url else f"{db.name}.sqlite3")
        return path if path.is_absolute() else self.env_dir(env) / "databases" / path

    def caddy(self) -> Caddy:
        port_file = self.state / "caddy" / "admin.port"
        if port_file.exists():
            port = int(port_file.read_text())
        else:
            port_file.parent.mkdir(parents=True, exist_ok=True)
            port = free_port()
            port_file.write_text(str(port))
        return Caddy(self.state / "caddy", port)

    def bucket_dir(self, env: Environment, name: str) -> Path:
        return self.env_dir(env) / "buckets" / name

    # -- up and down ------------------------------------------------------------------------

    def up(
        self, environment: str, release: Release | None = None, with_optional: tuple[str, ...] = ()
    ) -> None:
        """Start everything ``environment`` needs; running parts are left as they are.

        Returns once every process runs and every service with a health path answers it.
        Optional services (``optional = true``) start only when named in ``with_optional``.
        When something fails, the environment's processes are stopped again and the error
        names the environment, the part and the cause (a process's last log lines).
        """
        env = self.config.environments[environment]
        release = release or Release("work-tree", "work-tree")
        services = [
            name
            for name, binding in env.services.items()
            if binding.platform == "local"
            and (not self.config.services[name].optional or name in with_optional)
        ]
        caddy = self.caddy()
        started: list[str] = []
        self._stopped(env, False)
        try:
            self._preflight(env, services, caddy)
            self._data(env)
            if not self.supervisor.alive():
                spawn(self.state)
            caddy.start()
            if LocalGate(self).ensure(env):
                started.append(process_name(env.name))
            for service in services:
                started += self._service(env, service, release)
            self._wait_started(env, services, started)
        except PlatformError as exc:
            for name in started:  # what ran before this call keeps running
                self.supervisor.stop(name)
            raise PlatformError(f"{environment}: {exc}") from None

    def prepare(self, environment: str) -> None:
        """Start what a release of ``environment`` runs on: its data services, the
        supervisor, Caddy and the access gate of a protected environment (the pipeline
        then starts the release itself)."""
        env = self.config.environments[environment]
        self._stopped(env, False)
        try:
            self._data(env)
            if not self.supervisor.alive():
                spawn(self.state)
            self.caddy().start()
            LocalGate(self).ensure(env)
        except PlatformError as exc:
            raise PlatformError(f"{environment}: {exc}") from None

    def database_url(self, environment: str) -> str | None:
        """Where this platform's processes reach the environment's database (None: not
        known): a local SQLite file, else the configured URL."""
        env = self.config.environments[environment]
        if (path := self.sqlite(env)) is not None:
            return f"sqlite:///{path}"
        return env.database.url if env.database else None

    def _preflight(self, env: Environment, services: list[str], caddy: Caddy) -> None:
        """Refuse before starting anything: a site's port taken, an outside service down."""
        ours = {site.port for site in caddy.sites().values()} if caddy.running() else set()
        for service in services:
            url = env.services[service].url
            port = urlsplit(url).port if url else None
            if port is not None and port not in ours and port_in_use(port):
                raise PlatformError(
                    f"{service}: port {port} ({url}) is taken by another process; stop it "
                    f"or give environments.{env.name}.{service}.url another port"
                )
        for what, part in (("database", env.database), ("redis", env.redis)):
            url = getattr(part, "url", None)
            if part is None or part.provider == "local" or not url or "://" not in url:
                continue
            _reachable(what, url, f"environments.{env.name}.{what}.url")

    def _data(self, env: Environment) -> None:
        if (redis := self.redis(env)) is not None:
            redis.start()
        if (found := self.postgres(env)) is not None:
            cluster, db = found
            cluster.start()
            cluster.create_database(db)
        if (path := self.sqlite(env)) is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            sqlite3.connect(path).close()  # an empty database, so it can be snapshotted
        for name in env.storage.buckets.values() if env.storage else []:
            self.bucket_dir(env, name).mkdir(parents=True, exist_ok=True)

    def _wait_started(self, env: Environment, services: list[str], started: list[str]) -> None:
        """Wait until each process started has stayed up and each health path answers."""
        waiting = {
            service: f"{env.services[service].url}{self.config.services[service].health}"
            for service in services
            if self.config.services[service].health and env.services[service].url
        }
        deadline = time.monotonic() + HEALTH_TIMEOUT
        began = time.monotonic()
        while True:
            self._check_processes(env.name, started)
            waiting = {s: url for s, url in waiting.items() if not http_ok(url)}
            if not waiting and time.monotonic() - began >= STEADY:
                return
            if time.monotonic() > deadline:
                service, url = next(iter(waiting.items()))
                raise PlatformError(
                    f"{service}: {url} did not answer within {HEALTH_TIMEOUT:g}s"
                    + self._log_tail(env.name, service)
                )
            time.sleep(0.2)

    def _check_processes(self, environment: str, started: list[str]) -> None:
        for process in self.supervisor.processes():
            if process["name"] not in started:
                continue
            if process["restarts"] or process["state"] != "running":
                name = process["name"].removeprefix(f"{environment}.")
                last = "\n".join(self.supervisor.logs(process["name"], _LOG_LINES))
                raise PlatformError(
                    f"{name} exited with code {process['exit_code']} on start "
                    f"({process['command']}); its log ends:\n{last}"
                )

    def _log_tail(self, environment: str, service: str) -> str:
        lines = []
        for process in self.supervisor.processes():
            if process["name"].startswith(f"{environment}.{service}."):
                lines += self.supervisor.logs(process["name"], _LOG_LINES)
        return "; its log ends:\n" + "\n".join(lines) if lines else ""

    def _stop_processes(self, environment: str) -> None:
        if self.supervisor.alive():
            for process in self.supervisor.processes():
                if process["name"].startswith(f"{environment}."):
                    self.supervisor.stop(process["name"])

    def stop_environment(self, environment: str) -> None:
        """Stop one environment's processes, sites and data services (data stays on disk),
        and the supervisor and Caddy too when nothing else of the project runs."""
        env = self.config.environments[environment]
        self._stopped(env, True)
        self._stop_processes(environment)
        caddy = self.caddy()
        if caddy.running():
            for service in env.services:
                caddy.remove_site(f"{environment}-{service}")
        if (redis := self.redis(env)) is not None:
            redis.stop()
        if (found := self.postgres(env)) is not None:
            found[0].stop()
        if self.supervisor.alive() and not self.supervisor.processes():
            self._stop_supervisor()
        if caddy.running() and not caddy.sites():
            caddy.stop()

    def _stop_supervisor(self) -> None:
        pid_file = self.state / "supervisor.pid"
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)

    def _stopped(self, env: Environment, stopped: bool) -> None:
        """Record whether ``env`` was brought down on purpose (then it need not serve)."""
        marker = self.env_dir(env) / _STOPPED
        if not stopped:
            marker.unlink(missing_ok=True)
        elif marker.parent.is_dir():
            marker.touch()

    def _service(self, env: Environment, service: str, release: Release) -> list[str]:
        """Serve ``service``: a deployed release keeps serving (restarted if it stopped);
        otherwise the work tree runs, its release command first, on the service's build
        (the virtualenv its lock file keys, rebuilt when that file changes) and with the dev
        commands in a local tier. Returns the processes it started."""
        releases = LocalReleases(self)
        live = releases.live(env.name).get(service)
        if live is not None and live.tag and not env.local:
            started: list[str] = []
            if not releases.running(live):
                venv = Path(live.venv) if live.venv else None
                again = Release(live.version, live.commit)
                live = releases.start(env.name, service, again, Path(live.source), venv, live.tag)
                started = list(live.processes)
            releases.switch(live)
            return started
        # the service's own dependencies, in the virtualenv its lock file keys (as a release's)
        spec = self.config.services[service]
        venv = releases.build(service, self.project_dir)[0] if spec.lock else None
        releases.release_command(env.name, service, release, self.project_dir, venv)
        instance = releases.start(
            env.name, service, release, self.project_dir, venv, tag="", dev=env.local
        )
        previous = releases.switch(instance)
        if previous is not None and previous.tag:  # a release a local tier was frozen at
            releases.stop(previous, switched=True)
        return list(instance.processes)

    def status(self) -> list[dict[str, Any]]:
        """Each environment: its processes (from this project's supervisor), its services'
        health (each asked through this project's Caddy site, so a port another project
        serves never counts) and ``problems``: why a tier that should serve (brought up or
        deployed, and not stopped since) does not; ``gate``, the access gate of a protected
        environment (its process ``state``, ``address`` and whether it ``healthy``-ly
        answers), or None. Nothing is asked when nothing runs."""
        running = self.supervisor.processes() if self.supervisor.alive() else None
        sites = self._own_sites()
        releases = LocalReleases(self)
        out = []
        for env in self.config.environments.values():
            processes = [p for p in running or [] if p["name"].startswith(f"{env.name}.")]
            services = {
                name: {"url": b.url, **self._health(env, name, sites.get(f"{env.name}-{name}"))}
                for name, b in env.services.items()
                if b.platform == "local" and b.url
            }
            live = releases.live(env.name)
            stopped = (self.env_dir(env) / _STOPPED).exists()
            should = bool(live) and not stopped
            problems = [
                f"{name} {services[name]['answer']}"
                for name in live
                if name in services and not services[name]["healthy"]
            ] + [f"{p['name']} is {p['state']}" for p in processes if p["state"] != "running"]
            gate = LocalGate(self).status(env)
            if gate is not None and not gate["healthy"]:
                problems.append(f"the access gate {gate['answer']}")
            out.append(
                {
                    "environment": env.name,
                    "supervisor": "running" if running is not None else "not running",
                    "state": ("serving" if not problems else "failing") if should else "stopped",
                    "problems": problems if should else [],
                    "processes": processes,
                    "services": services,
                    "gate": gate,
                }
            )
        return out

    def _own_sites(self) -> dict[str, Any]:
        """This project's Caddy sites by name; none when its Caddy does not run (and no
        state is written just to find that out)."""
        if not (self.state / "caddy" / "admin.port").exists():
            return {}
        caddy = self.caddy()
        return dict(caddy.sites()) if caddy.running() else {}

    def _health(self, env: Environment, service: str, site: Any) -> dict[str, Any]:
        """Whether the service answers: any 2xx to its health path is healthy, whatever the
        body; the fields of a JSON object answer are kept in ``health``."""
        path = self.config.services[service].health
        if site is None:
            return {"healthy": False, "answer": "not served", "health": None}
        if not path or site.upstream is None:
            return {"healthy": True, "answer": "served", "health": None}
        url = env.services[service].url or ""
        request = urllib.request.Request(
            f"http://{site.upstream}{path}", headers={"Host": urlsplit(url).netloc}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                code, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            code, body = exc.code, exc.read()
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            reason = getattr(reason, "strerror", None) or reason
            return {"healthy": False, "answer": f"does not answer ({reason})", "health": None}
        try:
            fields = json.loads(body)
        except ValueError:
            fields = None
        return {
            "healthy": 200 <= code < 300,
            "answer": f"HTTP {code}",
            "health": fields if isinstance(fields, dict) and fields else None,
        }

    def down(self) -> None:
        """Stop every process, site and data service of every environment."""
        if self.supervisor.alive():
            for process in self.supervisor.processes():
                self.supervisor.stop(process["name"])
            self._stop_supervisor()
        self.caddy().stop()
        for env in self.config.environments.values():
            self._stopped(env, True)
            if (redis := self.redis(env)) is not None:
                redis.stop()
            if (found := self.postgres(env)) is not None:
                found[0].stop()

    # -- a release (the platform contract: see tiers.platforms.base) --------------------------

    def describe(self, environment: str, service: str) -> dict[str, str]:
        spec = self.config.services[service]
        binding = self.config.environments[environment].services[service]
        said = {
            "build": spec.build
            and spec.build
            + (f" (virtualenv kept while {spec.lock} is unchanged)" if spec.lock else ""),
            "release": spec.release_command,
            "start": f"{', '.join(spec.processes)} on fresh ports"
            if spec.processes
            else "its files",
            "health": spec.health and f"{spec.health} within {spec.health_timeout:g}s",
            "switch": binding.url and f"{binding.url} → new {service}",
            "drain": spec.processes and f"SIGTERM, SIGKILL after {spec.drain_timeout:g}s",
        }
        return {step: text for step, text in said.items() if text}

    def deliver(self, environment: str, service: str, values: dict[str, str]) -> None:
        """Keep ``values`` in this process's memory; each process started from now on gets
        them in its environment through the supervisor's socket (which keeps them in memory
        to restart it), each one-off command directly. Nothing is written under .tiers/."""
        self.secrets[(environment, service)] = dict(values)

    def build(self, service: str, source: Path) -> Artifact:
        """The service's build into a virtualenv kept while its lock file is unchanged."""
        venv, note = LocalReleases(self).build(service, source)
        return Artifact(str(venv) if venv else None, note, str(source))

    def run(
        self,
        environment: str,
        service: str,
        release: Release,
        artifact: Artifact,
        command: str,
        extra: dict[str, str] | None = None,
    ) -> str:
        """``command`` in the release's directory, with what its processes are given."""
        spec = self.config.services[service]
        venv = Path(artifact.ref) if artifact.ref else None
        variables = LocalReleases(self).variables(environment, service, release, venv, None)
        what = {spec.release_command: "release", spec.downgrade_command: "downgrade"}
        label = f"{service}: {what.get(command, 'run')}"
        return run_command(
            command, Path(artifact.source) / spec.root, variables | (extra or {}), label
        )

    def start(
        self, environment: str, service: str, release: Release, artifact: Artifact, tag: str
    ) -> Instance:
        venv = Path(artifact.ref) if artifact.ref else None
        source = Path(artifact.source)
        return LocalReleases(self).start(environment, service, release, source, venv, tag)

    def wait_healthy(self, instance: Instance, timeout: float) -> None:
        LocalReleases(self).wait_healthy(instance, timeout)

    def switch(self, instance: Instance) -> Instance | None:
        return LocalReleases(self).switch(instance)

    def stop(self, instance: Instance, drain: float = 10.0, switched: bool = False) -> None:
        LocalReleases(self).stop(instance, drain=drain, switched=switched)

    def live(self, environment: str) -> dict[str, Instance]:
        return LocalReleases(self).live(environment)

    def running(self, instance: Instance) -> bool:
        return LocalReleases(self).running(instance)

    def settle(self, environment: str) -> list[str]:
        """Each site on what live.json says serves; every other instance's processes stopped."""
        if not self.supervisor.alive():
            return []
        releases = LocalReleases(self)
        for instance in releases.live(environment).values():
            if instance.tag and releases.running(instance):
                releases.switch(instance)
        strays = releases.strays(environment)
        for name in strays:
            self.supervisor.stop(name)
        return strays

    # -- logs ------------------------------------------------------------------------------

    def logs(
        self,
        environment: str,
        process: str | None,
        lines: int,
        follow: bool,
        emit: Callable[[str], None],
        colour: bool = False,
        since: Any = None,
    ) -> None:
        from tiers.platforms.local.logs import follow_logs, log_files

        files = log_files(self, environment, process)
        follow_logs(files, lines, follow, emit, colour=colour, since=since)

    def log_position(self, environment: str) -> Any:
        from tiers.platforms.local.logs import log_sizes

        return log_sizes(self, environment)


def _reachable(what: str, url: str, key: str) -> None:
    parts = urlsplit(url)
    default = {"redis": 6379, "rediss": 6379}.get(parts.scheme, 5432)
    host, port = parts.hostname or "localhost", parts.port or default
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        raise PlatformError(
            f"the {what} at {host}:{port} is unreachable ({exc.strerror or exc}); "
            f"start it or fix {key}"
        ) from None
