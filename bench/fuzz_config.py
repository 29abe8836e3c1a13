"""Fuzz the tiers.toml reader: mutated example configs through `check`, `docs`, `ls --json`.

Run: .venv/bin/python bench/fuzz_config.py [--seed N] [--count N] [--timeout S] [--keep DIR]

Each case is an example tiers.toml (``tiers init`` and ``--example plyr``) with a few
mutations: bytes flipped, lines deleted, duplicated, swapped or truncated, values
swapped across types or made odd (nan, inf, huge numbers, ``:100:``, broken URLs),
values copied between tiers, deep nesting, odd unicode, duplicate tables, chains of
``${}`` references, errors pushed past line 100.
A case fails when a command exits other than 0, 1 or 2, crashes (a traceback), runs
past the timeout, writes anything, or exits 2 without ``file:line:column`` pointing
into the file. The summary counts cases by exit code and prints each failure with its
reproducer (``--seed`` and ``--case``, and the file with ``--keep``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import tomllib
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COMMANDS = (("check",), ("docs",), ("ls", "--json"))

KNOWN: dict[str, str] = {}
"""Faults known and not fixed yet, by name → a pattern of the fault's text; a fault that
matches one is counted apart instead of failing the run. Empty: every fault fails."""


@dataclass
class Case:
    """One mutated config: ``number`` on ``seed``, and what was done to which example."""

    seed: int
    number: int
    example: str
    mutations: list[str]
    data: bytes


@dataclass
class Outcome:
    command: tuple[str, ...]
    code: int | None
    stdout: str
    stderr: str
    crash: str = ""


@dataclass
class Summary:
    cases: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[Case, str]] = field(default_factory=list)
    known: Counter[str] = field(default_factory=Counter)


# --- generating cases ----------------------------------------------------------------


def cases(seed: int, count: int, first: int = 0) -> Iterator[Case]:
    from tiers.config.templates import text

    examples = {"default": text(), "plyr": text("plyr")}
    paths = {name: _paths(tomllib.loads(body)) for name, body in examples.items()}
    for number in range(first, first + count):
        rng = random.Random(f"{seed}:{number}")
        example = rng.choice(sorted(examples))
        lines = examples[example].splitlines(keepends=True)
        done: list[str] = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            name, mutation = rng.choice(MUTATIONS)
            lines = mutation(rng, lines, paths[example]) or ["\n"]
            done.append(name)
        data = "".join(lines).encode("utf-8", "surrogatepass")
        if rng.random() < 0.1:
            data = _flip_bytes(rng, data)
            done.append("flip bytes")
        yield Case(seed, number, example, done, data)


def _paths(data: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else key
            out += [path, *_paths(value, path)]
    return out


def _value(rng: random.Random, paths: list[str]) -> str:
    depth = rng.choice((3, 31, 32, 33, 400))
    pool = [
        '"x"',
        '""',
        "0",
        "-1",
        "3.5",
        "1e400",
        "-1e400",
        "1" + "0" * rng.choice((20, 4300, 4301)),
        "0x" + "f" * 40,
        "nan",
        "inf",
        "-inf",
        "true",
        "false",
        "1979-05-27",
        "1979-05-27T07:32:00Z",
        "07:32:00",
        "2024-13-45",
        "[]",
        '[1, "a", true]',
        "{}",
        "{ a = 1 }",
        '{ url = "postgresql://[" }',
        '"postgresql://["',
        '"redis://h:99999"',
        '"https://x:100:1/"',
        '":100:"',
        '":x:"',
        '"\\u202eevil"',
        '"\\u0000"',
        '"日本語 ﷽ 🎉 é"',
        '"a\\qb"',
        "'''multi\nline'''",
        '"""\nopen',
        '"unterminated',
        "[" * depth + "]" * depth,
        "{a=" * depth + "1" + "}" * depth,
        f'"${{{rng.choice(paths)}}}"',
        f'"x-${{{rng.choice(paths)}}}-y"',
        '"${nope.nothing}"',
        '"${ bad path }"',
        '"$${literal}"',
        '"${environments}"',
    ]
    return rng.choice(pool)


