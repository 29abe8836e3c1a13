"""A platform written from ``tiers.platforms.base``'s documentation alone, for the tests.

Its instances are records, not servers: ``start`` writes one, ``stop`` removes it,
``switch`` rewrites ``live.json``. ``build`` and ``run`` run their commands for real, so a
release command migrates a real SQLite database. An instance is healthy when the file
that its service's health path names in the release (``/health``: ``ROOT/health``)
starts with ``ok``, so a commit that writes anything else there ships an unhealthy
version. The state lives under the project's ``.tiers/<name>/ENVIRONMENT/`` so that each
command line sees what the one before did, and every call is appended to
``.tiers/journal.log`` (shared by both names) in the order it came.

It is registered twice, as ``memory`` and ``memory-cdn``, by the ``tiers_memory`` dist-info
beside this package: tiers.toml accepts only the platform names that ``config.model``
lists, so it borrows two that nothing else installs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from tiers.config import Config
from tiers.config.model import Service
from tiers.errors import PlatformError
from tiers.platforms.base import Artifact, Instance, Release
from tiers.platforms.runtime import process_env

__all__ = ["MemoryPlatform", "OtherMemoryPlatform"]

COMMAND_TIMEOUT_S = 300
TAIL_LINES = 5


class MemoryPlatform:
    name: ClassVar[str] = "memory"
    options: ClassVar[type[BaseModel] | None] = None  # no keys of its own in a binding
    enforces_access: ClassVar[bool] = False  # nothing stands in front of what it serves

    def __init__(self, config: Config, project_dir: Path) -> None:
        self.config = config
        self.project_dir = project_dir.resolve()
        self.home = self.project_dir / ".tiers" / self.name
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}  # in memory, never on disk

    # -- the environment ---------------------------------------------------------------------

    def prepare(self, environment: str) -> None:
        self._running_dir(environment).mkdir(parents=True, exist_ok=True)
        if url := self.database_url(environment):
            sqlite3.connect(url.removeprefix("sqlite:///")).close()  # the file exists now
        self._note("prepare", environment)

    def database_url(self, environment: str) -> str | None:
        """The configured database where a service of ours reads ``database_url``; a
        relative SQLite path lives under this platform's directory."""
        env = self.config.environments[environment]
        readers = [s for s in self._services(environment) if "database_url" in self._spec(s).vars]
        if env.database is None or env.database.url is None or not readers:
            return None
        url = env.database.url
        if env.database.engine != "sqlite":
            return url
        path = Path(url.removeprefix("sqlite:///"))
        return f"sqlite:///{path if path.is_absolute() else self._env_dir(environment) / path}"

    # -- a release ---------------------------------------------------------------------------

    def describe(self, environment: str, service: str) -> dict[str, str]:
        spec = self._spec(service)
        binding = self.config.environments[environment].services[service]
        said = {
            "build": spec.build,
            "release": spec.release_command,
            "start": f"an instance on {self.name}",
            "health": spec.health and f"{spec.health} answered from the release's files",
            "switch": binding.url and f"{binding.url} → new {service}",
        }
        return {step: text for step, text in said.items() if text}

    def build(self, service: str, source: Path) -> Artifact:
        spec = self._spec(service)
        root = source / spec.root
        if not root.is_dir():
            raise PlatformError(f"{self.name}: cannot build {service}: {root} is not a directory")
        if spec.build:
            self._command(root, spec.build, self._base_env(), f"{service}'s build")
        built = root / spec.output if spec.output else root
        self._note("build", service, source.name)
        return Artifact(str(built), f"built on {self.name}", str(source))

    def deliver(self, environment: str, service: str, values: dict[str, str]) -> None:
        self.secrets[(environment, service)] = dict(values)

    def run(
        self,
        environment: str,
        service: str,
        release: Release,
        artifact: Artifact,
        command: str,
        extra: dict[str, str] | None = None,
    ) -> str:
        if not artifact.source:
            raise PlatformError(f"{self.name}: cannot run {command!r}: no release source")
        env = self._process_env(environment, service, release)
        env |= self.secrets.get((environment, service), {}) | (extra or {})
        root = Path(artifact.source) / self._spec(service).root
        self._note("run", environment, service, release.version, command)
        return self._command(root, command, env, f"{service}'s {command!r} in {environment}")

    def start(
        self, environment: str, service: str, release: Release, artifact: Artifact, tag: str
    ) -> Instance:
        processes = tuple(f"{service}.{p}@{tag}" for p in self._spec(service).processes)
        instance = Instance(
            environment,
            service,
            tag,
            release.version,
            release.commit,
            processes=processes,
            source=artifact.source,
            venv=artifact.ref,
        )
        self._save(instance)
        self._note("start", environment, service, tag, release.version)
        return instance

    def wait_healthy(self, instance: Instance, timeout: float) -> None:
        what = f"{instance.service} {instance.version} in {instance.environment}"
        if not self.running(instance):
            raise PlatformError(f"{self.name}: {what} is not running")
        path = self._spec(instance.service).health
        if path is not None:
            answer = self._answer(instance, path)
            if not answer.startswith("ok"):
                said = f"{path} answers {answer!r}" if answer else f"{path} is not in the release"
                raise PlatformError(f"{self.name}: {what} is not healthy: {said}")
        self._note("healthy", instance.environment, instance.service, instance.tag)

    def switch(self, instance: Instance) -> Instance | None:
        live = self._live_records(instance.environment)
        before = live.get(instance.service)
        if before is not None and before["tag"] == instance.tag:
            return None  # switched already: nothing was replaced, nothing to drain
        live[instance.service] = dataclasses.asdict(instance)
        _write_json(self._env_dir(instance.environment) / "live.json", live)
        self._note("switch", instance.environment, instance.service, instance.tag)
        return Instance.from_json(before) if before is not None else None

    def stop(self, instance: Instance, drain: float = 10.0, switched: bool = False) -> None:
        self._record(instance).unlink(missing_ok=True)
        how = f"after draining {drain:g}s" if switched else "at once"
        self._note("stop", instance.environment, instance.service, instance.tag, how)

    def live(self, environment: str) -> dict[str, Instance]:
        records = self._live_records(environment)
        return {service: Instance.from_json(data) for service, data in records.items()}

    def running(self, instance: Instance) -> bool:
        return self._record(instance).exists()

    def settle(self, environment: str) -> list[str]:
        owned = {(i.service, i.tag) for i in self.live(environment).values()}
        stopped = []
        for instance in self._started(environment):
            if (instance.service, instance.tag) not in owned:
                self._record(instance).unlink()
                stopped.append(f"{instance.service}@{instance.tag}")
        if stopped:
            self._note("settle", environment, *stopped)
        return stopped

    # -- the environment as a whole ----------------------------------------------------------

    def up(
        self, environment: str, release: Release | None = None, with_optional: tuple[str, ...] = ()
    ) -> None:
        self.prepare(environment)
        (self._env_dir(environment) / "stopped").unlink(missing_ok=True)
        live = self.live(environment)
        for service in self._services(environment):
            if self._spec(service).optional and service not in with_optional:
                continue
            instance = live.get(service) or Instance(
                environment, service, "", "work tree", "", source=str(self.project_dir)
            )
            self._save(instance)
            if service not in live:
                self.switch(instance)
        self._note("up", environment)

    def stop_environment(self, environment: str) -> None:
        for instance in self._started(environment):
            self._record(instance).unlink()
        if self._env_dir(environment).is_dir():
            (self._env_dir(environment) / "stopped").touch()
        self._note("stop-environment", environment)

    def status(self) -> list[dict[str, Any]]:
        out = []
        for environment in self._environments():
            live = self.live(environment)
            down = sorted(s for s, i in live.items() if not self.running(i))
            stopped = (self._env_dir(environment) / "stopped").exists()  # on purpose
            services = {
                service: {
                    "url": self.config.environments[environment].services[service].url,
                    "answer": "running" if self.running(instance) else "stopped",
                    "health": {"version": instance.version},
                }
                for service, instance in live.items()
            }
            processes = [
                {"name": p, "state": "running", "pid": None, "restarts": 0}
                for i in self._started(environment)
                for p in i.processes
            ]
            out.append(
                {
                    "environment": environment,
                    "state": "stopped" if down else "serving",
                    "problems": [] if stopped else [f"{s} is not running" for s in down],
                    "processes": processes,
                    "services": services,
                }
            )
        return out

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
        log = self._env_dir(environment) / "log"
        text = log.read_text() if log.exists() else ""
        shown = text[int(since or 0) :].splitlines()
        for line in shown[-lines:] if lines else shown:
            if process is None or process.partition(".")[0] in line.split():
                emit(f"{self.name} | {line}")

    def log_position(self, environment: str) -> Any:
        log = self._env_dir(environment) / "log"
        return log.stat().st_size if log.exists() else 0

    def down(self) -> None:
        for environment in self._environments():
            self.stop_environment(environment)

    # -- its files ---------------------------------------------------------------------------

    def _env_dir(self, environment: str) -> Path:
        return self.home / environment

    def _running_dir(self, environment: str) -> Path:
        return self._env_dir(environment) / "running"

    def _record(self, instance: Instance) -> Path:
        name = f"{instance.service}@{instance.tag or 'worktree'}.json"
        return self._running_dir(instance.environment) / name

    def _save(self, instance: Instance) -> None:
        _write_json(self._record(instance), dataclasses.asdict(instance))

    def _started(self, environment: str) -> list[Instance]:
        folder = self._running_dir(environment)
        records = sorted(folder.glob("*.json")) if folder.is_dir() else []
        return [Instance.from_json(json.loads(p.read_text())) for p in records]

    def _live_records(self, environment: str) -> dict[str, Any]:
        path = self._env_dir(environment) / "live.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def _environments(self) -> list[str]:
        return (
            sorted(p.name for p in self.home.iterdir() if p.is_dir()) if self.home.is_dir() else []
        )

    def _note(self, *words: str) -> None:
        """One line in the shared journal and, for an environment's call, in its log."""
        line = " ".join(words)
        self.home.parent.mkdir(parents=True, exist_ok=True)
        with (self.home.parent / "journal.log").open("a") as journal:
            journal.write(f"{self.name} {line}\n")
        if len(words) > 1 and (self.home / words[1]).is_dir():
            with (self.home / words[1] / "log").open("a") as log:
                log.write(f"{line}\n")

    # -- what it knows of the configuration --------------------------------------------------

    def _spec(self, service: str) -> Service:
        return self.config.services[service]

    def _services(self, environment: str) -> list[str]:
        bindings = self.config.environments[environment].services
        return [s for s, b in bindings.items() if b.platform == self.name]

    def _answer(self, instance: Instance, path: str) -> str:
        found = Path(instance.source) / self._spec(instance.service).root / path.lstrip("/")
        return found.read_text().strip() if found.is_file() else ""

    def _base_env(self) -> dict[str, str]:
        """What a command gets besides the environment's facts: never the caller's shell."""
        path = os.pathsep.join([str(Path(sys.executable).parent), os.defpath])
        return {"PATH": path, "HOME": str(self.home), "LANG": "C.UTF-8"}

    def _process_env(self, environment: str, service: str, release: Release) -> dict[str, str]:
        facts = process_env(
            self.config,
            environment,
            service,
            release=release,
            database_url=self.database_url(environment),
        )
        return self._base_env() | facts

    def _command(self, cwd: Path, command: str, env: dict[str, str], what: str) -> str:
        try:
            done = subprocess.run(
                command,
                shell=True,
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PlatformError(f"{self.name}: {what} did not run: {exc}") from None
        output = done.stdout + done.stderr
        if done.returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-TAIL_LINES:])
            raise PlatformError(f"{self.name}: {what} exited {done.returncode}:\n{tail}")
        return output


class OtherMemoryPlatform(MemoryPlatform):
    """The same platform under a second name, for an environment that binds two."""

    name: ClassVar[str] = "memory-cdn"


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2))
    temporary.replace(path)
