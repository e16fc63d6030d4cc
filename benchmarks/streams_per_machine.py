"""How many live 1080p streams one machine ingests while every stream keeps up (issue #24's
CPU stand-in for the streams-per-GPU figure; not in CI).

For each mode (keyframes only, and sampling at 5 fps) and each N of a ladder, N copies of the
sample clip are published as live HLS streams on 127.0.0.1 at real time (``LoopedLiveHLS`` of
``tests/hls_server.py``, the soak's server: the clip looped, timestamps increasing, a sliding
playlist of 12 s) and one ``streamface ingest`` reads them all for ``--seconds``, no fault
injected. ``benchmarks/soak.py``'s analysis then says, per stream, which scenes of a clean
``streamface run`` of the clip (the reference, same mode) were published and not stored.

A stream keeps up when, over the run (its first frame to 10 s before the stop):

- every reference scene published was stored (no unexplained gap: a decoder that falls
  behind the live edge loses segments as they leave the playlist);
- inference dropped none of its kept frames (a full in-flight queue drops, and counts);
- no kept frame waited more than ``--max-latency`` seconds from decoding to its commit;
- nothing was stored twice.

The ladder multiplies N (by 2) until a run fails, then bisects between the last N that kept up and the
first that did not: ``max_streams`` is the largest N at which every stream kept up. Also
recorded per run: CPU seconds of the ingest (all its threads) per kept keyframe and per stream
second, load average, peak RSS.

Run::

    .venv/bin/python benchmarks/streams_per_machine.py                 # both modes
    .venv/bin/python benchmarks/streams_per_machine.py --modes 5fps --start 2 --seconds 120

JSON: ``benchmarks/results/streams_per_machine_<host kind>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from argparse import Namespace
from datetime import datetime, timezone
from pathlib import Path

import soak
from hardware import describe_hardware

MODES = {"keyframe": [], "5fps": ["--sample-fps=5"]}
LATENCY = re.compile(r"^(?P<name>[A-Za-z0-9._-]+): .* latency (?P<mean>[0-9.]+) s \(max (?P<max>[0-9.]+) s\)")


def latencies(log: str) -> dict:
    """``{stream: (mean, max)}`` latency seconds from an ingest's summary lines."""
    out = {}
    for line in Path(log).read_text(errors="replace").splitlines():
        m = LATENCY.match(line.strip())
        if m:
            out[m.group("name")] = (float(m.group("mean")), float(m.group("max")))
    return out


def one_run(n: int, mode: str, reference, args, workdir: Path) -> dict:
    """N live copies ingested for ``args.seconds``: the soak's report, reduced to what decides."""
    run_args = Namespace(streams=n, minutes=args.seconds / 60, speed=1.0, window=6, clip=args.clip,
                         slack=10.0, tail=10.0, sample_every=2.0, ingest_arg=MODES[mode] + args.ingest_arg,
                         reference_arg=MODES[mode], schedule=[])
    folder = workdir / f"{mode}-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    run = soak.run_soak(run_args, reference, folder)
    result = soak.report(run_args, reference, run)
    last = result["ingest_runs"][-1]
    counters = last["counters"]
    waits = latencies(last["log"])
    streams = {}
    for name, s in result["streams"].items():
        c, (mean, worst) = counters.get(name, {}), waits.get(name, (None, None))
        why = []
        if "error" in s:
            why.append(s["error"])
        else:
            if s["gaps_unexplained"]:
                why.append(f"{s['gaps_unexplained']} scenes published and not stored")
            if s["duplicates_pts"] or s["duplicates_time"]:
                why.append("frames stored twice")
        if not c:
            why.append("no summary line (the ingest did not end cleanly)")
        elif c["dropped"]:
            why.append(f"{c['dropped']} kept frames dropped (inference behind)")
        if worst is not None and worst > args.max_latency:
            why.append(f"a kept frame waited {worst:.1f} s for its commit")
        streams[name] = {"kept_up": not why, "why": why, "keyframes_stored": s.get("keyframes_stored"),
                         "keyframes_reference": s.get("keyframes_reference"),
                         "gaps_by_window": s.get("gaps_by_window"), "frames": c.get("frames"),
                         "dropped": c.get("dropped"), "latency_s": mean, "latency_max_s": worst}
    cpu = [c for _, _, c in run["cpu_samples"]]
    kept = sum(s["keyframes_stored"] or 0 for s in streams.values())
    seconds = run["stopped"] - run["started"]
    return {"streams": n, "mode": mode, "seconds": round(seconds, 1),
            "kept_up": all(s["kept_up"] for s in streams.values()), "cpu_s": cpu[-1] if cpu else None,
            "cpu_ms_per_kept_keyframe": round(1000 * cpu[-1] / kept, 1) if cpu and kept else None,
            "cpu_s_per_stream_second": round(cpu[-1] / (n * seconds), 3) if cpu else None,
            "keyframes_stored": kept, "load_average_end": os.getloadavg(),
            "peak_rss_mb": result["memory"].get("max_mb"), "per_stream": streams}


