"""The gate's pages in a real browser: Debian's Chromium, driven by Playwright.

A protected staging on two localhost ports, served by the local platform's own Caddy
(:class:`tiers.platforms.local.caddy.Caddy`, with the gate's handlers from
:func:`tiers.platforms.local.gate.front` in front of each site, as ``tiers up`` puts
them): a frontend whose page fetches the API with ``credentials: "include"``, and an API
answering who it sees. The PIN goes out by SMTP to an ``aiosmtpd`` server of the test;
GitHub is the local stand-in. Every request the browser makes is recorded, and must go to
one of the test's own hosts.

Chromium is never downloaded: Playwright starts ``/usr/bin/chromium`` (``scripts/test``
installs it on CI; without it these tests skip, saying so).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller

from tests.gate.github_standin import Email, GitHubStandIn, User
from tests.gate.service import eventually, running_gate, tiers_cli, write_config
from tests.pipeline.example import reserved_ports
from tiers.platforms.local.caddy import Caddy
from tiers.platforms.local.gate import front

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright  # noqa: E402

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
WAIT_MS = 30_000  # patience on a busy machine, not a timed assertion
expect.set_options(timeout=WAIT_MS)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>plyr staging</title>
<meta name="api" content="{api}">
<link rel="icon" href="data:,">
</head>
<body>
<h1>plyr</h1>
<p id="api">asking the API…</p>
<a href="/.tiers/access/logout">Sign out</a>
<script src="/app.js"></script>
</body>
</html>
"""
SCRIPT = """
const api = document.querySelector('meta[name="api"]').content;
const out = document.getElementById("api");
fetch(api + "/whoami", { credentials: "include" })
  .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
  .then((body) => { out.textContent = "API says: " + body.identity; })
  .catch(() => { out.textContent = "API refused"; });
"""


class Inbox:
    """What the test's SMTP server received: (recipients, the message as text)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content  # type: ignore[attr-defined]
        self.messages.append((list(envelope.rcpt_tos), content.decode()))  # type: ignore[attr-defined]
        return "250 OK"

    def code_for(self, address: str, count: int = 1) -> str:
        """The code in the ``count``-th mail to ``address`` (waiting for it)."""

        def arrived() -> list[str]:
            found = [body for to, body in self.messages if to == [address]]
            return found if len(found) >= count else []

        body = eventually(arrived, f"mail number {count} to {address}")[count - 1]
        match = re.search(r"Subject: (\d{6}) is your sign-in code for plyr staging", body)
        assert match is not None, body
        return match.group(1)


def _api_server(origin: str) -> ThreadingHTTPServer:
    """The "API": who the gate says is asking, readable by the frontend's origin."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            who = self.headers.get("Tiers-Access-Identity", "")
            body = json.dumps({"identity": who}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Vary", "Origin")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@dataclass
class Staging:
    web: str
    api: str
    project: Path
    inbox: Inbox
    hub: GitHubStandIn
    hosts: set[str]
    """Every host:port the browser may talk to: the two sites and the GitHub stand-in."""
    requests: list[str] = field(default_factory=list)

    def log(self) -> list[dict[str, str]]:
        done = tiers_cli("access", "log", "staging", "--json", cwd=self.project)
        assert done.returncode == 0, done.stderr
        events: list[dict[str, str]] = json.loads(done.stdout)
        return events


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def staging(tmp_path: Path) -> Iterator[Staging]:
    inbox = Inbox()
    with reserved_ports(4) as (web_port, api_port, smtp_port, admin_port):
        web, api = f"http://localhost:{web_port}", f"http://localhost:{api_port}"
        users = [
            User("Alice", emails=[Email("alice@plyr.fm")]),
            User("mallory", emails=[Email("mallory@evil.example")]),
        ]
        callback = f"{web}/.tiers/access/github/callback"
        smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
        upstream = _api_server(web)
        threading.Thread(target=upstream.serve_forever, daemon=True).start()
        smtp.start()
        caddy = Caddy(tmp_path / "caddy", admin_port)
        try:
            with GitHubStandIn(users, callback=callback) as hub:
                github = (
                    f'github = {{ client_id = "{hub.client_id}", url = "{hub.url}", '
                    f'api_url = "{hub.api_url}" }}\nlogin = ["otp", "github"]\n'
                )
                write_config(tmp_path, smtp_port=smtp_port, api=api, web=web, extra=github)
                secret = {"GATE_GITHUB_CLIENT_SECRET": hub.client_secret}
                with running_gate(tmp_path, env=secret) as gate:
                    _serve(caddy, tmp_path, gate.url.split("//", 1)[1], web, api, upstream)
                    hosts = {f"localhost:{web_port}", f"localhost:{api_port}"}
                    hosts.add(urlsplit(hub.url).netloc)
                    yield Staging(web, api, tmp_path, inbox, hub, hosts)
        finally:
            caddy.stop()
            smtp.stop()
            upstream.shutdown()
            upstream.server_close()


def _serve(
    caddy: Caddy, folder: Path, gate: str, web: str, api: str, upstream: ThreadingHTTPServer
) -> None:
    site = folder / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE.format(api=api), encoding="utf-8")
    (site / "app.js").write_text(SCRIPT, encoding="utf-8")
    caddy.start()
    web_port, api_port = int(web.rsplit(":", 1)[1]), int(api.rsplit(":", 1)[1])
    caddy.set_site("staging-frontend", web_port, root_dir=site, front=front("web", gate))
    address = f"127.0.0.1:{upstream.server_address[1]}"
    caddy.set_site("staging-backend", api_port, upstream=address, front=front("api", gate))