_PAIR = re.compile(r"^(\s*[A-Za-z0-9_.\"'-]+\s*=\s*)(.*)$", re.DOTALL)


def _pairs(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if _PAIR.match(line)] or [0]


def _swap_value(rng: random.Random, lines: list[str], paths: list[str]) -> list[str]:
    i = rng.choice(_pairs(lines))
    match = _PAIR.match(lines[i])
    head = match.group(1) if match else "x = "
    return [*lines[:i], f"{head}{_value(rng, paths)}\n", *lines[i + 1 :]]


def _copy_value(rng: random.Random, lines: list[str], paths: list[str]) -> list[str]:
    """A value written for one tier given to another key of the same name (shared things)."""
    by_key: dict[str, list[int]] = {}
    for i in _pairs(lines):
        match = _PAIR.match(lines[i])
        if match:
            by_key.setdefault(match.group(1).strip(" =\t"), []).append(i)
    twins = [found for found in by_key.values() if len(found) > 1] or [[0, 0]]
    i, j = rng.sample(rng.choice(twins), 2)
    source, target = _PAIR.match(lines[i]), _PAIR.match(lines[j])
    if source is None or target is None:
        return lines
    return [*lines[:j], target.group(1) + source.group(2), *lines[j + 1 :]]


_SCALAR = re.compile(r'"[^"\n]*"|(?<![\w.-])\d+(\.\d+)?(?![\w.-])|\btrue\b|\bfalse\b')
_ODD_NUMBERS = ["nan", "inf", "-inf", "-5", "1e400", "1e308", "10000000000000000000000", "0"]
_ODD_STRINGS = [
    '""',
    '":100:"',
    '"x:1234:y"',
    '"postgresql://["',
    '"redis://[::1"',
    '"https://ünïcode.example/"',
    '"\\u202e"',
    '"🎉"',
    '"${project.name}"',
    '"$${x}"',
    '"*"',
    '"/"',
    '"' + "x" * 300 + '"',
]


def _twist_value(rng: random.Random, lines: list[str], paths: list[str]) -> list[str]:
    """One number, string or boolean (also inside a list or inline table) made odd."""
    found = [(i, m) for i, line in enumerate(lines) for m in _SCALAR.finditer(line)]
    if not found:
        return lines
    i, match = rng.choice(found)
    pool = _ODD_STRINGS if match.group().startswith('"') else [*_ODD_NUMBERS, "true"]
    line = lines[i][: match.start()] + rng.choice(pool) + lines[i][match.end() :]
    return [*lines[:i], line, *lines[i + 1 :]]


def _delete_line(rng: random.Random, lines: list[str], paths: list[str]) -> list[str]:
    i = rng.randrange(len(lines))
    return lines[:i] + lines[i + 1 :]


def _duplicate_line(rng: random.Random, lines: list[str], paths: list[str]) -> list[str]:
    i = rng.randrange(len(lines))
    j = rng.randrange(len(lines) + 1)
    return [*lines[:j], lines[i], *lines[j:]]


def _duplicate_table(rng: random.Random, lines: list[str], paths: list[str]) -> list[str]:
    headers = [i for i, line in enumerate(lines) if line.startswith("[")] or [0]
    i = rng.choice(headers)
    return [*lines, "\n", lines[i], lines[min(i + 1, len(lines) - 1)]]


def _swap_lines(rng: random.Random, lines: list[str], paths: list[str]) -> list[str]:
    out = list(lines)
    i, j = rng.randrange(len(out)), rng.randrange(len(out))
    out[i], out[j] = out[j], out[i]
    return out


def _insert_pair(rng: random.Random, lines: list[str], paths: list[str]) -> list[str]:
    key = rng.choice(["x", "name", "url", "a.b.c", '":100:"', '"é"', "x" + ".a" * 491, paths[-1]])
    j = rng.randrange(len(lines) + 1)
    return [*lines[:j], f"{key} = {_value(rng, paths)}\n", *lines[j:]]


