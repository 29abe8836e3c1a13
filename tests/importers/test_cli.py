"""`tiers import fly` as a user runs it: files written or not, exit codes, messages."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path

import pytest

from tests.conftest import tiers
from tiers.checks import run
from tiers.config import load
from tiers.platforms.options import Vm

FIXTURES = Path(__file__).parent / "fixtures"
WORKERS = FIXTURES / "workers"
SEED = ("fly.staging.toml", "fly.toml")
SECRETS = ("--secret", "DATABASE_URL", "--secret", "OAUTH_ENCRYPTION_KEY")
URLS = ("--url", "staging=https://api-stg.plyr.fm", "--url", "production=https://api.plyr.fm")


@pytest.fixture(autouse=True)
def seed(tmp_path: Path) -> None:
    """The seed's two fly.toml files in the working directory."""
    for name in SEED:
        shutil.copy(FIXTURES / name, tmp_path / name)


def test_the_seed_imports_and_only_staging_protection_is_left_to_declare() -> None:
    result = tiers("import", "fly", *SEED, *SECRETS, *URLS)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "wrote tiers.toml: staging, production\n"
    loaded = load("tiers.toml")
    findings = run(loaded.config, loaded.source)
    # the values of the secrets the import named are the next thing to set, in each tier
    missing = sorted(
        (f.environments[0], f.message.split()[2]) for f in findings if f.rule == "secret-missing"
    )
    assert missing == [(tier, name) for tier in ("production", "staging") for name in SECRETS[1::2]]
    assert [(f.rule, f.severity) for f in findings if f.rule != "secret-missing"] == [
        ("staging-unprotected", "warning"),
        ("platform-not-installed", "warning"),  # staging's backend on fly: no driver here
        ("platform-not-installed", "warning"),  # production's
    ]
    assert tiers("check", "--ignore", "secret-missing", "--fail-on", "error").returncode == 0
    docs = tiers("docs").stdout
    assert (
        "- VM in staging: shared-cpu-1x, 256mb\n- VM in production: shared-cpu-1x, 256mb\n" in docs
    )


def test_the_user_is_told_what_was_assumed_left_out_and_left_to_do() -> None:
    result = tiers("import", "fly", *SEED, *SECRETS)
    lines = result.stderr.splitlines()
    assert "could not map: fly.staging.toml [mounts] source, destination" in lines
    assert "assumed: staging deploys on a push to main" in lines
    assert "assumed: production deploys when a GitHub release is published" in lines
    assert (
        "[processes] app listens on port 8000, fly's internal port: tiers gives each process "
        "its own in $PORT, so write $PORT in its command"
    ) in lines
    assert any("staging-unprotected" in line for line in lines)
    assert not any("secrets-undeclared" in line for line in lines)


def test_without_secrets_a_todo_is_written_and_check_asks_for_them() -> None:
    result = tiers("import", "fly", *SEED)
    assert result.returncode == 0
    assert any("secrets-undeclared" in line for line in result.stderr.splitlines())
    text = Path("tiers.toml").read_text()
    todo = '# secrets = ["DATABASE_URL"]  # TODO: the names `fly secrets list -a relay-api` shows'
    assert todo in text
    loaded = load("tiers.toml")
    rules = sorted({f.rule for f in run(loaded.config, loaded.source)})
    assert rules == ["platform-not-installed", "secrets-undeclared", "staging-unprotected"]


def test_dry_run_prints_the_file_and_writes_nothing() -> None:
    result = tiers("import", "fly", *SEED, *SECRETS, "--dry-run")
    assert result.returncode == 0
    assert not Path("tiers.toml").exists()
    assert result.stdout.startswith("# tiers.toml written by `tiers import fly` from:\n")
    assert tomllib.loads(result.stdout)["project"]["name"] == "relay-api"
    assert "could not map: fly.staging.toml [mounts] source, destination" in result.stderr
    long_target = tiers("import", "fly", *SEED, *SECRETS, "--dry-run", "-c", "a" * 256)
    assert (long_target.returncode, long_target.stdout) == (0, result.stdout)


def test_an_existing_file_is_kept_without_force() -> None:
    Path("tiers.toml").write_text("# mine\n")
    result = tiers("import", "fly", *SEED, *SECRETS)
    assert result.returncode == 2
    assert result.stderr == "error: tiers.toml already exists; pass --force to overwrite it\n"
    assert Path("tiers.toml").read_text() == "# mine\n"
    assert tiers("import", "fly", *SEED, *SECRETS, "--force").returncode == 0
    assert load("tiers.toml").config.project.name == "relay-api"


