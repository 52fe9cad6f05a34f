#!/usr/bin/env python3
"""What choosing a node costs per request: the pool's snapshot, the rule (app.routing.place) and taking the slot.

No sockets: the node views are filled as probes would fill them (six models of different sizes over three
nodes), and the board is the real shared-memory one. Run from the repository root:

    .venv/bin/python scripts/bench_placement.py            # 3 nodes, and 1 node for comparison
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app.fleet.board import Board, _process_lock  # noqa: E402
from app.fleet.pool import Pool  # noqa: E402
from app.routing import Backend, NodeConfig, RoutingTable  # noqa: E402

MODELS = {"qwen3:32b": 20.0, "gemma3:12b": 8.1, "phi4:14b": 9.1, "llama3.1:8b": 4.9, "mistral:7b": 4.4,
          "llama3.2:3b": 2.0}
LOADED = [("qwen3:32b",), ("gemma3:12b", "phi4:14b"), ("mistral:7b", "llama3.2:3b", "llama3.1:8b")]


def build(nodes: int) -> Pool:
    configs = tuple(NodeConfig(id=i + 1, name=f"gpu-{i}", host="127.0.0.1", port=1 + i, vram_gb=(24.0, 24.0, 12.0)[i % 3],
                               num_parallel=2, slot=i) for i in range(nodes))
    table = RoutingTable(ollama=configs[0].backend, airllm=Backend("airllm", "127.0.0.1", 9), nodes=configs, version=1)
    pool = Pool({}, client=None, board=Board(_process_lock()), probe=False)
    pool.sync(table)
    for index, view in enumerate(pool.views.values()):
        view.state = "up"
        view.listed = {f"{name}:latest" if ":" not in name else name: size for name, size in MODELS.items()
                       if size <= view.config.vram_gb}
        view.tags_at = time.monotonic()
        view.loaded = {name: MODELS[name] for name in LOADED[index % 3]}
        view.ps_at = time.monotonic()
    return pool


def measure(pool: Pool, model: str, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        placement, ticket = pool.claim(model)
        pool.release(ticket, ok=True)
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()
    for nodes in (3, 1):
        pool = build(nodes)
        for model in ("mistral:7b", "qwen3:32b"):
            measure(pool, model, 2000)  # warm up
            samples = sorted(measure(pool, model, args.rounds))
            print(f"{nodes} node(s), {model:<11} place+claim+release: median {statistics.median(samples):5.1f} µs, "
                  f"p99 {samples[int(len(samples) * 0.99)]:5.1f} µs")


if __name__ == "__main__":
    main()