def _reference_chain(rng: random.Random, lines: list[str], paths: list[str]) -> list[str]:
    length = rng.choice((2, 40, 330))
    chain = [f'a{i} = "${{chain.a{i + 1}}}"\n' for i in range(length)]
    end = rng.choice(['"x"', "{ b = 1 }", f'"${{chain.a{rng.randrange(length)}}}"'])
    target = rng.choice(_pairs(lines))
    match = _PAIR.match(lines[target])
    head = match.group(1) if match else "x = "
    lines = [*lines[:target], f'{head}"${{chain.a0}}"\n', *lines[target + 1 :]]
    return [*lines, "\n[chain]\n", *chain, f"a{length} = {end}\n"]


def _truncate(rng: random.Random, lines: list[str], paths: list[str]) -> list[str]:
    text = "".join(lines)
    return [text[: rng.randrange(len(text) + 1)]]


def _odd_unicode(rng: random.Random, lines: list[str], paths: list[str]) -> list[str]:
    text = "".join(lines)
    i = rng.randrange(len(text) + 1)
    odd = rng.choice(["\u202e", "\u200b", "\ufeff", "é", "🎉", "\x00", "\x7f", "\r", "\t"])
    return [text[:i] + odd + text[i:]]


def _many_lines(rng: random.Random, lines: list[str], paths: list[str]) -> list[str]:
    """Enough lines that errors land on line 100 and beyond."""
    return ["# padding\n"] * rng.choice((95, 1230)) + lines


MUTATIONS: list[tuple[str, Callable[[random.Random, list[str], list[str]], list[str]]]] = [
    ("swap a value", _swap_value),
    ("swap a value", _swap_value),
    ("swap a value", _swap_value),
    ("twist a value", _twist_value),
    ("twist a value", _twist_value),
    ("twist a value", _twist_value),
    ("twist a value", _twist_value),
    ("copy a value", _copy_value),
    ("copy a value", _copy_value),
    ("copy a value", _copy_value),
    ("delete a line", _delete_line),
    ("duplicate a line", _duplicate_line),
    ("duplicate a table", _duplicate_table),
    ("swap two lines", _swap_lines),
    ("insert a key", _insert_pair),
    ("chain references", _reference_chain),
    ("truncate", _truncate),
    ("odd unicode", _odd_unicode),
    ("move down past line 100", _many_lines),
]


def _flip_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 3))):
        if out:
            out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


# --- running commands ----------------------------------------------------------------


class _Hung(BaseException):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hung


