"""The platform interface: everything the pipeline, ``tiers status`` and the CLI ask of a
platform (local, fly, Cloudflare Pages, Kubernetes, ...), and the registry that finds one.

A platform knows how to run a service of one environment: provision what it owns for
the environment, build an artifact from an exported commit, run a one-off command with
the environment's configuration, deliver its secrets, start a version beside the live
one, say when it is healthy, switch traffic to it, drain and stop the old one, say what
is live, show logs and report status. It never decides *when*: the pipeline does, and
records every step.
A step a platform cannot do it says so (Cloudflare Pages has no one-off command: its
``run`` raises PlatformError naming that), and the pipeline does not guess.

Platforms are found through the ``tiers.platforms`` entry-point group, which the
built-in local platform uses too, so a package adds one by declaring, in its own
``pyproject.toml``::

    [project.entry-points."tiers.platforms"]
    fly = "tiers_fly:FlyPlatform"

and implementing :class:`Platform`. A worked example, for a platform whose machines are
started through an HTTP API (what fly.io's Machines do)::

    class FlyPlatform:
        name = "fly"

        def __init__(self, config: Config, project_dir: Path) -> None:
            self.config, self.api = config, MachinesApi(token_from_environment())

        def prepare(self, environment: str) -> None:
            pass                                   # the app and its volumes already exist

        def database_url(self, environment: str) -> str | None:
            return None                            # Neon's URL is a secret: not known here

        def describe(self, environment: str, service: str) -> dict[str, str]:
            return {"build": "a remote builder makes the image", "start": "machines, standby"}

        def build(self, service: str, source: Path) -> Artifact:
            image = self.api.build_image(source)   # a remote builder, from the exported commit
            return Artifact(image, f"built {image}")

        def deliver(self, environment, service, values) -> None:
            self.api.stage_secrets(self.app(environment, service), values)  # --stage

        def run(self, environment, service, release, artifact, command, extra=None) -> str:
            return self.api.run_release_machine(artifact.ref, command, extra or {})

        def start(self, environment, service, release, artifact, tag) -> Instance:
            ids = self.api.create_machines(artifact.ref, standby=True)   # beside the live ones
            return Instance(environment, service, tag, release.version, release.commit,
                            processes=tuple(ids))

        def wait_healthy(self, instance: Instance, timeout: float) -> None:
            self.api.wait_checks(instance.processes, timeout)    # raises PlatformError

        def switch(self, instance: Instance) -> Instance | None:
            return self.api.route_to(instance)     # the instance that served before

        def stop(self, instance: Instance, drain: float = 10.0, switched: bool = False) -> None:
            self.api.stop_machines(instance.processes, drain)

        ...                                        # live, running, settle, up, logs, status

Every method may be called again without harm (a deploy that was killed is repaired by
the next one calling ``settle``). Errors are :class:`~tiers.errors.PlatformError` naming
the part that failed and why; nothing else may escape.

>>> platform = load_platform("local")(config, Path("."))          # doctest: +SKIP
>>> artifact = platform.build("backend", exported)
>>> platform.deliver("staging", "backend", {"OAUTH_ENCRYPTION_KEY": "..."})
>>> new = platform.start("staging", "backend", release, artifact, tag="12")
>>> platform.wait_healthy(new, timeout=60)
>>> old = platform.switch(new)
>>> platform.stop(old, drain=10, switched=True)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from tiers.config import Config, Environment
from tiers.errors import UsageError
from tiers.platforms.options import SCHEMAS
from tiers.platforms.runtime import Release

__all__ = [
    "GROUP",
    "Artifact",
    "Instance",
    "Platform",
    "Platforms",
    "Release",
    "available",
    "enforcing",
    "load_platform",
]

GROUP = "tiers.platforms"


@dataclass(frozen=True)
class Artifact:
    """What ``build`` made of one service's exported commit, as the platform names it:
    a virtualenv's path, an image reference; None for a service with nothing to build."""

    ref: str | None
    note: str
    """What happened, for the deploy's record: ``reused backend-4f2a (lock unchanged)``."""
    source: str = ""
    """The exported commit it was built from."""


