"""fly.toml's ``[[vm]]`` tables as tiers' ``vm``: the VM of every process group, and of some
groups their own.

fly picks one [[vm]] per process group: the last one that names the group, else the first
that names none (flyctl's ``ComputeForGroup``), so a [[vm]] may size no group at all.
tiers writes the second kind as ``vm`` and the first as ``vm.processes.GROUP``. Where fly
would give a group its own defaults and tiers the keys of every group, the difference is
listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tiers.importers.reader import KeyPath, Tracked


@dataclass
class Vms:
    """tiers' vm for one fly.toml, where it came from and what did not map."""

    vm: dict[str, Any] = field(default_factory=dict)
    """``size`` and ``memory`` of every group, and ``processes``: each group's own."""
    sources: list[str] = field(default_factory=list)
    """The [[vm]] tables it came from: ``[[vm]] #1``."""
    unmapped: list[str] = field(default_factory=list)


def read_vms(file: Tracked, groups: Sequence[str], valid: Callable[[str], bool]) -> Vms:
    """The [[vm]] tables of ``file`` for the process groups ``groups`` of its service.

    ``valid`` says whether a memory size is one tiers.toml accepts (``256mb``).
    """
    out = Vms()
    known = list(groups) or ["app"]  # without [processes], fly runs one group: app
    tables = [at for at, _ in file.tables("vm")]
    named = {at: _groups(file, at) for at in tables}
    owner = {group: at for at in tables for group in named[at]}  # the last one wins
    own: dict[str, dict[str, str]] = {}
    for at in tables:
        label = file.label(at)
        mine = [group for group in named[at] if owner[group] == at and group in known]
        for group in sorted(set(named[at]) - set(mine)):
            why = "a later [[vm]] names it" if group in known else "no such process group"
            out.unmapped.append(f'{file.name} {label} processes "{group}" ({why})')
        if named[at]:  # a [[vm]] for the groups it names
            machine = _machine(file, at, valid) if mine else {}
            if machine:
                file.take(*at, "processes")
                own |= dict.fromkeys(mine, machine)
        elif not out.vm and set(known) - set(owner):  # the first for every other group
            machine = _machine(file, at, valid)
            out.vm |= machine
        else:
            continue  # fly uses it for no group: its keys are listed as not mapped
        if machine:
            out.sources.append(label)
    if not groups:
        out.vm = own.pop("app", out.vm)  # the one group is the whole service
    out.unmapped += _differences(file, out.vm, own, owner)
    if own:
        out.vm["processes"] = own
    return out


def _groups(file: Tracked, at: KeyPath) -> list[str]:
    names = file.get(*at, "processes", expect=list) or []
    for index, _ in enumerate(names):
        file.get(*at, "processes", index, expect=str)
    if not names:
        file.take(*at, "processes")  # processes = [] says what no processes says
    return list(names)


def _machine(file: Tracked, at: KeyPath, valid: Callable[[str], bool]) -> dict[str, str]:
    """One [[vm]]: size (or cpu_kind and cpus) and memory (or memory_mb)."""
    out: dict[str, str] = {}
    size = file.get(*at, "size", expect=str)
    cpus = file.get(*at, "cpus", expect=int)
    kind = file.get(*at, "cpu_kind", expect=str) or "shared"
    if size is not None:
        out["size"] = file.take(*at, "size")
    elif cpus is not None and kind in ("shared", "performance"):
        file.take(*at, "cpu_kind")
        file.take(*at, "cpus")
        out["size"] = f"shared-cpu-{cpus}x" if kind == "shared" else f"performance-{cpus}x"
    for key, expect in (("memory", (str, int)), ("memory_mb", int)):
        value = file.get(*at, key, expect=expect)
        memory = f"{value}mb" if str(value).isdigit() else str(value).lower()
        if value is not None and "memory" not in out and valid(memory):
            file.take(*at, key)
            out["memory"] = memory
    return out


def _differences(
    file: Tracked, every: dict[str, str], own: dict[str, dict[str, str]], owner: dict[str, KeyPath]
) -> list[str]:
    """Where a group's [[vm]] leaves out a key the one for every group sets: fly gives the
    group its default, tiers.toml the value of every group."""
    found: dict[tuple[KeyPath, str], list[str]] = {}
    for group, machine in own.items():
        for key in [k for k in every if k not in machine]:
            found.setdefault((owner[group], key), []).append(group)
    return [
        f"{file.name} {file.label(at)} sets no {key} (fly: its default; tiers.toml: "
        f'{key} = "{every[key]}" for {", ".join(groups)}, as for every group)'
        for (at, key), groups in found.items()
    ]
