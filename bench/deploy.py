"""Zero downtime under `tiers deploy` / `tiers rollback`, their time to serving, and the floor.

Run: .venv/bin/python bench/deploy.py [--deploys 10 --rollbacks 3 --downgrades 3 --clients 8]
     [--json]

In a throwaway git repository of examples/plyr with staging alone, on ports of its own
(API 28002, frontend 25174, PostgreSQL 25434, Redis 26381), it deploys once to warm up
(the virtualenv build), then, while CLIENTS threads each send `GET /health` over one
keep-alive connection and one more uploads a small track now and then (no retries: an
exception or an unexpected status is a failure), it deploys DEPLOYS new commits, rolls
back ROLLBACKS times (code only, `--db keep`), then DOWNGRADES times deploys a commit
with a new migration (a nullable column the running code never reads, so each version
runs on the other's schema) and rolls it back with `--db downgrade` (the old code
serves first, then the migration is undone).

It prints the requests sent and failed (failures grouped by error, with the step they
started in); p50/p99 latency inside the switch windows (start of `switch` to end of
`drain`, from `tiers history`) and outside them; for each kind of run its *time to
serving* (command start to the end of its `switch` step: the new version takes all
traffic) and its wall time, beside the floor: `alembic upgrade head` into a fresh
database plus uvicorn until /health answers 200, without tiers, median of 3, measured
once under the same probe and once after it stopped; and each step's median duration.
It prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PORTS = {"8002": "28002", "5174": "25174", "5434": "25434", "6381": "26381"}
API, PG = 28002, 25434
ENV = {k: v for k, v in os.environ.items() if not k.startswith("TIERS_")} | {"NO_COLOR": "1"}
GIT = {f"GIT_{who}_NAME": "Ada" for who in ("AUTHOR", "COMMITTER")}
GIT |= {f"GIT_{who}_EMAIL": "ada@plyr.fm" for who in ("AUTHOR", "COMMITTER")}
Record = tuple[str, float, float, str | None]  # kind, wall-clock start, latency s, error
Step = tuple[int, str, str, float, float]  # deployment id, kind, step, wall start, end


def tiers(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tiers", *args]
    return subprocess.run(
        command, cwd=project, env=ENV, capture_output=True, text=True, check=False
    )


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=project, env=ENV | GIT, check=True, capture_output=True)


def staging_only(text: str) -> str:
    """The example's tiers.toml without development and production, on this bench's ports."""
    dev, stg, prd = (
        text.rindex("\n", 0, text.index(f"--- {m}")) + 1
        for m in ("development", "staging", "production")
    )
    text = text[:dev] + text[stg:prd]
    for old, new in PORTS.items():
        text = text.replace(f":{old}", f":{new}")
    return text


def upload_body() -> bytes:
    """A multipart form: the title and a half-second silent WAV."""
    wav = io.BytesIO()
    with wave.open(wav, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\0\0" * 4000)
    part = "--b\r\nContent-Disposition: form-data; name="
    head = f'{part}"title"\r\n\r\nbench\r\n{part}"audio"; filename="a.wav"\r\n'
    head += "Content-Type: audio/wav\r\n\r\n"
    return head.encode() + wav.getvalue() + b"\r\n--b--\r\n"


def client(kind: str, stop: threading.Event, out: list[Record]) -> None:
    """One keep-alive connection, requests back to back (an upload every 0.25 s), no retry."""
    conn, body = http.client.HTTPConnection("localhost", API, timeout=10), upload_body()
    while not stop.is_set():
        wall, t0, error = time.time(), time.perf_counter(), None
        try:
            if kind == "health":
                conn.request("GET", "/health")
            else:
                form = {"Content-Type": "multipart/form-data; boundary=b"}
                conn.request("POST", "/tracks", body=body, headers=form)
            answer = conn.getresponse()
            answer.read()
            if answer.status != (200 if kind == "health" else 201):
                error = f"HTTP {answer.status}"
        except Exception as exc:  # every failure counts, whatever it is
            error = f"{type(exc).__name__}: {exc}"
        out.append((kind, wall, time.perf_counter() - t0, error))
        if error:
            conn.close()
            conn = http.client.HTTPConnection("localhost", API, timeout=10)
        if kind == "upload":
            stop.wait(0.25)
    conn.close()


def steps(history: list[dict[str, Any]]) -> list[Step]:
    found = []
    for d in history:
        for s in d["steps"]:
            start = datetime.fromisoformat(s["started_at"]).timestamp()
            found.append((d["id"], d["kind"], s["name"], start, start + s["duration_ms"] / 1e3))
    return found


def pct(values: list[float], q: float) -> str:
    ordered = sorted(values) or [float("nan")]
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.1f} ms"


def spread(values: list[float]) -> str:
    mid, low, high = statistics.median(values), min(values), max(values)
    return f"median {mid:.2f} s (min {low:.2f}, max {high:.2f}, n={len(values)})"


def floor(project: Path, runs: int = 3) -> list[float]:
    """Migrate a fresh database, then boot uvicorn until /health is 200, without tiers."""
    status = json.loads(tiers(project, "status", "--json").stdout)
    app = next(p for e in status for p in e["processes"] if ".backend.app@" in p["name"])
    environ = Path(f"/proc/{app['pid']}/environ").read_bytes().split(b"\0")
    base = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
    cwd = Path(f"/proc/{app['pid']}/cwd").readlink()  # the release's backend/
    python = str(Path(base["VIRTUAL_ENV"]) / "bin" / "python")
    psql = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(PG), "-U", "postgres", "-c"]
    took = []
    for i in range(runs):
        name, port = f"plyr-floor-{i}", API + 100 + i
        subprocess.run([*psql, f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
        env = base | {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{PG}/{name}"}
        env |= {"PORT": str(port), "PYTHONPATH": "src"}
        start = time.perf_counter()
        migrate = [python, "-m", "alembic", "upgrade", "head"]
        subprocess.run(migrate, cwd=cwd, env=env, check=True, capture_output=True)
        serve = [python, "-m", "uvicorn", "plyr_backend.main:app", "--port", str(port)]
        server = subprocess.Popen(
            serve, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            while server.poll() is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                try:
                    conn.request("GET", "/health")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                finally:
                    conn.close()
                time.sleep(0.02)
            else:
                raise RuntimeError(f"uvicorn exited with code {server.returncode}")
            took.append(time.perf_counter() - start)
        finally:
            server.terminate()
            server.wait()
        subprocess.run([*psql, f'DROP DATABASE "{name}"'], check=True, capture_output=True)
    return took


MIGRATION = '''"""a column the bench adds and its rollbacks drop (no code reads it)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
DROPS_COLUMNS: list[str] = ["tracks.bench_note"]
DROPS_TABLES: list[str] = []


