"""The typed model of tiers.toml.

Two axes, kept apart: ``services`` say what the code is (paths in the repository, build,
process groups, release command, health path); ``environments`` say where and how each
service runs (trigger, platform binding, URLs, resources, access). Environments are
ordered: the order in the file is the promotion path, development first.

Every model forbids unknown keys, so a misspelt key is an error, never silently ignored.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Container
from typing import Annotated, Any, Literal, TypeVar, overload
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveFloat,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from tiers.config.providers import provider
from tiers.platforms.options import SCHEMAS, Vm, known, schema

LOGIN_METHODS = ("github", "otp", "google", "oidc")
SELECTOR_KINDS = (
    "everyone",
    "email",
    "email-domain",
    "github-org",
    "github-team",
    "github-user",
    "oidc-group",
    "login",
)
FACTS = (
    "database_url",
    "redis_url",
    "frontend_url",
    "api_url",
    "namespace",
    "oauth_client_id",
    "oauth_redirect_uri",
    "observability_environment",
)
"""Facts of an environment that a service reads from an environment variable; also
``bucket_ROLE``, the location of the bucket with that role."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _slug(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", value):
        raise ValueError(
            "use lower-case letters, digits, '-' and '_', starting with a letter or digit"
        )
    return value


def _env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):
        raise ValueError(f"{value!r} is not an environment variable name (like DATABASE_URL)")
    return value


def _age_recipient(value: str) -> str:
    # bech32: "age1" and 58 characters of its alphabet (no 1, b, i, o)
    if not re.fullmatch(r"age1[02-9ac-hj-np-z]{58}", value):
        raise ValueError(
            f"{value!r} is not an age public key (age1…, as `tiers secrets init` prints)"
        )
    return value