def run(args: tuple[str, ...], cwd: Path, timeout: float) -> Outcome:
    """Run ``tiers ARGS`` in this process, as ``python -m tiers`` would, with a timeout."""
    from tiers.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    code: int | None = 0
    crash = ""
    old_argv, old_cwd = sys.argv, Path.cwd()
    try:
        os.chdir(cwd)
        sys.argv = ["tiers", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except _Hung:
        code, crash = None, f"no answer within {timeout:g} s"
    except Exception as exc:
        code, crash = None, _crash(exc)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sys.argv = old_argv
        os.chdir(old_cwd)
    return Outcome(args, code, out.getvalue(), err.getvalue(), crash)


def run_process(args: tuple[str, ...], cwd: Path, timeout: float) -> Outcome:
    """The same through a real ``python -m tiers`` child process."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tiers", *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Outcome(args, None, "", "", f"no answer within {timeout:g} s")
    crash = done.stderr.strip().splitlines()[-1] if "Traceback" in done.stderr else ""
    return Outcome(args, done.returncode, done.stdout, done.stderr, crash)


def _crash(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/tiers/" in f.filename] or frames
    where = f"{ours[-1].filename.rsplit('/tiers/', 1)[-1]}:{ours[-1].lineno}" if ours else "?"
    return f"{type(exc).__name__}: {str(exc)[:200]} (at {where})"


def check_case(
    case: Case, directory: Path, timeout: float, runner: Callable[..., Outcome] = run
) -> tuple[list[Outcome], list[str]]:
    """Run every command on ``case`` in ``directory``; the outcomes and the broken promises."""
    path = directory / "tiers.toml"
    path.write_bytes(case.data)
    before = _listing(directory)
    outcomes: list[Outcome] = []
    faults: list[str] = []
    for args in COMMANDS:
        outcome = runner((*args, "-c", "tiers.toml"), directory, timeout)
        outcomes.append(outcome)
        faults += [f"{' '.join(args)}: {fault}" for fault in faults_of(outcome, case.data)]
        after = _listing(directory)
        if after != before:
            faults.append(f"{' '.join(args)}: wrote {sorted(set(after) ^ set(before))}")
            before = after
    return outcomes, faults


def _listing(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.lstat().st_mtime_ns, p.lstat().st_size)
        for p in directory.rglob("*")
    }


# What tomllib, pydantic, Python and the codecs say, where tiers should speak for itself.
_RAW = re.compile(
    r"Cannot (declare|overwrite|mutate|redefine)|Duplicate inline|Illegal character|"
    r"Invalid (statement|value|hex)|Unclosed|Unterminated string|Expected ['\"=n]|"
    r"\[Errno|codec can't|Input should be|Value error,|instance of|object has no attribute"
)
_LOCATED = re.compile(r"^error: tiers\.toml:(\d+):(\d+) ")


def faults_of(outcome: Outcome, data: bytes) -> list[str]:
    if outcome.crash:
        return [f"crash: {outcome.crash}"]
    faults = []
    if outcome.code not in (0, 1, 2):
        faults.append(f"exit {outcome.code}")
    if "Traceback" in outcome.stdout + outcome.stderr:
        faults.append("printed a traceback")
    for line in outcome.stderr.splitlines():
        if _RAW.search(line):
            faults.append(f"library text, not tiers': {line[:200]}")
    if outcome.code == 2:
        lines = _text_lines(data)
        for line in outcome.stderr.splitlines():
            found = _LOCATED.match(line)
            if found is None:
                faults.append(f"exit 2 without file:line:column: {line[:200]}")
            elif not _inside(lines, int(found.group(1)), int(found.group(2))):
                faults.append(f"exit 2 with a location outside the file: {line[:200]}")
    return faults


def _text_lines(data: bytes) -> list[str]:
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _inside(lines: list[str], line: int, column: int) -> bool:
    return 1 <= line <= len(lines) and 1 <= column <= len(lines[line - 1]) + 1


def known_issue(fault: str) -> str | None:
    return next((name for name, pattern in KNOWN.items() if re.search(pattern, fault)), None)


def fuzz(
    seed: int, count: int, timeout: float, keep: Path | None = None, first: int = 0
) -> Summary:
    summary = Summary()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update({"NO_COLOR": "1", "TIERS_HOME": str(Path(tmp) / "home")})
        for name in [n for n in os.environ if n.startswith("TIERS_") and n != "TIERS_HOME"]:
            del os.environ[name]
        for case in cases(seed, count, first):
            directory = Path(tmp) / f"case-{case.number}"
            directory.mkdir()
            outcomes, faults = check_case(case, directory, timeout)
            summary.cases += 1
            summary.codes.update(str(o.code) for o in outcomes)
            for fault in faults:
                known = known_issue(fault)
                if known:
                    summary.known[known] += 1
                else:
                    summary.failures.append((case, fault))
            if faults and keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"case-{seed}-{case.number}.toml").write_bytes(case.data)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--case", type=int, default=None, help="run only this case number")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per command")
    parser.add_argument("--keep", type=Path, default=None, help="save failing files here")
    options = parser.parse_args(argv)
    first, count = (options.case, 1) if options.case is not None else (0, options.count)
    summary = fuzz(options.seed, count, options.timeout, options.keep, first)
    runs = ", ".join(f"exit {code}: {n}" for code, n in sorted(summary.codes.items()))
    print(f"{summary.cases} cases, {sum(summary.codes.values())} runs ({runs})")
    for name, n in summary.known.items():
        print(f"known issue, fixed elsewhere: {name} ({n} runs)")
    for case, fault in summary.failures:
        print(f"FAIL --seed {case.seed} --case {case.number} ({case.example}: ", end="")
        print(f"{', '.join(case.mutations)}): {fault}")
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
