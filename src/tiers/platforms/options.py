"""The keys each platform takes in a binding of tiers.toml, beside the common ones.

A binding says how one service runs in one environment. Every platform understands the
common keys (``platform``, ``branch``, ``url``, ``platform_url``, ``api_url``,
``frontend_url``, ``env``, ``secrets``, ``cost``); the rest belong to the platform, which
declares them as a pydantic model in its ``options`` class attribute (see
``tiers.platforms.base``)::

    [environments.staging.backend]
    platform = "fly"
    url = "https://api-stg.plyr.fm"        # common
    app = "relay-api-staging"              # fly's own: Fly.app
    region = "iad"

tiers ships the schemas of the platforms the seed runs on, so that tiers.toml can
describe them before their drivers are installed: a driver registered under one of
these names declares that schema as its ``options``. Any other registered platform
declares its own. This module imports nothing but pydantic: loading tiers.toml stays
fast and never imports a platform's driver for the names below.

>>> schema("fly") is Fly, schema("local") is None
(True, True)
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

__all__ = [
    "SCHEMAS",
    "CloudflarePages",
    "Fly",
    "Kubernetes",
    "Machine",
    "Memory",
    "Options",
    "Vm",
    "installed",
    "known",
    "schema",
]


class Options(BaseModel):
    """A platform's keys: strict, unknown keys refused, frozen like the rest of the model."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _memory(value: str) -> str:
    if not re.fullmatch(r"[1-9][0-9]*(mb|gb)", value.lower()):
        raise ValueError(f"{value!r} is not a memory size; write it like 256mb or 1gb")
    return value.lower()


def _count(value: int) -> int:
    if value < 1:
        raise ValueError(f"{value} VMs cannot run a process group; give 1 or more")
    return value


def _label(what: str, longest: int) -> AfterValidator:
    """Lower-case letters, digits and '-', as app, project and Kubernetes names are."""

    def check(value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", value) or len(value) > longest:
            raise ValueError(
                f"{value!r} is not a {what}: use at most {longest} lower-case letters, "
                "digits and '-', starting and ending with a letter or digit"
            )
        return value

    return AfterValidator(check)


Memory = Annotated[str, AfterValidator(_memory)]
Count = Annotated[int, AfterValidator(_count)]


class Machine(Options):
    """The VM a process group runs on."""

    size: str | None = None
    """The platform's name for it (fly.io: ``shared-cpu-1x``, ``performance-2x``)."""
    memory: Memory | None = None
    """Megabytes or gigabytes: ``256mb``, ``1gb``."""
    count: Count | None = None
    """How many of them run."""


class Vm(Machine):
    """The VM of every process group of a service, and of some groups their own.

    ``vm = { size = "shared-cpu-1x", memory = "256mb" }`` sizes every process group.
    ``processes`` gives a group its own VM; the keys it leaves out are the ones above::

        [environments.production.backend.vm]
        size = "shared-cpu-1x"
        memory = "256mb"
        processes = { worker = { size = "shared-cpu-2x", memory = "1gb" } }

    >>> vm = Vm(size="shared-cpu-1x", memory="256mb", processes={"worker": Machine(memory="1gb")})
    >>> vm.of("worker")
    Machine(size='shared-cpu-1x', memory='1gb', count=None)
    """

    processes: dict[str, Machine] = {}
    """By process group (a key of the service's ``processes``): its own VM."""

    def of(self, process: str) -> Machine:
        """The VM ``process`` runs on: its own keys, else those for every group."""
        every = self.model_dump(exclude={"processes"}, exclude_none=True)
        own = self.processes.get(process)
        return Machine(**(every | (own.model_dump(exclude_none=True) if own else {})))


def _region(value: str) -> str:
    if not re.fullmatch(r"[a-z]{3}", value):
        raise ValueError(f"{value!r} is not a fly.io region; regions are codes like iad or ams")
    return value


class Fly(Options):
    """fly.io: the app whose Machines run the service, where, and on which VMs."""

    app: Annotated[str, _label("fly.io app name", 63)] | None = None
    region: Annotated[str, AfterValidator(_region)] | None = None
    """The primary region, as fly.io names it (``iad``, ``ams``)."""
    vm: Vm | None = None
    """The VM of each process group (``vm.of("worker")``)."""


class CloudflarePages(Options):
    """Cloudflare Pages: the project that serves the frontend (a git-connected project
    builds the binding's common ``branch``)."""

    project: Annotated[str, _label("Pages project name", 58)] | None = None


def _replicas(value: int) -> int:
    if value < 1:
        raise ValueError(f"{value} replicas serve nothing; give 1 or more")
    return value


class Kubernetes(Options):
    """Kubernetes: the Deployment that runs the service, in which cluster and namespace,
    and how many pods."""

    context: str | None = None
    """The kubeconfig context (the cluster and user) it deploys with; the current one
    when unset."""
    namespace: Annotated[str, _label("Kubernetes namespace", 63)] | None = None
    deployment: Annotated[str, _label("Kubernetes Deployment name", 63)] | None = None
    replicas: Annotated[int, AfterValidator(_replicas)] | None = None
    """How many pods the Deployment runs."""


SCHEMAS: dict[str, type[BaseModel] | None] = {
    "local": None,
    "fly": Fly,
    "cloudflare-pages": CloudflarePages,
    "kubernetes": Kubernetes,
}
"""The platforms tiers knows the keys of without importing their drivers; the local
platform takes none of its own."""


def installed() -> dict[str, str]:
    """The registered platforms (``tiers.platforms`` entry points): name → ``module:Class``."""
    from tiers.platforms.base import available

    return available()


def known() -> list[str]:
    """Every name a binding may use: the schemas above and every registered platform."""
    return list(dict.fromkeys([*SCHEMAS, *sorted(installed())]))


def schema(name: str) -> type[BaseModel] | None:
    """The options model of platform ``name`` (None: it takes no keys of its own).

    A registered platform with no schema here is imported to read its ``options``.
    """
    if name in SCHEMAS:
        return SCHEMAS[name]
    from tiers.errors import UsageError
    from tiers.platforms.base import load_platform

    try:
        driver = load_platform(name)
    except (ImportError, AttributeError) as exc:
        where = installed().get(name, "")
        raise UsageError(f"platform {name!r} ({where}) cannot be imported: {exc}") from None
    declared: type[BaseModel] | None = getattr(driver, "options", None)
    return declared
