"""Time from `tiers up` to all three example tiers healthy, and memory: platform vs apps.

Run: .venv/bin/python bench/local_up.py
Prints the seconds to healthy, then the resident memory (RSS) of the platform's own
processes (supervisor, Caddy) beside the data services and the apps.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTS = (8001, 8002, 8003)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://localhost:{port}/health", timeout=2) as answer:
            return bool(json.loads(answer.read())["status"] == "ok")
    except OSError:
        return False


def rss_by_kind(project: Path) -> dict[str, float]:
    kinds = {"platform": 0.0, "data services": 0.0, "apps": 0.0}
    for proc in Path("/proc").iterdir():
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = str((proc / "cwd").readlink())
            status = (proc / "status").read_text()
        except OSError:
            continue
        if str(project) not in line and not cwd.startswith(str(project)):
            continue
        kib = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS")), 0)
        if "caddy" in line or "tiers.platforms.local" in line:
            kind = "platform"
        elif "redis-server" in line or "postgres" in line:
            kind = "data services"
        else:
            kind = "apps"
        kinds[kind] += kib / 1024
    return kinds


def main() -> None:
    top = Path(tempfile.mkdtemp(prefix="tiers-bench-"))
    top.chmod(0o711)
    project = top / "plyr"
    shutil.copytree(ROOT / "examples" / "plyr", project, ignore=shutil.ignore_patterns(".tiers"))
    tiers = [sys.executable, "-m", "tiers"]
    try:
        start = time.perf_counter()
        subprocess.run([*tiers, "up"], cwd=project, check=True, capture_output=True)
        up_done = time.perf_counter()
        while not all(healthy(p) for p in PORTS):
            time.sleep(0.05)
        ready = time.perf_counter()
        print(f"tiers up returned after {up_done - start:.1f} s (first run: initdb included)")
        print(f"all three tiers healthy after {ready - start:.1f} s")
        for kind, mib in rss_by_kind(project).items():
            print(f"memory, {kind}: {mib:.0f} MiB RSS")
    finally:
        subprocess.run([*tiers, "down"], cwd=project, check=False, capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