def ladder(mode: str, reference, args, workdir: Path) -> dict:
    """Multiply N by ``args.factor`` from ``args.start`` until a run fails, then bisect (at most
    ``args.bisect`` runs): the largest N that kept up, and the first N seen to fail."""
    runs, good, bad, n, halvings = [], 0, None, args.start, 0
    while n <= args.max_streams:
        r = one_run(n, mode, reference, args, workdir)
        runs.append(r)
        print(f"{mode}: {n} streams {'kept up' if r['kept_up'] else 'fell behind'} "
              f"({r['cpu_ms_per_kept_keyframe']} CPU ms/kept keyframe, load {r['load_average_end'][0]:.1f})"
              + "".join(f"; {k}: {', '.join(v['why'])}" for k, v in r["per_stream"].items() if v["why"]),
              flush=True)
        if r["kept_up"]:
            good = n
        else:
            bad = n
        if bad is None:
            n *= args.factor
            continue
        if bad - good <= 1 or halvings >= args.bisect:
            break
        n, halvings = (good + bad) // 2, halvings + 1
    return {"max_streams": good, "first_failing": bad, "runs": runs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["keyframe", "5fps"])
    parser.add_argument("--start", type=int, default=1, help="First N of the ladder.")
    parser.add_argument("--max-streams", type=int, default=64, help="Largest N tried.")
    parser.add_argument("--factor", type=int, default=2, help="N grows by this factor until a run fails.")
    parser.add_argument("--bisect", type=int, default=8, help="Runs at most between the last N that kept "
                        "up and the first that did not.")
    parser.add_argument("--seconds", type=float, default=90.0, help="Wall-clock length of each run.")
    parser.add_argument("--max-latency", type=float, default=10.0,
                        help="Seconds a kept frame may wait from decoding to its commit.")
    parser.add_argument("--clip", type=Path, default=soak.CLIP)
    parser.add_argument("--ingest-arg", action="append", default=[],
                        help="Extra argument for `streamface ingest` (repeatable).")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.start < 1 or args.factor < 2 or args.bisect < 0 or args.seconds < 40:
        parser.error("--start >= 1, --factor >= 2, --bisect >= 0 and --seconds >= 40 (startup and tail "
                     "take 20 s)")
    if not args.clip.is_file():
        parser.error(f"--clip: {args.clip} not found")
    hardware = describe_hardware()
    workdir = Path(tempfile.mkdtemp(prefix="streams-per-machine-"))
    streamface = Path(sys.executable).parent / "streamface"
    result = {"benchmark": "streams_per_machine",
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "hardware": hardware,
              "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json"},
              "modes": {}}
    for mode in args.modes:
        (workdir / f"ref-{mode}").mkdir()
        reference = soak.run_reference(streamface, args.clip, workdir / f"ref-{mode}", MODES[mode])
        print(f"{mode}: reference {len(reference.seconds)} keyframes, {int(reference.faces.sum())} faces per "
              f"{args.clip.name}", flush=True)
        result["modes"][mode] = ladder(mode, reference, args, workdir)
        result["modes"][mode]["reference_keyframes_per_loop"] = int(len(reference.seconds))
    kind = "cpu-{}core".format(os.cpu_count())
    out = args.json or Path(__file__).resolve().parent / "results" / f"streams_per_machine_{kind}.json"
    out.write_text(json.dumps(result, indent=1, default=str))
    for mode, m in result["modes"].items():
        print(f"{mode}: max_streams {m['max_streams']} (first failing: {m['first_failing']})")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
