"""tiers.toml in, typed model out; every bad input is one clear, located error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checks.test_store import stock
from tests.conftest import Edit, tiers
from tests.secrets.helpers import own_home
from tiers.config import load
from tiers.config.templates import text
from tiers.errors import ConfigError

__all__ = ["own_home"]  # a home, and so a key, of each test's own


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path)
    return str(caught.value)


def test_the_example_says_every_fact_of_the_seed(plyr: Path) -> None:
    config, _ = load(plyr)
    assert config.order == ["development", "staging", "production"]
    staging = config.environments["staging"]
    assert staging.trigger.describe() == "push to main"
    assert config.environments["production"].trigger.describe() == "github release"
    backend = staging.services["backend"]
    assert (backend.platform, backend.option("app"), backend.url, backend.platform_url) == (
        "fly",
        "relay-api-staging",
        "https://api-stg.plyr.fm",
        "http://relay-api-staging.flycast",  # private: staging is reached through its gate
    )
    production = config.environments["production"].services["backend"]
    assert production.platform_url == "https://relay-api.fly.dev"
    frontend = staging.services["frontend"]
    assert (frontend.option("project"), frontend.branch, frontend.api_url) == (
        "plyr-fm-stg",
        "main",
        "https://api-stg.plyr.fm",
    )
    assert staging.storage is not None
    assert staging.storage.buckets == {"audio": "audio-staging", "images": "images-staging"}
    assert staging.namespace == "fm.plyr.stg"
    assert staging.access.bypass[-1] == "stg.plyr.fm/icons/*"
    assert config.project.release.version == "%Y.%m%d.%H%M%S"
    assert config.services["backend"].release_command == "uv run alembic upgrade head"


def test_references_are_resolved_whatever_the_type(plyr: Path) -> None:
    config, _ = load(plyr)
    prod = config.environments["production"].services["backend"]
    assert prod.secrets == config.environments["staging"].services["backend"].secrets
    assert prod.frontend_url == "https://plyr.fm"


def test_dollar_dollar_is_a_literal(edit: Edit) -> None:
    path = edit(("--port $PORT", "--port $${PORT}"))
    config, _ = load(path)
    assert "--port ${PORT}" in config.services["backend"].processes["app"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'platform = "fly"\napp = "relay-api"\n',
            'platfrom = "fly"\napp = "relay-api"\n',
            "environments.production.backend.platfrom: unknown key 'platfrom'; "
            "did you mean 'platform'?",
        ),
        (
            "[environments.staging.frontend]",
            "[environments.staging.frontent]",
            "did you mean ${environments.staging.frontent.url}?",
        ),
        (
            'kind = "api"',
            'kind = "apo"',
            "services.backend.kind: 'apo' is not allowed; expected 'api', 'frontend' or "
            "'worker'; did you mean 'api'?",
        ),
        (
            'url = "https://api-stg.plyr.fm"',
            'url = "api-stg.plyr.fm"',
            "environments.staging.backend.url: 'api-stg.plyr.fm' is not an http(s) URL",
        ),
        (
            "cookie_auth = true",
            'cookie_auth = "yes"',
            "environments.development.cookie_auth: expected true or false, not a string",
        ),
        (
            'trigger = { push = "main" }',
            'trigger = { pull = "main" }',
            'environments.staging.trigger: a trigger is "local", "manual", '
            '{ push = "BRANCH" } or { release = "github" }',
        ),
        (
            'platform = "fly"',
            'platform = "flyio"',
            "unknown platform 'flyio'; did you mean 'fly'? known: local, fly, cloudflare-pages",
        ),
        (
            '"email-domain:plyr.fm"',
            '"domain:plyr.fm"',
            "environments.staging.access.allow[1]: 'domain:plyr.fm' is not an identity selector",
        ),
        (
            'api_url = "${environments.staging.backend.url}"',
            'api_url = "${environments.staging.backend.ur}"',
            "environments.staging.frontend.api_url: ${environments.staging.backend.ur} refers "
            "to nothing in this file; did you mean ${environments.staging.backend.url}?",
        ),
        (
            "--port $PORT",
            "--port ${PORT}",
            "services.backend.processes.app: ${PORT} refers to nothing in this file; "
            "write $${PORT} for a literal ${PORT}",
        ),
        (
            'name = "plyr"',
            'name = "plyr',
            "tiers.toml:10:8 invalid TOML: this string is not closed on its line",
        ),
        (
            'database = { provider = "neon", name = "plyr-stg", url_secret = "DATABASE_URL" }',
            'database = { provider = "neon", name = "plyr-stg" }',
            "environments.staging.database: say where the connection string comes from",
        ),
        (
            'url = "redis://plyr-redis.internal:6379" }',
            'url = "redis://plyr-redis.internal:6379", tls = true }',
            "environments.production.redis: tls = true but the URL does not use rediss://",
        ),
        (
            'secrets = ["DATABASE_URL",',
            'secrets = ["database_url",',
            "'database_url' is not an environment variable name",
        ),
    ],
)
def test_bad_input_is_one_located_error(edit: Edit, old: str, new: str, expected: str) -> None:
    assert expected in error_of(edit((old, new)))


def test_errors_carry_file_line_and_column(edit: Edit) -> None:
    path = edit(('app = "relay-api-staging"', 'app = "relay-api-staging"\nregoin = "ams"'))
    message = error_of(path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "regoin" in text)
    assert message == (
        f"{path}:{line}:1 environments.staging.backend.regoin: unknown key 'regoin' for "
        "platform fly; did you mean 'region'?"
    )


def test_cyclic_references_are_named(edit: Edit) -> None:
    path = edit(
        ('namespace = "fm.plyr.stg"', 'namespace = "${environments.production.namespace}"'),
        ('namespace = "fm.plyr"\n', 'namespace = "${environments.staging.namespace}"\n'),
    )
    assert "cyclic reference: environments.staging.namespace → " in error_of(path)


def test_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    assert "no such file; run `tiers init`" in error_of(tmp_path / "nope.toml")


def test_an_empty_file_names_the_missing_sections(tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text("")
    message = error_of(path)
    assert "project: required key is missing" in message
    assert "environments: required key is missing" in message


def test_a_service_named_like_an_environment_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(text("plyr").replace("[services.transcoder]", "[services.redis]"))
    assert "a service may not be named 'redis'" in error_of(path)


def test_bad_input_exits_2_and_changes_nothing(edit: Edit) -> None:
    path = edit(("cookie_auth = true", "cookie_auth = 1"))
    before = path.read_text()
    result = tiers("check", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}:")
    assert result.stdout == ""
    assert path.read_text() == before


def test_the_default_template_is_valid_and_clean_once_its_secrets_are_set(
    tmp_path: Path, own_home: Path
) -> None:
    result = tiers("init")
    assert result.returncode == 0, result.stderr
    check = tiers("check")
    assert check.returncode == 1
    # DATABASE_URL, REDIS_URL and SESSION_KEY, in staging and in production
    assert check.stdout.count("error [secret-missing]") == 6
    assert "10 findings (6 errors, 4 warnings)" in check.stdout
    stock(tmp_path / "tiers.toml")
    check = tiers("check")
    assert check.returncode == 0, check.stdout + check.stderr
    # staging and production on fly.io and Pages, whose drivers are not installed here
    assert check.stdout.count("warning [platform-not-installed]") == 4
    assert "4 findings (4 warnings)" in check.stdout


def test_every_broken_reference_is_reported(edit: Edit) -> None:
    path = edit(
        ("--port $PORT", "--port ${PORT}"), ('namespace = "fm.plyr.dev"', 'namespace = "${x.y}"')
    )
    message = error_of(path)
    assert "services.backend.processes.app: ${PORT} refers to nothing" in message
    assert "environments.development.namespace: ${x.y} refers to nothing" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'vm = { size = "shared-cpu-1x", memory = "256mb" }',
            'vm = "big"',
            "environments.staging.backend.vm: expected a table, like { key = value }, not a string",
        ),
        (
            "cookie_auth = true",
            'cookie_auth = true\nname = "x"',
            "environments.development.name: an environment is named by its table",
        ),
        ("[costs]\n", "[costs]\nb = [5]\n", "costs.b: "),
        (
            "[services.backend]",
            "[servics.backend]",
            "servics: unknown key 'servics'; did you mean 'services'?",
        ),
        (
            'trigger = "local"',
            'trigger = "lcoal"',
            "environments.development.trigger: did you mean 'local'?",
        ),
    ],
)
def test_messages_speak_toml_not_python(edit: Edit, old: str, new: str, expected: str) -> None:
    message = error_of(edit((old, new)))
    assert expected in message
    assert "Input should be" not in message or "costs" in expected
    assert "instance of" not in message


def test_a_binding_for_an_undeclared_service_says_to_declare_it(tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(
        '[project]\nname = "x"\n\n[environments.staging]\ntrigger = "manual"\n\n'
        '[environments.staging.api]\nplatform = "fly"\n'
    )
    assert "declare it first as [services.api]" in error_of(path)
    assert f"{path}:7:1 environments.staging.api:" in error_of(path)


def test_a_missing_key_points_into_the_table_that_lacks_it(tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(
        '# a comment\n[project]\nname = "x"\n\n[environments.staging.backend]\nplatform = "fly"\n'
    )
    assert f"{path}:5:1 environments.staging.trigger: required key is missing" in error_of(path)


def test_syntax_error_at_the_end_of_the_file_points_there(plyr: Path) -> None:
    text = plyr.read_text() + "\nbroken = "
    plyr.write_text(text)
    lines = text.split("\n")
    assert f"tiers.toml:{len(lines)}:{len(lines[-1]) + 1} invalid TOML" in error_of(plyr)


def test_columns_count_characters_not_bytes(edit: Edit) -> None:
    path = edit(('name = "plyr-dev", url_secret', 'name = "日本語", url = 3, url_secret'))
    line = next(t for t in path.read_text().splitlines() if "日本語" in t)
    column = line.index("url = 3") + 1
    assert f":{column} environments.development.database.url: expected a string" in error_of(path)


def test_a_byte_order_mark_is_fine(plyr: Path) -> None:
    plyr.write_bytes(b"\xef\xbb\xbf" + plyr.read_bytes())
    assert load(plyr).config.project.name == "plyr"


def test_a_directory_is_not_a_config(tmp_path: Path) -> None:
    assert "is a directory, not a file" in error_of(tmp_path)
