"""The example project as a throwaway git repository, for the pipeline's end-to-end tests.

Each test module runs the tiers it needs on ports of its own, so modules run side by
side; the tests of one module take turns through a lock file every pytest worker shares.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import tomlkit

from tests.conftest import tiers

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plyr"


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


@contextmanager
def example_repo(name: str, environments: tuple[str, ...], ports: dict[str, str]) -> Iterator[Path]:
    """examples/plyr with only ``environments``, each port ``old`` moved to ``ports[old]``,
    committed on main in a directory PostgreSQL can enter; brought down afterwards."""
    with (Path(tempfile.gettempdir()) / f"tiers-{name}-ports.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # PostgreSQL runs as an unprivileged user under root: every directory on the way
        # to its data must be enterable, which pytest's own temporary directories are not.
        top = Path(tempfile.mkdtemp(prefix=f"tiers-{name}-"))
        top.chmod(0o711)
        project = top / "plyr"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".tiers", "__pycache__"))
        config = project / "tiers.toml"
        doc = tomlkit.parse(config.read_text())
        for environment in [e for e in doc["environments"] if e not in environments]:
            del doc["environments"][environment]
        text = tomlkit.dumps(doc)
        for old, new in ports.items():
            text = text.replace(f":{old}", f":{new}")
        config.write_text(text)
        (project / ".gitignore").write_text(".tiers/\n__pycache__/\n")
        git(project, "init", "-q", "-b", "main")
        git(project, "add", "-A")
        git(project, "commit", "-q", "-m", "plyr")
        try:
            yield project
        finally:
            tiers("down", cwd=project)
            shutil.rmtree(top, ignore_errors=True)
