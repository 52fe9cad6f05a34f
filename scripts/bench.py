"""What the proxy costs on top of Ollama, measured on loopback against a fast fake Ollama (no model time).

    .venv/bin/python scripts/bench.py                    # default configuration (gunicorn.conf.py, its worker count)
    .venv/bin/python scripts/bench.py --workers 2 --requests 1000 --lines 5000 --json bench.json

It starts the test suite's fake Ollama (tests/support/fake_ollama.py, a real HTTP/1.1 server) and the product
itself (`gunicorn -c gunicorn.conf.py wsgi:app` on a throwaway SQLite database, pointed at the fake), then asks
both the same questions over one keep-alive connection each, alternating between them so that noise hits both:

- latency of a non-streamed /api/generate: p50 and p90, and what the proxy adds to the p50;
- a streamed /api/generate of --lines NDJSON lines sent as fast as the fake can: lines per second (the proxy's
  rate as a fraction of direct);
- a stream of one line every 5 ms, as a model sends tokens: the time to the first chunk (what the proxy adds).

The client, the fake and the proxy share this machine's cores, so read the ratios rather than the absolute
figures, and compare runs taken on a quiet machine.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.fake_ollama import FakeOllama  # noqa: E402
from tests.support.proxy_process import ProxyProcess  # noqa: E402

MODEL = "llama3.2:1b"  # one of the fake's models


class Client:
    """One keep-alive HTTP/1.1 connection, as an SDK would hold it."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def generate(self, stream: bool, lines: int, cadence_ms: float = 0) -> tuple[float, float, int]:
        """(seconds to the first chunk, seconds to the end, NDJSON lines received); the fake sends line i at
        i * cadence_ms after the start (0: as fast as it can)."""
        options = {"num_predict": lines, "fake_delay_ms": cadence_ms}
        body = json.dumps({"model": MODEL, "prompt": "bench", "stream": stream, "options": options})
        started = time.perf_counter()
        self.conn.request("POST", "/api/generate", body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status} from port {self.conn.port}: {response.read()[:200]!r}")
        first, count = None, 0
        while response.readline():
            first = first or time.perf_counter()
            count += 1
        response.read()  # marks the response done, so the connection takes the next request
        return first - started, time.perf_counter() - started, count

    def close(self) -> None:
        self.conn.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(direct: Client, proxy: Client, requests: int, lines: int, streams: int) -> dict:
    """Alternate direct and proxied calls; milliseconds and lines per second."""
    for client in (direct, proxy):  # warm-up: connections, the proxy's pool, the dashboard-free worker path
        for _ in range(20):
            client.generate(False, 1)
        client.generate(True, lines)
        client.generate(True, 5, cadence_ms=5)
    latency = {"direct": [], "proxy": []}
    for _ in range(requests):
        for name, client in (("direct", direct), ("proxy", proxy)):
            latency[name].append(client.generate(False, 1)[1] * 1000)
    rate, ttfc = {"direct": [], "proxy": []}, {"direct": [], "proxy": []}
    for _ in range(streams):
        for name, client in (("direct", direct), ("proxy", proxy)):
            first, total, count = client.generate(True, lines)
            if count != lines + 1:  # every line and the final one
                raise SystemExit(f"{name}: {count} lines instead of {lines + 1}")
            rate[name].append(count / total)
            # A token every 5 ms, as a model streams: the first chunk alone, not coalesced with those behind it.
            ttfc[name].append(client.generate(True, 5, cadence_ms=5)[0] * 1000)
    return {
        "latency_p50_ms": {k: statistics.median(v) for k, v in latency.items()},
        "latency_p90_ms": {k: percentile(v, 0.9) for k, v in latency.items()},
        "stream_lines_per_s": {k: statistics.median(v) for k, v in rate.items()},
        "ttfc_ms": {k: statistics.median(v) for k, v in ttfc.items()},
    }


def report(result: dict, args) -> str:
    lat, lat90, rate, ttfc = (result[k] for k in ("latency_p50_ms", "latency_p90_ms", "stream_lines_per_s",
                                                 "ttfc_ms"))
    rows = [
        ("latency, non-streamed (p50)", f"{lat['direct']:.3f} ms", f"{lat['proxy']:.3f} ms",
         f"+{lat['proxy'] - lat['direct']:.3f} ms"),
        ("latency, non-streamed (p90)", f"{lat90['direct']:.3f} ms", f"{lat90['proxy']:.3f} ms",
         f"+{lat90['proxy'] - lat90['direct']:.3f} ms"),
        (f"streaming rate ({args.lines} lines)", f"{rate['direct']:,.0f} lines/s", f"{rate['proxy']:,.0f} lines/s",
         f"x{rate['proxy'] / rate['direct']:.2f}"),
        ("time to first chunk (p50)", f"{ttfc['direct']:.3f} ms", f"{ttfc['proxy']:.3f} ms",
         f"+{ttfc['proxy'] - ttfc['direct']:.3f} ms"),
    ]
    widths = [max(len(r[i]) for r in rows + [("figure", "direct", "IntelliProxy", "proxy vs direct")])
              for i in range(4)]
    lines = [f"{args.requests} calls and {args.streams} streams each way, {args.workers} gevent worker(s)"]
    for row in [("figure", "direct", "IntelliProxy", "proxy vs direct")] + rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="non-streamed calls each way (default 500)")
    parser.add_argument("--lines", type=int, default=2000, help="NDJSON lines per stream (default 2000)")
    parser.add_argument("--streams", type=int, default=9, help="streams each way (default 9)")
    parser.add_argument("--workers", type=int, help="WEB_CONCURRENCY (default: half the cores, as gunicorn.conf.py)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    args.workers = args.workers or max(1, multiprocessing.cpu_count() // 2)  # gunicorn.conf.py's default

    fake = FakeOllama("ollama").start()
    with tempfile.TemporaryDirectory(prefix="intelliproxy-bench-") as tmp:
        env = {"OLLAMA_HOST": f"127.0.0.1:{fake.port}", "TELEMETRY_FLUSH_SECONDS": "1", "HEALTH_CACHE_SECONDS": "2"}
        proxy_process = ProxyProcess(Path(tmp) / "bench.db", env=env, workers=args.workers).start()
        direct, proxy = Client(fake.port), Client(proxy_process.proxy_port)
        try:
            result = measure(direct, proxy, args.requests, args.lines, args.streams)
        finally:
            direct.close()
            proxy.close()
            proxy_process.stop()
            fake.stop()
    sys.stdout.write(report(result, args) + "\n")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
