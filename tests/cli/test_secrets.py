"""`tiers secrets …` as a user runs it: what each command prints, exits with and writes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pyrage
import pytest
import yaml
from cryptography.fernet import Fernet

from tests.secrets import helpers
from tests.secrets.helpers import as_ci, keys_txt, new_key, ok, tiers

own_home = helpers.own_home  # each test here has a home of its own (autouse)
project = helpers.project

STAGING = Path("secrets/staging.yaml")


@pytest.fixture
def staging(project: Path) -> Path:
    """staging's secrets file, made by `tiers secrets init staging`."""
    ok("secrets", "init", "staging")
    return project / STAGING


def test_init_makes_a_private_key_and_the_tiers_file(project: Path, own_home: Path) -> None:
    out = ok("secrets", "init", "staging").splitlines()
    public = out[1].removeprefix("your public key: ")
    assert out == [
        "created your age key in ~/.config/tiers/keys.txt (mode 0600: back it up, never commit it)",
        f"your public key: {public}",
        "staging: created secrets/staging.yaml, readable by you; add the tier's CI key with "
        "`tiers secrets recipients add staging AGE_PUBLIC_KEY`",
    ]
    assert stat.S_IMODE(keys_txt(own_home).stat().st_mode) == 0o600
    assert ok("secrets", "recipients", "ls", "staging") == f"{public}\n"
    again = ok("secrets", "init", "staging").splitlines()
    assert again == [
        "your age key: ~/.config/tiers/keys.txt",
        f"your public key: {public}",
        "staging: secrets/staging.yaml exists, and you are one of its recipients",
    ]


def test_init_by_a_newcomer_says_who_must_add_them(staging: Path, tmp_path: Path) -> None:
    newcomer = {"HOME": str(tmp_path / "bo"), "XDG_CONFIG_HOME": str(tmp_path / "bo" / "cfg")}
    before = staging.read_text()
    out = ok("secrets", "init", "staging", env=newcomer).splitlines()
    public = out[1].removeprefix("your public key: ")
    assert out[2] == (
        "staging: secrets/staging.yaml exists; ask one of its recipients to run "
        f"`tiers secrets recipients add staging {public}`"
    )
    assert staging.read_text() == before


def test_set_reads_stdin_and_get_prints_it(staging: Path) -> None:
    assert ok("secrets", "set", "staging", "SECRET_KEY", input="s3cr3t\n") == (
        "staging: SECRET_KEY created\n"
    )
    assert ok("secrets", "set", "staging", "SECRET_KEY", input="s3cr3t") == (
        "staging: SECRET_KEY unchanged\n"
    )
    assert ok("secrets", "set", "staging", "SECRET_KEY", input="other\r\n") == (
        "staging: SECRET_KEY replaced\n"
    )
    assert ok("secrets", "get", "staging", "SECRET_KEY") == "other\n"
    assert json.loads(ok("secrets", "get", "staging", "SECRET_KEY", "--json")) == {
        "environment": "staging",
        "name": "SECRET_KEY",
        "value": "other",
    }
    assert "other" not in staging.read_text()


def test_a_value_on_the_command_line_is_refused(staging: Path) -> None:
    before = staging.read_text()
    done = tiers("secrets", "set", "staging", "SECRET_KEY", "s3cr3t")
    assert done.returncode == 2
    assert "Got unexpected extra argument(s) (s3cr3t)" in done.stderr
    assert staging.read_text() == before


def test_ls_shows_names_who_and_when_never_values(staging: Path) -> None:
    ok("secrets", "set", "staging", "DATABASE_URL", input="postgresql://u:pw@db/stg")
    out = ok("secrets", "ls", "staging")
    assert "pw@db" not in out
    header, row = out.splitlines()
    assert header.split() == ["NAME", "SET", "BY", "FINGERPRINT"]
    assert row.split()[0] == "DATABASE_URL"
    assert row.split()[3:5] == ["UTC", "ana@plyr.fm"]  # git's user.email
    listed = json.loads(ok("secrets", "ls", "staging", "--json"))
    assert listed["environment"] == "staging"
    assert listed["file"] == "secrets/staging.yaml"
    (entry,) = listed["secrets"]
    assert sorted(entry) == ["by", "fingerprint", "name", "set"]
    assert entry["by"] == "ana@plyr.fm"
    assert entry["fingerprint"].startswith(row.split()[5])


