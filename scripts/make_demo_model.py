"""Build the demo model: a small random-weight Llama checkpoint, offline, for trying the AirLLM server on a CPU.

    .venv/bin/python scripts/make_demo_model.py ./demo-model            # ~170k parameters, a few seconds
    .venv/bin/python scripts/make_demo_model.py ./demo-100m --size 100m # ~100M parameters (the benchmark's size)

Then serve it: AIRLLM_MODELS="demo=$PWD/demo-model" AIRLLM_DEVICE=cpu .venv/bin/python -m app.airllm_server
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.airllm_server.demo import SIZES, build_tiny_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Write the checkpoint and print the line that serves it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write the checkpoint (created)")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = build_tiny_model(args.folder, seed=args.seed, **SIZES[args.size]).resolve()
    print(f"demo model written to {folder}")
    print(f'serve it: AIRLLM_MODELS="demo={folder}" AIRLLM_DEVICE=cpu .venv/bin/python -m app.airllm_server')
    return 0


if __name__ == "__main__":
    sys.exit(main())
