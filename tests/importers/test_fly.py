"""What `tiers import fly` maps where, and what it lists as not mapped."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tiers.checks import run
from tiers.config import Config, load
from tiers.importers import Imported, import_fly
from tiers.platforms.options import Vm

FIXTURES = Path(__file__).parent / "fixtures"
SEED = [FIXTURES / "fly.staging.toml", FIXTURES / "fly.toml"]


def written(result: Imported, path: Path = Path("tiers.toml")) -> Config:
    path.write_text(result.text)
    return load(path).config


@pytest.fixture
def seed() -> Config:
    urls = {"staging": "https://api-stg.plyr.fm/", "production": "https://api.plyr.fm"}
    return written(import_fly(SEED, secrets=["DATABASE_URL"], urls=urls))


def fly(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_environments_come_in_promotion_order_with_assumed_triggers(seed: Config) -> None:
    assert seed.project.name == "relay-api"
    assert seed.order == ["staging", "production"]
    assert seed.environments["staging"].trigger.describe() == "push to main"
    assert seed.environments["production"].trigger.describe() == "github release"


def test_the_service_gets_what_describes_the_code(seed: Config) -> None:
    backend = seed.services["backend"]
    assert backend.kind == "api"
    assert backend.release_command == "uv run alembic upgrade head"
    assert backend.health == "/health"
    assert backend.processes == {
        "app": "uv run uvicorn backend.main:app --host 0.0.0.0 --port 8000",
        "worker": "uv run python -m backend.worker",
    }
    assert backend.vars == {
        "namespace": "ATPROTO_APP_NAMESPACE",
        "observability_environment": "LOGFIRE_ENVIRONMENT",
    }


# environment: (app, custom domain, FRONTEND_URL, namespace), as in the seed
SEED_FACTS = {
    "staging": (
        "relay-api-staging",
        "https://api-stg.plyr.fm",
        "https://stg.plyr.fm",
        "fm.plyr.stg",
    ),
    "production": ("relay-api", "https://api.plyr.fm", "https://plyr.fm", "fm.plyr"),
}


@pytest.mark.parametrize("environment", SEED_FACTS)
def test_each_environment_gets_its_binding_and_facts(seed: Config, environment: str) -> None:
    app, url, frontend, namespace = SEED_FACTS[environment]
    env = seed.environments[environment]
    binding = env.services["backend"]
    assert (binding.platform, binding.option("app"), binding.option("region")) == (
        "fly",
        app,
        "iad",
    )
    assert binding.url == url
    assert binding.platform_url == f"https://{app}.fly.dev"
    vm = binding.option("vm", Vm)
    assert vm is not None
    assert (vm.size, vm.memory) == ("shared-cpu-1x", "256mb")
    assert binding.env == {"FRONTEND_URL": frontend}
    assert binding.secrets == ["DATABASE_URL"]
    assert env.namespace == namespace
    assert env.observability is not None
    assert (env.observability.provider, env.observability.environment) == ("logfire", environment)


def test_every_key_left_behind_is_listed_in_the_file_and_the_result() -> None:
    result = import_fly(SEED, secrets=["DATABASE_URL"])
    staging, production = (str(path) for path in SEED)
    assert result.unmapped == [
        f"{staging} [build] dockerfile",
        f"{staging} [http_service] internal_port, force_https, auto_stop_machines, "
        "auto_start_machines, min_machines_running, processes",
        f"{staging} [[http_service.checks]] grace_period, interval, method, timeout",
        f"{staging} [mounts] source, destination",
        f"{production} [build] dockerfile",
        f"{production} [http_service] internal_port, force_https, auto_stop_machines, "
        "auto_start_machines, min_machines_running, processes",
        f"{production} [[http_service.checks]] grace_period, interval, method, timeout",
    ]
    header = result.text.split("\n\n[project]")[0]
    assert "# could not map:\n" in header
    assert all(f"#   {line}\n" in header + "\n" for line in result.unmapped)


@pytest.mark.parametrize(
    ("name", "app", "environment"),
    [
        ("fly.staging.toml", "x", "staging"),
        ("fly.stg.toml", "x", "staging"),
        ("fly.production.toml", "x-staging", "production"),
        ("fly.prod.toml", "x", "production"),
        ("fly.preview.toml", "x", "preview"),
        ("fly.toml", "relay-api", "production"),
        ("fly.toml", "relay-api-staging", "staging"),
        ("fly.toml", "relay-api-stg", "staging"),
    ],
)
def test_the_environment_comes_from_the_file_name_then_the_app_name(
    tmp_path: Path, name: str, app: str, environment: str
) -> None:
    path = fly(tmp_path, name, f'app = "{app}"\n')
    assert import_fly([path]).environments == [environment]


def test_env_names_files_in_order_and_wins_over_inference(tmp_path: Path) -> None:
    first = fly(tmp_path, "a.toml", 'app = "relay-api"\n')
    second = fly(tmp_path, "b.toml", 'app = "relay-api-next"\n')
    result = import_fly([second, first], environments=["production", "qa"])
    assert result.environments == ["qa", "production"]  # promotion order, not file order


def test_a_lone_production_is_deployed_by_hand_and_passes_check(tmp_path: Path) -> None:
    path = fly(tmp_path, "fly.toml", 'app = "relay-api"\n[deploy]\nrelease_command = "migrate"\n')
    result = import_fly([path], secrets=["DATABASE_URL"])
    assert result.notes[0] == "assumed: production is deployed by hand (fly deploy)"
    config = written(result)
    assert config.environments["production"].trigger.kind == "manual"
    loaded = load("tiers.toml")
    findings = run(loaded.config, loaded.source, ignore=["secret-missing"])  # none set yet
    assert [f.message for f in findings] == [
        "production backend runs on fly, which tiers cannot deploy from here: "
        "no 'fly' platform is installed"
    ]


def test_vm_size_is_composed_from_cpus_and_memory_mb(tmp_path: Path) -> None:
    path = fly(
        tmp_path,
        "fly.toml",
        'app = "a"\n[[vm]]\ncpu_kind = "performance"\ncpus = 2\nmemory_mb = 4096\n'
        '[[vm]]\nsize = "shared-cpu-1x"\nprocesses = ["worker"]\n',
    )
    result = import_fly([path])
    vm = written(result).environments["production"].services["backend"].option("vm", Vm)
    assert vm is not None
    assert (vm.size, vm.memory, vm.processes) == ("performance-2x", "4096mb", {})
    assert result.unmapped == [
        f"{path} [[vm]] #2 size, processes",
        f'{path} [[vm]] #2 processes "worker" (no such process group)',
    ]


def test_health_comes_from_top_level_checks_and_tcp_services_are_listed(tmp_path: Path) -> None:
    path = fly(
        tmp_path,
        "fly.toml",
        'app = "a"\n[checks.alive]\ntype = "http"\nport = 8080\npath = "/healthz"\n'
        '[[services]]\ninternal_port = 8080\nprotocol = "tcp"\n'
        '[[services.tcp_checks]]\ninterval = "15s"\n',
    )
    result = import_fly([path])
    assert written(result).services["backend"].health == "/healthz"
    assert result.unmapped == [
        f"{path} [checks.alive] type, port",
        f"{path} [[services]] internal_port, protocol",
        f"{path} [[services.tcp_checks]] interval",
    ]


def test_a_service_value_that_differs_between_files_is_listed(tmp_path: Path) -> None:
    staging = fly(tmp_path, "fly.staging.toml", 'app = "a-stg"\n[deploy]\nrelease_command = "m"\n')
    production = fly(tmp_path, "fly.toml", 'app = "a"\n[deploy]\nrelease_command = "m --prod"\n')
    result = import_fly([production, staging])
    assert written(result).services["backend"].release_command == "m"
    assert result.unmapped == [
        f"{production} [deploy] release_command (differs from {staging}, kept)"
    ]


def test_values_that_look_like_references_load_as_written(tmp_path: Path) -> None:
    path = fly(
        tmp_path,
        "fly.toml",
        'app = "a"\n[processes]\napp = "serve --port ${PORT}"\n'
        '[env]\nGREETING = "$${not-a-ref} and ${x}"\nlower_case = "1"\nDEBUG = true\n',
    )
    result = import_fly([path])
    config = written(result)
    assert config.services["backend"].processes == {"app": "serve --port ${PORT}"}
    assert config.environments["production"].services["backend"].env == {
        "GREETING": "$${not-a-ref} and ${x}",
        "DEBUG": "true",
    }
    assert result.unmapped == [f"{path} [env] lower_case"]


def test_the_output_is_commented_toml(seed: Config) -> None:
    text = Path("tiers.toml").read_text()
    assert tomllib.loads(text)["environments"]["production"]["backend"]["secrets"] == (
        "${environments.staging.backend.secrets}"
    )
    assert "# [environments.staging.access]\n# protect = true\n" in text
    assert "[environments.production.access]" not in text
    assert "[environments.staging.backend] # from " in text


PROCESSES = '[processes]\napp = "serve"\nworker = "work"\n'


def vms(result: Imported, environment: str = "production") -> dict[str, tuple[str | None, ...]]:
    vm = written(result).environments[environment].services["backend"].option("vm", Vm)
    assert vm is not None
    return {group: (vm.of(group).size, vm.of(group).memory) for group in ("app", "worker")}


@pytest.mark.parametrize(
    ("vm", "expected"),
    [
        (  # one [[vm]] for the app group only: the worker keeps fly's default
            '[[vm]]\nsize = "shared-cpu-2x"\nmemory = "1gb"\nprocesses = ["app"]\n',
            {"app": ("shared-cpu-2x", "1gb"), "worker": (None, None)},
        ),
        (  # one for every group, then the worker's own
            '[[vm]]\nsize = "shared-cpu-1x"\nmemory = "256mb"\n'
            '[[vm]]\ncpu_kind = "performance"\ncpus = 2\nmemory_mb = 4096\n'
            'processes = ["worker"]\n',
            {"app": ("shared-cpu-1x", "256mb"), "worker": ("performance-2x", "4096mb")},
        ),
        (  # one [[vm]] naming both groups
            '[[vm]]\nsize = "shared-cpu-4x"\nmemory = "2GB"\nprocesses = ["app", "worker"]\n',
            {"app": ("shared-cpu-4x", "2gb"), "worker": ("shared-cpu-4x", "2gb")},
        ),
    ],
)
def test_each_vm_sizes_the_process_groups_it_names(
    tmp_path: Path, vm: str, expected: dict[str, tuple[str | None, ...]]
) -> None:
    path = fly(tmp_path, "fly.toml", f'app = "a"\n{PROCESSES}{vm}')
    result = import_fly([path])
    assert vms(result) == expected
    assert result.unmapped == []


def test_without_processes_a_vm_for_the_app_group_sizes_the_service(tmp_path: Path) -> None:
    path = fly(
        tmp_path,
        "fly.toml",
        'app = "a"\n[[vm]]\nsize = "shared-cpu-1x"\n'
        '[[vm]]\nmemory = "512mb"\nprocesses = ["app", "worker"]\n',
    )
    result = import_fly([path])
    assert 'vm = {memory = "512mb"} # [[vm]] #2\n' in result.text
    assert result.unmapped == [
        f"{path} [[vm]] #1 size",
        f'{path} [[vm]] #2 processes "worker" (no such process group)',
    ]


def test_vms_fly_would_not_use_are_listed_with_why(tmp_path: Path) -> None:
    path = fly(
        tmp_path,
        "fly.toml",
        f'app = "a"\n{PROCESSES}'
        '[[vm]]\nsize = "shared-cpu-2x"\nmemory = "512mb"\n'
        '[[vm]]\nsize = "shared-cpu-8x"\n'
        '[[vm]]\nmemory = "1gb"\nprocesses = ["worker", "cron"]\n'
        '[[vm]]\nmemory = "2gb"\nprocesses = ["worker"]\n',
    )
    result = import_fly([path])
    assert vms(result) == {"app": ("shared-cpu-2x", "512mb"), "worker": ("shared-cpu-2x", "2gb")}
    assert result.unmapped == [
        f"{path} [[vm]] #2 size",
        f"{path} [[vm]] #3 memory, processes",
        f'{path} [[vm]] #3 processes "cron" (no such process group)',
        f'{path} [[vm]] #3 processes "worker" (a later [[vm]] names it)',
        f'{path} [[vm]] #4 sets no size (fly: its default; tiers.toml: size = "shared-cpu-2x" '
        "for worker, as for every group)",
    ]
    assert "[environments.production.backend.vm] # [[vm]] #1, [[vm]] #4\n" in result.text
    assert '[environments.production.backend.vm.processes]\nworker = {memory = "2gb"}\n' in (
        result.text
    )


def test_port_is_dropped_and_listed_and_buckets_become_storage(tmp_path: Path) -> None:
    path = fly(
        tmp_path,
        "fly.toml",
        'app = "a"\n[env]\nPORT = "8000"\nR2_BUCKET = "audio-prod"\n'
        'IMAGES_BUCKET = "images-prod"\nBUCKET_LIST = "a,b"\nOTHER_BUCKET = "s3://x/y"\n',
    )
    result = import_fly([path])
    config = written(result)
    production = config.environments["production"]
    assert production.storage is not None
    assert (production.storage.provider, production.storage.buckets) == (
        "r2",
        {"audio": "audio-prod", "images": "images-prod"},
    )
    assert config.services["backend"].vars == {
        "bucket_audio": "R2_BUCKET",
        "bucket_images": "IMAGES_BUCKET",
    }
    assert production.services["backend"].env == {
        "BUCKET_LIST": "a,b",
        "OTHER_BUCKET": "s3://x/y",
    }
    assert result.unmapped == [f"{path} [env] PORT (dropped: tiers tells each process its port)"]
    assert f"#   {path} [env] PORT (dropped: tiers tells each process its port)\n" in result.text


def test_a_bucket_whose_name_says_no_provider_is_assumed_on_s3(tmp_path: Path) -> None:
    path = fly(tmp_path, "fly.staging.toml", 'app = "a-stg"\n[env]\nBUCKET_NAME = "uploads-stg"\n')
    result = import_fly([path])
    storage = written(result).environments["staging"].storage
    assert storage is not None
    assert (storage.provider, storage.buckets) == ("s3", {"uploads": "uploads-stg"})
    assert "assumed: staging: BUCKET_NAME names an S3 bucket" in result.notes


def test_the_header_names_only_what_the_files_did_not_say(tmp_path: Path) -> None:
    path = fly(tmp_path, "fly.toml", 'app = "a"\n[env]\nR2_BUCKET = "audio"\n')
    result = import_fly([path], urls={"production": "https://api.example.com"})
    assert (
        "# fly.toml does not know the database, Redis or the frontend: add them (see `tiers init\n"
        "# --example plyr`), then run `tiers check`.\n"
    ) in result.text


def test_a_port_of_an_odd_type_is_listed_and_no_port_advice_is_given(tmp_path: Path) -> None:
    path = fly(
        tmp_path,
        "fly.toml",
        'app = "a"\n[processes]\napp = "serve --port [8000]"\n'
        "[http_service]\ninternal_port = [8000]\n",
    )
    result = import_fly([path])
    assert result.unmapped == [f"{path} [http_service] internal_port"]
    assert not any("listens on port" in note for note in result.notes)
