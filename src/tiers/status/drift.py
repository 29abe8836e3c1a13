"""Drift between two environments, from what each last deployed successfully.

Each side is an environment's newest succeeded deployment of any kind (a rollback
counts: it is what serves), read from the state store with the manifest the pipeline
recorded, plus what this machine's local platform says is live, where it knows. The
comparison covers:

- commits: the commits A has that B lacks (``git log B..A``) and those B has that A
  lacks, when the repository knows both; otherwise why not, never an error;
- migration heads, as recorded when each deployment ended;
- services deployed by only one of the two;
- configuration: the bindings of the services both deploy and the resources
  (database, redis, storage, namespace), flattened to dotted keys such as
  ``backend.url``, ``backend.env.FEATURE_X``, ``backend.secrets.NEW_TOKEN`` or
  ``storage.buckets.audio``. Many values differ between tiers by design (urls, database
  names, buckets): they are all listed, but a key that only one side has (a new
  variable or secret not yet carried to the next tier) is listed first, apart.

``Drift.drifted`` is what ``tiers diff --exit-code`` exits 1 on: different commits,
migration heads or services, a key only one side has, or a side never deployed. Values
that differ on a key both have do not count: tiers differ there on purpose. Nor does a
binding key that names the tier's own place (its app, project, tracked branch or URLs),
which one tier may set and another not: it is listed with the values that differ.

>>> drift = diff(config, Path("."), store, "staging", "production")   # doctest: +SKIP
>>> [c.subject for c in drift.commits.a_only]
['Add plays to tracks', 'Count plays']
>>> behind(config, Path("."), store)["production"].commits
2
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from tiers.config import Config
from tiers.errors import TiersError, UsageError
from tiers.git import Commit, Repo
from tiers.state import Deployment, StateStore

__all__ = [
    "Behind",
    "Commits",
    "Drift",
    "KeyDiff",
    "Side",
    "behind",
    "behind_line",
    "check_environments",
    "diff",
    "render",
]

SHOWN_COMMITS = 20  # subjects listed per direction in the text rendering
_RESOURCES = ("database", "redis", "storage")
# Binding keys each tier sets for itself: they differ, or exist on one side only, by design.
_DESIGNED = frozenset(
    {"app", "project", "context", "namespace", "deployment", "branch"}
    | {"url", "platform_url", "api_url", "frontend_url"}
)

Section = Literal["binding", "resource"]


# -- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Live:
    """What serves one service of an environment on this machine now."""

    version: str
    commit: str

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "commit": self.commit}


@dataclass(frozen=True)
class Side:
    """One environment of the comparison: its last successful deployment, and what is live.

    ``live`` is None when this machine's record of it cannot be read, ``{}`` when it has
    no live instance here (never started here, or deployed to another platform).
    """

    environment: str
    deployment: Deployment | None
    live: dict[str, Live] | None = None

    @property
    def commit(self) -> str | None:
        if self.deployment is None:
            return None
        return self.deployment.commit or _str(self.deployment.manifest.get("commit"))

    @property
    def version(self) -> str | None:
        return self.deployment.version if self.deployment else None

    @property
    def migration_head(self) -> str | None:
        if self.deployment is None:
            return None
        recorded = self.deployment.migration_after
        return recorded or _str(self.deployment.manifest.get("migration_after"))

    @property
    def services(self) -> list[str]:
        """The services the deployment shipped, from its manifest."""
        if self.deployment is None:
            return []
        manifest = self.deployment.manifest
        listed = manifest.get("services")
        if isinstance(listed, list):
            return [str(s) for s in listed]
        bindings = manifest.get("bindings")
        return list(bindings) if isinstance(bindings, dict) else []

    def to_json(self) -> dict[str, Any]:
        d = self.deployment
        deployment = None
        if d is not None:
            deployment = {
                "id": d.id,
                "kind": d.kind,
                "version": d.version,
                "commit": self.commit,
                "finished_at": _iso(d.finished_at),
                "migration_head": self.migration_head,
                "config_sha256": d.manifest.get("config_sha256"),
            }
        live = None if self.live is None else {s: i.to_json() for s, i in self.live.items()}
        return {"environment": self.environment, "deployment": deployment, "live": live}


@dataclass(frozen=True)
class Commits:
    """The two commits, and what each has that the other lacks (None when unknown)."""

    a: str | None
    b: str | None
    a_only: list[Commit] | None  # git log b..a
    b_only: list[Commit] | None  # git log a..b
    unknown: str | None = None  # why the lists are None

    @property
    def same(self) -> bool:
        return self.a is not None and self.a == self.b

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "same": self.same,
            "a_only": _commits_json(self.a_only),
            "b_only": _commits_json(self.b_only),
            "unknown": self.unknown,
        }


@dataclass(frozen=True)
class KeyDiff:
    """One configuration key whose value differs, or that only one side has.

    ``a``/``b`` are None where the side lacks the key (``only_in`` then names the other
    side); ``listed`` marks a member of a list (a secret or credential name), whose
    value is just ``True``: present.
    """

    key: str
    section: Section
    a: Any
    b: Any
    only_in: str | None = None
    listed: bool = False

    @property
    def designed(self) -> bool:
        """A key that differs between tiers by design (a binding's app, branch, URLs)."""
        return self.section == "binding" and self.key.partition(".")[2] in _DESIGNED

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "section": self.section,
            "a": self.a,
            "b": self.b,
            "only_in": self.only_in,
            "listed": self.listed,
            "designed": self.designed,
        }