@dataclass(frozen=True)
class Instance:
    """One release of one service in one environment, running or ready to serve.

    ``tag`` tells instances apart (the deployment id; empty for the work tree).
    ``processes`` are the platform's names for what runs (supervised processes,
    machines, pods); ``port`` and ``site`` are where the platform routes traffic.
    ``source`` and ``venv`` (the artifact's ``source`` and ``ref``, whatever the artifact
    is) make ``artifact``, which lets the platform start the same release again.
    """

    environment: str
    service: str
    tag: str
    version: str
    commit: str
    processes: tuple[str, ...] = ()
    port: int | None = None
    site: str | None = None
    source: str = ""
    venv: str | None = None

    @property
    def artifact(self) -> Artifact:
        """What this instance was started from, to start it again."""
        return Artifact(self.venv, "as started before", self.source)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Instance:
        return cls(**{**data, "processes": tuple(data.get("processes", ()))})


@runtime_checkable
class Platform(Protocol):
    """One place services run (see the module's documentation for an example)."""

    name: ClassVar[str]
    """The name tiers.toml uses in ``platform = "..."``."""

    options: ClassVar[type[BaseModel] | None]
    """The keys this platform takes in a binding beside the common ones (``url``, ``env``,
    ``secrets``, ...), or None for none: a pydantic model, strict and with
    ``extra="forbid"``, that tiers.toml is validated with, so a mistake is an error naming
    its file:line:column and key path. The platform reads them back with
    ``binding.option("job", str)``::

        class NomadOptions(BaseModel):
            model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
            job: str                               # [environments.staging.backend]
            datacenter: str = "dc1"                # platform = "nomad", job = "api-stg"

        class NomadPlatform:
            name = "nomad"
            options = NomadOptions

    A platform named fly, cloudflare-pages or kubernetes declares the schema tiers ships
    for it (``tiers.platforms.options.Fly``, ...), which checks tiers.toml before any
    driver is installed."""

    enforces_access: ClassVar[bool]
    """True when the platform itself puts tiers' access gate in front of every address it
    serves for an environment with ``access.protect`` (provider ``tiers``): each request
    decided by the gate before it reaches the app, the app refusing a request that did not
    pass it. The local platform does (a supervised ``tiers gate serve`` behind Caddy's
    ``forward_auth``); a platform that does not declare it, or says False, does not, and
    ``tiers check`` (``access-not-enforced``), ``tiers up``, ``tiers deploy`` and the
    environments document say so of every protected service on it::

        class FlyPlatform:
            name = "fly"
            enforces_access = False    # fly's proxy has no forward-auth hook

    :func:`enforcing` reads it from the installed platforms."""

    def __init__(self, config: Config, project_dir: Path) -> None:
        """``project_dir`` holds tiers.toml; a platform keeps its state under ``.tiers/``."""

    # -- the environment ---------------------------------------------------------------------

    def prepare(self, environment: str) -> None:
        """Provision what a release of ``environment`` runs on where this platform owns it
        (the local platform's PostgreSQL cluster, redis-server, buckets and router); the
        database must answer once this returns."""

    def database_url(self, environment: str) -> str | None:
        """Where this platform's processes reach the environment's database, for the
        pipeline's snapshot and migration head; None when it is not known here, or when no
        service of the environment on this platform reaches it (the pipeline asks each of
        the environment's platforms in turn and takes the first answer)."""

    # -- a release ---------------------------------------------------------------------------

    def describe(self, environment: str, service: str) -> dict[str, str]:
        """The plan's words for what each step does to ``service`` here, naming commands,
        targets and addresses (what ``tiers deploy --dry-run`` prints): keys ``build``,
        ``release``, ``start``, ``health``, ``switch`` and ``drain``. A step that does
        nothing for the service is left out; a step the platform cannot do says why
        (``{"release": "none: Pages runs no commands"}``), and ``run`` then raises."""

    def build(self, service: str, source: Path) -> Artifact:
        """Build ``service`` from ``source`` (the exported commit, never the work tree).
        Reusing an earlier build while its inputs are unchanged is encouraged."""

    def deliver(self, environment: str, service: str, values: dict[str, str]) -> None:
        """Make ``values`` (variable name → plaintext) the secrets every process and
        one-off command of ``service`` in ``environment`` that ``run``, ``start`` or ``up``
        starts from now on gets, beside :func:`~tiers.platforms.runtime.process_env`'s
        variables, and nothing else: they replace what was delivered before.

        The pipeline calls it before any of those, in every deploy, rollback, ``tiers up``
        and ``tiers secrets apply``, with exactly the secrets the binding declares
        (``secrets = [...]``, and a ``url_secret`` under the name ``vars`` gives its fact),
        decrypted in memory from the tier's store as it is today (so a rolled-back release
        gets today's values). What runs already keeps what it had until it is restarted;
        a build gets none. The values must never be written in plaintext where the
        platform keeps state: the local platform keeps them in memory (its own and its
        supervisor's), fly stages them as app secrets (``fly secrets set --stage``),
        Kubernetes as the Deployment's Secret, Pages as the project's environment
        variables. An empty ``values`` delivers none."""

    def run(
        self,
        environment: str,
        service: str,
        release: Release,
        artifact: Artifact,
        command: str,
        extra: dict[str, str] | None = None,
    ) -> str:
        """Run a one-off ``command`` (the release command, a downgrade) of ``release`` with
        the environment's configuration and the secrets last delivered for the service,
        plus ``extra`` variables; its output.
        It runs in the service's ``root`` of the artifact's ``source``, with the variables
        :func:`tiers.platforms.runtime.process_env` names (as every process of the service
        gets them). A non-zero exit raises PlatformError with the output's end."""

    def start(
        self, environment: str, service: str, release: Release, artifact: Artifact, tag: str
    ) -> Instance:
        """Start ``release`` of ``service`` beside the live instance, taking no traffic;
        its processes get the secrets last delivered for the service."""

    def wait_healthy(self, instance: Instance, timeout: float) -> None:
        """Return once ``instance`` is healthy (its health path answers 2xx, its processes
        stay up); PlatformError with its log's end after ``timeout`` seconds."""

    def switch(self, instance: Instance) -> Instance | None:
        """Send the service's traffic to ``instance`` without dropping a connection, and
        record it as live; the instance it replaced, if any (None when ``instance`` was
        live already: the pipeline drains and stops what this returns)."""

    def stop(self, instance: Instance, drain: float = 10.0, switched: bool = False) -> None:
        """Stop ``instance``, giving its requests ``drain`` seconds to finish; one just
        ``switched`` away from also gets the requests already routed to it."""

    def live(self, environment: str) -> dict[str, Instance]:
        """What serves each of the environment's services on this platform, as switched."""

    def running(self, instance: Instance) -> bool:
        """Whether ``instance`` can serve right now."""

    def settle(self, environment: str) -> list[str]:
        """Point each service at what ``live`` says and stop every instance no live one
        owns (what an interrupted deploy left); the names of what it stopped."""

    # -- the environment as a whole ----------------------------------------------------------

    def up(
        self, environment: str, release: Release | None = None, with_optional: tuple[str, ...] = ()
    ) -> None:
        """Start what ``environment`` needs and return once it serves: a live release keeps
        serving (restarted if it stopped), otherwise the work tree runs; what it starts
        gets the secrets last delivered. Raises
        PlatformError naming the part that failed and why, having stopped what it started;
        other environments are left alone."""

    def stop_environment(self, environment: str) -> None:
        """Stop ``environment``'s processes and data services; data stays."""

    def status(self) -> list[dict[str, Any]]:
        """Per environment: ``environment``; ``state`` (``serving``, ``stopped``, or a
        word of the platform's for neither); ``problems``, what keeps it from serving, in
        words (empty when it serves or was stopped on purpose: ``tiers status`` exits 1
        when there are some); ``processes``, each with ``name``, ``state``, ``pid`` and
        ``restarts``; and ``services`` by name, each with ``url``, ``answer`` (what its
        health path said, in words) and ``health`` (the answer's fields, or None)."""

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
        """Emit the last ``lines`` of each process's log (``SERVICE.PROCESS``, or all),
        each line prefixed with its process (in a colour of its own with ``colour``); keep
        emitting new ones when ``follow``. ``since`` (from ``log_position``) shows only
        what was written after it."""

    def log_position(self, environment: str) -> Any:
        """Where each log of ``environment`` ends now, for ``logs(..., since=...)``."""

    def down(self) -> None:
        """Stop everything this platform started for the project."""