def test_config_option_chooses_where_to_write() -> None:
    missing = tiers("import", "fly", *SEED, *SECRETS, "-c", "deploy/tiers.toml")
    assert missing.returncode == 2
    assert missing.stderr == (
        "error: cannot write deploy/tiers.toml: the folder deploy does not exist; create it first\n"
    )
    Path("deploy").mkdir()
    assert tiers("import", "fly", *SEED, *SECRETS, "-c", "deploy/tiers.toml").returncode == 0
    assert load("deploy/tiers.toml").config.order == ["staging", "production"]
    assert not Path("tiers.toml").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'app = "relay-api"\nprimary_region = \n',
            "error: fly.toml:2:18 invalid TOML: Invalid value",
        ),
        (
            'app = "relay-api"\n[env\n',
            "error: fly.toml:2:5 invalid TOML: Expected ']' at the end of a table declaration",
        ),
    ],
)
def test_a_malformed_file_exits_2_naming_line_and_column(text: str, message: str) -> None:
    Path("fly.toml").write_text(text)
    result = tiers("import", "fly", *SEED)
    assert result.returncode == 2
    assert result.stderr == message + "\n"
    assert not Path("tiers.toml").exists()


def test_a_missing_file_exits_2_naming_it() -> None:
    result = tiers("import", "fly", "fly.staging.toml", "fly.prod.toml")
    assert result.returncode == 2
    assert result.stderr == "error: fly.prod.toml: no such file\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--env", "production"), "fly.staging.toml and fly.toml both deploy production"),
        (("--env", "a", "--env", "b", "--env", "c"), "3 --env for 2 files"),
        (("--env", "Staging"), "--env Staging: use lower-case letters"),
        (
            ("--secret", "database-url"),
            "--secret database-url: 'database-url' is not an environment",
        ),
        (
            ("--url", "qa=https://qa.plyr.fm"),
            "--url qa=https://qa.plyr.fm: no environment qa; imported: staging, production",
        ),
        (("--url", "staging"), "--url staging: write ENV=URL"),
        (("--url", "staging=api-stg.plyr.fm"), "'api-stg.plyr.fm' is not an http(s) URL"),
        (("--service", "database"), "--service database: that is an environment key"),
    ],
)
def test_unusable_options_exit_2(args: tuple[str, ...], message: str) -> None:
    result = tiers("import", "fly", *SEED, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert not Path("tiers.toml").exists()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pyproject.toml", '[project]\nname = "relay-api"\nversion = "1.0"\n'),
        ("empty.toml", ""),
        ("tiers.toml", '[project]\nname = "x"\n[environments.dev]\ntrigger = "local"\n'),
    ],
)
def test_a_file_without_an_app_is_not_a_fly_toml(name: str, text: str) -> None:
    Path(name).write_text(text)
    result = tiers("import", "fly", name, "-c", "out.toml")
    assert result.returncode == 2
    assert result.stderr == (
        f'error: {name} is not a fly.toml: it has no app = "NAME" '
        '(a fly.toml names the fly.io app it configures, like app = "relay-api")\n'
    )
    assert not Path("out.toml").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app = 1\n", "fly.toml:1:1 app: expected a string (in quotes), not a number"),
        (
            'app = "relay-api"\nprimary_region = ["iad"]\n',
            "fly.toml:2:1 primary_region: expected a string (in quotes), not a list",
        ),
        (
            'app = "relay-api"\ndeploy = "now"\n',
            "fly.toml:2:1 deploy: expected a table, not a string",
        ),
        (
            'app = "relay-api"\n[processes]\napp = ["uvicorn"]\n',
            "fly.toml:3:1 processes.app: expected a string (in quotes), not a list",
        ),
        (
            'app = "relay-api"\n[env]\nDEBUG = { on = true }\n',
            "fly.toml:3:1 env.DEBUG: expected a string (in quotes), a number or a boolean, "
            "not a table",
        ),
        (
            'app = "relay-api"\n\n[[vm]]\n  memory = true\n',
            "fly.toml:4:3 vm[0].memory: expected a string (in quotes) or a whole number, "
            "not a boolean",
        ),
        (
            'app = "relay-api"\nvm = "big"\n',
            "fly.toml:2:1 vm: expected a table ([vm]) or tables ([[vm]]), not a string",
        ),
        (
            'app = "relay-api"\n[[vm]]\nprocesses = "worker"\nsize = "shared-cpu-1x"\n',
            "fly.toml:3:1 vm[0].processes: expected a list, not a string",
        ),
        (
            'app = "Relay API"\n',
            "fly.toml:1:1 app: 'Relay API' is not a fly.io app name: use lower-case letters, "
            "digits, '-' and '_', starting with a letter or digit",
        ),
    ],
)
def test_a_key_of_the_wrong_type_exits_2_naming_where(text: str, message: str) -> None:
    Path("fly.toml").write_text(text)
    result = tiers("import", "fly", "fly.toml")
    assert result.returncode == 2
    assert result.stderr == f"error: {message}\n"
    assert not Path("tiers.toml").exists()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[http_service]\nx = " + "[" * 400 + "]" * 400, "3:1 http_service.x"),
        ("x = " + "{ a = " * 33 + "1" + " }" * 33, "2:1 x"),
        (
            "[x" + ".a" * 500 + "]\n",
            "2:2 x.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a...",
        ),
    ],
)
def test_nesting_too_deep_exits_2_naming_the_key(text: str, where: str) -> None:
    Path("fly.toml").write_text('app = "x"\n' + text)
    result = tiers("import", "fly", "fly.toml")
    assert result.returncode == 2
    assert result.stderr == (
        f"error: fly.toml:{where}: nested too deeply (over 32 levels); "
        "a fly.toml needs a few levels of tables and lists at most\n"
    )
    assert not Path("tiers.toml").exists()