@dataclass(frozen=True)
class Drift:
    """Environments ``a`` and ``b`` compared; the parts are None when a side never deployed."""

    a: Side
    b: Side
    commits: Commits | None = None
    config_same: bool | None = None  # the tiers.toml sha256 both deploys recorded
    a_only_services: list[str] = field(default_factory=list)
    b_only_services: list[str] = field(default_factory=list)
    both_services: list[str] = field(default_factory=list)
    configuration: list[KeyDiff] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        """The environments with no successful deployment yet."""
        return [s.environment for s in (self.a, self.b) if s.deployment is None]

    @property
    def migrations_same(self) -> bool | None:
        if self.missing:
            return None
        return self.a.migration_head == self.b.migration_head

    @property
    def drifted(self) -> bool:
        """Different code, schema, services or configuration keys (not mere values)."""
        if self.missing:
            return True
        return bool(
            (self.commits is not None and not self.commits.same)
            or not self.migrations_same
            or self.a_only_services
            or self.b_only_services
            or any(k.only_in and not k.designed for k in self.configuration)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "missing": self.missing,
            "drifted": self.drifted,
            "commits": self.commits.to_json() if self.commits else None,
            "migrations": None
            if self.missing
            else {
                "a": self.a.migration_head,
                "b": self.b.migration_head,
                "same": self.migrations_same,
            },
            "services": None
            if self.missing
            else {
                "a_only": self.a_only_services,
                "b_only": self.b_only_services,
                "both": self.both_services,
            },
            "configuration": None
            if self.missing
            else {
                "config_sha256_same": self.config_same,
                "keys": [k.to_json() for k in self.configuration],
            },
        }


@dataclass(frozen=True)
class Behind:
    """How far an environment trails the one before it on the promotion path.

    ``commits`` counts what ``previous`` serves that this one lacks, ``ahead`` the
    reverse (a hotfix shipped straight here); both None when unknown, with ``reason``.
    ``previous`` is None for the first environment of the path.
    """

    environment: str
    previous: str | None
    commits: int | None = None
    ahead: int | None = None
    migrations_differ: bool | None = None
    heads: tuple[str | None, str | None] = (None, None)  # (this one's, previous's)
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "previous": self.previous,
            "commits": self.commits,
            "ahead": self.ahead,
            "migrations_differ": self.migrations_differ,
            "migration_head": self.heads[0],
            "previous_migration_head": self.heads[1],
            "reason": self.reason,
        }


# -- comparing ----------------------------------------------------------------------------