def _url(value: str) -> str:
    """Validate and normalise: lower-case scheme and host, no default port, no bare ``/``."""
    parts = _parse_url(value, "https://api.example.com")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{redact(value)!r} is not an http(s) URL (like https://api.example.com)")
    port = parts.port
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}[scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port in (None, default) else f"{host}:{port}"
    path = "" if parts.path == "/" else parts.path
    return urlunsplit((scheme, netloc, path, parts.query, parts.fragment))


def _parse_url(value: str, example: str) -> SplitResult:
    """Split a connection URL; one that cannot be parsed (a bad IPv6 host, a port that is
    not a number) is an error naming it, with the shape it should have."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a port that is not a number in range)
    except ValueError as exc:
        raise ValueError(f"{redact(value)!r} is not a valid URL ({exc}); like {example}") from None
    if any(c.isspace() for c in value):
        raise ValueError(f"{redact(value)!r} contains white space")
    return parts


def redact(url: str) -> str:
    """``redis://user:pw@host:6379`` → ``redis://user:***@host:6379``: safe to print."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # unparsable: hide whatever stands between user: and @
        return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be a path starting with '/' (like /health)")
    return value


def _platform(value: str) -> str:
    if value in SCHEMAS:  # known without looking for installed packages: the common case
        return value
    names = known()
    if value not in names:
        close = difflib.get_close_matches(value, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown platform {value!r}; {hint}known: {', '.join(names)}")
    return value


def _fact(value: str) -> str:
    if value in FACTS or re.fullmatch(r"bucket_[a-z0-9][a-z0-9_-]*", value):
        return value
    close = difflib.get_close_matches(value, FACTS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown fact {value!r}; {hint}known: {', '.join(FACTS)}, bucket_ROLE")


Slug = Annotated[str, AfterValidator(_slug)]
Fact = Annotated[str, AfterValidator(_fact)]
EnvName = Annotated[str, AfterValidator(_env_name)]
AgeRecipient = Annotated[str, AfterValidator(_age_recipient)]
Url = Annotated[str, AfterValidator(_url)]
UrlPath = Annotated[str, AfterValidator(_path)]
Platform = Annotated[str, AfterValidator(_platform)]
DatabaseProvider = Annotated[str, AfterValidator(provider("database"))]
RedisProvider = Annotated[str, AfterValidator(provider("redis"))]
StorageProvider = Annotated[str, AfterValidator(provider("storage"))]
ObservabilityProvider = Annotated[str, AfterValidator(provider("observability"))]


T = TypeVar("T")


def host_of(url: str) -> str:
    """``https://api-stg.plyr.fm/x`` → ``api-stg.plyr.fm``; ports are kept (localhost:8001)."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1].lower()


def origin_of(url: str) -> str:
    """``https://api.plyr.fm/v1`` → ``https://api.plyr.fm``: what CORS and cookies compare."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{host_of(url)}"


# -- money ---------------------------------------------------------------------------------


MAX_COST = 1_000_000_000
_COST = 'a cost is a number of US dollars a month, a range [low, high] or { usd = N, note = ".." }'


def _cost(value: Any) -> Any:
    usd = value.get("usd") if isinstance(value, dict) else value
    if (isinstance(usd, list) and len(usd) != 2) or isinstance(usd, str | bool):
        raise ValueError(_COST)
    if isinstance(value, int | float):
        return {"usd": value}
    if isinstance(value, list):
        return {"usd": tuple(value)}
    if isinstance(value, dict) and isinstance(usd, list):
        return {**value, "usd": tuple(usd)}
    return value


class Cost(Model):
    """A monthly cost in US dollars: ``10``, a range ``[0, 5]`` or ``{ usd = 10, note = ".." }``."""

    usd: float | tuple[float, float]
    note: str | None = None
    label: str | None = None

    @field_validator("usd")
    @classmethod
    def _range(cls, value: float | tuple[float, float]) -> float | tuple[float, float]:
        low, high = value if isinstance(value, tuple) else (value, value)
        if low < 0 or high < low:
            raise ValueError("a cost is not negative, and a range [low, high] has low ≤ high")
        if high > MAX_COST:
            raise ValueError(f"a cost is at most {MAX_COST:,} US dollars a month")
        return value

    @property
    def low(self) -> float:
        return self.usd[0] if isinstance(self.usd, tuple) else self.usd

    @property
    def high(self) -> float:
        return self.usd[1] if isinstance(self.usd, tuple) else self.usd


CostValue = Annotated[Cost, BeforeValidator(_cost)]
CostField = Annotated[Cost | None, BeforeValidator(_cost)]


# -- project and services ------------------------------------------------------------------


_STRFTIME = {
    "%Y": r"\d{4}", "%y": r"\d{2}", "%m": r"\d{2}", "%d": r"\d{2}", "%H": r"\d{2}",
    "%M": r"\d{2}", "%S": r"\d{2}", "%j": r"\d{3}", "%%": "%",
}  # fmt: skip


class Release(Model):
    """How production releases are cut: from which branch, and how versions are named."""

    branch: str = "main"
    version: str = "%Y.%m%d.%H%M%S"
    """strftime pattern applied to the UTC time of the release (the seed's YYYY.MMDD.HHMMSS)."""
    tag_prefix: str = ""
    remote: str = "origin"

    def is_release(self, tag: str) -> bool:
        """Whether ``tag`` names a release: the prefix, then the version pattern's shape."""
        if not tag.startswith(self.tag_prefix):
            return False
        shape = "".join(
            _STRFTIME.get(part, ".+?") if part.startswith("%") else re.escape(part)
            for part in re.split(r"(%.)", self.version)
            if part
        )
        return re.fullmatch(shape, tag.removeprefix(self.tag_prefix)) is not None

    @field_validator("version")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if "%" not in value:
            raise ValueError("the version scheme is a strftime pattern, like %Y.%m%d.%H%M%S")
        return value


class Project(Model):
    name: Slug
    domain: str | None = None
    """Registrable domain (eTLD+1) that cookie authentication is scoped to."""
    repository: str | None = None
    release: Release = Release()


class Service(Model):
    """What a piece of code is, independent of where it runs."""

    kind: Literal["api", "frontend", "worker"] = "api"
    description: str | None = None
    paths: list[str] = []
    """Globs of the files that belong to this service: a change there deploys it."""
    migrations: list[str] = []
    """Globs of migration files: changes there are announced before a deploy."""
    framework: str | None = None
    build: str | None = None
    lock: str | None = None
    """A lock file (relative to ``root``): while its content is unchanged, the environment
    ``build`` installs into (a virtualenv) is reused across releases."""
    output: str | None = None
    release_command: str | None = None
    downgrade_command: str | None = None
    """Undoes migrations down to ``$TIERS_MIGRATION_TARGET`` (``tiers rollback --db downgrade``)."""
    health: UrlPath | None = None
    health_timeout: PositiveFloat = 60.0
    """Seconds a new version has to answer its health path before the deploy gives up."""
    drain_timeout: PositiveFloat = 10.0
    """Seconds the old version has to finish its requests after the switch."""
    docs: UrlPath | None = None
    processes: dict[Slug, str] = {}
    dev: dict[Slug, str] = {}
    """Process groups in a local tier, in place of ``processes`` (with reload, a dev server)."""
    optional: bool = False
    """Not started by default in development (``tiers dev --with NAME`` starts it)."""
    vars: dict[Fact, EnvName] = {}
    """Which environment variable carries which fact of the environment to the code."""
    root: str = "."
    """The directory, relative to tiers.toml, its commands run in."""


# -- environments --------------------------------------------------------------------------


class Trigger(Model):
    """What deploys an environment.

    ``"local"``, ``"manual"``, ``{ push = "main" }`` or ``{ release = "github" }``.
    """

    kind: Literal["local", "push", "release", "manual"]
    branch: str | None = None
    source: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value in ("local", "manual"):
            return {"kind": value}
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "push" and isinstance(arg, str):
                return {"kind": "push", "branch": arg}
            if key == "release" and isinstance(arg, str):
                return {"kind": "release", "source": arg}
        message = 'a trigger is "local", "manual", { push = "BRANCH" } or { release = "github" }'
        if isinstance(value, str):
            close = difflib.get_close_matches(value, ["local", "manual"], n=1)
            message = f"did you mean {close[0]!r}? " + message if close else message
        raise ValueError(message)

    @property
    def rank(self) -> int:
        """Place on the promotion path: local, then push, then release (manual: anywhere)."""
        return {"local": 0, "push": 1, "manual": 2, "release": 2}[self.kind]

    def describe(self) -> str:
        if self.kind == "push":
            return f"push to {self.branch}"
        if self.kind == "release":
            return f"{self.source} release" if self.source not in (None, "tag") else "release"
        return self.kind


def _vm_processes(config: Config) -> None:
    """A binding's ``vm.processes`` names process groups its service declares."""
    errors: list[InitErrorDetails] = []
    for env in config.environments.values():
        for service, binding in env.services.items():
            declared = list(
                config.services[service].processes if service in config.services else []
            )
            vm = binding.option("vm", Vm)
            for name in vm.processes if vm else {}:
                if name in declared:
                    continue
                close = difflib.get_close_matches(name, declared, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                known = f"known: {', '.join(declared)}" if declared else "it declares none"
                message = (
                    f"no process group {name!r} in services.{service}.processes; {hint}{known}"
                )
                loc = ("environments", env.name, "services", service, "vm", "processes", name)
                error = PydanticCustomError("unknown_process", message)
                errors.append(InitErrorDetails(type=error, loc=loc, input=name))
    if errors:
        # raised with the location of each key, which a ValueError here would not carry
        raise ValidationError.from_exception_data("Config", errors)


class Binding(Model):
    """How one service runs in one environment: the keys every platform understands, and
    the platform's own (``app``, ``project``, ``vm``, ...), validated by its options model
    (``tiers.platforms.options``) and read with :meth:`option`.

    >>> Binding(platform="fly", app="relay-api").option("app")
    'relay-api'
    """

    platform: Platform
    branch: str | None = None
    """The git branch that follows what this tier runs: ``tiers release`` moves it to each
    release, and a git-connected platform (a Cloudflare Pages project) builds from it."""
    url: Url | None = None
    """Where users reach it: the custom domain."""
    platform_url: Url | None = None
    """The platform's own address (``*.fly.dev``, ``*.pages.dev``)."""
    api_url: Url | None = None
    """For a frontend: the backend it calls (PUBLIC_API_URL)."""
    frontend_url: Url | None = None
    """For a backend: the frontend it allows by CORS (FRONTEND_URL)."""
    env: dict[EnvName, str] = {}
    """Plain configuration that is not a secret."""
    secrets: list[EnvName] | None = None
    """Names of the secrets this service needs here (values live in the secrets store);
    ``[]`` says it needs none."""
    cost: CostField = None
    options: SerializeAsAny[BaseModel] | None = None
    """The platform's own keys; in the file they sit beside the common ones."""

    @model_validator(mode="before")
    @classmethod
    def _gather(cls, value: Any) -> Any:
        """Gather the keys that are not common ones for the platform's options model."""
        if not isinstance(value, dict):
            return value
        common = {k: v for k, v in value.items() if k in COMMON_KEYS}
        return {**common, "options": {k: v for k, v in value.items() if k not in common}}

    @field_validator("options", mode="plain")
    @classmethod
    def _platform_keys(cls, value: Any, info: ValidationInfo) -> BaseModel | None:
        if "platform" not in info.data:  # missing or unknown: reported on its own
            _no_platform(value)
            return None
        options = schema(info.data["platform"])
        if options is not None:
            # its errors are located under the binding, like those of the common keys
            return options.model_validate(value)
        _refuse(value)
        return None

    @model_serializer(mode="wrap")
    def _flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """As written in the file: the platform's keys beside the common ones."""
        data: dict[str, Any] = handler(self)
        options = data.pop("options", None) or {}
        return {**data, **options}

    @overload
    def option(self, key: str) -> Any: ...
    @overload
    def option(self, key: str, kind: type[T]) -> T | None: ...
    def option(self, key: str, kind: type[Any] = object) -> Any:
        """The platform's own ``key`` (``app``, ``region``, ``vm``), or None when the
        binding does not set it, its platform takes no such key or it is not a ``kind``."""
        if self.options is None or key not in type(self.options).model_fields:
            return None
        value = getattr(self.options, key)
        return value if isinstance(value, kind) else None

    @property
    def resource(self) -> str | None:
        """The platform's name for what runs the service: a Pages project, a fly.io app,
        a Kubernetes Deployment."""
        found = (self.option(key, str) for key in ("project", "app", "deployment"))
        return next((name for name in found if name), None)

    @property
    def host(self) -> str | None:
        """The custom-domain host, if there is one."""
        return host_of(self.url) if self.url else None

    @property
    def address(self) -> str | None:
        """Where users reach it: the custom domain, else the platform's own address."""
        return self.url or self.platform_url


COMMON_KEYS = tuple(name for name in Binding.model_fields if name != "options")
"""The keys of a binding every platform understands."""


def _no_platform(value: dict[str, Any]) -> None:
    """Without a platform to validate them, the keys no platform takes are still refused."""
    somewhere = {key for options in SCHEMAS.values() if options for key in options.model_fields}
    _refuse({k: v for k, v in value.items() if k not in somewhere})


def _refuse(keys: dict[str, Any]) -> None:
    if keys:
        errors = [
            InitErrorDetails(type="extra_forbidden", loc=(key,), input=given)
            for key, given in keys.items()
        ]
        raise ValidationError.from_exception_data("Binding", errors)


class Database(Model):
    provider: DatabaseProvider
    name: str
    engine: Literal["postgresql", "sqlite"] = "postgresql"
    url: str | None = None
    """A connection string that is not a secret (a local cluster, a SQLite file)."""
    url_secret: EnvName | None = None
    """Else: the secret that holds the connection string."""
    cost: CostField = None

    @field_validator("url")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_url(value, "postgresql://USER@HOST:5432/NAME or sqlite:///PATH")
        return value

    @model_validator(mode="after")
    def _has_url(self) -> Database:
        if self.url is None and self.url_secret is None:
            raise ValueError("say where the connection string comes from: url or url_secret")
        return self


class Redis(Model):
    provider: RedisProvider
    name: str | None = None
    url: str | None = None
    url_secret: EnvName | None = None
    tls: bool | None = None
    """Whether connections use TLS; taken from the URL scheme (rediss://) when a URL is given."""
    cost: CostField = None

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = _parse_url(value, "redis://HOST:6379")
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                f"{redact(value)!r} is not a Redis URL (redis://, rediss:// or unix://)"
            )
        user, at, host = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{user}{at}{host.lower()}"))

    @model_validator(mode="after")
    def _has_url(self) -> Redis:
        if self.url is None and self.url_secret is None:
            raise ValueError("say where the Redis URL comes from: url or url_secret")
        if self.url and self.tls is not None and self.tls != self.url.startswith("rediss://"):
            scheme = "rediss://" if self.tls else "redis://"
            raise ValueError(f"tls = {str(self.tls).lower()} but the URL does not use {scheme}")
        return self

    @property
    def uses_tls(self) -> bool:
        if self.url is not None:
            return self.url.startswith("rediss://")
        return bool(self.tls)

    @property
    def host(self) -> str | None:
        return urlsplit(self.url).hostname if self.url else None

    @property
    def display(self) -> str:
        return self.name or host_of(self.url or "")


class Storage(Model):
    provider: StorageProvider
    buckets: dict[Slug, str]
    """Bucket name by role: ``{ audio = "audio-staging", images = "images-staging" }``."""
    credentials: list[EnvName] = []
    cost: CostField = None


class OAuth(Model):
    client_id: Url
    redirect_uri: Url


class Observability(Model):
    provider: ObservabilityProvider
    environment: str
    token_secret: EnvName | None = None


def _selector(value: str) -> str:
    kind, _, arg = value.partition(":")
    if kind not in SELECTOR_KINDS or (kind == "everyone") != (arg == ""):
        raise ValueError(
            f"{value!r} is not an identity selector; use email:ADDRESS, email-domain:DOMAIN, "
            "github-user:NAME, github-org:ORG, github-team:ORG/TEAM, oidc-group:GROUP, "
            "everyone or login:METHOD"
        )
    if kind == "github-team" and not re.fullmatch(r"[^/\s]+/[^/\s]+", arg):
        raise ValueError(
            f"{value!r}: a team is github-team:ORG/TEAM-SLUG, like github-team:plyr/core"
        )
    if kind == "login" and arg not in LOGIN_METHODS:
        raise ValueError(f"unknown login method {arg!r}; known: {', '.join(LOGIN_METHODS)}")
    return value


def _pattern(value: str) -> str:
    _, slash, _ = value.partition("/")
    if not slash or any(c.isspace() for c in value):
        raise ValueError(
            f"{value!r} is not HOST/PATH or /PATH (like api-stg.plyr.fm/health, /docs or x.dev/*)"
        )
    host, _, path = value.partition("/")
    return f"{host.lower()}/{path}"


Selector = Annotated[str, AfterValidator(_selector)]
Pattern = Annotated[str, AfterValidator(_pattern)]


class Smtp(Model):
    """Where the gate sends one-time PINs (``access.smtp``)."""

    host: str
    port: int = Field(default=587, gt=0, lt=65536)
    sender: str
    """The From address of the PIN mails."""
    username: str | None = None
    password_secret: EnvName | None = None
    """The secret (in this environment's store) holding the SMTP password."""
    tls: Literal["starttls", "tls", "none"] = "starttls"


class GitHubLogin(Model):
    """The GitHub OAuth app the gate signs people in with (``access.github``)."""

    client_id: str
    client_secret: EnvName = "GATE_GITHUB_CLIENT_SECRET"
    """The secret (in this environment's store) holding the OAuth app's client secret."""
    url: str = "https://github.com"
    """Where the authorize and token endpoints live (GitHub Enterprise, or a test server)."""
    api_url: str = "https://api.github.com"


class OidcLogin(Model):
    """A generic OpenID Connect provider (``access.oidc``)."""

    issuer: str
    """The issuer URL; its ``/.well-known/openid-configuration`` says the rest."""
    client_id: str
    client_secret: EnvName = "GATE_OIDC_CLIENT_SECRET"
    groups_claim: str = "groups"


class Access(Model):
    """Who may reach an environment, Cloudflare Access style.

    Precedence: the most specific path pattern wins (an exact path beats ``/prefix/*``,
    which beats the whole application); between equally specific patterns, bypass rules
    are listed first and the first one written wins.
    """

    protect: bool = False
    provider: Literal["tiers", "cloudflare"] = "tiers"
    login: list[Literal[LOGIN_METHODS]] = []  # type: ignore[valid-type]
    allow: list[Selector] = []
    """Who may enter: any one of these identities (an Allow policy with include rules)."""
    bypass: list[Pattern] = []
    """HOST/PATH patterns anyone may reach without signing in (``/*`` suffix for a prefix)."""
    session_hours: int = Field(default=24, gt=0, le=24 * 31)
    smtp: Smtp | None = None
    """Where one-time PINs are sent; without it, the local platform's mailbox."""
    github: GitHubLogin | None = None
    oidc: OidcLogin | None = None
    preflight: Literal["origin", "deny"] = "origin"
    """CORS preflights (OPTIONS without credentials): passed to the app, or refused."""


class Environment(Model):
    name: str
    description: str | None = None
    trigger: Trigger
    services: dict[str, Binding] = {}
    database: Database | None = None
    redis: Redis | None = None
    storage: Storage | None = None
    namespace: str | None = None
    oauth: OAuth | None = None
    cookie_auth: bool = False
    """The app authenticates with cookies, so its frontend and backend must share a site."""
    cookie_name: str | None = None
    """The session cookie's name; tiers on one site need names of their own."""
    observability: Observability | None = None
    access: Access = Access()
    shared_readers: list[AgeRecipient] | None = None
    """Set, no recipient of another tier's secrets file may read this tier's but these
    age public keys (say, the one person who deploys both); ``[]``: none may. Unset,
    tiers.toml says nothing of who reads the tier. Checked by secret-readable-by-other-tier."""

    @property
    def local(self) -> bool:
        return self.trigger.kind == "local"

    def unguarded(self, enforcing: Container[str]) -> list[str]:
        """The services users can reach whose platform is not among ``enforcing`` (those
        that run tiers' gate, ``tiers.platforms.base.enforcing()``): with provider
        ``tiers``, nothing stands in front of them."""
        if not (self.access.protect and self.access.provider == "tiers"):
            return []
        return [s for s, b in self.services.items() if b.address and b.platform not in enforcing]

    def open_gate(self, enforcing: Container[str]) -> str | None:
        """Said wherever the environment is brought up or deployed when its declared
        protection is not applied by tiers' gate on every service (``enforcing``: the
        platforms that run it): a warning when nothing applies it, a note when Cloudflare
        Access does."""
        if not self.access.protect:
            return None
        if self.access.provider == "cloudflare":
            return (
                f"note: {self.name}'s access rules are enforced by Cloudflare Access, not by "
                f"tiers, once the rules `tiers access export cloudflare {self.name}` writes "
                "are applied there"
            )
        if not (open_ := self.unguarded(enforcing)):
            return None
        shown = ", ".join(f"{s} (on {self.services[s].platform})" for s in open_)
        return (
            f"warning: {self.name} declares access.protect, but tiers' gate does not stand "
            f"in front of {shown}: only a platform that runs the gate enforces it, so "
            "these answer anyone who can reach them (see `tiers check`, access-not-enforced)"
        )

    @property
    def hosts(self) -> list[str]:
        """The hosts users reach this environment's services on."""
        return [host_of(b.address) for b in self.services.values() if b.address]


class Checks(Model):
    ignore: list[str] = []
    """Rule ids `tiers check` skips for this project (see `tiers check --list-rules`)."""


class Config(Model):
    """The whole of tiers.toml."""

    project: Project
    services: dict[Slug, Service] = {}
    environments: dict[Slug, Environment]
    costs: dict[str, CostValue] = {}
    """Monthly costs shared by every environment (a plan, an account)."""
    checks: Checks = Checks()

    @field_validator("environments")
    @classmethod
    def _some(cls, value: dict[str, Environment]) -> dict[str, Environment]:
        if not value:
            raise ValueError("declare at least one environment, like [environments.staging]")
        return value

    @model_validator(mode="after")
    def _processes(self) -> Config:
        _vm_processes(self)
        return self

    @property
    def order(self) -> list[str]:
        return list(self.environments)

    def environment(self, name: str) -> Environment:
        return self.environments[name]