@pytest.fixture
def context(chromium: Browser, staging: Staging) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) recording every request it makes."""
    context = chromium.new_context()
    context.set_default_timeout(WAIT_MS)
    context.on("request", lambda request: staging.requests.append(request.url))
    try:
        yield context
    finally:
        context.close()
    assert_only_own_hosts(staging)


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def assert_only_own_hosts(staging: Staging) -> None:
    assert staging.requests, "the browser made no requests at all"
    foreign = [
        url
        for url in staging.requests
        if not url.startswith("data:") and urlsplit(url).netloc not in staging.hosts
    ]
    assert foreign == [], f"requests to hosts that are not the test's own: {foreign}"


def assert_accessible(page: Page) -> None:
    """What every gate page must have: a language, a title naming the environment, a
    label for every field and a name for every button."""
    assert page.evaluate("document.documentElement.lang") == "en"
    assert "staging" in page.title() and "plyr" in page.title()
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map((e) => e.outerHTML)"""
    )
    assert unlabelled == []
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('button, a')]
            .filter((e) => !e.textContent.trim() && !e.getAttribute('aria-label'))
            .map((e) => e.outerHTML)"""
    )
    assert unnamed == []
    assert page.locator("h1").count() == 1


def focused(page: Page) -> str:
    return str(page.evaluate("document.activeElement && document.activeElement.id"))


def ask_for_code(page: Page, address: str) -> None:
    """On the login page, with the keyboard only: type the address, press Enter."""
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert_accessible(page)
    assert focused(page) == "email"
    email = page.get_by_label("Email address")
    assert email.get_attribute("type") == "email"
    assert email.get_attribute("autocomplete") == "email"
    page.keyboard.type(address)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_text("If this address may enter, a code is on its way")).to_be_visible()
    assert_accessible(page)


def enter_code(page: Page, code: str) -> None:
    assert focused(page) == "code"
    field = page.get_by_label("Code")
    assert field.get_attribute("autocomplete") == "one-time-code"
    assert field.get_attribute("inputmode") == "numeric"
    field.fill("")
    page.keyboard.type(code)
    page.keyboard.press("Enter")


def api_status(context: BrowserContext, staging: Staging) -> int:
    """What the API answers this browser's cookies (a request outside the page)."""
    return context.request.get(f"{staging.api}/whoami", max_redirects=0).status


