"""The example project as a throwaway copy on ports of its own, for the end-to-end tests.

Every port the example's tiers.toml names (8002, 5434, 6381, ...) is moved to a free one
that this copy holds for its lifetime, so copies run side by side, beside `scripts/demo`
and beside other test runs. ``port(project, 8002)`` is the port a copy uses instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import tomlkit

from tests.conftest import tiers
from tiers.config import load
from tiers.platforms.local.ports import port_in_use
from tiers.secrets import Store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plyr"
# Below the kernel's ephemeral range (32768+), so no free_port() pick lands on one.
_RANGE = range(20000, 32000)
_PORTS: dict[Path, dict[int, int]] = {}
_KEY_VARIABLES = ("XDG_CONFIG_HOME", "SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_CMD")


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@plyr.fm",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@plyr.fm",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def port(project: Path, example_port: int) -> int:
    """The port the copy at ``project`` uses where the example uses ``example_port``."""
    return _PORTS[project][example_port]


@contextmanager
def reserved_ports(count: int) -> Iterator[list[int]]:
    """``count`` ports nothing listens on, held (by a lock file each) until the end."""
    folder = Path(tempfile.gettempdir()) / "tiers-test-ports"
    folder.mkdir(exist_ok=True)
    with contextlib.ExitStack() as held:
        found: list[int] = []
        for candidate in random.sample(_RANGE, len(_RANGE)):
            lock = (folder / f"{candidate}.lock").open("w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()  # another test holds it
                continue
            held.enter_context(lock)
            if not port_in_use(candidate):
                found.append(candidate)
            if len(found) == count:
                yield found
                return
        raise RuntimeError(f"no {count} free ports in {_RANGE}")


@contextmanager
def example_copy(
    name: str, environments: tuple[str, ...], *, commit: bool = True, access: bool = False
) -> Iterator[Path]:
    """examples/plyr with only ``environments``, on free ports (see ``port``), committed on
    main unless ``commit`` is false, in a directory PostgreSQL can enter; brought down and
    removed afterwards. Staging's access gate is left out unless ``access`` (tests of
    the pipeline talk to its API anonymously; tests/gate sign in)."""
    # PostgreSQL runs as an unprivileged user under root: every directory on the way
    # to its data must be enterable, which pytest's own temporary directories are not.
    top = Path(tempfile.mkdtemp(prefix=f"tiers-{name}-"))
    top.chmod(0o711)
    project = top / "plyr"
    shutil.copytree(
        EXAMPLE, project, ignore=shutil.ignore_patterns(".tiers", "__pycache__", "data")
    )
    config = project / "tiers.toml"
    doc = tomlkit.parse(config.read_text())
    for environment in [e for e in doc["environments"] if e not in environments]:
        del doc["environments"][environment]
    for environment in doc["environments"].values():
        if not access and "access" in environment:
            del environment["access"]
    text = tomlkit.dumps(doc)
    used = sorted({int(p) for p in re.findall(r":(\d{4,5})\b", text)})
    with reserved_ports(len(used)) as free:
        _PORTS[project] = dict(zip(used, free, strict=True))
        config.write_text(re.sub(r":(\d{4,5})\b", lambda m: f":{port(project, int(m[1]))}", text))
        keys = _own_keys(top)
        _give_secrets(project)
        if (made := top / "config" / "tiers" / "keys.txt").exists():
            os.environ["SOPS_AGE_KEY_FILE"] = str(made)  # wherever XDG_CONFIG_HOME moves
        if commit:
            (project / ".gitignore").write_text(".tiers/\n__pycache__/\n")
            git(project, "init", "-q", "-b", "main")
            git(project, "add", "-A")
            git(project, "commit", "-q", "-m", "plyr")
        try:
            yield project
        finally:
            tiers("down", cwd=project)
            keys.close()
            for pid in _working_in(top):  # a failed test must not leave a process behind
                os.kill(pid, signal.SIGKILL)
            del _PORTS[project]
            shutil.rmtree(top, ignore_errors=True)


def _own_keys(top: Path) -> contextlib.ExitStack:
    """Age keys of the copy's own (in ``top``), never the user's, until it is closed."""
    held = contextlib.ExitStack()
    saved = {name: os.environ.get(name) for name in _KEY_VARIABLES}
    for name in _KEY_VARIABLES:
        os.environ.pop(name, None)
    os.environ["XDG_CONFIG_HOME"] = str(top / "config")

    @held.callback
    def restore() -> None:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return held


def _give_secrets(project: Path) -> None:
    """A distinct random value for each secret each tier declares (the key: this test's)."""
    config = load(project / "tiers.toml").config
    store = Store(project)
    for env in config.environments.values():
        names = sorted({n for b in env.services.values() for n in b.secrets or []})
        if names:
            store.init(env.name)
            store.set(env.name, {name: secrets.token_hex(16) for name in names})


def _working_in(top: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and str((proc / "cwd").readlink()).startswith(str(top)):
                found.append(int(proc.name))
    return found