_METHODS = [n for n in Platform.__dict__ if not n.startswith("_") and n != "name"]


def available() -> dict[str, str]:
    """Every registered platform: name → ``module:Class``; a name taken twice is refused."""
    found: dict[str, str] = {}
    for point in entry_points(group=GROUP):
        if point.name in found and found[point.name] != point.value:
            raise UsageError(
                f"two packages register the platform {point.name!r} "
                f"({found[point.name]} and {point.value}); uninstall one"
            )
        found[point.name] = point.value
    return found


def load_platform(name: str) -> type[Platform]:
    """The class of platform ``name``, imported on first use."""
    registered = available()
    if name not in registered:
        known = ", ".join(sorted(registered)) or "none"
        raise UsageError(
            f"no platform {name!r} is installed (known: {known}); "
            "install the package that provides it"
        )
    point = next(p for p in entry_points(group=GROUP) if p.name == name)
    cls = point.load()
    missing = [m for m in _METHODS if not callable(getattr(cls, m, None))]
    if not isinstance(cls, type) or missing:
        lacks = f" (it lacks {', '.join(missing)})" if isinstance(cls, type) else ""
        raise UsageError(
            f"platform {name!r} ({point.value}) does not implement tiers' interface{lacks}"
        )
    declared = getattr(cls, "options", None)
    if name in SCHEMAS and declared is not SCHEMAS[name]:  # tiers.toml was validated with it
        shipped = SCHEMAS[name]
        wanted = f"tiers.platforms.options.{shipped.__name__}" if shipped else "None"
        raise UsageError(f"platform {name!r} ({point.value}) must declare options = {wanted}")
    return cls


