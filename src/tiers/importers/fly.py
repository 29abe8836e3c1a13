"""`tiers import fly`: a tiers.toml from the fly.toml files of a fly.io app.

Each fly.toml is one environment: its app, region and VM become the environment's fly
binding of one service, and what describes the code rather than the place (release
command, processes, health check) becomes the service. Each ``[[vm]]`` sizes the process
groups it names (none named: every group). Known facts in ``[env]`` move to their own
fields (``ATPROTO_APP_NAMESPACE`` → ``namespace``, ``R2_BUCKET`` → a storage bucket), and
``PORT`` is dropped: tiers tells each process its port. Every key with no place in
tiers.toml is listed, in the file's header and in ``Imported.unmapped``; a key of the
wrong type is an error naming where it is written.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from tiers.errors import ImportFailed, UsageError
from tiers.importers.draft import Imported, Table, render, verify
from tiers.importers.fly_vm import read_vms
from tiers.importers.reader import KeyPath, Tracked, read_toml

_ROLES = {
    "stg": "staging",
    "stage": "staging",
    "prod": "production",
    "prd": "production",
    "dev": "development",
}
_APP_SUFFIXES = (
    ("-staging", "staging"),
    ("-stg", "staging"),
    ("-prod", "production"),
    ("-dev", "development"),
)
_RANK = {"development": 0, "staging": 1, "production": 3}  # any other name ranks 2
_FILE = re.compile(r"fly[._-](.+)\.toml")
_OBSERVABILITY = {"LOGFIRE_ENVIRONMENT": "logfire", "SENTRY_ENVIRONMENT": "sentry"}
_NAMESPACE = ("ATPROTO_APP_NAMESPACE",)
_CORS = "FRONTEND_URL"
_CORS_COMMENT = "CORS origin; becomes frontend_url once the frontend is declared"
_PORT = "PORT"
_STORAGE = {"R2": "r2", "S3": "s3", "AWS": "s3", "GCS": "gcs", "TIGRIS": "tigris", "B2": "b2"}
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")
_SCALAR = (str, int, float, bool)


@dataclass(frozen=True)
class _App:
    """One fly.toml, and the environment it deploys."""

    file: Tracked
    environment: str

    @property
    def name(self) -> str:
        app = self.file.peek("app")
        assert isinstance(app, str), "checked when read"
        return app

    @property
    def role(self) -> str:
        return _ROLES.get(self.environment, self.environment)


class _Found(NamedTuple):
    value: Any
    source: str


@dataclass
class _Storage:
    """The buckets found in one [env], by role, and the variables that named them."""

    provider: str | None = None
    buckets: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)


def import_fly(
    files: Sequence[Path],
    *,
    environments: Sequence[str] = (),
    service: str = "backend",
    secrets: Sequence[str] = (),
    urls: Mapping[str, str] | None = None,
    target: Path = Path("tiers.toml"),
) -> Imported:
    """Turn fly.toml files, one per environment, into the text of a tiers.toml.

    ``environments`` names the files in order; a file left unnamed is recognised by its
    name (``fly.staging.toml`` → staging, plain ``fly.toml`` → production) or its app's
    suffix (``relay-api-staging``). ``secrets`` are declared in every environment;
    ``urls`` maps an environment to its custom domain. The text is proven to load
    before it is returned; nothing is written.

    >>> result = import_fly([Path("fly.staging.toml"), Path("fly.toml")],
    ...                     secrets=["DATABASE_URL"])      # doctest: +SKIP
    >>> result.environments                                # doctest: +SKIP
    ['staging', 'production']
    >>> [line for line in result.unmapped if "[mounts]" in line]   # doctest: +SKIP
    ['fly.staging.toml [mounts] source, destination']
    """
    _check_names(service, secrets)
    apps = _order(_read(files, environments))
    builder = _Builder(apps, service, list(secrets), _check_urls(urls or {}, apps))
    root = builder.build()
    text = render(builder.header(), root)
    verify(text, target)
    notes = [f"assumed: {a}" for a in builder.assumed] + builder.todo
    return Imported(text, [a.environment for a in apps], builder.unmapped, notes)


# -- which file is which environment -------------------------------------------------------


def _read(files: Sequence[Path], environments: Sequence[str]) -> list[_App]:
    if len(environments) > len(files):
        raise UsageError(
            f"{len(environments)} --env for {len(files)} files; give at most one per file, in order"
        )
    for name in environments:
        problem = _problem("slug", name)
        if problem:
            raise UsageError(f"--env {name}: {problem}")
    apps: list[_App] = []
    for index, path in enumerate(files):
        if path in files[:index]:
            raise UsageError(f"{path} is given twice; give each fly.toml once")
        file = read_toml(path)
        _check_app(file)
        given = environments[index] if index < len(environments) else None
        apps.append(_App(file, given or _infer(path, file)))
    seen: dict[str, str] = {}
    for app in apps:
        if app.environment in seen:
            raise UsageError(
                f"{seen[app.environment]} and {app.file.name} both deploy {app.environment}; "
                "name each file's environment with --env NAME, in order"
            )
        seen[app.environment] = app.file.name
    return apps


def _check_app(file: Tracked) -> None:
    """A fly.toml names its app; a file without one is something else (pyproject.toml)."""
    name = file.take("app", expect=str)
    if name is None:
        raise ImportFailed(
            f'{file.name} is not a fly.toml: it has no app = "NAME" (a fly.toml names the '
            'fly.io app it configures, like app = "relay-api")'
        )
    problem = _problem("slug", name)
    if problem:
        file.fail(("app",), f"{name!r} is not a fly.io app name: {problem}")


def _infer(path: Path, file: Tracked) -> str:
    """``fly.staging.toml`` → staging; ``fly.toml`` of ``relay-api-stg`` → staging; else production.

    The file's name wins over its app's name; a plain fly.toml of any other app is production.
    """
    named = _FILE.fullmatch(path.name)
    if named:
        word = named.group(1).lower()
        name = _ROLES.get(word, word)
        if not _valid("slug", name):
            raise UsageError(f"cannot tell which environment {path} deploys; name it with --env")
        return name
    app = file.peek("app")
    for suffix, environment in _APP_SUFFIXES:
        if isinstance(app, str) and app.endswith(suffix):
            return environment
    return "production"


def _order(apps: list[_App]) -> list[_App]:
    """Promotion order: staging before any other name, production last."""
    return sorted(apps, key=lambda app: _RANK.get(app.role, 2))


# -- what the user gave --------------------------------------------------------------------


def _valid(kind: str, value: Any) -> bool:
    return _problem(kind, value) is None


def _problem(kind: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``kind`` of tiers.toml value (slug, env, url, path)."""
    from pydantic import TypeAdapter, ValidationError

    from tiers.config.model import EnvName, Slug, Url, UrlPath
    from tiers.platforms.options import Memory

    types: dict[str, Any] = {
        "slug": Slug,
        "env": EnvName,
        "url": Url,
        "path": UrlPath,
        "memory": Memory,
    }
    try:
        TypeAdapter(types[kind]).validate_python(value)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
    return None