def test_tables_nested_as_deep_as_allowed_are_listed_as_not_mapped() -> None:
    Path("fly.toml").write_text('app = "x"\nx' + ".a" * 25 + " = [[[1]]]\n")
    result = tiers("import", "fly", "fly.toml", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"could not map: fly.toml [x{'.a' * 24}] a\n" in result.stderr


@pytest.mark.parametrize("force", [(), ("--force",)])
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("fly.toml", "fly.toml is one of the files to import"),
        ("link.toml", "link.toml is one of the files to import (fly.staging.toml)"),
    ],
)
def test_an_input_file_is_never_written_over(
    target: str, message: str, force: tuple[str, ...]
) -> None:
    os.link("fly.staging.toml", "link.toml")
    before = {name: Path(name).read_text() for name in SEED}
    result = tiers("import", "fly", *SEED, "-c", target, *force)
    assert result.returncode == 2
    assert result.stderr == f"error: {message}; write the tiers.toml elsewhere with -c PATH\n"
    assert {name: Path(name).read_text() for name in SEED} == before


def test_a_repeated_option_or_file_is_refused_naming_it() -> None:
    cases = [
        (
            ("--url", "production=https://a.plyr.fm", "--url", "production=https://b.plyr.fm"),
            "--url production=https://a.plyr.fm and --url production=https://b.plyr.fm "
            "both give production's URL; give one",
        ),
        (("--secret", "DATABASE_URL", "--secret", "DATABASE_URL"), None),
    ]
    for args, message in cases:
        result = tiers("import", "fly", *SEED, *args)
        assert result.returncode == 2
        expected = message or "--secret DATABASE_URL is given twice; give each secret once"
        assert result.stderr == f"error: {expected}\n"
    result = tiers("import", "fly", "fly.toml", "fly.toml")
    assert result.stderr == "error: fly.toml is given twice; give each fly.toml once\n"
    assert result.returncode == 2
    assert not Path("tiers.toml").exists()


