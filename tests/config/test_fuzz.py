"""Mutated configs never crash, hang or write: bench/fuzz_config.py on a fixed seed.

Each case runs `check`, `docs` and `ls --json` in this process (as `python -m tiers`
would); a few run again in a child process to show the two agree. A case passes when
every command exits 0, 1 or 2 without a traceback, within the timeout, writes nothing,
and every exit-2 message names tiers.toml:line:column inside the file. A fault listed in
``fuzz_config.KNOWN`` would be let through; that list is empty, so every fault fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import fuzz_config

SEED = 20261201
COUNT = 240
TIMEOUT = 60.0  # seconds per command: only a hang gets near it


def case_faults(number: int, directory: Path, runner: object = fuzz_config.run) -> list[str]:
    case = next(fuzz_config.cases(SEED, 1, number))
    directory.mkdir()
    return fuzz_config.check_case(case, directory, TIMEOUT, runner)[1]  # type: ignore[arg-type]


@pytest.mark.parametrize("number", range(COUNT))
def test_a_mutated_config_never_crashes_hangs_or_writes(number: int, tmp_path: Path) -> None:
    faults = case_faults(number, tmp_path / "case")
    unknown = [fault for fault in faults if fuzz_config.known_issue(fault) is None]
    reproduce = f"bench/fuzz_config.py --seed {SEED} --case {number} --keep ."
    assert unknown == [], reproduce


@pytest.mark.parametrize("number", [0, 1, 19])  # check exits 1, then 2, then 0
def test_a_child_process_sees_the_same(number: int, tmp_path: Path) -> None:
    case = next(fuzz_config.cases(SEED, 1, number))
    seen = []
    for name, runner in (("here", fuzz_config.run), ("child", fuzz_config.run_process)):
        directory = tmp_path / name
        directory.mkdir()
        outcomes, _ = fuzz_config.check_case(case, directory, TIMEOUT, runner)
        seen.append([(o.command, o.code, o.stdout, o.stderr, o.crash) for o in outcomes])
    assert seen[0] == seen[1]


def test_the_cases_make_every_kind_of_mutation() -> None:
    made = {name for case in fuzz_config.cases(SEED, COUNT) for name in case.mutations}
    assert made == {name for name, _ in fuzz_config.MUTATIONS} | {"flip bytes"}


@pytest.mark.parametrize(
    ("outcome", "fault"),
    [
        (fuzz_config.Outcome(("check",), None, "", "", "KeyError: 'x'"), "crash: KeyError: 'x'"),
        (fuzz_config.Outcome(("check",), 3, "", ""), "exit 3"),
        (
            fuzz_config.Outcome(("docs",), 1, "", "Traceback (most recent call last):\n"),
            "printed a traceback",
        ),
        (
            fuzz_config.Outcome(("check",), 2, "", "error: tiers.toml: bad\n"),
            "exit 2 without file:line:column: error: tiers.toml: bad",
        ),
        (
            fuzz_config.Outcome(("check",), 2, "", "error: tiers.toml:3:1 x: bad\n"),
            "exit 2 with a location outside the file: error: tiers.toml:3:1 x: bad",
        ),
        (
            fuzz_config.Outcome(("check",), 2, "", "error: tiers.toml:1:1 Cannot declare\n"),
            "library text, not tiers': error: tiers.toml:1:1 Cannot declare",
        ),
    ],
)
def test_each_broken_promise_is_a_fault(outcome: fuzz_config.Outcome, fault: str) -> None:
    assert fuzz_config.faults_of(outcome, b"a = 1\n") == [fault]


def test_a_command_that_writes_is_a_fault(tmp_path: Path) -> None:
    def writes(args: tuple[str, ...], cwd: Path, timeout: float) -> fuzz_config.Outcome:
        (cwd / "environments.md").write_text("")
        return fuzz_config.Outcome(args, 0, "", "")

    case = fuzz_config.Case(SEED, 0, "default", [], b"a = 1\n")
    faults = fuzz_config.check_case(case, tmp_path, TIMEOUT, writes)[1]
    assert faults[0] == "check: wrote ['environments.md']"
