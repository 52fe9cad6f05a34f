#!/usr/bin/env python3
"""How long IntelliProxyLLM's rule classifier takes per request, over the labelled prompts of the test suite and
one long prompt. Run from the repository root: `.venv/bin/python scripts/bench_classifier.py`."""
from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app.intelli.classifier import RequestFeatures, classify_rules, extract_features  # noqa: E402
from tests.intelli.labelled_prompts import LABELLED  # noqa: E402


def main() -> None:
    features = [extract_features("/api/generate" if "prompt" in body else "/api/chat", body) for _, body in LABELLED]
    for f in features:  # warm the regex caches
        classify_rules(f)
    timings = []
    for _ in range(20):
        for f in features:
            started = time.perf_counter()
            classify_rules(f)
            timings.append((time.perf_counter() - started) * 1e6)
    timings.sort()
    print(f"labelled prompts: mean {statistics.mean(timings):.0f} µs, p99 {timings[int(len(timings) * 0.99)]:.0f} µs "
          f"over {len(timings)} classifications")
    long = RequestFeatures(text="Please review this module.\n" + "x = compute(y) + 1;\n" * 5000)
    classify_rules(long)
    started = time.perf_counter()
    classify_rules(long)
    print(f"a 100 KB prompt: {(time.perf_counter() - started) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
