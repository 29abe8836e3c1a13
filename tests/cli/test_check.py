"""`tiers check` as a user runs it: exit codes, the three formats, rule listing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.checks.test_rules import BREAKS
from tests.checks.test_store import stock
from tests.conftest import Edit, tiers
from tests.secrets.helpers import own_home
from tiers.checks import RULES
from tiers.secrets import Store

__all__ = ["own_home"]  # a home, and so a key, of each test's own


@pytest.fixture(autouse=True)
def secrets_set(plyr: Path, own_home: Path) -> None:
    """The seed with each tier's secrets set in its store (the store's rules: test_store.py)."""
    stock(plyr)


def test_clean_example_exits_0_and_shows_cookie_scopes(plyr: Path) -> None:
    result = tiers("check")
    assert result.returncode == 0
    assert "staging Domain=.plyr.fm, production host-only (__Host- prefix)" in result.stdout
    # its fly.io and Pages bindings: no driver for them is installed here
    assert result.stdout.rstrip().endswith("4 findings (4 warnings) in 3 environments")
    assert (
        tiers("check", "--ignore", "platform-not-installed")
        .stdout.rstrip()
        .endswith("no findings in 3 environments")
    )


def test_a_finding_exits_1_with_location_message_and_fix(edit: Edit) -> None:
    edit(*BREAKS["shared-namespace"])
    result = tiers("check", "--ignore", "platform-not-installed")
    assert result.returncode == 1
    first, fix = result.stdout.splitlines()[:2]
    assert first.startswith("tiers.toml:")
    assert first.endswith(
        "error [shared-namespace] staging and production share the namespace fm.plyr.stg"
    )
    assert fix.strip().startswith("fix: give each environment its own namespace")
    assert "1 finding (1 error)" in result.stdout


@pytest.mark.parametrize(
    ("fail_on", "code"), [("info", 1), ("warning", 1), ("error", 0), ("never", 0)]
)
def test_fail_on_sets_the_threshold(edit: Edit, fail_on: str, code: int) -> None:
    edit(*BREAKS["access-unreachable-rule"])  # a warning
    assert tiers("check", "--fail-on", fail_on).returncode == code


def test_ignore_skips_a_rule_and_refuses_unknown_ids(edit: Edit) -> None:
    edit(*BREAKS["shared-bucket"])
    assert tiers("check", "--ignore", "shared-bucket").returncode == 0
    result = tiers("check", "--ignore", "shared-buckets")
    assert result.returncode == 2
    assert "--ignore shared-buckets: no rule 'shared-buckets'; did you mean 'shared-bucket'?" in (
        result.stderr
    )


def test_json_has_stable_keys(edit: Edit) -> None:
    edit(*BREAKS["redis-without-tls"])
    result = tiers("check", "--format", "json", "--ignore", "platform-not-installed")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert set(report) == {"findings", "cookie_scopes", "summary"}
    (finding,) = report["findings"]
    assert set(finding) == {
        "rule",
        "severity",
        "message",
        "hint",
        "key",
        "environments",
        "location",
    }
    assert finding["rule"] == "redis-without-tls"
    assert finding["environments"] == ["production"]
    assert finding["key"] == "environments.production.redis.url"
    assert report["summary"] == {"error": 1, "warning": 0, "info": 0}


def test_sarif_is_a_code_scanning_report(edit: Edit) -> None:
    edit(*BREAKS["shared-app"])
    result = tiers("check", "--format", "sarif", "--ignore", "platform-not-installed")
    sarif = json.loads(result.stdout)
    assert sarif["version"] == "2.1.0"
    (run,) = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    (found,) = run["results"]
    assert rules[found["ruleIndex"]]["id"] == found["ruleId"] == "shared-app"
    region = found["locations"][0]["physicalLocation"]["region"]
    line = Path("tiers.toml").read_text().splitlines()[region["startLine"] - 1]
    assert line == 'app = "relay-api-staging"'
    assert found["level"] == "error"


def test_list_rules_documents_every_rule_from_the_table() -> None:
    result = tiers("check", "--list-rules")
    assert result.returncode == 0
    for rule in RULES.values():
        assert f"{rule.id} ({rule.severity}, {rule.group}): {rule.title}" in result.stdout
        assert f"fix: {rule.hint}" in result.stdout
    listed = json.loads(tiers("check", "--list-rules", "--format", "json").stdout)
    assert [r["id"] for r in listed] == list(RULES)


def test_config_from_environment_variable(plyr: Path, tmp_path: Path) -> None:
    moved = plyr.rename(tmp_path / "elsewhere.toml")
    result = tiers("check", env={"TIERS_CONFIG": str(moved)})
    assert result.returncode == 0, result.stderr


def test_a_project_can_ignore_a_rule_in_tiers_toml(plyr: Path) -> None:
    from tests.checks.test_rules import STAGING_ACCESS

    text = STAGING_ACCESS.sub("", plyr.read_text(), count=1)
    plyr.write_text(text)
    assert tiers("check", "--fail-on", "warning").returncode == 1
    ignore = '["staging-unprotected", "platform-not-installed"]'
    plyr.write_text(text + f"\n[checks]\nignore = {ignore}\n")
    result = tiers("check", "--fail-on", "warning")
    assert result.returncode == 0
    assert "no findings" in result.stdout
    plyr.write_text(text + '\n[checks]\nignore = ["staging-unprotectd"]\n')
    result = tiers("check")
    assert result.returncode == 2
    assert (
        "checks.ignore[0]: no rule 'staging-unprotectd'; did you mean 'staging-unprotected'?"
        in result.stderr
    )


def test_warnings_are_shown_but_only_errors_fail_by_default(edit: Edit) -> None:
    edit(*BREAKS["access-unreachable-rule"])
    result = tiers("check")
    assert result.returncode == 0
    assert "warning [access-unreachable-rule]" in result.stdout


def test_json_flag_is_the_json_format(edit: Edit) -> None:
    edit(*BREAKS["shared-bucket"])
    result = tiers("check", "--json", "--ignore", "platform-not-installed")
    assert json.loads(result.stdout)["findings"][0]["rule"] == "shared-bucket"


def test_secrets_in_urls_never_reach_any_output(edit: Edit) -> None:
    staging = '"redis://default:hunter2@plyr-redis-stg.internal:6379"'
    edit(
        ('"redis://plyr-redis-stg.internal:6379"', staging),
        ('"redis://plyr-redis.internal:6379"', staging),
    )
    outputs = [tiers("check", "--format", f) for f in ("text", "json", "sarif")]
    outputs += [tiers("docs"), tiers("ls", "--json")]
    assert "shared-redis" in outputs[0].stdout
    assert "secret-in-config" in outputs[0].stdout
    for result in outputs:
        assert "hunter2" not in result.stdout + result.stderr


def test_one_value_in_two_tiers_fails_check_until_generate_all(plyr: Path) -> None:
    store = Store(plyr.parent)
    for tier in ("staging", "production"):
        store.set(tier, {"OAUTH_ENCRYPTION_KEY": "the-one-key-both-tiers-use"})
    result = tiers("check", "--ignore", "platform-not-installed")
    assert result.returncode == 1
    assert (
        "error [secret-reused] staging's OAUTH_ENCRYPTION_KEY and production's "
        "OAUTH_ENCRYPTION_KEY hold the same value"
    ) in result.stdout
    assert "the-one-key-both-tiers-use" not in result.stdout + result.stderr
    assert tiers("secrets", "generate", "--all", "OAUTH_ENCRYPTION_KEY").returncode == 0
    assert tiers("check", "--ignore", "platform-not-installed").returncode == 0
