"""A binding's own keys are its platform's: declared by the platform, validated by it, and
located like every other error; any registered platform name is accepted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tiers
from tiers.config import load
from tiers.errors import ConfigError

BASE = """[project]
name = "x"

[services.backend]
processes = { app = "serve" }

[environments.staging]
trigger = "manual"

[environments.staging.backend]
"""

NOMAD = """
from pydantic import BaseModel, ConfigDict

from tiers.platforms.base import Platform


class NomadOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    job: str
    datacenter: str = "dc1"


class Nomad(Platform):
    name = "nomad"
    options = NomadOptions
"""


def install(root: Path, module: str, source: str, **points: str) -> dict[str, str]:
    """A package as pip installs it: ``module``, and a dist-info registering ``points``
    (platform name → class in ``module``) under ``tiers.platforms``; the environment a
    command sees it with."""
    root.mkdir(exist_ok=True)
    (root / f"{module}.py").write_text(source)
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {module}:{cls}\n" for name, cls in points.items())
    (info / "entry_points.txt").write_text(f"[tiers.platforms]\n{lines}")
    return {"PYTHONPATH": str(root)}


def config(binding: str) -> Path:
    path = Path("tiers.toml")
    path.write_text(BASE + binding)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path)
    return str(caught.value)


def test_each_platform_takes_its_own_keys() -> None:
    binding = config('platform = "kubernetes"\nnamespace = "shop"\ndeployment = "api"\n')
    loaded = load(binding).config.environments["staging"].services["backend"]
    assert (loaded.option("namespace"), loaded.option("deployment")) == ("shop", "api")
    assert loaded.option("app") is None  # fly's key: not one of kubernetes'
    assert loaded.model_dump(exclude_none=True) == {
        "platform": "kubernetes",
        "env": {},
        "namespace": "shop",
        "deployment": "api",
    }


@pytest.mark.parametrize(
    ("binding", "expected"),
    [
        (
            'platform = "fly"\nregoin = "iad"\n',
            "tiers.toml:12:1 environments.staging.backend.regoin: unknown key 'regoin' for "
            "platform fly; did you mean 'region'?",
        ),
        (
            'platform = "local"\napp = "x"\n',
            "tiers.toml:12:1 environments.staging.backend.app: unknown key 'app' for platform "
            "local; allowed here: platform, branch, url, platform_url, api_url, frontend_url, "
            "env, secrets, cost",
        ),
        (
            'platform = "cloudflare-pages"\nproject = "Plyr_FM"\n',
            "tiers.toml:12:1 environments.staging.backend.project: 'Plyr_FM' is not a Pages "
            "project name: use at most 58 lower-case letters, digits and '-', starting and "
            "ending with a letter or digit",
        ),
        (
            'platform = "kubernetes"\nreplicas = 0\n',
            "tiers.toml:12:1 environments.staging.backend.replicas: 0 replicas serve nothing; "
            "give 1 or more",
        ),
        (
            'platform = "kubernetes"\nreplicas = "2"\n',
            "tiers.toml:12:1 environments.staging.backend.replicas: expected a whole number, "
            "not a string",
        ),
        (
            'platform = "fly"\nregion = "Amsterdam"\n',
            "tiers.toml:12:1 environments.staging.backend.region: 'Amsterdam' is not a fly.io "
            "region; regions are codes like iad or ams",
        ),
        (
            'platform = "fly"\nvm = { processes = { app = { sise = "x" } } }\n',
            "tiers.toml:12:30 environments.staging.backend.vm.processes.app.sise: unknown key "
            "'sise'; did you mean 'size'?",
        ),
        (
            'platform = "flyy"\napp = "x"\n',
            "tiers.toml:11:1 environments.staging.backend.platform: unknown platform 'flyy'; "
            "did you mean 'fly'? known: local, fly, cloudflare-pages, kubernetes",
        ),
        (
            'platfrom = "fly"\napp = "x"\n',
            "tiers.toml:10:1 environments.staging.backend.platform: required key is missing\n"
            "tiers.toml:11:1 environments.staging.backend.platfrom: unknown key 'platfrom'; "
            "did you mean 'platform'?",
        ),
    ],
)
def test_a_wrong_key_of_a_platform_is_located(binding: str, expected: str) -> None:
    assert error_of(config(binding)) == expected


def test_common_and_platform_mistakes_are_reported_together() -> None:
    message = error_of(config('platform = "fly"\nurl = 3\napp = "A"\n'))
    assert message.splitlines() == [
        "tiers.toml:12:1 environments.staging.backend.url: expected a string (in quotes), "
        "not a number",
        "tiers.toml:13:1 environments.staging.backend.app: 'A' is not a fly.io app name: use "
        "at most 63 lower-case letters, digits and '-', starting and ending with a letter or "
        "digit",
    ]


def test_a_registered_platform_is_accepted_and_validates_its_own_keys(tmp_path: Path) -> None:
    env = install(tmp_path / "site", "tiers_nomad", NOMAD, nomad="Nomad")
    config('platform = "nomad"\njob = "api-stg"\nsecrets = []\n')
    result = tiers("check", env=env)
    assert result.returncode == 0, result.stderr
    assert "no findings in 1 environment" in result.stdout

    config('platform = "nomad"\njbo = "api-stg"\n')
    result = tiers("check", env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: tiers.toml:10:1 environments.staging.backend.job: required key is missing",
        "error: tiers.toml:12:1 environments.staging.backend.jbo: unknown key 'jbo' for "
        "platform nomad; did you mean 'job'?",
    ]


def test_a_registered_platform_that_cannot_be_imported_is_named(tmp_path: Path) -> None:
    env = install(tmp_path / "site", "tiers_nomad", "import nomad_sdk\n", nomad="Nomad")
    config('platform = "nomad"\njob = "api-stg"\n')
    result = tiers("check", env=env)
    assert result.returncode == 2
    assert result.stderr == (
        "error: platform 'nomad' (tiers_nomad:Nomad) cannot be imported: "
        "No module named 'nomad_sdk'\n"
    )


def test_a_platform_that_is_not_installed_is_an_unknown_name() -> None:
    config('platform = "nomad"\njob = "api-stg"\n')
    result = tiers("check")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: tiers.toml:11:1 environments.staging.backend.platform: unknown platform "
        "'nomad'; known: local, fly, cloudflare-pages, kubernetes",
        # a key no platform known here takes
        "error: tiers.toml:12:1 environments.staging.backend.job: unknown key 'job'; allowed "
        "here: platform, branch, url, platform_url, api_url, frontend_url, env, secrets, cost, "
        "app, region, vm, project, context, namespace, deployment, replicas",
    ]


def test_loading_tiers_toml_imports_no_platform_driver(plyr: Path) -> None:
    script = (
        "import sys; from tiers.config import load; load('tiers.toml'); "
        "print(sorted(m for m in sys.modules if m.startswith('tiers.platforms')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout == "['tiers.platforms', 'tiers.platforms.options']\n"
