"""scripts/bench.py, the README's Performance figures, on a short run: it starts the fake and the real product,
and prints and writes every figure for both sides."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_measures_direct_and_proxy_and_prints_the_ratios(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "scripts/bench.py", "--requests", "20", "--streams", "1", "--lines", "50",
                             "--workers", "1", "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "20 calls and 1 streams each way, 1 gevent worker(s)"
    assert [line.split("  ")[0] for line in lines[2:]] == ["latency, non-streamed (p50)", "latency, non-streamed (p90)",
                                                          "streaming rate (50 lines)", "time to first chunk (p50)"]
    figures = json.loads(out.read_text())
    assert set(figures) == {"latency_p50_ms", "latency_p90_ms", "stream_lines_per_s", "ttfc_ms"}
    for values in figures.values():
        assert set(values) == {"direct", "proxy"} and all(v > 0 for v in values.values())
    # The proxy is a hop more than direct: a latency under direct's would mean the two sides got mixed up.
    assert figures["latency_p50_ms"]["proxy"] > figures["latency_p50_ms"]["direct"]
