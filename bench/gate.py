"""What the access gate costs a request, side by side in one run, and its memory on a big upload.

Run: .venv/bin/python bench/gate.py [--duration 10s] [--rounds 5] [--json]
Needs wrk (apt-get install wrk).

It brings up the example's staging, protected (``tiers up staging`` on a throwaway copy on
free ports: Caddy, the supervised gate, the backend checking the gate's assertion, its
PostgreSQL and Redis), signs in by PIN, and beside it runs a Caddy of its own (the local
platform's :class:`~tiers.platforms.local.caddy.Caddy`, the gate's handlers from
:func:`~tiers.platforms.local.gate.front`) and a standalone ``tiers gate serve`` for a
small protected project whose sites are that Caddy's. Then wrk sends authenticated GETs
(the session cookie on every request, the same header for the rows without a gate) over 8
keep-alive connections (``wrk -t2 -c8 -d10s --latency``) to:

(a) Caddy alone → a trivial upstream (a Caddy file server answering ``ok``);
(b) Caddy + the gate (forward_auth) → the same trivial upstream;
(c) Caddy alone → the example's backend process that ``tiers up`` started, ``GET /tracks``,
    wrk sending the assertion the gate would add (a fresh one from the gate each round),
    so the backend does the same ES256 check as behind the gate;
(d) the example's staging API as ``tiers up`` serves it: Caddy + gate (its ``/verify``
    listener, :mod:`tiers.gate.listener`) → that same backend process, ``GET /tracks``;

and prints req/s, p50 and p99 for each (the median of ROUNDS runs, taken in alternating
order after a 2 s warm-up each, so (c) and (d) always run one after the other), the ratio
(d)/(c) (target ≥ 0.8) and the p50 added, (d) - (c) (target ≤ 1 ms), also round by round.
With the backend near its ceiling at 8 connections, p50 is about 8 / throughput: each 1%
of throughput (d) loses costs (c)'s p50 about 1% too. Beside each row, the CPU each process
spent per request (the scheduler's own count, in microseconds): where the time goes.

Then (c) and (d) once more with the backend's threads confined to one core. The backend
is one Python process whose event loop hands each query to a thread of its pool and takes
the answer back: two hand-offs of the GIL a request. Across two cores each one waits for
the other thread to be woken and scheduled, so the backend's pace at 8 connections is the
scheduler's more than its own, and anything else runnable (a gate, a second Caddy hop)
slows it through its wake-ups, not through the CPU it takes. On one core the hand-offs
stay on that core: (c) gets faster (a harder baseline for the gate, not an easier one),
and (d)-(c) is what the gate costs a request. Both pairs are printed, each against the
targets.

It also runs wrk straight at the standalone gate's ``/verify`` (the headers Caddy sends for
row (b)), under uvicorn and on the gate's own listener: the gate's ceiling without Caddy.

Then it sends 1 GiB (``POST``, Content-Length set, the body made by a generator, 1 MiB at a
time) through Caddy + the gate to an upstream that reads and discards it, and prints the
peak resident memory (``VmHWM``) of the gates, tiers' own processes (target under 100 MB),
and of the Caddy instances, which are not tiers' but carry the bytes.

Login work is never on this path: each request costs the gate one ``GET /verify``
(:mod:`tiers.gate.verify`), which reads the in-memory session cache and a cached assertion;
the PIN check and the OAuth callbacks are routes of their own under ``/.tiers/access/``,
reached only while someone signs in.

The machine's load average is printed too: the numbers mean little on a busy machine.
It prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' helpers: the example copy, the standalone gate

from tests.gate.service import running_gate, write_config  # noqa: E402
from tests.pipeline.example import example_copy, port, reserved_ports  # noqa: E402

from tiers.gate.otp import mailbox_messages  # noqa: E402
from tiers.platforms.local._proc import read_pid  # noqa: E402
from tiers.platforms.local.caddy import Caddy  # noqa: E402
from tiers.platforms.local.gate import front  # noqa: E402

COOKIE = "tiers_session_staging"
EMAIL = "bench@plyr.fm"
GIB = 1 << 30
CHUNK = 1 << 20
LABELS = {
    "a": "Caddy alone -> trivial upstream",
    "b": "Caddy + gate -> trivial upstream",
    "c": "Caddy alone -> example backend /tracks",
    "d": "Caddy + gate -> example backend /tracks",
}


def tiers(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tiers", *args]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)


def wait_for(url: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    sys.exit(f"{what} did not answer {url}")


def sign_in(site: str, maildir: Path) -> str:
    """Ask for a PIN on ``site``, read it from the gate's local mailbox, enter it: the
    session cookie's value."""
    with httpx.Client(base_url=site, timeout=30) as browser:
        sent = browser.post("/.tiers/access/login", data={"email": EMAIL, "return": "/"})
        if sent.status_code != 303:
            sys.exit(f"asking for a code on {site}: {sent.status_code} {sent.text[:200]}")
        deadline = time.monotonic() + 30
        while not (mail := [m for m in mailbox_messages(maildir) if m["to"] == EMAIL]):
            if time.monotonic() > deadline:
                sys.exit(f"no code arrived in {maildir}")
            time.sleep(0.1)
        done = browser.post("/.tiers/access/code", data={"code": mail[-1]["code"]})
        if done.status_code != 303:
            sys.exit(f"entering the code on {site}: {done.status_code} {done.text[:200]}")
        return str(browser.cookies[COOKIE])