LONG = "a" * 256 + ".toml"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fly.toml", "-c", LONG), f"cannot write {LONG}: File name too long"),
        (
            ("fly.toml", "-c", f"{LONG}/tiers.toml"),
            f"cannot write {LONG}/tiers.toml: File name too long",
        ),
        ((LONG,), f"{LONG}: cannot read: File name too long"),
        (("/dev/zero",), "/dev/zero: not a regular file (a pipe or a device); give a fly.toml"),
        (("fly",), "fly: is a directory, not a file"),
        (
            ("fly.toml", "-c", "fly.toml/tiers.toml"),
            "cannot write fly.toml/tiers.toml: Not a directory",
        ),
        (("big.toml",), "big.toml: over 1000000 bytes, too large for a fly.toml"),
        (("fly.toml", "-c", "fly", "--force"), "cannot write fly: it is a directory"),
    ],
)
def test_paths_that_cannot_be_used_exit_2_naming_them(args: tuple[str, ...], message: str) -> None:
    Path("fly").mkdir()
    Path("big.toml").write_text('app = "x"\n' + "#" * 1_000_000)
    result = tiers("import", "fly", *args)
    assert result.returncode == 2
    assert result.stderr == f"error: {message}\n"
    assert not Path("tiers.toml").exists()


def test_a_pipe_is_refused_without_waiting_for_a_writer() -> None:
    os.mkfifo("fly.pipe.toml")
    result = tiers("import", "fly", "fly.pipe.toml")
    assert result.returncode == 2
    assert result.stderr == (
        "error: fly.pipe.toml: not a regular file (a pipe or a device); give a fly.toml\n"
    )


def test_text_that_is_not_utf8_is_located() -> None:
    Path("fly.toml").write_bytes(b'app = "relay-api"\n# caf\xe9\n')
    result = tiers("import", "fly", "fly.toml")
    assert result.returncode == 2
    assert result.stderr == "error: fly.toml:2:6 not UTF-8 text\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may enter any folder")
def test_a_folder_one_may_not_enter_exits_2(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    try:
        result = tiers("import", "fly", *SEED, "-c", "locked/tiers.toml")
        assert result.stderr == "error: cannot write locked/tiers.toml: Permission denied\n"
        result = tiers("import", "fly", "locked/fly.toml")
        assert result.stderr == "error: locked/fly.toml: cannot read: Permission denied\n"
        assert result.returncode == 2
    finally:
        locked.chmod(0o755)


def test_a_pair_whose_worker_vms_differ_round_trips_through_check_and_docs() -> None:
    files = [str(WORKERS / name) for name in SEED]
    result = tiers("import", "fly", *files, *SECRETS, *URLS)
    assert result.returncode == 0, result.stderr
    checked = tiers("check", "--ignore", "secret-missing")  # no values set yet, by design
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "staging-unprotected" in checked.stdout
    config = load("tiers.toml").config
    sizes = {}
    for name, env in config.environments.items():
        vm = env.services["backend"].option("vm", Vm)
        assert vm is not None
        sizes[name] = {g: (vm.of(g).size, vm.of(g).memory) for g in ("app", "worker")}
    assert sizes == {
        "staging": {"app": ("shared-cpu-1x", "1gb"), "worker": ("shared-cpu-1x", "512mb")},
        "production": {"app": ("shared-cpu-1x", "1gb"), "worker": ("performance-1x", "2gb")},
    }
    docs = tiers("docs")
    assert docs.returncode == 0, docs.stderr
    assert (
        "- VM in staging: `app` shared-cpu-1x, 1gb; `worker` shared-cpu-1x, 512mb\n"
        "- VM in production: `app` shared-cpu-1x, 1gb; `worker` performance-1x, 2gb\n"
    ) in docs.stdout


def test_port_is_dropped_and_bucket_variables_become_storage_and_vars() -> None:
    files = [str(WORKERS / name) for name in SEED]
    result = tiers("import", "fly", *files, *SECRETS)
    assert result.returncode == 0, result.stderr
    for name in files:
        line = f"could not map: {name} [env] PORT (dropped: tiers tells each process its port)"
        assert line in result.stderr.splitlines()
    config = load("tiers.toml").config
    assert config.services["backend"].vars["bucket_audio"] == "R2_BUCKET"
    assert config.services["backend"].vars["bucket_image"] == "R2_IMAGE_BUCKET"
    for name, env in config.environments.items():
        assert env.storage is not None
        suffix = {"staging": "staging", "production": "prod"}[name]
        assert (env.storage.provider, env.storage.buckets) == (
            "r2",
            {"audio": f"audio-{suffix}", "image": f"images-{suffix}"},
        )
        assert sorted(env.services["backend"].env) == ["FRONTEND_URL"]
    listed = tiers("ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [row["storage"] for row in json.loads(listed.stdout)] == [
        "audio-staging, images-staging (r2)",
        "audio-prod, images-prod (r2)",
    ]