def test_generate_gives_each_tier_its_own_value(project: Path) -> None:
    for environment in ("staging", "production"):
        ok("secrets", "init", environment)
    ok("secrets", "generate", "--all", "OAUTH_ENCRYPTION_KEY", "--format", "fernet")
    keys = {
        env: ok("secrets", "get", env, "OAUTH_ENCRYPTION_KEY").strip()
        for env in ("staging", "production")
    }
    assert keys["staging"] != keys["production"]
    for key in keys.values():
        Fernet(key)  # a key Fernet takes
    assert "the same value" not in ok("secrets", "diff", "staging", "production")
    ok("secrets", "generate", "staging", "TOKEN", "--format", "hex", "--bytes", "16")
    assert len(ok("secrets", "get", "staging", "TOKEN").strip()) == 32
    ok("secrets", "generate", "staging", "URLSAFE")
    assert len(ok("secrets", "get", "staging", "URLSAFE").strip()) == 43  # 32 bytes


def test_generate_all_lists_the_tiers_it_skipped(project: Path) -> None:
    for environment in ("staging", "production"):
        ok("secrets", "init", environment)
    out = ok("secrets", "generate", "--all", "SECRET_KEY")
    assert out == (
        "staging: SECRET_KEY created\n"
        "production: SECRET_KEY created\n"
        "development: skipped (no secrets/development.yaml)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["staging", "TOKEN", "--bytes", "8"],
            "--bytes 8: too few to be a secret; use at least 16",
        ),
        (
            ["staging", "TOKEN", "--format", "fernet", "--bytes", "64"],
            "--bytes 64: a Fernet key is 32 bytes; leave --bytes out",
        ),
        (
            ["staging", "TOKEN", "--format", "base32"],
            "--format base32: not a format; use hex, base64, urlsafe, fernet",
        ),
        (["TOKEN"], "give ENV NAME, or --all NAME"),
        (["--all", "staging", "TOKEN"], "give ENV NAME, or --all NAME"),
    ],
)
def test_generate_refuses_bad_options(staging: Path, args: list[str], message: str) -> None:
    before = staging.read_text()
    done = tiers("secrets", "generate", *args)
    assert (done.returncode, done.stderr) == (2, f"error: {message}\n")
    assert staging.read_text() == before


def test_rm_removes_one_secret(staging: Path) -> None:
    ok("secrets", "set", "staging", "A", input="1")
    ok("secrets", "set", "staging", "B", input="2")
    assert ok("secrets", "rm", "staging", "A") == "staging: A removed\n"
    assert [s["name"] for s in json.loads(ok("secrets", "ls", "staging", "--json"))["secrets"]] == [
        "B"
    ]
    before = staging.read_text()
    done = tiers("secrets", "rm", "staging", "A")
    assert (done.returncode, done.stderr) == (2, "error: staging has no secret A; it has: B\n")
    assert staging.read_text() == before


EDITOR = """\
import os, stat, sys
path = sys.argv[1]
with open(os.environ["EDITOR_LOG"], "w") as log:
    log.write(f"{path} {stat.S_IMODE(os.stat(path).st_mode):o}\\n")
text = open(path).read()
open(path, "w").write(text.replace("A='1'", "A='one'") + os.environ.get("EDITOR_ADD", ""))
"""


def test_edit_decrypts_to_a_private_file_and_removes_it(staging: Path, tmp_path: Path) -> None:
    ok("secrets", "set", "staging", "A", input="1")
    ok("secrets", "set", "staging", "B", input="2")
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    log = tmp_path / "editor.log"
    env = {"EDITOR": f"{sys.executable} {script}", "EDITOR_LOG": str(log), "EDITOR_ADD": "C='3'\n"}
    assert ok("secrets", "edit", "staging", env=env) == "staging: saved\n"
    path, mode = log.read_text().split()
    assert mode == "600"
    assert not Path(path).exists()
    assert json.loads(ok("secrets", "export", "staging", "--format", "json")) == {
        "A": "one",
        "B": "2",
        "C": "3",
    }
    assert ok("secrets", "edit", "staging", env={**env, "EDITOR_ADD": ""}) == (
        "staging: no changes\n"
    )


def test_an_edit_that_breaks_the_file_changes_nothing(staging: Path, tmp_path: Path) -> None:
    ok("secrets", "set", "staging", "A", input="1")
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    env = {
        "EDITOR": f"{sys.executable} {script}",
        "EDITOR_LOG": str(tmp_path / "log"),
        "EDITOR_ADD": "lower_case='x'\n",
    }
    before = staging.read_text()
    done = tiers("secrets", "edit", "staging", env=env)
    assert done.returncode == 2
    assert done.stderr == (
        "error: staging.env:4: 'lower_case' is not an environment variable name (like "
        "DATABASE_URL): use upper-case letters, digits and _, not starting with a digit; "
        "staging's secrets are unchanged\n"
    )
    assert staging.read_text() == before
    assert not Path((tmp_path / "log").read_text().split()[0]).exists()