# -- an upstream that reads a body and forgets it -----------------------------------------


class Discard(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        left, seen = int(self.headers.get("Content-Length", "0")), 0
        while left:
            chunk = self.rfile.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            seen += len(chunk)
        body = str(seen).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def upload(port_: int, cookie: str) -> tuple[int, str, float]:
    """1 GiB through localhost:PORT, streamed: (status, the upstream's byte count, seconds)."""

    def body() -> Iterator[bytes]:
        block = b"\0" * CHUNK
        for _ in range(GIB // CHUNK):
            yield block

    conn = http.client.HTTPConnection("localhost", port_, timeout=300)
    headers = {"Content-Length": str(GIB), "Cookie": f"{COOKIE}={cookie}"}
    start = time.perf_counter()
    conn.request("POST", "/upload", body=body(), headers=headers)
    answer = conn.getresponse()
    said = answer.read().decode(errors="replace")
    took = time.perf_counter() - start
    conn.close()
    return answer.status, said, took


def memory(pid: int | None) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB: now, and the peak over its life."""
    if pid is None:
        return float("nan"), float("nan")
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


# -- wrk -----------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, headers: dict[str, str], duration: str) -> dict[str, Any]:
    """One wrk run: req/s, p50 and p99 in ms, and the answers that were not 2xx/3xx."""
    argv = ["wrk", "-t2", "-c8", f"-d{duration}", "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s))$", out, re.MULTILINE))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(rps.group(1)) if rps else float("nan"),
        "requests": int(total.group(1)) if total else 0,
        "p50": _ms(latency["50"]),
        "p99": _ms(latency["99"]),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def _cpu(pid: int) -> float:
    """Seconds of CPU process ``pid`` has used, all its threads (the scheduler's own
    account, ``/proc/PID/task/*/schedstat``, exact where ``stat``'s ticks are sampled);
    what is gone counts 0."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


class Meter:
    """CPU used by groups of processes over one wrk run (and by wrk itself, a child)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups

    def snapshot(self) -> dict[str, float]:
        taken = {name: sum(_cpu(p) for p in pids()) for name, pids in self.groups.items()}
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        return taken | {"wrk": child.ru_utime + child.ru_stime}

    @staticmethod
    def per_request(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
        """Microseconds of CPU per request, by group."""
        return {name: (after[name] - before[name]) / max(n, 1) * 1e6 for name in after}


def measure(
    targets: dict[str, tuple[str, dict[str, str]]],
    duration: str,
    rounds: int,
    meter: Meter,
    before_round: Callable[[], None],
) -> dict[str, Any]:
    """Each target: one request that must be a 200 and a 2 s warm-up; then ``rounds``
    rounds of one run each, in alternating order (a machine whose load drifts favours no
    target); the median of each number over the rounds."""
    for key, (url, headers) in targets.items():
        first = httpx.get(url, headers=headers)
        if first.status_code != 200:
            sys.exit(f"({key}) {url} answers {first.status_code}, not 200: {first.text[:200]}")
        wrk(url, headers, "2s")
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in targets}
    for number in range(rounds):
        before_round()
        order = list(targets) if number % 2 == 0 else list(reversed(targets))
        for key in order:
            url, headers = targets[key]
            before = meter.snapshot()
            r = wrk(url, headers, duration)
            r["cpu us"] = meter.per_request(before, meter.snapshot(), r["requests"])
            runs[key].append(r)
            print(f"  round {number + 1} ({key}) {_line(r)}", flush=True)
    results = {}
    meter_names = [*meter.groups, "wrk"]
    for key, found in runs.items():
        results[key] = {
            "url": targets[key][0],
            **{n: statistics.median(r[n] for r in found) for n in ("rps", "p50", "p99")},
            "non_2xx": sum(r["non_2xx"] for r in found),
            "cpu us": {n: statistics.median(r["cpu us"][n] for r in found) for n in meter_names},
            "runs": found,
        }
    return results


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['rps']:>8.0f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms"
        + (f"  NON-2XX {r['non_2xx']}" if r["non_2xx"] else "")
        + (f"  socket errors: {r['socket_errors']}" if r.get("socket_errors") else "")
    )


def assertion(project: Path, api: int, cookie: str) -> str:
    """The assertion the example's gate adds to a signed-in ``GET /tracks`` on its API
    (asked as Caddy asks: ``/verify`` with the X-Forwarded-* headers)."""
    # ENV/gate.port: the gate's pages port, then its /verify listener's (which Caddy asks)
    gate = (project / ".tiers/local/environments/staging/gate.port").read_text().split()[1]
    answer = httpx.get(
        f"http://127.0.0.1:{gate}/verify",
        headers={
            "X-Forwarded-Method": "GET",
            "X-Forwarded-Uri": "/tracks",
            "X-Forwarded-Host": f"localhost:{api}",
            "X-Forwarded-Proto": "http",
            "Cookie": f"{COOKIE}={cookie}",
        },
    )
    if answer.status_code != 200:
        sys.exit(f"the example's gate answers /verify with {answer.status_code}")
    return answer.headers["tiers-access-jwt-assertion"]


def python_of(command: str) -> int | None:
    """The pid of the Python process whose command line has ``command`` (not the shell the
    supervisor starts it with)."""
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if "python" in Path(argv[0].decode()).name and command in b" ".join(argv).decode():
                return int(proc.name)
    return None


# -- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    with example_copy("bench-gate", ("staging",), access=True) as project:
        up = tiers(project, "up", "staging")
        if up.returncode:
            sys.exit(f"tiers up staging failed:\n{up.stdout}{up.stderr}")
        api, web = port(project, 8002), port(project, 5174)
        example_cookie = sign_in(f"http://localhost:{web}", project / ".tiers/gate/staging/mail")
        platform = project / ".tiers/local/caddy"
        backend = (platform / "targets/staging-backend.upstream").read_text().strip()
        top = project.parent
        with reserved_ports(5) as (upstream, a, b, c, admin):
            gate_project = top / "gate"
            gate_project.mkdir()
            write_config(gate_project, api=f"http://localhost:{b}", web=f"http://localhost:{b}")
            files = top / "files"
            files.mkdir()
            (files / "index.html").write_text("ok\n")
            caddy = Caddy(top / "caddy", admin)
            with running_gate(gate_project) as gate:
                try:
                    caddy.start()
                    dial = gate.url.split("//", 1)[1]
                    verify = gate.verify_url.split("//", 1)[1]
                    trivial = f"127.0.0.1:{upstream}"
                    caddy.set_site("bench-upstream", upstream, root_dir=files)
                    caddy.set_site("bench-a", a, upstream=trivial)
                    caddy.set_site("bench-b", b, upstream=trivial, front=front("b", dial, verify))
                    caddy.set_site("bench-c", c, upstream=backend)
                    mail = gate_project / ".tiers/gate/staging/mail"
                    cookie = sign_in(f"http://localhost:{b}", mail)
                    signed = {"Cookie": f"{COOKIE}={cookie}"}
                    example = {"Cookie": f"{COOKIE}={example_cookie}"}
                    targets = {
                        "a": (f"http://localhost:{a}/", signed),
                        "b": (f"http://localhost:{b}/", signed),
                        "c": (f"http://localhost:{c}/tracks", {}),
                        "d": (f"http://localhost:{api}/tracks", example),
                    }

                    def fresh_assertion() -> None:
                        # an assertion lives five minutes: a new one for each round
                        mint = assertion(project, api, example_cookie)
                        targets["c"] = (targets["c"][0], {"Tiers-Access-Jwt-Assertion": mint})

                    fresh_assertion()
                    example_gate = f"gate serve staging -c {project / 'tiers.toml'}"
                    meter = Meter(
                        {
                            "caddy": lambda: _known(
                                read_pid(platform / "caddy.pid"), read_pid(caddy.pid_file)
                            ),
                            "gate": lambda: _known(python_of(example_gate), gate.process.pid),
                            "backend": lambda: _known(python_of("plyr_backend.main:app")),
                            "postgres": lambda: named("postgres"),
                        }
                    )
                    summary = side_by_side(args, targets, meter, fresh_assertion)
                    backend_pid = python_of("plyr_backend.main:app")
                    summary |= one_core(args, targets, meter, fresh_assertion, backend_pid)
                    summary |= verify_alone(args, gate, b, signed)
                    summary |= big_upload(caddy, b, cookie)
                    summary |= peaks(project, gate, caddy, platform)
                    return summary
                finally:
                    caddy.stop()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _known(*pids: int | None) -> list[int]:
    return [p for p in pids if p is not None]


def named(comm: str) -> list[int]:
    """The pids of every process called ``comm`` (e.g. each PostgreSQL backend)."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == comm:
                found.append(int(proc.name))
    return found


def side_by_side(
    args: argparse.Namespace,
    targets: dict[str, tuple[str, dict[str, str]]],
    meter: Meter,
    before_round: Callable[[], None],
) -> dict[str, Any]:
    print(f"load average before: {_load()} ({os.cpu_count()} cores)")
    print(f"wrk -t2 -c8 -d{args.duration} --latency, authenticated GETs, {args.rounds} rounds:")
    results = measure(targets, args.duration, args.rounds, meter, before_round)
    print(f"load average after: {_load()}")
    medians(results, args.rounds)
    a, b = results["a"], results["b"]
    ratio, added = compare(results["c"], results["d"])
    trivial = b["rps"] / a["rps"]
    print(f"(b)/(a) throughput: {trivial:.2f}; p50 added {b['p50'] - a['p50']:.2f} ms")
    return {"wrk": results, "d/c": ratio, "d-c p50 ms": added, "b/a": trivial}


def medians(results: dict[str, Any], rounds: int, how: str = "") -> None:
    """Print each row's medians, and the CPU each process spent per request."""
    print(f"median over {rounds} rounds{how}:")
    for key, r in results.items():
        print(f"({key}) {LABELS[key]:<40} {_line(r)}")
    print(f"CPU per request, microseconds (median over the rounds; all cores){how}:")
    for key, r in results.items():
        cost = r["cpu us"]
        print(
            f"({key}) "
            + "  ".join(f"{n} {v:6.0f}" for n, v in cost.items())
            + f"  total {sum(cost.values()):6.0f}"
        )


def compare(c: dict[str, Any], d: dict[str, Any], how: str = "") -> tuple[float, float]:
    """Print and return (d)/(c) throughput and the p50 (d) adds, medians and round by
    round ((c) and (d) run next to each other in every round: the same moment's machine)."""
    ratio, added = d["rps"] / c["rps"], d["p50"] - c["p50"]
    print(f"(d)/(c) throughput{how}: {ratio:.2f} (target >= 0.8)")
    print(f"(d)-(c) p50 added{how}: {added:.2f} ms (target <= 1 ms)")
    runs = zip(c["runs"], d["runs"], strict=True)
    pairs = [(rd["p50"] - rc["p50"], rd["rps"] / rc["rps"]) for rc, rd in runs]
    print(
        "  round by round, (d)-(c) p50: "
        + ", ".join(f"{p:+.2f}" for p, _ in pairs)
        + f" ms (median {statistics.median(p for p, _ in pairs):+.2f}); (d)/(c): "
        + ", ".join(f"{r:.2f}" for _, r in pairs)
    )
    return ratio, added


def one_core(
    args: argparse.Namespace,
    targets: dict[str, tuple[str, dict[str, str]]],
    meter: Meter,
    before_round: Callable[[], None],
    backend: int | None,
) -> dict[str, Any]:
    """Rows (c) and (d) again, the backend's threads confined to one core (the last):
    its event loop and its thread pool then hand the GIL to each other on that core,
    not across two, so its pace is its own and not the scheduler's, and (d)-(c) is what
    the gate costs it. Everything else runs where the scheduler puts it, as before."""
    cores = sorted(os.sched_getaffinity(0))
    if backend is None or len(cores) < 2:
        print("(the backend on one core: skipped, one core or no backend found)")
        return {}
    tasks = [int(t.name) for t in Path(f"/proc/{backend}/task").iterdir()]
    for task in tasks:  # threads started later inherit their starter's cores
        os.sched_setaffinity(task, {cores[-1]})
    try:
        pair = {key: targets[key] for key in "cd"}

        def fresh() -> None:
            before_round()
            pair["c"] = targets["c"]

        print(f"(c) and (d) again, the backend (pid {backend}) on core {cores[-1]} only:")
        results = measure(pair, args.duration, args.rounds, meter, fresh)
    finally:
        with contextlib.suppress(OSError):
            for task in (int(t.name) for t in Path(f"/proc/{backend}/task").iterdir()):
                os.sched_setaffinity(task, set(cores))
    medians(results, args.rounds, ", the backend on one core")
    ratio, added = compare(results["c"], results["d"], ", the backend on one core")
    return {"one core": {"wrk": results, "d/c": ratio, "d-c p50 ms": added}}


def verify_alone(
    args: argparse.Namespace, gate: Any, site: int, signed: dict[str, str]
) -> dict[str, Any]:
    """The gate's own ceiling: wrk straight at its ``/verify``, asking as Caddy asks for
    row (b), without Caddy: under uvicorn (the pages' port) and on the listener of its
    own that Caddy asks (``--verify-listen``), with the gate's CPU per request."""
    headers = signed | {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Uri": "/",
        "X-Forwarded-Host": f"localhost:{site}",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-For": "127.0.0.1",
    }
    meter = Meter({"gate": lambda: [gate.process.pid]})
    found = {}
    for label, url in (("uvicorn", gate.url), ("listener", gate.verify_url)):
        wrk(f"{url}/verify", headers, "2s")
        before = meter.snapshot()
        r = wrk(f"{url}/verify", headers, args.duration)
        r["cpu us"] = meter.per_request(before, meter.snapshot(), r["requests"])
        found[label] = r
        print(
            f"the gate alone, wrk -> /verify on its {label:<8} {_line(r)}  "
            f"gate CPU {r['cpu us']['gate']:.0f} us/request"
        )
    return {"verify alone": found}


def big_upload(caddy: Caddy, site: int, cookie: str) -> dict[str, Any]:
    """1 GiB through site ``site`` (Caddy + gate), switched to an upstream that discards."""
    discard = ThreadingHTTPServer(("127.0.0.1", 0), Discard)
    threading.Thread(target=discard.serve_forever, daemon=True).start()
    try:
        caddy.switch_upstream("bench-b", f"127.0.0.1:{discard.server_address[1]}")
        status, said, took = upload(site, cookie)
    finally:
        discard.shutdown()
        discard.server_close()
    print(
        f"1 GiB upload through Caddy + gate: HTTP {status}, the upstream read {said} bytes "
        f"in {took:.1f} s ({GIB / took / 1e6:.0f} MB/s); the upstream is this script's "
        "thread, not tiers'"
    )
    return {"upload": {"status": status, "bytes": said, "seconds": took}}


def peaks(project: Path, gate: Any, caddy: Caddy, platform: Path) -> dict[str, Any]:
    """Peak resident memory (VmHWM) over the whole run of the gates and the Caddys."""
    found = {
        "the gate the upload went through (tiers gate serve)": gate.process.pid,
        "the example's gate (supervised by tiers up)": python_of(
            f"gate serve staging -c {project / 'tiers.toml'}"
        ),
        "the bench's Caddy (not tiers')": read_pid(caddy.pid_file),
        "the example's Caddy (not tiers')": read_pid(platform / "caddy.pid"),
    }
    print("peak RSS over the whole run (target for tiers' own processes: under 100 MB):")
    summary = {}
    for label, pid in found.items():
        now, peak = memory(pid)
        summary[label] = peak
        print(f"  {label}, pid {pid}: peak {peak:.1f} MB, now {now:.1f} MB")
    print(
        "login work on the per-request path: none. Each request costs the gate one "
        "GET /verify (tiers.gate.verify: the in-memory session cache, a cached assertion); "
        "the PIN check and the OAuth callbacks are /.tiers/access/ routes, used only while "
        "signing in"
    )
    return {"peak RSS MB": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="10s", help="each wrk run's -d (default 10s)")
    parser.add_argument("--rounds", type=int, default=5, help="runs per target (default 5)")
    parser.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    summary = run(args)
    if args.json:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