def _check_names(service: str, secrets: Sequence[str]) -> None:
    from tiers.config.model import Environment

    problem = _problem("slug", service)
    if problem is None and service in Environment.model_fields:
        problem = "that is an environment key"
    if problem:
        raise UsageError(f"--service {service}: {problem}")
    for index, name in enumerate(secrets):
        problem = _problem("env", name)
        if problem:
            raise UsageError(f"--secret {name}: {problem}")
        if name in secrets[:index]:
            raise UsageError(f"--secret {name} is given twice; give each secret once")


def _check_urls(urls: Mapping[str, str], apps: list[_App]) -> dict[str, str]:
    names = [app.environment for app in apps]
    for environment, url in urls.items():
        if environment not in names:
            raise UsageError(
                f"--url {environment}={url}: no environment {environment}; "
                f"imported: {', '.join(names)}"
            )
        problem = _problem("url", url)
        if problem:
            raise UsageError(f"--url {environment}={url}: {problem}")
    return {env: url.rstrip("/") for env, url in urls.items()}


# -- fly.toml → tiers.toml -----------------------------------------------------------------


class _Builder:
    """Fills the tiers.toml tables from the files, recording assumptions and leftovers."""

    def __init__(self, apps: list[_App], service: str, secrets: list[str], urls: dict[str, str]):
        self.apps = apps
        self.service = service
        self.secrets = secrets
        self.urls = urls
        self.root = Table()
        self.vars: dict[str, str] = {}
        self.processes: dict[str, str] = {}
        self.buckets = _bucket_roles(apps)
        self.stored: set[str] = set()
        self.unmapped: list[str] = []
        self.assumed: list[str] = []
        self.todo: list[str] = []

    def build(self) -> Table:
        triggers = self._triggers()
        self._project()
        self._service()
        for index, app in enumerate(self.apps):
            self._environment(app, index, triggers[index])
        if self.vars:
            vars_ = self.root.table("services").table(self.service).table("vars")
            for fact, name in self.vars.items():
                vars_.set(fact, name)
        self.unmapped = [line for app in self.apps for line in app.file.leftovers()] + self.unmapped
        self._advise()
        return self.root

    def _triggers(self) -> list[Any]:
        out: list[Any] = []
        for app in self.apps:
            if app.role == "staging":
                out.append({"push": "main"})
                self.assumed.append(f"{app.environment} deploys on a push to main")
            elif app.role == "production" and any("push" in t for t in out if isinstance(t, dict)):
                out.append({"release": "github"})
                self.assumed.append(f"{app.environment} deploys when a GitHub release is published")
            else:
                out.append("manual")
                self.assumed.append(f"{app.environment} is deployed by hand (fly deploy)")
        return out

    def _project(self) -> None:
        project = self.root.table("project")
        project.set("name", _project_name(self.apps), "from the fly app names; rename freely")

    def _service(self) -> None:
        table = self.root.table("services").table(self.service)
        serves = any(a.file.peek("http_service") or a.file.peek("services") for a in self.apps)
        table.set("kind", "api" if serves else "worker")
        for key, read in (
            ("release_command", _release_command),
            ("health", _health),
            ("processes", _processes),
        ):
            found = [(app, read(app.file)) for app in self.apps]
            kept = self._merge(table, key, [(app, f) for app, f in found if f is not None])
            if key == "processes" and kept is not None:
                self.processes = kept

    def _merge(self, table: Table, key: str, found: list[tuple[_App, _Found]]) -> Any:
        """A service is the same code everywhere: keep the first value, list the others."""
        if not found:
            return None
        (first_app, first), rest = found[0], found[1:]
        table.set(key, first.value, first.source)
        for app, other in rest:
            if other.value != first.value:
                self.unmapped.append(
                    f"{app.file.name} {other.source} (differs from {first_app.file.name}, kept)"
                )
        return first.value

    def _environment(self, app: _App, index: int, trigger: Any) -> None:
        environment = self.root.table("environments").table(app.environment)
        environment.set("trigger", trigger, "assumed: fly.toml does not say")
        plain = self._facts(app, environment)
        if index < len(self.apps) - 1:
            environment.comments.extend(_access_example(app.environment))
        binding = environment.table(self.service)
        binding.title = f"from {app.file.name}"
        self._binding(app, binding)
        self._secrets(app, index, binding)
        if plain:
            binding.entries["env"] = plain

    def _facts(self, app: _App, environment: Table) -> Table:
        """Move known facts out of [env] into their fields; return the plain variables."""
        plain = Table()
        storage = _Storage()
        for name in app.file.get("env", expect=dict) or {}:
            value = app.file.get("env", name, expect=_SCALAR)
            if not _valid("env", name):
                continue  # left untaken, so listed as unmapped
            app.file.take("env", name)
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if name == _PORT:
                self.unmapped.append(
                    f"{app.file.name} [env] {_PORT} (dropped: tiers tells each process its port)"
                )
            elif name in _NAMESPACE and self._claim("namespace", name):
                environment.set("namespace", text, f"[env] {name}")
            elif name in _OBSERVABILITY and self._claim("observability_environment", name):
                found = {"provider": _OBSERVABILITY[name], "environment": text}
                environment.set("observability", found, f"[env] {name}")
            elif isinstance(value, str) and self._bucket(storage, name, value):
                continue
            else:
                plain.set(name, text, _CORS_COMMENT if name == _CORS else "")
        if storage.buckets:
            self._storage(app, environment, storage)
        return plain

    def _claim(self, fact: str, name: str) -> bool:
        """Whether ``name`` carries ``fact`` (the first variable to carry a fact keeps it)."""
        return self.vars.setdefault(fact, name) == name

    def _bucket(self, storage: _Storage, name: str, bucket: str) -> bool:
        """Add the bucket in variable ``name`` to ``storage``, if it names one that fits there."""
        if name not in self.buckets:
            return False
        role, provider = self.buckets[name]
        fits = provider in (None, storage.provider or provider) and role not in storage.buckets
        if not (fits and _BUCKET_NAME.fullmatch(bucket) and self._claim(f"bucket_{role}", name)):
            return False
        storage.buckets[role] = bucket
        storage.names.append(name)
        storage.provider = storage.provider or provider
        return True

    def _storage(self, app: _App, environment: Table, storage: _Storage) -> None:
        provider = storage.provider
        if provider is None:
            provider = "s3"
            names = ", ".join(storage.names)
            self.assumed.append(f"{app.environment}: {names} names an S3 bucket")
        found = {"provider": provider, "buckets": storage.buckets}
        self.stored.add(app.environment)
        environment.set("storage", found, f"[env] {', '.join(storage.names)}")

    def _binding(self, app: _App, binding: Table) -> None:
        binding.set("platform", "fly")
        binding.set("app", app.name)
        if app.environment in self.urls:
            binding.set("url", self.urls[app.environment], "custom domain")
        binding.set("platform_url", f"https://{app.name}.fly.dev", "fly's own address")
        region = app.file.take("primary_region", expect=str)
        if region is not None:
            binding.set("region", region)
        found = read_vms(app.file, list(self.processes), lambda memory: _valid("memory", memory))
        self.unmapped += found.unmapped
        vm, sources = found.vm, found.sources
        if "processes" not in vm:
            if vm:
                binding.set("vm", vm, ", ".join(sources))
            return
        # [...vm] with the VM of every group, then [...vm.processes] with each group's own
        table = binding.table("vm")
        for key, value in vm.items():
            if key != "processes":
                table.set(key, value)
        processes = table.table("processes")
        for group, machine in vm["processes"].items():
            processes.set(group, machine)
        (table if len(table.entries) > 1 else processes).title = ", ".join(sources)

    def _secrets(self, app: _App, index: int, binding: Table) -> None:
        if not self.secrets:
            command = f"fly secrets list -a {app.name}"
            binding.comments.append(
                f'secrets = ["DATABASE_URL"]  # TODO: the names `{command}` shows'
            )
        elif index == 0:
            binding.set("secrets", self.secrets, "names only; the values stay in fly secrets")
        else:
            first = self.apps[0].environment
            reference = f"${{environments.{first}.{self.service}.secrets}}"
            binding.set("secrets", reference, f"the same names as {first}", reference=True)

    def _advise(self) -> None:
        if not self.secrets:
            self.todo.append(
                "no --secret given: `tiers check` reports secrets-undeclared until each "
                "environment lists the names of its secrets (a TODO is in the file)"
            )
        for app in self.apps[:-1]:
            self.todo.append(
                f"{app.environment} is public as far as fly.toml says: `tiers check` warns "
                f"staging-unprotected until [environments.{app.environment}.access] protects "
                "it (an example is commented in the file)"
            )
        if any(_CORS in (a.file.peek("env") or {}) for a in self.apps):
            self.todo.append(
                f"{_CORS} stays a plain variable: make it frontend_url once the frontend is "
                "declared in tiers.toml (`tiers check` rejects a frontend_url no service serves)"
            )
        ports = {port for app in self.apps for port in _ports(app.file)}
        for name, command in self.processes.items():
            fixed = sorted(p for p in ports if re.search(rf"(?<![\w$]){p}(?!\w)", command))
            if fixed and _PORT not in command:
                self.todo.append(
                    f"[processes] {name} listens on port {fixed[0]}, fly's internal port: tiers "
                    f"gives each process its own in $PORT, so write $PORT in its command"
                )

    def _unknown(self) -> list[str]:
        """What the files did not say, for the header."""
        everywhere = {app.environment for app in self.apps}
        return [
            "the database",
            "Redis",
            *(["storage"] if self.stored != everywhere else []),
            "the frontend",
            *(["the custom domains"] if set(self.urls) != everywhere else []),
        ]

    def header(self) -> list[str]:
        lines = [
            "tiers.toml written by `tiers import fly` from:",
            *(f"  {app.file.name} ({app.environment})" for app in self.apps),
            *textwrap.wrap(
                f"fly.toml does not know {_series(self._unknown())}: add them (see "
                "`tiers init --example plyr`), then run `tiers check`.",
                width=88,
            ),
            "",
            "assumed:",
            *(f"  {line}" for line in self.assumed),
            "",
        ]
        if not self.unmapped:
            return [*lines, "could not map: nothing"]
        return [*lines, "could not map:", *(f"  {line}" for line in self.unmapped)]