def test_import_reads_dotenv_as_written(staging: Path, tmp_path: Path) -> None:
    dotenv = tmp_path / "prod.env"
    dotenv.write_text(
        "# from the old dashboard\n"
        "export DATABASE_URL=postgresql://u:p@db/plyr\n"
        'PRIVATE_KEY="-----BEGIN KEY-----\nabc\n-----END KEY-----"\n'
        "LITERAL='${HOME}/x'\n"
    )
    assert ok("secrets", "import", "staging", str(dotenv)) == (
        "staging: DATABASE_URL created\nstaging: PRIVATE_KEY created\nstaging: LITERAL created\n"
    )
    assert json.loads(ok("secrets", "export", "staging", "--format", "json")) == {
        "DATABASE_URL": "postgresql://u:p@db/plyr",
        "PRIVATE_KEY": "-----BEGIN KEY-----\nabc\n-----END KEY-----",
        "LITERAL": "${HOME}/x",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\nthis is not dotenv\n", "{file}:2: not a NAME=value line"),
        ("A=1\nB\n", "{file}:2: B has no value (write B=…)"),
        ("A=1\nA=2\n", "{file}:2: A is set twice (first on line 1)"),
        (
            "db-url=x\n",
            "{file}:1: 'db-url' is not an environment variable name (like DATABASE_URL): use "
            "upper-case letters, digits and _, not starting with a digit",
        ),
    ],
)
def test_a_bad_dotenv_file_imports_nothing(
    staging: Path, tmp_path: Path, text: str, message: str
) -> None:
    dotenv = tmp_path / "bad.env"
    dotenv.write_text(text)
    before = staging.read_text()
    done = tiers("secrets", "import", "staging", str(dotenv))
    assert (done.returncode, done.stderr) == (2, f"error: {message.format(file=dotenv)}\n")
    assert staging.read_text() == before


TRICKY = {"QUOTE": "it's", "BACKSLASH": "a\\b\\\\c", "LINES": "one\ntwo", "DOLLAR": "$HOME ${X}"}


