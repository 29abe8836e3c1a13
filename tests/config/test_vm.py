"""A binding's vm: one VM for every process group, and a group's own in vm.processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiers
from tiers.config import load
from tiers.errors import ConfigError
from tiers.platforms.options import Vm

BASE = """[project]
name = "x"

[services.backend]
processes = { app = "serve", worker = "work" }

[environments.production]
trigger = "manual"

[environments.production.backend]
platform = "fly"
"""


def config(vm: str) -> Path:
    path = Path("tiers.toml")
    path.write_text(BASE + vm + "\n")
    return path


def test_a_group_takes_its_own_keys_and_the_rest_from_every_group() -> None:
    path = config(
        'vm = { size = "shared-cpu-1x", memory = "256MB", count = 2, '
        'processes = { worker = { memory = "1gb", count = 1 } } }'
    )
    vm = load(path).config.environments["production"].services["backend"].option("vm", Vm)
    assert vm is not None
    assert [(m.size, m.memory, m.count) for m in (vm.of("app"), vm.of("worker"))] == [
        ("shared-cpu-1x", "256mb", 2),
        ("shared-cpu-1x", "1gb", 1),
    ]


@pytest.mark.parametrize(
    ("vm", "message"),
    [
        (
            'vm = { processes = { wroker = { memory = "1gb" } } }',
            "tiers.toml:12:22 environments.production.backend.vm.processes.wroker: "
            "no process group 'wroker' in services.backend.processes; did you mean 'worker'? "
            "known: app, worker",
        ),
        (
            'vm = { memory = "1 GB" }',
            "tiers.toml:12:8 environments.production.backend.vm.memory: "
            "'1 GB' is not a memory size; write it like 256mb or 1gb",
        ),
        (
            "vm = { processes = { worker = { count = 0 } } }",
            "tiers.toml:12:33 environments.production.backend.vm.processes.worker.count: "
            "0 VMs cannot run a process group; give 1 or more",
        ),
        (
            'vm = { processes = { worker = { processes = { app = { size = "x" } } } } }',
            "tiers.toml:12:33 environments.production.backend.vm.processes.worker.processes: "
            "unknown key 'processes'; allowed here: size, memory, count",
        ),
        (
            "vm = { size = 2 }",
            "tiers.toml:12:8 environments.production.backend.vm.size: "
            "expected a string (in quotes), not a number",
        ),
    ],
)
def test_a_wrong_vm_is_one_located_error(vm: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(config(vm))
    assert str(caught.value) == message


def test_a_service_without_processes_has_no_groups_to_size() -> None:
    path = config('vm = { processes = { app = { memory = "1gb" } } }')
    path.write_text(path.read_text().replace('processes = { app = "serve", worker = "work" }', ""))
    result = tiers("check")
    assert result.returncode == 2
    assert result.stderr == (
        "error: tiers.toml:12:22 environments.production.backend.vm.processes.app: "
        "no process group 'app' in services.backend.processes; it declares none\n"
    )