def enforcing() -> frozenset[str]:
    """The installed platforms that enforce ``access`` themselves (``enforces_access``)."""
    found = []
    for name in available():
        try:
            cls = load_platform(name)
        except UsageError:
            continue  # one that cannot be loaded enforces nothing
        if getattr(cls, "enforces_access", False) is True:
            found.append(name)
    return frozenset(found)


class Platforms:
    """The platforms one configuration's services are bound to, each made once.

    >>> platforms = Platforms(config, Path("."))                   # doctest: +SKIP
    >>> platforms.of(env, "backend").start(...)
    """

    def __init__(self, config: Config, project_dir: Path) -> None:
        self.config = config
        self.project_dir = project_dir
        self._made: dict[str, Platform] = {}

    @functools.cached_property
    def installed(self) -> dict[str, str]:
        """The registered platforms, read from the entry points once."""
        return available()

    def get(self, name: str) -> Platform:
        if name not in self._made:
            self._made[name] = load_platform(name)(self.config, self.project_dir)
        return self._made[name]

    def of(self, env: Environment, service: str) -> Platform:
        """The platform ``service`` runs on in ``env``."""
        return self.get(env.services[service].platform)

    def serving(self, env: Environment, services: Iterable[str] | None = None) -> list[Platform]:
        """The platforms ``env``'s services (or ``services``) run on, each once, in order."""
        names = services if services is not None else env.services
        found = dict.fromkeys(env.services[s].platform for s in names)
        return [self.get(name) for name in found]

    def live(self, env: Environment) -> dict[str, Instance]:
        """What serves each service of ``env``, across its platforms (a platform that is
        not installed here cannot say: its services are left out)."""
        out: dict[str, Instance] = {}
        installed = self.installed
        for platform in self.serving(
            env, [s for s, b in env.services.items() if b.platform in installed]
        ):
            found = platform.live(env.name)
            out |= {s: i for s, i in found.items() if env.services[s].platform == platform.name}
        return out

    def database_url(self, env: Environment) -> str | None:
        """The environment's database as its platforms reach it (the first that knows)."""
        for platform in self.serving(env):
            if (url := platform.database_url(env.name)) is not None:
                return url
        return None
