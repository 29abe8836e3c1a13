"""Whatever file `-c` names, tiers reads it or says in one located line why not (exit 2)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
from bench.fuzz_config import run

from tests.conftest import tiers
from tiers.config.refs import resolve
from tiers.config.source import read

# Lines 1-5; what a test adds starts on line 6, inside [environments.dev].
HEAD = '[project]\nname = "x"\n\n[environments.dev]\ntrigger = "local"\n'


def user_sees(path: Path | str, command: str = "check") -> str:
    """stderr of `tiers COMMAND -c PATH`, which must exit 2 with nothing on stdout."""
    outcome = run((command, "-c", str(path)), Path.cwd(), timeout=60)
    assert (outcome.code, outcome.stdout, outcome.crash) == (2, "", "")
    return outcome.stderr


def written(text: str | bytes) -> Path:
    path = Path("tiers.toml")
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    ("added", "expected"),
    [
        (
            "x = " + "[" * 400 + "]" * 400,
            "6:37 nested 400 levels deep; tiers.toml allows at most 32",
        ),
        (
            "x = " + "{a=" * 400 + "1" + "}" * 400,
            "6:101 nested 400 levels deep; tiers.toml allows at most 32",
        ),
        ("x" + ".a" * 490 + " = 1", "6:1 nested 491 levels deep; tiers.toml allows at most 32"),
        ("[" + "a." * 40 + "a]", "6:2 nested 41 levels deep; tiers.toml allows at most 32"),
        (
            "[" + ".".join(["t"] * 20) + "]\n" + ".".join(["k"] * 20) + " = 1",
            "7:1 t.t.t…: nested 40 levels deep; tiers.toml allows at most 32",
        ),
    ],
    ids=["arrays", "inline-tables", "dotted-key", "table-header", "header-and-key"],
)
def test_deep_nesting_is_refused_where_it_is(added: str, expected: str) -> None:
    assert user_sees(written(HEAD + added + "\n")) == f"error: tiers.toml:{expected}\n"


def test_a_long_chain_of_references_resolves() -> None:
    chain = "".join(f'a{i} = "${{chain.a{i + 1}}}"\n' for i in range(330))
    source = read(written(f'{HEAD}\n[chain]\n{chain}a330 = "x"\n'))
    assert resolve(source)["chain"]["a0"] == "x"
    assert user_sees(source.path) == (
        "error: tiers.toml:7:1 chain: unknown key 'chain'; allowed here: "
        "project, services, environments, costs, checks\n"
    )


def test_references_may_not_nest_deeper_than_the_file_may() -> None:
    tables = "".join(f't{i} = {{ n = "${{t.t{i + 1}}}" }}\n' for i in range(40))
    path = written(f"{HEAD}[t]\n{tables}t40 = 1\n")
    assert user_sees(path) == (
        "error: tiers.toml:16:8 t.t9.n: ${t.t10} nests this value 33 levels deep; "
        "tiers.toml allows at most 32\n"
    )


def test_references_that_multiply_are_stopped() -> None:
    levels = ["a = [" + ", ".join(["1"] * 20) + "]"]
    for name, below in zip("bcd", "abc", strict=True):
        refs = ", ".join([f'"${{environments.dev.{below}}}"'] * 20)
        levels.append(f"{name} = [{refs}]")
    assert user_sees(written(HEAD + "\n".join(levels) + "\n")) == (
        "error: tiers.toml:9:256 environments.dev.d[10]: ${environments.dev.c} makes references "
        "copy more than 100000 values in all; reference smaller tables\n"
    )


@pytest.mark.parametrize(
    ("added", "expected"),
    [
        (
            'trigger = "manual"',
            "6:1 environments.dev.trigger: set twice (first on line 5); keep one",
        ),
        ("[environments.dev]", "6:1 environments.dev: declared twice (first on line 4); merge"),
        ("x = {a = 1, a = 2}", "6:13 environments.dev.x.a: set twice (first on line 6); keep"),
        ("[project.name]", "6:1 project.name: already set with = on line 2; define it in one"),
        ("x = 1\nx.y = 2", "7:1 environments.dev.x.y: environments.dev.x is already set on line 6"),
        (
            'x = "abc',
            '6:5 invalid TOML: this string is not closed on its line; close it, or use """',
        ),
        ('x = """abc', "6:5 invalid TOML: this string is never closed"),
        ("x = 'abc", "6:5 invalid TOML: this string is not closed on its line"),
        ('x = "a\\qb"', "6:7 invalid TOML: \\q is not an escape; write \\\\ for a backslash, or"),
        ('x = "a\x01"', "6:7 invalid TOML: the control character U+0001 is not allowed here; re"),
        ("x = yes", '6:5 invalid TOML: expected a value: a "string", a number, true or false, '),
        ("x = 1 2", "6:7 invalid TOML: expected the end of the line; write one `key = value` per"),
        ("x y = 1", "6:3 invalid TOML: expected `=` after the key; quote a key that has spaces"),
        ("= 1", "6:1 invalid TOML: expected `key = value`, a [table] header or a # comment"),
        ("[x", "6:3 invalid TOML: expected ] to close the [table] header"),
        ("[[x]", "6:4 invalid TOML: expected ]] to close the [[table]] header"),
        ("x = [1, 2", "6:5 invalid TOML: this list is never closed; close it with ]"),
        ("x = [1 2]", "6:8 invalid TOML: expected , or ] in this list"),
        ("x = {a = 1", "6:11 invalid TOML: expected , or } in this inline table (it must stay on"),
        ('x = "\\u12"', "6:8 invalid TOML: \\u needs 4 hex digits and \\U 8, like \\u00e9"),
        ('x = "\\uD800"', "6:12 invalid TOML: this \\u escape is not a character (surrogates"),
        ("x = 2024-13-01", "6:5 invalid TOML: not a valid date or time; write them like 2024-01-"),
        ("x = 1" + "0" * 5000, "6:5 environments.dev.x: a number of 5001 digits; a number has at"),
    ],
)
def test_toml_errors_are_told_in_tiers_words(added: str, expected: str) -> None:
    message = user_sees(written(HEAD + added + "\n"))
    assert message.startswith(f"error: tiers.toml:{expected}")
    assert message.count("\n") == 1