def check_environments(config: Config, *names: str) -> None:
    """Raise :class:`UsageError` naming the known environments if a name is not one."""
    for name in names:
        if name not in config.environments:
            known = ", ".join(config.environments)
            raise UsageError(f"no environment {name!r}; known: {known}")


def diff(config: Config, project_dir: Path, store: StateStore, a: str, b: str) -> Drift:
    """Compare what environments ``a`` and ``b`` last deployed successfully."""
    check_environments(config, a, b)
    live = _live_reader(config, project_dir)
    side_a = Side(a, store.last(a, "succeeded"), live(a))
    side_b = Side(b, store.last(b, "succeeded"), live(b))
    if side_a.deployment is None or side_b.deployment is None:
        return Drift(side_a, side_b)
    repo, why = _repo(project_dir)
    commits = _commits(repo, why, side_a, side_b)
    ma, mb = side_a.deployment.manifest, side_b.deployment.manifest
    sha_a, sha_b = ma.get("config_sha256"), mb.get("config_sha256")
    services_a, services_b = side_a.services, side_b.services
    both = [s for s in services_a if s in services_b]
    return Drift(
        side_a,
        side_b,
        commits=commits,
        config_same=None if sha_a is None or sha_b is None else sha_a == sha_b,
        a_only_services=[s for s in services_a if s not in services_b],
        b_only_services=[s for s in services_b if s not in services_a],
        both_services=both,
        configuration=_configuration(side_a, side_b, both),
    )


def behind(config: Config, project_dir: Path, store: StateStore) -> dict[str, Behind]:
    """Each environment of the promotion path against the one before it.

    The path is ``config.environments`` in order, without those triggered ``local``.
    """
    path = [n for n, e in config.environments.items() if e.trigger.kind != "local"]
    last = {name: store.last(name, "succeeded") for name in path}
    repo, why = _repo(project_dir)
    out: dict[str, Behind] = {}
    previous: str | None = None
    for name in path:
        out[name] = _behind(name, previous, last, repo, why)
        previous = name
    return out


def _behind(
    name: str,
    previous: str | None,
    last: Mapping[str, Deployment | None],
    repo: Repo | None,
    why: str | None,
) -> Behind:
    if previous is None:
        return Behind(name, None)
    here, there = Side(name, last[name]), Side(previous, last[previous])
    if here.deployment is None or there.deployment is None:
        never = " and ".join(s.environment for s in (here, there) if s.deployment is None)
        return Behind(name, previous, reason=f"{never} not deployed yet")
    heads = (here.migration_head, there.migration_head)
    migrations = heads[0] != heads[1]
    found = _commits(repo, why, there, here)
    if found.a_only is None or found.b_only is None:
        return Behind(name, previous, None, None, migrations, heads, found.unknown)
    return Behind(name, previous, len(found.a_only), len(found.b_only), migrations, heads)


def _repo(project_dir: Path) -> tuple[Repo | None, str | None]:
    try:
        return Repo.find(project_dir), None
    except TiersError:
        return None, f"{project_dir.resolve()} is not in a git repository"


def _commits(repo: Repo | None, why: str | None, a: Side, b: Side) -> Commits:
    ca, cb = a.commit, b.commit
    if ca is not None and ca == cb:
        return Commits(ca, cb, [], [])
    for side, commit in ((a, ca), (b, cb)):
        if commit is None:
            return Commits(ca, cb, None, None, f"{side.environment}'s deployment has no commit")
    assert ca is not None and cb is not None
    if repo is None:
        return Commits(ca, cb, None, None, why)
    for side, commit in ((a, ca), (b, cb)):
        try:
            repo.resolve(commit)
        except TiersError:
            return Commits(
                ca,
                cb,
                None,
                None,
                f"{side.environment}'s commit {commit[:12]} is unknown to this repository",
            )
    try:
        return Commits(ca, cb, repo.log(cb, ca), repo.log(ca, cb))
    except TiersError as exc:
        return Commits(ca, cb, None, None, str(exc).splitlines()[0])