def test_pin_by_email_one_login_for_frontend_and_api_then_logout(
    staging: Staging, context: BrowserContext, page: Page
) -> None:
    page.goto(f"{staging.web}/library?tab=mine")
    assert page.url == f"{staging.web}/.tiers/access/login?return=%2Flibrary%3Ftab%3Dmine"
    ask_for_code(page, "Ana@plyr.fm")
    expect(page.get_by_text("a code is on its way to ana@plyr.fm")).to_be_visible()

    enter_code(page, staging.inbox.code_for("ana@plyr.fm"))
    expect(page.locator("#api")).to_have_text("API says: ana@plyr.fm")
    assert page.url == f"{staging.web}/library?tab=mine"  # where the visitor asked to go
    assert page.title() == "plyr staging"
    assert api_status(context, staging) == 200
    (cookie,) = [c for c in context.cookies() if c["name"] == "tiers_session_staging"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["domain"] == "localhost"

    page.get_by_role("link", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
    assert_accessible(page)
    page.keyboard.press("Enter")  # the button has the focus
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    assert_accessible(page)
    assert [c for c in context.cookies() if c["name"] == "tiers_session_staging"] == []

    page.goto(f"{staging.web}/")
    assert page.url == f"{staging.web}/.tiers/access/login?return=%2F"
    assert api_status(context, staging) == 401
    kinds = [event["kind"] for event in staging.log()]
    assert kinds[:3] == ["logout", "login", "code-sent"]


def test_the_api_refuses_the_page_of_a_signed_out_browser(
    staging: Staging, context: BrowserContext, page: Page
) -> None:
    """Signed out in another tab: the page still open in the first asks the API again,
    with the same browser's cookies, and is refused."""
    page.goto(f"{staging.web}/")
    ask_for_code(page, "ana@plyr.fm")
    enter_code(page, staging.inbox.code_for("ana@plyr.fm"))
    expect(page.locator("#api")).to_have_text("API says: ana@plyr.fm")
    other = context.new_page()
    other.goto(f"{staging.web}/.tiers/access/logout")
    other.get_by_role("button", name="Sign out").click()
    expect(other.get_by_role("heading", name="You are signed out")).to_be_visible()
    page.evaluate(SCRIPT)  # the old tab asks the API again
    expect(page.locator("#api")).to_have_text("API refused")


def test_an_address_that_may_not_enter_gets_the_same_page_and_no_mail(
    staging: Staging, page: Page
) -> None:
    page.goto(f"{staging.web}/")
    ask_for_code(page, "eve@evil.example")
    expect(page.get_by_text("a code is on its way to eve@evil.example")).to_be_visible()
    # then someone who may: once their mail is in, the stranger's would have been too
    page.get_by_role("link", name="Use another address or send a new code").click()
    ask_for_code(page, "ana@plyr.fm")
    staging.inbox.code_for("ana@plyr.fm")
    assert [to for to, _ in staging.inbox.messages] == [["ana@plyr.fm"]]
    refused = [e for e in staging.log() if e["kind"] == "code-refused"]
    assert [e["identity"] for e in refused] == ["eve@evil.example"]


def test_a_wrong_code_is_announced_and_three_kill_the_code(
    staging: Staging, context: BrowserContext, page: Page
) -> None:
    page.goto(f"{staging.web}/tracks")
    ask_for_code(page, "bo@plyr.fm")
    code = staging.inbox.code_for("bo@plyr.fm")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(3):
        enter_code(page, wrong)
        live = page.locator("[aria-live]")
        expect(live).to_contain_text("That code is not right, or no longer works.")
        field = page.get_by_label("Code")
        assert field.get_attribute("aria-invalid") == "true"
        described = field.get_attribute("aria-describedby")
        assert described and "That code is not right" in page.locator(f"#{described}").inner_text()
        assert_accessible(page)
    enter_code(page, code)  # the right one, too late
    expect(page.locator("[aria-live]")).to_contain_text("That code is not right")
    assert api_status(context, staging) == 401

    page.get_by_role("link", name="Use another address or send a new code").click()
    ask_for_code(page, "bo@plyr.fm")
    enter_code(page, staging.inbox.code_for("bo@plyr.fm", count=2))
    expect(page).to_have_url(f"{staging.web}/tracks")
    expect(page.locator("#api")).to_have_text("API says: bo@plyr.fm")


def test_github_sign_in_with_the_keyboard(
    staging: Staging, context: BrowserContext, page: Page
) -> None:
    page.goto(f"{staging.web}/library")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    for _ in range(2):  # from the email field: past "Send me a code", to GitHub
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign in with GitHub"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Authorize the tiers gate")).to_be_visible()
    assert page.url.startswith(f"{staging.hub.url}/login/oauth/authorize?")
    page.get_by_label("Signed in as").select_option("Alice")
    page.get_by_role("button", name="Authorize").click()
    expect(page.locator("#api")).to_have_text("API says: alice@plyr.fm")
    assert page.url == f"{staging.web}/library"
    assert api_status(context, staging) == 200


def test_github_cancelled_says_so_on_the_login_page(
    staging: Staging, context: BrowserContext, page: Page
) -> None:
    page.goto(f"{staging.web}/library")
    page.get_by_role("link", name="Sign in with GitHub").click()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("[aria-live]")).to_contain_text(
        "You cancelled signing in with GitHub, so you are not signed in."
    )
    assert_accessible(page)
    assert api_status(context, staging) == 401
    # and from there, on with an email code, back to where the visitor was going
    page.get_by_label("Email address").focus()
    ask_for_code(page, "ana@plyr.fm")
    enter_code(page, staging.inbox.code_for("ana@plyr.fm"))
    expect(page).to_have_url(f"{staging.web}/library")
    expect(page.locator("#api")).to_have_text("API says: ana@plyr.fm")


def test_a_github_user_who_may_not_enter_is_told_who_they_are(
    staging: Staging, context: BrowserContext, page: Page
) -> None:
    page.goto(f"{staging.web}/")
    page.get_by_role("link", name="Sign in with GitHub").click()
    page.get_by_label("Signed in as").select_option("mallory")
    page.get_by_role("button", name="Authorize").click()
    expect(
        page.get_by_role("heading", name="You are signed in, but not allowed here")
    ).to_be_visible()
    expect(page.get_by_text("mallory@evil.example")).to_be_visible()
    assert_accessible(page)
    assert api_status(context, staging) == 401


def test_an_expired_link_says_so_and_leads_back_to_sign_in(staging: Staging, page: Page) -> None:
    page.goto(f"{staging.web}/.tiers/access/session?ticket=used-or-forged")
    expect(page.get_by_role("heading", name="Link expired")).to_be_visible()
    expect(page.locator("[aria-live]")).to_contain_text("sign in again")
    assert_accessible(page)
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
