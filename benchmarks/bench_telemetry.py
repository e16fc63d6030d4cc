"""Cost of recording a metric on the hot path, against a plain ``int`` increment.

Measured side by side in one run, best of ``--repeats`` timings of ``--n`` operations:

- ``int_inc``: ``x += 1`` on a local int (the floor);
- ``counter_inc``: ``StreamMetrics.keyframes.inc()`` (a bound prometheus_client child);
- ``histogram_observe``: ``model_latency("sface").observe(v)`` on a bound child;
- ``update``: :meth:`StreamMetrics.update` with cumulative totals (what a per-frame
  ``on_frame`` callback would call: seven counters compared, four of them increased);
- ``counter_inc_4_threads``: the same counter incremented from 4 threads at once
  (per-op time over all increments; contention of its lock under the GIL).

Run::

    .venv/bin/python benchmarks/bench_telemetry.py [--n 1000000] [--json benchmarks/results/bench_telemetry.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardware import describe_hardware  # noqa: E402

from streamface.ops.telemetry import Telemetry  # noqa: E402


def _best(fn, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="Operations per timing.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    news = Telemetry().stream("news")
    counter, latency = news.keyframes, news.model_latency("sface")

    def int_inc(n):
        x = 0
        for _ in range(n):
            x += 1
        return x

    def counter_inc(n):
        inc = counter.inc
        for _ in range(n):
            inc()

    def histogram_observe(n):
        observe = latency.observe
        for _ in range(n):
            observe(0.012)

    def update(n):
        step = news.update
        for i in range(n):
            step(i, i // 10, i // 5, 0, empty=i // 3)

    def threaded(n):
        workers = [threading.Thread(target=counter_inc, args=(n // 4,)) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    cases = {"int_inc": (int_inc, args.n), "counter_inc": (counter_inc, args.n),
             "histogram_observe": (histogram_observe, args.n), "update": (update, args.n // 10),
             "counter_inc_4_threads": (threaded, args.n)}
    results = {"hardware": describe_hardware(), "n": args.n, "repeats": args.repeats, "cases": {}}
    for name, (fn, n) in cases.items():
        seconds = _best(fn, n, args.repeats)
        results["cases"][name] = {"ops": n, "seconds": seconds, "ops_per_s": n / seconds,
                                  "ns_per_op": 1e9 * seconds / n}
    base = results["cases"]["int_inc"]["ns_per_op"]
    for name, case in results["cases"].items():
        case["cost_vs_int_inc"] = case["ns_per_op"] / base
        print(f"{name:24s} {case['ops_per_s'] / 1e6:8.2f} M ops/s  {case['ns_per_op']:8.1f} ns/op  "
              f"x{case['cost_vs_int_inc']:.1f} of int +=1")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