def test_a_string_open_at_the_end_of_the_file_points_where_it_opens() -> None:
    assert user_sees(written(HEAD + 'a = "x"\nx = "abc')) == (
        "error: tiers.toml:7:5 invalid TOML: this string is never closed\n"
    )


def test_bytes_that_are_not_utf8_are_located() -> None:
    path = written(HEAD.encode() + 'description = "café '.encode() + b'\xff"\n')
    assert user_sees(path) == (
        "error: tiers.toml:6:21 byte 0xff is not UTF-8 (invalid start byte); "
        "tiers.toml must be saved as UTF-8 text\n"
    )


def test_a_lone_carriage_return_is_not_a_line_ending() -> None:
    path = written(HEAD + 'description = "x"\rnamespace = "y"\n')
    assert user_sees(path) == (
        "error: tiers.toml:6:18 invalid TOML: the control character U+000D is not allowed "
        'here; remove it, or write it as \\u000d inside a "string"\n'
    )


def test_windows_line_endings_are_fine() -> None:
    path = written((HEAD + 'description = "x"\n').replace("\n", "\r\n"))
    assert read(path).data["environments"]["dev"]["description"] == "x"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Path("adir").mkdir() or "adir", "adir:1:1 is a directory, not a file"),
        (
            lambda: "/dev/zero",
            "/dev/zero:1:1 is a device, not a regular file; pass the path of a tiers.toml",
        ),
        (
            lambda: os.mkfifo("fifo") or "fifo",
            "fifo:1:1 is a named pipe (FIFO), not a regular file; pass the path of a tiers.toml",
        ),
        (
            lambda: Path("big.toml").write_bytes(b"#" * (2 << 20)) and "big.toml",
            "big.toml:1:1 is 2.0 MiB; a tiers.toml may be at most 1 MiB",
        ),
        (lambda: "a" * 300, "a" * 300 + ":1:1 cannot read: File name too long"),
        (lambda: Path("loop").symlink_to("loop") or "loop", "loop:1:1 cannot read: Too many"),
        (lambda: Path("f").touch() or "f/tiers.toml", "f/tiers.toml:1:1 cannot read: Not a dir"),
    ],
    ids=["directory", "device", "fifo", "too-big", "name-too-long", "symlink-loop", "not-a-dir"],
)
def test_what_is_not_a_readable_file_is_refused(make: object, expected: str) -> None:
    path = make()  # type: ignore[operator]
    for command in ("check", "docs", "ls"):
        assert user_sees(path, command).startswith(f"error: {expected}")


def test_a_named_pipe_does_not_hang_the_command_line() -> None:
    os.mkfifo("fifo")
    done = subprocess.run(
        [sys.executable, "-m", "tiers", "check", "-c", "fifo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: fifo:1:1 is a named pipe (FIFO), not a regular file; "
        "pass the path of a tiers.toml\n"
    )


def _unprivileged() -> pwd.struct_passwd | None:
    """A user other than root who can run this Python, or None."""
    if os.getuid() != 0:
        return None
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        return None
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import tiers"],
            user=user.pw_uid,
            capture_output=True,
            check=False,
        )
    except OSError:  # this Python lives where that user cannot go
        return None
    return user if probe.returncode == 0 else None


def test_a_directory_the_user_cannot_enter(tmp_path: Path) -> None:
    user = _unprivileged()
    if user is None:
        pytest.skip("needs root and an unprivileged user who can run this Python")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    (locked / "tiers.toml").write_text(HEAD)
    tmp_path.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-m", "tiers", "check", "-c", str(locked / "tiers.toml")],
        user=user.pw_uid,
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: {locked}/tiers.toml:1:1 cannot read: Permission denied\n"


def test_the_command_line_says_the_same_in_a_child_process() -> None:
    path = written(HEAD + "[environments.dev]\n")
    result = tiers("check", "-c", str(path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: tiers.toml:6:1 environments.dev: declared twice (first on line 4); "
        "merge the two tables\n"
    )


def test_a_clash_is_told_even_where_tree_sitter_reads_the_file_otherwise() -> None:
    # tree-sitter takes `"\n\\"` for a quoted key that tomllib would never accept
    path = written(HEAD + "x=''''''\nx=''\n\"\n\\\\\"=\"\"\n")
    assert user_sees(path) == (
        "error: tiers.toml:7:1 environments.dev.x: set twice (first on line 6); keep one of them\n"
    )
