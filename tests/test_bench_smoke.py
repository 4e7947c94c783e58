"""The benchmark (bench/run.py) runs end to end at a tiny size and reports every figure.

Real servers (a dev store process, a redis-server, a 3-primary Redis Cluster, gunicorn) on
127.0.0.1, one run each. Only completeness is checked: timings are the benchmark's business,
never a test's. Redis Commander (npm) stays off: the test needs neither npm nor a network.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the figures the issue asked for, by their JSON names
PAGES = ("services", "services_rows", "browse_first", "browse_all", "key", "key_50mb",
         "mget_100", "mget_10000")
TARGETS = ("devstore", "redis", "redis-cluster")


@pytest.mark.slow
def test_the_benchmark_completes_at_a_tiny_size_and_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--keys", "200", "--runs", "1", "--big-value-mb", "1",
         "--clients", "5", "--load-seconds", "2", "--max-requests", "500",
         "--targets", ",".join(TARGETS), "--no-redis-commander", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())
    figures = results["figures"]
    assert set(results["targets"]) == set(TARGETS)

    for name in PAGES:
        assert name in figures, name
        for target in TARGETS:
            cell = figures[name]["targets"][target]
            for measured in ("page", "floor"):
                assert cell[measured]["n"] == 1 and cell[measured]["median"] is not None, (name, target)
            assert isinstance(cell["round_trips"], int), (name, target)
            assert cell["round_trips"] > 0, (name, target)  # the cluster's node pools are metered too

    check = figures["index_check"]
    assert check["keys"] == 200
    for target in TARGETS:
        cell = check["targets"][target]
        assert cell["check"]["median"] is not None and cell["floor"]["median"] is not None
        assert cell["peak_rss_mib"]["median"] > 0 and cell["round_trips"] > 0

    for target in TARGETS:
        cell = figures["load"]["targets"][target]
        for key in ("requests", "req_per_s", "p50_ms", "p95_ms", "p99_ms", "errors"):
            assert key in cell, (target, key)
        assert cell["clients"] == 5

    # the markdown table names every page figure
    for name in PAGES:
        assert figures[name]["title"] in done.stdout