def _series(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " or " + items[-1]


def _access_example(environment: str) -> list[str]:
    return [
        f"fly.toml does not say who may reach {environment}. To keep it private, uncomment:",
        f"[environments.{environment}.access]",
        "protect = true",
        'provider = "cloudflare"',
        'login = ["github"]',
        'allow = ["github-org:YOUR-ORG"]',
    ]


def _project_name(apps: list[_App]) -> str:
    """The common prefix of the app names, less an environment suffix: relay-api."""
    names = [app.name.split("-") for app in apps if app.name]
    common: list[str] = []
    for parts in zip(*names, strict=False):
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    name = ("-".join(common) or "-".join(names[0])) if names else ""
    for suffix, _ in _APP_SUFFIXES:
        name = name.removesuffix(suffix)
    return name if _valid("slug", name) else "project"


# -- readers of one fly.toml ---------------------------------------------------------------


def _release_command(file: Tracked) -> _Found | None:
    command = file.take("deploy", "release_command", expect=str)
    return _Found(command, "[deploy] release_command") if command is not None else None


def _processes(file: Tracked) -> _Found | None:
    out: dict[str, str] = {}
    for name in file.get("processes", expect=dict) or {}:
        file.get("processes", name, expect=str)  # a command of another type is an error
        if _valid("slug", name):
            out[name] = file.take("processes", name)
    return _Found(out, "[processes]") if out else None


def _health(file: Tracked) -> _Found | None:
    """The path of the first HTTP check: [http_service] checks, [checks.NAME], [[services]]."""
    for at, _ in _http_checks(file):
        path = file.get(*at, "path", expect=str)
        if path is not None and _valid("path", path):
            file.take(*at, "path")
            return _Found(path, f"{file.label(at)} path")
    return None


def _http_checks(file: Tracked) -> list[tuple[KeyPath, dict[str, Any]]]:
    found = file.tables("http_service", "checks")
    for at, check in file.tables("checks"):
        found += [((*at, k), v) for k, v in check.items() if isinstance(v, dict)]
    for at, _ in file.tables("services"):
        found += file.tables(*at, "http_checks")
    return found


def _ports(file: Tracked) -> list[str]:
    """The ports fly routes to and [env] PORT: what a process command may have written in."""
    services = [table for _, table in file.tables("services")]
    found = [file.peek("http_service", "internal_port"), file.peek("env", _PORT)]
    ports = [str(p) for p in [*found, *(s.get("internal_port") for s in services)]]
    return [p for p in ports if p.isdigit()]  # an odd type is left to the leftovers


def _bucket_roles(apps: list[_App]) -> dict[str, tuple[str, str | None]]:
    """Each ``[env]`` variable that names a bucket, with its role and storage provider.

    The role comes from the variable's name (``R2_AUDIO_BUCKET`` → audio), else from the
    buckets it names (``R2_BUCKET = "audio-staging"`` → audio), else it is ``main``; the
    provider from the name too (``R2_`` → r2), when it says.
    """
    values: dict[str, set[str]] = {}
    for app in apps:
        env = app.file.peek("env")
        for name, value in env.items() if isinstance(env, dict) else []:
            if "BUCKET" in name.split("_") and isinstance(value, str):
                values.setdefault(name, set()).add(_role_of(value, app))
    out: dict[str, tuple[str, str | None]] = {}
    for name, guesses in values.items():
        words = [w for w in name.split("_") if w]
        provider = next((_STORAGE[w] for w in words if w in _STORAGE), None)
        rest = [w.lower() for w in words if w not in _STORAGE and w not in ("BUCKET", "NAME")]
        role = "_".join(rest) or (guesses.pop() if len(guesses) == 1 else "")
        out[name] = (role if _valid("slug", role) else "main", provider)
    return out


def _role_of(bucket: str, app: _App) -> str:
    """``audio-staging`` in staging → ``audio``: the bucket's name less its environment's."""
    environment = {app.environment, app.role, *(w for w, r in _ROLES.items() if r == app.role)}
    return "-".join(w for w in re.split(r"[-_.]", bucket) if w and w not in environment)
