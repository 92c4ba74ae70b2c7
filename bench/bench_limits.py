"""Cost of the input limits checked before parsing (controlplane/limits.py), beside json.loads.

    .venv/bin/python bench/bench_limits.py [--repeat N]

For a small API body (~170 bytes), a body at the API's default limit (256 KiB of objects), and a
hostile one (100,000 "[" then "]"), prints µs per call of the limit scan and of json.loads, and the
host's load average beside them (the scans are regular expressions: C speed, no recursion).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controlplane.limits import InputRefused, Limits, scan_json


def _per_call(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeat):
            try:
                fn()
            except (InputRefused, ValueError, RecursionError):
                pass
        best = min(best, (time.perf_counter() - start) / repeat)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    bodies = {
        "small": json.dumps({"provider": "anthropic", "key": "sk-ant-" + "x" * 90, "model": "anthropic/x"}),
        "256 KiB": json.dumps({"items": [{"a": i, "b": "x" * 20} for i in range(6000)]}),
        "hostile 100k deep": "[" * 100_000 + "]" * 100_000,
    }
    limits = Limits(max_bytes=1 << 20)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, text in bodies.items():
        repeat = args.repeat * 100 if name == "small" else args.repeat
        scan = _per_call(lambda text=text: scan_json(text, "body", limits), repeat)
        parse = _per_call(lambda text=text: json.loads(text), repeat)
        print(f"{name:>18}: {len(text):>7} bytes  scan {scan:9.1f} µs  json.loads {parse:9.1f} µs")


if __name__ == "__main__":
    main()