def _live_reader(config: Config, project_dir: Path) -> Any:
    """A function: environment → what serves it on this machine (None if unreadable)."""
    from tiers.platforms.base import Platforms

    platforms = Platforms(config, project_dir)

    def live(environment: str) -> dict[str, Live] | None:
        try:
            found = platforms.live(config.environments[environment])
        except (TiersError, OSError, ValueError, TypeError, KeyError):
            return None
        return {s: Live(i.version, i.commit) for s, i in found.items()}

    return live


def _configuration(a: Side, b: Side, services: list[str]) -> list[KeyDiff]:
    assert a.deployment is not None and b.deployment is not None
    ma, mb = a.deployment.manifest, b.deployment.manifest
    found: list[KeyDiff] = []
    bindings_a, bindings_b = ma.get("bindings") or {}, mb.get("bindings") or {}
    for service in services:
        found += _keys(
            "binding",
            dict(_flatten(bindings_a.get(service) or {}, service)),
            dict(_flatten(bindings_b.get(service) or {}, service)),
            a.environment,
            b.environment,
        )
    found += _keys(
        "resource",
        dict(_flatten(_resources(ma))),
        dict(_flatten(_resources(mb))),
        a.environment,
        b.environment,
    )
    # What only one side has first: it is what a promotion may be missing.
    return sorted(found, key=lambda k: (k.only_in is None, k.section, k.key))


def _resources(manifest: Mapping[str, Any]) -> dict[str, Any]:
    resources = manifest.get("resources") or {}
    out = {name: resources[name] for name in _RESOURCES if name in resources}
    if manifest.get("namespace") is not None:
        out["namespace"] = manifest["namespace"]
    return out


_LISTED = object()  # the value of a list member's key: present


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted keys and leaf values; a list of names gives one key per name."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and all(isinstance(i, str | int) for i in value):
        for item in value:
            yield f"{prefix}.{item}", _LISTED
    else:
        yield prefix, value


def _keys(
    section: Section, a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str
) -> list[KeyDiff]:
    out = []
    for key in sorted(a.keys() | b.keys()):
        in_a, in_b = key in a, key in b
        va, vb = a.get(key), b.get(key)
        if in_a and in_b and va == vb:
            continue
        listed = _LISTED in (va, vb)
        only = name_a if not in_b else name_b if not in_a else None
        out.append(KeyDiff(key, section, _shown(va, in_a), _shown(vb, in_b), only, listed))
    return out


def _shown(value: Any, present: bool) -> Any:
    if not present:
        return None
    return True if value is _LISTED else value


# -- text ---------------------------------------------------------------------------------


def render(drift: Drift) -> str:
    """The comparison as a person reads it: who serves what, then each part's drift."""
    a, b = drift.a, drift.b
    width = max(len(a.environment), len(b.environment)) + 1
    lines = [f"{a.environment} → {b.environment}"]
    for side in (a, b):
        lines.append(f"  {side.environment + ':':<{width}} {_deployed(side)}")
        lines.append(f"  {'':<{width}} {_live(side)}")
    if drift.missing:
        lines += [f"{name} has no successful deployment yet" for name in drift.missing]
        return "\n".join(lines)
    lines += _commit_lines(drift)
    lines.append(_migration_line(drift))
    lines.append(_services_line(drift))
    lines += _configuration_lines(drift)
    return "\n".join(lines)


def _deployed(side: Side) -> str:
    d = side.deployment
    if d is None:
        return "no successful deployment yet"
    commit = (side.commit or "no commit")[:12]
    when = f"{d.finished_at:%Y-%m-%d %H:%M} UTC" if d.finished_at else "unfinished"
    return f"{d.version} ({commit}), {d.kind} #{d.id} by {d.actor}, {when}"


def _live(side: Side) -> str:
    if side.live is None:
        return "live: unknown (this machine's record of it cannot be read)"
    if not side.live:
        return "live: no live instance on this machine"
    parts = []
    for service, instance in side.live.items():
        note = ""
        if side.commit is not None and instance.commit and instance.commit != side.commit:
            note = ", not the recorded deployment"
        parts.append(f"{service} {instance.version} ({instance.commit[:12]}{note})")
    return "live: " + "; ".join(parts)


