"""Benchmark the AirLLM server against airllm as shipped, airllm with the same GC fix, and a full transformers load.

    .venv/bin/python scripts/bench_airllm.py                       # builds a ~100M-parameter random model offline
    .venv/bin/python scripts/bench_airllm.py --model /models/x --tokens 20 --shipped-tokens 5 --json out.json
    .venv/bin/python scripts/bench_airllm.py --model /models/x --variants server,server+cache   # the layer cache
    .venv/bin/python scripts/bench_airllm.py --concurrency 1,4,8 --tokens 30    # batching: N requests at once

Every variant runs in its own process (so peak RSS is its own), generates greedily from the same prompt and
reports time to first token and seconds per token after the first. The server is measured through HTTP
(streaming /api/generate) after a warm-up request that loads the model. On CUDA, peak VRAM is reported too.
``server`` runs with AIRLLM_LAYER_CACHE=off (layers re-read from the shard files every token), ``server+cache``
with AIRLLM_LAYER_CACHE=on (layers kept in host RAM after the warm-up pass, pinned on CUDA).

``--concurrency`` measures continuous batching instead: one server per layer-cache mode (off, then on), and for
each level N, N streamed greedy requests sent at once; it reports the aggregate tokens/s and each request's own
s/token against one request alone, and checks that every request's tokens equal the lone request's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VARIANTS = ("transformers", "airllm_shipped", "airllm_fixed", "server", "server+cache")
PROMPT = "The AirLLM server streams a large language model through a small device"

CHILD = r'''
import json, resource, sys, time
variant, model, tokens, shards, prompt = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
import torch
from transformers import AutoTokenizer, StoppingCriteria, StoppingCriteriaList
device = "cuda:0" if torch.cuda.is_available() else "cpu"
stamps = []
class Tap(StoppingCriteria):
    def __call__(self, input_ids, scores, **kw):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
t0 = time.perf_counter()
if variant == "transformers":
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32 if device == "cpu" else None).to(device)
    m.eval()
else:
    from airllm import AutoModel
    if variant == "airllm_fixed":
        sys.path.insert(0, sys.argv[6])
        from app.airllm_server.runtime import freeze_heap
        freeze_heap()
    m = AutoModel.from_pretrained(model, device=device, dtype=torch.float32 if device == "cpu" else None,
                                  layer_shards_saving_path=shards, prefetching=device.startswith("cuda"))
    if variant == "airllm_fixed":
        freeze_heap()
load_s = time.perf_counter() - t0
tok = AutoTokenizer.from_pretrained(model)
text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False) \
    if tok.chat_template else prompt
ids = torch.tensor([tok(text, add_special_tokens=not tok.chat_template)["input_ids"]], device=device)
if device.startswith("cuda"):
    torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
with torch.inference_mode():
    out = m.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=tokens,
                     stopping_criteria=StoppingCriteriaList([Tap()]), pad_token_id=tok.pad_token_id)
print(json.dumps({"variant": variant, "load_s": load_s, "ttft_s": stamps[0] - start,
                  "s_per_token": (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1), "tokens": len(stamps),
                  "output_ids": out[0, ids.shape[1]:].tolist(),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "peak_vram_mib": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None}))
'''


def run_child(variant: str, model: Path, tokens: int, shards: Path) -> dict:
    """One variant in a fresh interpreter; returns its JSON line."""
    out = subprocess.run([sys.executable, "-c", CHILD, variant, str(model), str(tokens), str(shards), PROMPT,
                          str(REPO)], capture_output=True, text=True, check=True, env=_env())
    return json.loads(out.stdout.strip().splitlines()[-1])


def _env() -> dict:
    import os

    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def run_server(model: Path, tokens: int, shards: Path, cache: bool = False) -> dict:
    """The server as deployed: subprocess under gunicorn, streamed /api/generate, client-side timings.

    The warm-up is a one-token generation, so with the cache on every layer has been read once (and pinned)
    before the timed request, as in a server that has answered one request.
    """
    import requests

    from tests.support.airllm_process import AirLLMProcess

    env = {"AIRLLM_LAYER_CACHE": "on" if cache else "off"}
    with AirLLMProcess({"bench": model}, shards_dir=shards, startup_timeout=120, env=env) as server:
        t0 = time.perf_counter()
        requests.post(server.url + "/api/generate", json={"model": "bench", "prompt": ""}, timeout=600)
        load_s = time.perf_counter() - t0
        requests.post(server.url + "/api/generate", json={"model": "bench", "prompt": PROMPT, "stream": False,
                                                          "options": {"temperature": 0, "num_predict": 1}},
                      timeout=600).raise_for_status()
        body = {"model": "bench", "prompt": PROMPT, "options": {"temperature": 0, "num_predict": tokens}}
        stamps, final = [], None
        start = time.perf_counter()
        with requests.post(server.url + "/api/generate", json=body, stream=True, timeout=600) as resp:
            for line in resp.iter_lines():
                chunk = json.loads(line)
                if chunk["done"]:
                    final = chunk
                else:
                    stamps.append(time.perf_counter())
        health = server.health()
    layer_cache = (health.get("model") or {}).get("layer_cache") or {}
    if cache and not layer_cache.get("enabled"):
        raise RuntimeError(f"the layer cache did not turn on: {layer_cache.get('reason')}")
    return {"variant": "server+cache" if cache else "server", "load_s": load_s,
            "cache_bytes": layer_cache.get("bytes", 0), "cache_pinned": layer_cache.get("pinned", False), "ttft_s": stamps[0] - start,
            "s_per_token": (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1), "tokens": final["eval_count"],
            "chunks": len(stamps), "server_s_per_token": final["eval_duration"] / 1e9 / max(final["eval_count"] - 1, 1),
            "output_ids": final["context"][final["prompt_eval_count"]:],
            "peak_rss_mib": health["ram_peak_rss_bytes"] / 2**20,
            "peak_vram_mib": (health["vram"] or {}).get("peak_allocated_bytes", 0) / 2**20 if health["vram"] else None}


def _stream(url: str, body: dict, out: dict) -> None:
    """One streamed /api/generate; client-side token stamps and the final chunk into ``out``."""
    import requests

    stamps, final = [], None
    out["start"] = time.perf_counter()
    with requests.post(url + "/api/generate", json=body, stream=True, timeout=600) as resp:
        for line in resp.iter_lines():
            chunk = json.loads(line)
            if chunk["done"]:
                final = chunk
            elif chunk["response"]:
                stamps.append(time.perf_counter())
    out.update(end=time.perf_counter(), stamps=stamps, final=final)


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of a process and its children: the server's gunicorn master and worker.

    On a shared machine wall time mostly measures the neighbours; CPU time measures the work the server did.
    """
    import os

    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            pids += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def run_concurrency(model: Path, tokens: int, levels: list[int], shards: Path, cache: bool) -> list[dict]:
    """N requests at once against one server (batch size max(levels)); one row per level."""
    import threading

    import requests

    from tests.support.airllm_process import AirLLMProcess

    env = {"AIRLLM_LAYER_CACHE": "on" if cache else "off", "AIRLLM_MAX_BATCH": str(max(levels)),
           "AIRLLM_MAX_QUEUE": str(max(levels))}
    body = {"model": "bench", "prompt": PROMPT, "options": {"temperature": 0, "num_predict": tokens}}
    rows = []
    with AirLLMProcess({"bench": model}, shards_dir=shards, startup_timeout=120, env=env) as server:
        requests.post(server.url + "/api/generate", json=dict(body, options={"temperature": 0, "num_predict": 2}),
                      timeout=600).raise_for_status()          # load, and fill the cache when it is on
        alone_ids = None
        for n in levels:
            outs = [{} for _ in range(n)]
            cpu0 = _cpu_seconds(server.process.pid)
            steps0 = requests.get(server.url + "/api/queue", timeout=10).json()["sweep"]["steps"]
            threads = [threading.Thread(target=_stream, args=(server.url, body, o)) for o in outs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            cpu = _cpu_seconds(server.process.pid) - cpu0
            steps = requests.get(server.url + "/api/queue", timeout=10).json()["sweep"]["steps"] - steps0
            ids = [o["final"]["context"][o["final"]["prompt_eval_count"]:] for o in outs]
            alone_ids = alone_ids or ids[0]
            generated = sum(o["final"]["eval_count"] for o in outs)
            wall = max(o["end"] for o in outs) - min(o["start"] for o in outs)
            per = [(o["stamps"][-1] - o["stamps"][0]) / max(len(o["stamps"]) - 1, 1) for o in outs]
            # Every gap between two tokens of one request is one sweep; the median ignores the sweeps a busy
            # neighbour on a shared machine stretched, which the means above include.
            gaps = sorted(b - a for o in outs for a, b in zip(o["stamps"], o["stamps"][1:]))
            median_gap = gaps[len(gaps) // 2]
            rows.append({"cache": cache, "concurrent": n, "aggregate_tok_s": generated / wall,
                         "median_s_per_token": median_gap, "median_aggregate_tok_s": n / median_gap,
                         "tokens_per_cpu_s": generated / cpu, "cpu_s_per_sweep": cpu / max(steps, 1), "sweeps": steps,
                         "s_per_token": sum(per) / len(per), "worst_s_per_token": max(per),
                         "outputs_equal_alone": all(i == alone_ids for i in ids),
                         "peak_rss_mib": server.health()["ram_peak_rss_bytes"] / 2**20})
    alone = rows[0]
    for row in rows:
        row["aggregate_x"] = row["aggregate_tok_s"] / alone["aggregate_tok_s"]
        row["s_per_token_x"] = row["s_per_token"] / alone["s_per_token"]
        row["cpu_aggregate_x"] = row["tokens_per_cpu_s"] / alone["tokens_per_cpu_s"]
        row["median_aggregate_x"] = row["median_aggregate_tok_s"] / alone["median_aggregate_tok_s"]
        row["median_s_per_token_x"] = row["median_s_per_token"] / alone["median_s_per_token"]
        row["cpu_sweep_x"] = row["cpu_s_per_sweep"] / alone["cpu_s_per_sweep"]
    return rows


def concurrency_main(args, model: Path, work: Path) -> int:
    """The --concurrency table (levels must start with 1: the lone request is the reference)."""
    levels = [int(x) for x in args.concurrency.split(",")]
    if levels[0] != 1:
        raise SystemExit("--concurrency must start with 1 (the lone request)")
    rows = []
    for cache in (False, True):
        rows += run_concurrency(model, args.tokens, levels, work / f"shards-batch-{int(cache)}", cache)
    print("| layer cache | concurrent | aggregate tok/s (mean) | x alone | s/token per request (mean) | x alone | "
          "aggregate tok/s (median sweep) | x alone | s/token (median sweep) | x alone | tokens per CPU-s | x alone | "
          "outputs = alone |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {'on' if r['cache'] else 'off'} | {r['concurrent']} | {r['aggregate_tok_s']:.1f} | "
              f"{r['aggregate_x']:.2f} | {r['s_per_token']:.4f} | {r['s_per_token_x']:.2f} | "
              f"{r['median_aggregate_tok_s']:.1f} | {r['median_aggregate_x']:.2f} | {r['median_s_per_token']:.4f} | "
              f"{r['median_s_per_token_x']:.2f} | {r['tokens_per_cpu_s']:.1f} | {r['cpu_aggregate_x']:.2f} | "
              f"{r['outputs_equal_alone']} |")
    if args.json:
        args.json.write_text(json.dumps({"model": str(model), "tokens": args.tokens, "rows": rows}, indent=2),
                             encoding="utf-8")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint folder (default: build a ~100M random Llama)")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per run (default 20)")
    parser.add_argument("--shipped-tokens", type=int, default=5, help="tokens for airllm as shipped (slow)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)")
    parser.add_argument("--concurrency", help="e.g. 1,4,8: measure batching with that many requests at once")
    args = parser.parse_args()
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(wanted) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s): {', '.join(sorted(unknown))}")
    work = Path(tempfile.mkdtemp(prefix="bench-airllm-"))
    model = args.model
    if model is None:
        from tests.support.tiny_model import MEDIUM_100M, build_tiny_model

        model = build_tiny_model(work / "medium", **MEDIUM_100M)
    if args.concurrency:
        return concurrency_main(args, model, work)
    results = []
    for variant in (v for v in VARIANTS if v in wanted):
        if variant == "server":
            results.append(run_server(model, args.tokens, work / "shards-server"))
        elif variant == "server+cache":
            results.append(run_server(model, args.tokens, work / "shards-server-cache", cache=True))
        else:
            tokens = args.shipped_tokens if variant == "airllm_shipped" else args.tokens
            results.append(run_child(variant, model, tokens, work / f"shards-{variant}"))
    by = {r["variant"]: r for r in results}
    n = min(r["tokens"] for r in results)
    same = len({tuple(r["output_ids"][:n]) for r in results}) == 1
    summary = {"model": str(model), "tokens": args.tokens, "greedy_outputs_agree": same,
               "results": [{k: v for k, v in r.items() if k != "output_ids"} for r in results]}
    ratios = {"server_speedup_vs_shipped": ("airllm_shipped", "server", False),
              "server_overhead_vs_fixed": ("server", "airllm_fixed", True),
              "cache_speedup": ("server", "server+cache", False)}
    for key, (top, bottom, minus_one) in ratios.items():
        if top in by and bottom in by:
            summary[key] = by[top]["s_per_token"] / by[bottom]["s_per_token"] - (1 if minus_one else 0)
    print("| variant | load s | TTFT s | s/token | peak RSS MiB | peak VRAM MiB |")
    print("|---|---|---|---|---|---|")
    for r in results:
        vram = f"{r['peak_vram_mib']:.0f}" if r["peak_vram_mib"] is not None else "-"
        print(f"| {r['variant']} | {r['load_s']:.2f} | {r['ttft_s']:.3f} | {r['s_per_token']:.4f} | "
              f"{r['peak_rss_mib']:.0f} | {vram} |")
    if "server_speedup_vs_shipped" in summary:
        print(f"server vs airllm as shipped: {summary['server_speedup_vs_shipped']:.1f}x faster per token")
    if "server_overhead_vs_fixed" in summary:
        print(f"server vs in-process airllm + same fix: {summary['server_overhead_vs_fixed'] * 100:+.1f}%")
    if "cache_speedup" in summary:
        print(f"layer cache: {summary['cache_speedup']:.2f}x faster per token "
              f"({by['server+cache']['cache_bytes'] / 2**20:.0f} MiB kept, pinned: {by['server+cache']['cache_pinned']})")
    print(f"greedy outputs agree: {same}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
