"""How long `tiers check` takes on a 20-environment config, and how fast `tiers --help` starts.

Run: .venv/bin/python bench/check_speed.py [ENVIRONMENTS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import config_text


def timed(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiers.toml"
        path.write_text(config_text(count))
        from tiers.checks import run
        from tiers.config import load

        start = time.perf_counter()
        loaded = load(path)
        loaded_at = time.perf_counter()
        findings = run(loaded.config, loaded.source)
        done = time.perf_counter()
        # fly.io and Pages have no driver installed here: that warning is the only one
        assert {f.rule for f in findings} <= {"platform-not-installed"}, findings
        cli = timed([sys.executable, "-m", "tiers", "check", "-c", str(path)], 5)
    helps = timed([sys.executable, "-m", "tiers", "--help"], 5)
    print(f"environments: {count} (a clean generated config)")
    load_ms, rules_ms = 1000 * (loaded_at - start), 1000 * (done - loaded_at)
    print(f"in-process: load {load_ms:.1f} ms, rules {rules_ms:.1f} ms")
    print(f"tiers check (whole process, median of 5): {1000 * statistics.median(cli):.0f} ms")
    print(f"tiers --help (whole process, median of 5): {1000 * statistics.median(helps):.0f} ms")


if __name__ == "__main__":
    main()