def _commit_lines(drift: Drift) -> list[str]:
    found, a, b = drift.commits, drift.a.environment, drift.b.environment
    assert found is not None
    if found.same:
        return [f"commits: same commit ({(found.a or '')[:12]})"]
    if found.a_only is None or found.b_only is None:
        return [f"commits: differ; cannot compare them: {found.unknown}"]
    lines = []
    for have, lack, commits in ((a, b, found.a_only), (b, a, found.b_only)):
        if not commits:
            continue  # "production has 0 commits staging lacks" says nothing
        lines.append(f"commits: {have} has {_count(len(commits))} {lack} lacks")
        for commit in commits[:SHOWN_COMMITS]:
            lines.append(f"  {commit.short} {commit.subject} ({commit.author})")
        if len(commits) > SHOWN_COMMITS:
            lines.append(f"  ... and {len(commits) - SHOWN_COMMITS} more")
    return lines


def _migration_line(drift: Drift) -> str:
    head_a, head_b = drift.a.migration_head, drift.b.migration_head
    if drift.migrations_same:
        return f"migrations: same head ({head_a or 'none'})"
    return (
        f"migrations: differ: {drift.a.environment} at {head_a or 'none'}, "
        f"{drift.b.environment} at {head_b or 'none'}"
    )


def _services_line(drift: Drift) -> str:
    parts = []
    if drift.both_services:
        parts.append(f"both deploy {', '.join(drift.both_services)}")
    for side, only in ((drift.a, drift.a_only_services), (drift.b, drift.b_only_services)):
        if only:
            parts.append(f"only {side.environment} deploys {', '.join(only)}")
    return "services: " + ("; ".join(parts) or "none recorded")


def _configuration_lines(drift: Drift) -> list[str]:
    a, b = drift.a.environment, drift.b.environment
    same = {True: "same tiers.toml", False: "tiers.toml differed", None: "tiers.toml unknown"}
    keys = drift.configuration
    if not keys:
        return [f"configuration: no difference ({same[drift.config_same]})"]
    lines = [f"configuration: {same[drift.config_same]} between the two deployments"]
    for name in (a, b):
        only = [k for k in keys if k.only_in == name and not k.designed]
        if only:
            lines.append(f"  only in {name}:")
            for k in only:
                value = k.a if name == a else k.b
                lines.append(f"    {k.key}" if k.listed else f"    {k.key} = {_value(value)}")
    values = [k for k in keys if k.only_in is None or k.designed]
    if values:
        lines.append(f"  values that differ ({a} | {b}; expected between tiers):")
        for k in values:
            lines.append(f"    {k.key}: {_value(k.a)} | {_value(k.b)}")
    return lines


def behind_line(found: Behind) -> str | None:
    """One line for ``tiers status``: ``2 commits behind staging; migrations differ ...``.

    None for the first environment of the path, which trails nothing.
    """
    if found.previous is None:
        return None
    if found.commits is None:
        what = f"against {found.previous}: {found.reason}"
    elif found.commits == 0 and not found.ahead:
        what = f"up to date with {found.previous}"
    else:
        what = f"{_count(found.commits)} behind {found.previous}"
        if found.ahead:
            what += f", {_count(found.ahead)} ahead"
    if found.migrations_differ:
        here, there = (h or "none" for h in found.heads)
        what += f"; migrations differ ({here} here, {there} in {found.previous})"
    return what


def _count(n: int) -> str:
    return f"{n} commit" if n == 1 else f"{n} commits"


def _value(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value, ensure_ascii=False)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="microseconds") if moment else None


def _commits_json(commits: list[Commit] | None) -> list[dict[str, Any]] | None:
    if commits is None:
        return None
    return [
        {
            "sha": c.sha,
            "short": c.short,
            "subject": c.subject,
            "author": c.author,
            "when": c.when.isoformat(),
        }
        for c in commits
    ]