def upgrade() -> None:
    op.add_column("tracks", sa.Column("bench_note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("tracks", "bench_note")
'''
KINDS = ("deploy", "rollback", "deploy +migration", "rollback --db downgrade")


def plan(args: argparse.Namespace) -> list[tuple[str, int]]:
    """The runs, in order: (kind, number)."""
    runs = [("deploy", i) for i in range(args.deploys)]
    runs += [("rollback", i) for i in range(args.rollbacks)]
    for i in range(args.downgrades):
        runs += [("deploy +migration", i), ("rollback --db downgrade", i)]
    return runs


def command(project: Path, kind: str, i: int, original: str) -> list[str]:
    """Commit what the run ships (for a deploy); the tiers command that does it."""
    if kind.startswith("deploy"):  # a code change: the virtualenv is reused
        main_py = project / "backend/src/plyr_backend/main.py"
        main_py.write_text(original + f"# bench {kind} {i}\n")
        if kind == "deploy +migration":
            (project / "backend/alembic/versions/0004_bench_note.py").write_text(MIGRATION)
        git(project, "add", "-A")
        git(project, "commit", "-q", "-m", f"bench {kind} {i}")
        return ["deploy", "staging"]
    return ["rollback", "staging", *(["--db", "downgrade"] if "downgrade" in kind else [])]


def exercise(project: Path, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Warm up, then deploy and roll back under load; fills ``out``."""
    stop, threads = threading.Event(), []
    original = (project / "backend/src/plyr_backend/main.py").read_text()
    start, warm = time.perf_counter(), tiers(project, "deploy", "staging")
    print(f"warm-up deploy (venv build if not cached): {time.perf_counter() - start:.1f} s")
    if warm.returncode:
        sys.exit(f"warm-up deploy failed:\n{warm.stdout}{warm.stderr}")
    try:
        for kind in ["health"] * args.clients + ["upload"]:
            threads.append(threading.Thread(target=client, args=(kind, stop, out["records"])))
            threads[-1].start()
        time.sleep(2)  # some traffic before the first deploy
        for kind, i in plan(args):
            argv = command(project, kind, i, original)
            wall, start = time.time(), time.perf_counter()
            done = tiers(project, *argv)
            out["runs"].append({"kind": kind, "start": wall, "took": time.perf_counter() - start})
            if done.returncode:
                out["problems"].append(f"{kind} {i} exited {done.returncode}: {done.stderr}")
        time.sleep(2)  # and some after the last
        out["floor under the probe"] = floor(project)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    out["history"] = json.loads(tiers(project, "history", "staging", "--json", "-n", "99").stdout)
    out["floor"] = floor(project)


def serving(out: dict[str, Any], found: list[Step]) -> None:
    """Each run's deployment and time to serving (its start to the end of its switch)."""
    for r in out["runs"]:
        ids = {d for d, _, _, s, _ in found if r["start"] <= s <= r["start"] + r["took"]}
        switched = [e for d, _, n, _, e in found if d in ids and n == "switch"]
        r["deployment"] = min(ids, default=None)
        r["serving"] = switched[0] - r["start"] if switched else None


def report(out: dict[str, Any]) -> dict[str, Any]:
    records, history, found = out["records"], out["history"], steps(out["history"])
    serving(out, found)
    ends = {(d, k): e for d, k, name, _, e in found if name == "drain"}
    windows = [(s, ends[d, k]) for d, k, name, s, _ in found if name == "switch" and (d, k) in ends]
    failed = [r for r in records if r[3]]
    split = ", ".join(
        f"{k} {sum(r[0] == k for r in records)}/{sum(r[0] == k for r in failed)}"
        for k in ("health", "upload")
    )
    print(f"requests: {len(records)} sent, {len(failed)} failed (sent/failed: {split})")
    groups: dict[str, list[str]] = {}
    for _, wall, _, error in failed:
        where = [f"#{d} {k} {n}" for d, k, n, s, e in found if s <= wall <= e]
        if not where:  # between steps: the one that ended last, and how long before
            d, k, n, _, e = max((x for x in found if x[4] < wall), key=lambda x: x[4])
            where = [f"{wall - e:.2f} s after #{d} {k} {n}"]
        groups.setdefault(str(error), []).append(where[-1])
    for error, places in groups.items():
        at = ", ".join(f"{p} x{places.count(p)}" for p in dict.fromkeys(places))
        print(f"  failed x{len(places)}: {error} (started during {at})")
    summary: dict[str, Any] = {"sent": len(records), "failed": len(failed), "errors": groups}
    for kind in ("health", "upload"):
        for label, inside in (("inside switch windows", True), ("outside", False)):
            ok = [r for r in records if r[0] == kind and not r[3]]
            lat = [r[2] for r in ok if any(s <= r[1] <= e for s, e in windows) == inside]
            summary[f"{kind} {label}"] = (
                f"p50 {pct(lat, 0.5)}, p99 {pct(lat, 0.99)} ({len(lat)} ok)"
            )
            print(f"latency {kind} {label}: {summary[f'{kind} {label}']}")
    print(f"switch windows: {len(windows)}, {sum(e - s for s, e in windows):.1f} s in all")
    floors = {"under the probe": out["floor under the probe"], "quiet": out["floor"]}
    for label, took in floors.items():
        print(f"floor (alembic upgrade head + uvicorn to /health 200), {label}: {spread(took)}")
    print("time to serving (command start to the end of its switch step); command wall time:")
    for kind in KINDS:
        runs = [r for r in out["runs"] if r["kind"] == kind]
        ready = [r["serving"] for r in runs if r["serving"] is not None]
        if ready:
            mid = statistics.median(ready)
            ratio = ", ".join(f"{mid / statistics.median(f):.2f}x {k}" for k, f in floors.items())
            print(f"  {kind}: serving {spread(ready)}; the floor {ratio}")
        if runs:
            print(f"  {kind}: wall {spread([r['took'] for r in runs])}")
        summary[f"{kind} serving"] = ready
        summary[f"{kind} wall"] = [r["took"] for r in runs]
    for kind in KINDS:
        ids = {r["deployment"] for r in out["runs"] if r["kind"] == kind} - {None}
        took: dict[str, list[float]] = {}
        for d, _, name, s, e in found:
            if d in ids:
                took.setdefault(name, []).append(e - s)
        summary[f"{kind} steps"] = {n: statistics.median(v) for n, v in took.items()}
        text = ", ".join(f"{n} {v:.2f}" for n, v in summary[f"{kind} steps"].items())
        if text:
            print(f"{kind} steps, median s: {text}")
    print(
        "deployments: " + ", ".join(f"#{d['id']} {d['kind']} {d['state']}" for d in history[::-1])
    )
    for problem in out["problems"]:
        print(f"problem: {problem}")
    return summary | {"floor": floors, "problems": out["problems"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=10)
    parser.add_argument("--rollbacks", type=int, default=3)
    parser.add_argument("--downgrades", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    args = parser.parse_args()
    top = Path(tempfile.mkdtemp(prefix="tiers-bench-deploy-"))
    top.chmod(0o711)  # PostgreSQL runs as an unprivileged user when we are root
    project = top / "plyr"
    out: dict[str, Any] = {"records": [], "runs": [], "problems": []}
    try:
        shutil.copytree(
            ROOT / "examples/plyr", project, ignore=shutil.ignore_patterns(".tiers", "__pycache__")
        )
        (project / "tiers.toml").write_text(staging_only((project / "tiers.toml").read_text()))
        (project / ".gitignore").write_text(".tiers/\n__pycache__/\n")
        git(project, "init", "-q", "-b", "main")
        git(project, "add", "-A")
        git(project, "commit", "-q", "-m", "plyr")
        exercise(project, args, out)
    finally:
        tiers(project, "down")
        shutil.rmtree(top, ignore_errors=True)
    summary = report(out)
    if args.json:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