def test_export_round_trips_through_dotenv_and_shell(staging: Path, tmp_path: Path) -> None:
    for name, value in TRICKY.items():
        ok("secrets", "set", "staging", name, input=value)
    dotenv = tmp_path / "out.env"
    dotenv.write_text(ok("secrets", "export", "staging"))
    ok("secrets", "init", "production")
    ok("secrets", "import", "production", str(dotenv))
    assert json.loads(ok("secrets", "export", "production", "-f", "json")) == TRICKY
    shell = ok("secrets", "export", "staging", "--format", "shell")
    dumped = subprocess.run(
        [
            "sh",
            "-c",
            f'{shell}\n"{sys.executable}" -c "import os, json; '
            f'print(json.dumps({{k: os.environ[k] for k in {list(TRICKY)!r}}}))"',
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert json.loads(dumped.stdout) == TRICKY


def test_export_refuses_what_docker_cannot_hold(staging: Path) -> None:
    ok("secrets", "set", "staging", "PLAIN", input="x")
    assert ok("secrets", "export", "staging", "--format", "docker") == "PLAIN=x\n"
    ok("secrets", "set", "staging", "PEM", input="a\nb")
    done = tiers("secrets", "export", "staging", "--format", "docker")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: cannot export staging as docker: PEM holds a line break, which a Docker "
        "--env-file cannot carry; use --format dotenv, json or shell\n"
    )


def test_run_gives_the_command_the_tiers_secrets(staging: Path) -> None:
    ok("secrets", "set", "staging", "SECRET_KEY", input="s3cr3t")
    check = "import os, sys; sys.exit(0 if os.environ['SECRET_KEY'] == 's3cr3t' else 9)"
    assert tiers("secrets", "run", "staging", "--", sys.executable, "-c", check).returncode == 0
    code = tiers("secrets", "run", "staging", "--", sys.executable, "-c", "raise SystemExit(7)")
    assert code.returncode == 7
    missing = tiers("secrets", "run", "staging", "--", "no-such-command-here")
    assert (missing.returncode, missing.stderr) == (
        2,
        "error: no-such-command-here: command not found\n",
    )


def test_diff_compares_by_name_and_fingerprint(project: Path) -> None:
    for environment in ("staging", "production"):
        ok("secrets", "init", environment)
    ok("secrets", "set", "staging", "ONLY_STAGING", input="1")
    ok("secrets", "set", "production", "ONLY_PRODUCTION", input="1")
    ok("secrets", "set", "staging", "REUSED", input="same")
    ok("secrets", "set", "production", "REUSED", input="same")
    ok("secrets", "set", "staging", "OWN", input="a")
    ok("secrets", "set", "production", "OWN", input="b")
    assert ok("secrets", "diff", "staging", "production") == (
        "only in staging: ONLY_STAGING\n"
        "only in production: ONLY_PRODUCTION\n"
        "the same value in both: REUSED\n"
        "different values: OWN\n"
    )
    assert json.loads(ok("secrets", "diff", "staging", "production", "--json")) == {
        "a": "staging",
        "b": "production",
        "only_in_a": ["ONLY_STAGING"],
        "only_in_b": ["ONLY_PRODUCTION"],
        "same_value": ["REUSED"],
        "different_value": ["OWN"],
        "unknown": [],
    }


def test_recipients_add_and_rm(staging: Path, tmp_path: Path) -> None:
    ok("secrets", "set", "staging", "A", input="1")
    secret, public = new_key()
    ci = as_ci(secret, tmp_path)
    assert tiers("secrets", "get", "staging", "A", env=ci).returncode == 2
    assert ok("secrets", "recipients", "add", "staging", public) == f"staging: {public} added\n"
    assert ok("secrets", "recipients", "add", "staging", public) == (
        f"staging: {public} was a recipient already\n"
    )
    assert ok("secrets", "get", "staging", "A", env=ci) == "1\n"
    listed = json.loads(ok("secrets", "recipients", "ls", "staging", "--json"))
    assert listed["recipients"][1] == public
    assert ok("secrets", "recipients", "rm", "staging", public).startswith(
        f"staging: {public} removed, and a new data key made;"
    )
    assert tiers("secrets", "get", "staging", "A", env=ci).returncode == 2


def test_the_last_recipient_cannot_be_removed(staging: Path) -> None:
    (mine,) = json.loads(ok("secrets", "recipients", "ls", "staging", "--json"))["recipients"]
    before = staging.read_text()
    done = tiers("secrets", "recipients", "rm", "staging", mine)
    assert (done.returncode, done.stderr) == (
        2,
        f"error: {mine} is staging's only recipient: no one could read it; add another first "
        "(tiers secrets recipients add staging AGE_PUBLIC_KEY)\n",
    )
    _, other = new_key()
    done = tiers("secrets", "recipients", "rm", "staging", other)
    assert (done.returncode, done.stderr) == (
        2,
        f"error: {other} is not a recipient of staging; its recipients: {mine}\n",
    )
    done = tiers("secrets", "recipients", "add", "staging", "age1nope")
    assert (done.returncode, done.stderr) == (
        2,
        "error: 'age1nope' is not an age public key (age1… , as `tiers secrets init` prints)\n",
    )
    assert staging.read_text() == before


# --- bad input: a clear error, exit 2, the file untouched


def _refused(path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    before = path.read_bytes() if path.exists() else None
    done = tiers(*args, input="canary-4f1c", env=env)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert (path.read_bytes() if path.exists() else None) == before
    assert "canary-4f1c" not in done.stderr
    return done.stderr


def test_a_wrong_key_names_the_recipients(project: Path, tmp_path: Path) -> None:
    ok("secrets", "init", "production")
    ok("secrets", "set", "production", "A", input="1")
    (mine,) = json.loads(ok("secrets", "recipients", "ls", "production", "--json"))["recipients"]
    secret, public = new_key()
    error = _refused(
        project / "secrets" / "production.yaml",
        "secrets",
        "set",
        "production",
        "A",
        env=as_ci(secret, tmp_path),
    )
    assert error == (
        f"error: no identity here can read production's secrets; recipients: {mine}; keys "
        f"here: {public} (SOPS_AGE_KEY)\n"
    )


def test_no_key_at_all_says_how_to_make_one(staging: Path, tmp_path: Path) -> None:
    (mine,) = json.loads(ok("secrets", "recipients", "ls", "staging", "--json"))["recipients"]
    nobody = {"HOME": str(tmp_path / "nobody"), "XDG_CONFIG_HOME": str(tmp_path / "nobody")}
    assert _refused(staging, "secrets", "get", "staging", "A", env=nobody) == (
        f"error: no identity here can read staging's secrets; recipients: {mine}; no age key "
        "here (looked in SOPS_AGE_KEY, SOPS_AGE_KEY_FILE and ~/tiers/keys.txt): run "
        "`tiers secrets init ENV` to make one, and ask a recipient to add it\n"
    )


def test_a_corrupted_file(staging: Path) -> None:
    staging.write_text(staging.read_text().replace("sops:\n", "sops: [\n", 1))
    assert _refused(staging, "secrets", "set", "staging", "A") == (
        "error: secrets/staging.yaml:3:9: not valid YAML; restore it from git "
        "(git checkout -- secrets/staging.yaml)\n"
    )
    staging.write_text("A: 1\n")
    assert _refused(staging, "secrets", "ls", "staging") == (
        "error: secrets/staging.yaml: not a SOPS file (no sops metadata); restore it from git "
        "(git checkout -- secrets/staging.yaml)\n"
    )


def test_a_tampered_mac(staging: Path) -> None:
    ok("secrets", "set", "staging", "A", input="1")
    text = staging.read_text()
    old = yaml.safe_load(text)["tiers_unencrypted"].split("by: ")[1].split(",")[0]
    staging.write_text(
        text.replace(f"by: {old}", "by: mallory@example.com")
    )  # plaintext, but MACed
    assert _refused(staging, "secrets", "get", "staging", "A") == (
        "error: secrets/staging.yaml: the MAC does not match the values: the file was changed "
        "without its key; restore it from git (git checkout -- secrets/staging.yaml)\n"
    )


def test_a_file_without_recipients(staging: Path) -> None:
    data = yaml.safe_load(staging.read_text())
    data["sops"]["age"] = []
    staging.write_text(yaml.safe_dump(data))
    assert _refused(staging, "secrets", "set", "staging", "A") == (
        "error: secrets/staging.yaml has no age recipients (sops.age is empty), so no one can "
        "read it; restore it from git (git checkout -- secrets/staging.yaml)\n"
    )


@pytest.mark.parametrize("name", ["db_url", "1PASSWORD", "A-B", "tiers_unencrypted"])
def test_a_name_that_is_not_an_environment_variable(staging: Path, name: str) -> None:
    assert _refused(staging, "secrets", "set", "staging", name) == (
        f"error: {name!r} is not an environment variable name (like DATABASE_URL): use "
        "upper-case letters, digits and _, not starting with a digit\n"
    )


def test_an_unknown_environment(staging: Path, project: Path) -> None:
    assert _refused(project / "secrets" / "stagign.yaml", "secrets", "set", "stagign", "A") == (
        "error: no environment 'stagign' in tiers.toml; known: development, staging, production\n"
    )
    assert _refused(project / "secrets" / "production.yaml", "secrets", "ls", "production") == (
        "error: production has no secrets yet (secrets/production.yaml does not exist); run "
        "`tiers secrets init production`\n"
    )


def test_an_empty_value(staging: Path) -> None:
    done = tiers("secrets", "set", "staging", "A", input="\n")
    assert (done.returncode, done.stderr) == (
        2,
        "error: A: the value is empty; remove a secret with `tiers secrets rm`\n",
    )


def test_json_errors_are_json_too(project: Path) -> None:
    done = tiers("secrets", "ls", "staging", "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]["exit_code"] == 2


def test_a_corrupted_tier_stops_writes_to_the_others(staging: Path, project: Path) -> None:
    ok("secrets", "init", "production")
    production = project / "secrets" / "production.yaml"
    production.write_text("garbage: [\n")
    assert _refused(staging, "secrets", "set", "staging", "A") == (
        "error: secrets/production.yaml:2:1: not valid YAML; restore it from git "
        "(git checkout -- secrets/production.yaml)\n"
    )


def test_a_damaged_data_key(staging: Path) -> None:
    (mine,) = json.loads(ok("secrets", "recipients", "ls", "staging", "--json"))["recipients"]
    data = yaml.safe_load(staging.read_text())
    _, other = new_key()
    stranger = pyrage.x25519.Recipient.from_str(other)
    data["sops"]["age"][0]["enc"] = pyrage.encrypt(b"x" * 32, [stranger], armored=True).decode()
    staging.write_text(yaml.safe_dump(data))
    assert _refused(staging, "secrets", "get", "staging", "A") == (
        f"error: secrets/staging.yaml: the data key wrapped for {mine} does not open with that "
        "key; restore it from git (git checkout -- secrets/staging.yaml)\n"
    )
