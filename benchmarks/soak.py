"""Soak and fault test of ``streamface ingest`` (issue #10; not in CI).

N live HLS streams on 127.0.0.1, each the sample clip published over and over with
timestamps that keep increasing (:class:`LoopedLiveHLS` in ``tests/hls_server.py``: each
loop remuxed with its pts shifted, no re-encoding, no pts reset), are ingested by one
``streamface ingest`` subprocess for ``--minutes``, while faults are injected on a
schedule:

- ``restart``: a stream's server is shut down for N s, then started on the same port
  (its live clock keeps running, as a restarted origin's would);
- ``stall``: every request to a stream's server hangs for N s (longer than the
  decoder's 15 s read timeout), then the connection is dropped;
- ``truncate``: the next segment a stream publishes is served cut to half its bytes,
  on every fetch;
- ``kill``: the whole ingest process group gets SIGKILL, stays down N s, and
  ``streamface ingest`` is started again with the same store (it resumes every stream).

The ingest's RSS is sampled every few seconds. At the end (SIGINT: the ingest commits
what it decoded) the store is read back and, per stream, reported against a reference
made by one clean ``streamface run`` of the clip (its stored keyframes, by position in
the clip, and faces per keyframe):

- ``keyframes``/``faces``: stored, against the reference count of every scene published
  while the ingest ran (loops x scenes), and against those published outside downtime;
- ``duplicates``: frames stored twice (same pts, or same capture time); must be 0;
- ``gaps``: reference scenes not stored, each placed in a window: ``fault`` (from
  ``--slack`` s before a fault began to its end: a segment published just before a
  fault may not have been fetched or committed yet, and SIGKILL loses what was not
  committed), ``recovery`` (from a fault's end to the next stored frame), ``startup``
  (before the first stored frame), ``tail`` (the last ``--tail`` s before the stop) or
  ``unexplained``; only the last is a failure;
- ``reconnect_s`` per fault: from its end (server back, stall over, truncated segment
  over, ingest restarted) to the next stored frame's capture time (its decoding time);
- memory: RSS samples, and the slope of a linear fit over the second half of the run
  (samples of the last ingest process only), in MB/hour;
- the ingest's own counters (dropped frames, reconnects) from its summary lines.

``--speed S`` publishes S times faster than real time (the playlist's ``#EXTINF`` are
scaled, so the client reloads at the served pace): S times more keyframes per second
for the same CPU, so it measures whether ingest keeps up with S real-time streams
each; fault durations, reconnect times and memory slopes stay in wall-clock seconds.
The default is real time.

Run::

    .venv/bin/python benchmarks/soak.py --streams 2 --minutes 7
    .venv/bin/python benchmarks/soak.py                       # 4 streams, 30 min
    .venv/bin/python benchmarks/soak.py --faults "restart@60:20/0,stall@90:30/1,truncate@120/0,kill@150:5"

JSON goes to ``benchmarks/results/soak-<UTC date and time>.json``; a table to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the live HLS server is shared with the tests
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hls_server import HLSServer, LiveFaults, LoopedLiveHLS, cut_segments  # noqa: E402

CLIP = Path("/work/shared/data/skynews/skynews_sample.mp4")
FAULT_KINDS = ("restart", "stall", "truncate", "kill")
READ_TIMEOUT_S = 15.0   # VideoDecoder's default read timeout: a stall must outlast it
MATCH_S = 0.1           # a stored frame is a reference scene when within this of its position


# ---- the fault schedule -------------------------------------------------------------------------


@dataclass
class Fault:
    """One injected fault: ``kind`` at ``at`` seconds into the run, lasting ``seconds``.

    ``stream`` is the stream's index (None for ``kill``, which hits the whole process).
    The rest is filled in while it runs: wall-clock ``start``/``end`` (epoch seconds),
    for ``truncate`` the segment cut, and after the run ``recovered`` (capture time of
    the next stored frame per stream) and ``reconnect_s``.
    """

    kind: str
    at: float
    seconds: float = 0.0
    stream: int | None = None
    start: float | None = None
    end: float | None = None
    segment: int | None = None
    recovered: dict = field(default_factory=dict)
    reconnect_s: dict = field(default_factory=dict)


def default_schedule(streams: int, duration_s: float) -> list[Fault]:
    """Every kind at least once per stream, staggered across streams, all in the first half.

    The second half stays clean so that its memory slope is the steady state of one
    process (the kill restarts it). Restart 20 s, stall 30 s (twice the read timeout),
    kill 5 s down (short, so the restarted ingest re-reads segments the killed one may
    have stored: the duplicate check has something to catch).
    """
    stagger = min(10.0, 0.05 * duration_s / max(streams, 1))
    faults = [Fault("kill", round(0.30 * duration_s, 1), 5.0)]
    for j in range(streams):
        faults += [Fault("restart", round(0.10 * duration_s + j * stagger, 1), 20.0, j),
                   Fault("truncate", round(0.20 * duration_s + j * stagger, 1), 0.0, j),
                   Fault("stall", round(0.38 * duration_s + j * stagger, 1), 2 * READ_TIMEOUT_S, j)]
    return sorted(faults, key=lambda f: f.at)


def parse_faults(spec: str, streams: int, duration_s: float) -> list[Fault]:
    """``kind@at[:seconds][/stream]``, comma-separated (``kill`` takes no stream)."""
    faults = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        m = re.fullmatch(r"(\w+)@([0-9.]+)(?::([0-9.]+))?(?:/(\d+))?", item)
        if m is None:
            raise SystemExit(f"--faults: {item!r} is not kind@at[:seconds][/stream]")
        kind, at, seconds, stream = m.group(1), float(m.group(2)), float(m.group(3) or 0), m.group(4)
        if kind not in FAULT_KINDS:
            raise SystemExit(f"--faults: {item!r}: kind must be one of {FAULT_KINDS}")
        if at >= duration_s:
            raise SystemExit(f"--faults: {item!r} starts after the run ends ({duration_s:.0f} s)")
        if kind == "kill":
            if stream is not None:
                raise SystemExit(f"--faults: {item!r}: kill hits the whole process, give no stream")
        elif stream is None or int(stream) >= streams:
            raise SystemExit(f"--faults: {item!r}: give a stream index below {streams}")
        if kind in ("restart", "stall", "kill") and seconds <= 0:
            raise SystemExit(f"--faults: {item!r}: give its duration (kind@at:seconds)")
        faults.append(Fault(kind, at, seconds, None if stream is None else int(stream)))
    return sorted(faults, key=lambda f: f.at)


# ---- the ingest process -------------------------------------------------------------------------


class IngestProcess:
    """``streamface ingest`` as a subprocess in its own process group, restartable."""

    def __init__(self, command: list[str], logs: Path) -> None:
        self.command = command
        self.logs = logs
        self.runs: list[dict] = []   # one per process: pid, start, end, returncode, log
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def start(self) -> None:
        with self.lock:
            log = self.logs / f"ingest-{len(self.runs)}.log"
            with open(log, "wb") as out:
                self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True, cwd=REPO)
            self.runs.append({"pid": self.proc.pid, "start": time.time(), "end": None,
                              "returncode": None, "log": str(log)})

    def kill(self) -> None:
        with self.lock:
            if self.proc is not None:
                _signal_group(self.proc, signal.SIGKILL)
                self.proc.wait()
                self._ended()

    def stop(self, timeout: float = 180.0) -> None:
        """SIGINT (commit what was decoded), SIGKILL after ``timeout`` s."""
        with self.lock:
            if self.proc is None:
                return
            _signal_group(self.proc, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc, signal.SIGKILL)
                self.proc.wait()
                self.runs[-1]["stop_timed_out"] = True
            self._ended()

    def _ended(self) -> None:
        self.runs[-1].update(end=time.time(), returncode=self.proc.returncode)
        self.proc = None

    def rss(self) -> tuple[int, int] | None:
        """(pid, RSS bytes of the process and its children), or None when none runs (without
        psutil: the process alone, from ``/proc``)."""
        try:
            import psutil
        except ImportError:
            psutil = None

        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                return None
            if psutil is None:
                try:
                    status = Path(f"/proc/{self.proc.pid}/status").read_text()
                except OSError:
                    return None
                kb = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
                return (self.proc.pid, int(kb.group(1)) * 1024) if kb else None
            try:
                p = psutil.Process(self.proc.pid)
                return self.proc.pid, p.memory_info().rss + sum(
                    c.memory_info().rss for c in p.children(recursive=True))
            except psutil.Error:
                return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds of the running ingest process (all its threads) so far, from
        ``/proc`` (Linux; the ingest starts no child processes without --ray). None: none runs."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                return None
            try:
                fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                return None
            # After the command name: state is field 3, utime and stime fields 14 and 15.
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the process group ``proc`` leads (gone already when the ingest ended by itself)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


SUMMARY_LINE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+): (?P<frames>\d+) frames, (?P<keyframes>\d+) keyframes, "
                          r"(?P<faces>\d+) faces, (?P<reconnects>\d+) reconnects, (?P<dropped>\d+) dropped")


def ingest_counters(log: str) -> dict:
    """The per-stream summary lines an ingest printed at its end (empty when it was killed)."""
    out = {}
    for line in Path(log).read_text(errors="replace").splitlines():
        m = SUMMARY_LINE.match(line.strip())
        if m:
            out[m.group("name")] = {k: int(v) for k, v in m.groupdict().items() if k != "name"}
    return out


# ---- the reference ------------------------------------------------------------------------------


@dataclass
class Reference:
    """What one clean ``streamface run`` of the clip stores: keyframe positions and faces."""

    seconds: np.ndarray   # (K,) float64, seconds into the clip of each stored keyframe
    faces: np.ndarray     # (K,) int64, faces stored for it


def run_reference(streamface: Path, clip: Path, workdir: Path, extra: list[str]) -> Reference:
    from streamface.store import FaceStore

    store = workdir / "reference.zarr"
    subprocess.run([str(streamface), "run", str(clip), "--store", str(store), "--name", "ref",
                    "--no-progress", *extra], check=True, cwd=REPO, capture_output=True)
    stream = FaceStore.open(store).stream("ref")
    frames = stream.read_frames()
    faces = stream.read_faces(columns=("frame",))
    per_frame = np.bincount(faces.frame, minlength=len(frames.pts)) if len(faces.frame) else \
        np.zeros(len(frames.pts), np.int64)
    first = _first_pts(clip)
    return Reference(np.round(frames.pts - first, 3), per_frame.astype(np.int64))


def _first_pts(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return min(float(p.pts * stream.time_base) for p in container.demux(stream) if p.pts is not None)


# ---- the run ------------------------------------------------------------------------------------


@dataclass
class LiveStream:
    name: str
    live: LoopedLiveHLS
    server: HLSServer


def inject(fault: Fault, streams: list[LiveStream], ingest: IngestProcess) -> None:
    """Carry ``fault`` out (blocking for its duration); records its wall-clock start and end."""
    fault.start = time.time()
    if fault.kind == "restart":
        server = streams[fault.stream].server
        server.stop()
        time.sleep(fault.seconds)
        server.start()
    elif fault.kind == "stall":
        streams[fault.stream].live.faults.stall(fault.seconds)
        time.sleep(fault.seconds)
    elif fault.kind == "truncate":
        live = streams[fault.stream].live
        fault.segment = live.published()  # the next one to come out: not fetched yet
        live.faults.truncate(fault.segment, 0.5)
        start, end = (live.started_wall + live.segment_start(n) / live.speed
                      for n in (fault.segment, fault.segment + 1))
        fault.start = start
        time.sleep(max(0.0, end - time.time()))
    elif fault.kind == "kill":
        ingest.kill()
        time.sleep(fault.seconds)
        ingest.start()
    fault.end = time.time()


def run_soak(args, reference: Reference, workdir: Path) -> dict:
    segments = cut_segments(args.clip, workdir / "hls", seconds=2.0)
    streams = []
    for j in range(args.streams):
        live = LoopedLiveHLS(workdir / "hls", segments, speed=args.speed, window=args.window,
                             faults=LiveFaults())
        streams.append(LiveStream(f"live{j}", live, HLSServer(live)))
    store = workdir / "soak.zarr"
    streamface = Path(sys.executable).parent / "streamface"
    command = [str(streamface), "ingest", "--store", str(store), "--no-progress", *args.ingest_arg]
    for s in streams:
        s.live.start()
        s.server.start()
        command += ["--source", f"{s.name}={s.server.url}"]
    ingest = IngestProcess(command, workdir)
    started = time.time()
    ingest.start()

    faults = args.schedule
    threads = []
    for fault in faults:
        t = threading.Timer(max(0.0, started + fault.at - time.time()), inject, (fault, streams, ingest))
        t.daemon = True
        t.start()
        threads.append(t)

    samples = []  # (seconds since start, pid, rss bytes)
    cpu_samples = []  # (seconds since start, pid, CPU seconds of the ingest so far)
    end = started + args.minutes * 60
    while (now := time.time()) < end:
        got = ingest.rss()
        if got is not None:
            samples.append((round(now - started, 2), got[0], got[1]))
            cpu = ingest.cpu_seconds()
            if cpu is not None:
                cpu_samples.append((round(now - started, 2), got[0], round(cpu, 2)))
        time.sleep(min(args.sample_every, max(0.0, end - time.time())))
    for t in threads:
        t.join(timeout=max(f.seconds for f in faults) + 60 if faults else 1)
    stopped = time.time()
    ingest.stop()
    for s in streams:
        s.server.stop()
    return {"streams": streams, "store": store, "ingest": ingest, "started": started,
            "stopped": stopped, "samples": samples, "cpu_samples": cpu_samples, "segments": segments}


# ---- the analysis -------------------------------------------------------------------------------


def analyse_stream(index: int, s: LiveStream, store, reference: Reference, faults: list[Fault],
                   started: float, stopped: float, args) -> dict:
    live = s.live
    try:
        stream = store.stream(s.name)
    except Exception:  # noqa: BLE001 - a stream that never stored a frame
        stream = None
    if stream is not None and stream.num_frames:
        frames = stream.read_frames()
        faces = stream.read_faces(columns=("frame",)).frame
        pts, time_us = frames.pts, frames.time_us
    else:
        pts, time_us, faces = np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64)
    per_frame = np.bincount(faces, minlength=len(pts)) if len(faces) else np.zeros(len(pts), np.int64)
    captured = time_us / 1e6

    duplicate_pts = len(pts) - len(np.unique(np.round(pts, 3)))
    duplicate_time = len(time_us) - len(np.unique(time_us))

    # Stored frames -> (loop, reference scene); the rest are extras (kept here, not in the clean run).
    stored: dict[tuple[int, int], int] = {}
    extras = []
    for row, t in enumerate(pts):
        loop, offset = live.position(float(t))
        k = int(np.argmin(np.abs(reference.seconds - offset))) if len(reference.seconds) else -1
        if k >= 0 and abs(reference.seconds[k] - offset) <= MATCH_S:
            stored.setdefault((loop, k), row)
        else:
            extras.append(round(float(t), 3))

    mine = [f for f in faults if f.stream in (None, index) and f.start is not None]
    for f in mine:
        later = captured[captured > f.end]
        f.recovered[s.name] = float(later.min()) if len(later) else None
        f.reconnect_s[s.name] = None if not len(later) else round(float(later.min()) - f.end, 2)
    first_frame = float(captured.min()) if len(captured) else stopped

    def window(published: float) -> str:
        if published >= stopped - args.tail:
            return "tail"
        if published < first_frame:
            return "startup"
        for f in mine:
            if f.start - args.slack <= published <= f.end:
                return "fault"
        for f in mine:
            recovered = f.recovered[s.name] if f.recovered[s.name] is not None else stopped
            if f.end <= published <= recovered:
                return "recovery"
        return "outside"

    expected = {"tail": 0, "startup": 0, "fault": 0, "recovery": 0, "outside": 0}
    gaps = {k: 0 for k in expected}
    gap_list = []
    faces_expected = faces_matched = faces_reference_of_stored = 0
    last_loop = int(math.ceil((stopped - live.started_wall) * live.speed / live.loop_s))
    for loop in range(last_loop + 1):
        for k, offset in enumerate(reference.seconds):
            seg = live.segment_of(float(offset))
            published = live.started_wall + live.segment_start(loop * len(live.segments) + seg) / live.speed
            if published >= stopped:
                continue
            where = window(published)
            expected[where] += 1
            if where != "tail":
                faces_expected += int(reference.faces[k])
            if (loop, k) in stored:
                faces_matched += int(per_frame[stored[(loop, k)]])
                faces_reference_of_stored += int(reference.faces[k])
            else:
                gaps[where] += 1
                if where in ("outside", "recovery", "fault") and len(gap_list) < 200:
                    gap_list.append({"loop": loop, "clip_s": float(offset), "where": where,
                                     "published_s": round(published - started, 1)})
    outside = expected["outside"]
    return {
        "keyframes_stored": int(len(pts)),
        "keyframes_matched": len(stored),
        "keyframes_extra": len(extras),
        "keyframes_reference": sum(v for k, v in expected.items() if k != "tail"),
        "keyframes_reference_outside_downtime": outside,
        "keyframes_stored_outside_downtime": outside - gaps["outside"],
        "faces_stored": int(len(faces)),
        "faces_reference": faces_expected,
        "faces_on_matched_keyframes": faces_matched,
        "faces_reference_of_matched_keyframes": faces_reference_of_stored,
        "duplicates_pts": int(duplicate_pts),
        "duplicates_time": int(duplicate_time),
        "expected_by_window": expected,
        "gaps_by_window": gaps,
        "gaps_unexplained": gaps["outside"],
        "gaps": gap_list,
        "extras_pts": extras[:50],
        "reconnect_s": {f"{f.kind}@{f.at:g}": f.reconnect_s.get(s.name) for f in mine},
        "served": {"truncated_segments": live.faults.truncated_served, "stalled_requests": live.faults.hung,
                   "loops": round((stopped - live.started_wall) * live.speed / live.loop_s, 2)},
    }


_MEMORY_WINDOW_S = 600.0


def memory_trend(samples: list, duration_s: float) -> dict:
    """RSS summary; over the run's second half (last process only) the least-squares MB/hour slope,
    10-minute medians and their Theil-Sen slope."""
    if not samples:
        return {"samples": 0}
    last_pid = samples[-1][1]
    half = [(t, rss) for t, pid, rss in samples if pid == last_pid and t >= duration_s / 2]
    out = {"samples": len(samples), "first_mb": round(samples[0][2] / 2**20, 1),
           "max_mb": round(max(r for _, _, r in samples) / 2**20, 1),
           "last_mb": round(samples[-1][2] / 2**20, 1), "second_half_samples": len(half)}
    if len(half) >= 3:
        t, rss = np.array(half, float).T
        slope, _ = np.polyfit(t / 3600.0, rss / 2**20, 1)
        out.update(second_half_slope_mb_per_hour=round(float(slope), 1),
                   second_half_min_mb=round(float(rss.min()) / 2**20, 1),
                   second_half_max_mb=round(float(rss.max()) / 2**20, 1))
        # The allocator grows RSS in steps and sometimes gives memory back, so a least-squares
        # line over raw samples follows one step or one dip; the median of each window and the
        # Theil-Sen slope between windows say whether there is a trend.
        window = _MEMORY_WINDOW_S
        medians = []
        for a in np.arange(t[0], t[-1], window):
            inside = (t >= a) & (t < a + window)
            if np.count_nonzero(inside) >= 3:
                medians.append((float(np.median(t[inside])), float(np.median(rss[inside]))))
        out["second_half_window_s"] = window
        out["second_half_window_medians_mb"] = [round(m / 2**20, 1) for _, m in medians]
        if len(medians) >= 2:
            pairs = [(m2 - m1) / (t2 - t1) for i, (t1, m1) in enumerate(medians) for t2, m2 in medians[i + 1:]]
            out["second_half_theil_sen_mb_per_hour"] = round(float(np.median(pairs)) * 3600 / 2**20, 1)
    return out


def report(args, reference: Reference, run: dict) -> dict:
    from hardware import describe_hardware
    from streamface.store import FaceStore

    store = FaceStore.open(run["store"]) if Path(run["store"]).exists() else None
    faults = args.schedule
    per_stream = {}
    for j, s in enumerate(run["streams"]):
        if store is None:
            per_stream[s.name] = {"error": "no store was written"}
            continue
        per_stream[s.name] = analyse_stream(j, s, store, reference, faults, run["started"],
                                            run["stopped"], args)
    ingest = run["ingest"]
    for r in ingest.runs:
        r["counters"] = ingest_counters(r["log"])
        r["start_s"] = round(r["start"] - run["started"], 2)
        r["end_s"] = None if r["end"] is None else round(r["end"] - run["started"], 2)
        r["log_tail"] = Path(r["log"]).read_text(errors="replace").splitlines()[-8:]
    return {
        "benchmark": "soak",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": describe_hardware(),
        "load_average_end": os.getloadavg(),
        "parameters": {"streams": args.streams, "minutes": args.minutes, "speed": args.speed,
                       "window": args.window, "clip": str(args.clip), "slack_s": args.slack,
                       "tail_s": args.tail, "sample_every_s": args.sample_every,
                       "ingest_args": args.ingest_arg, "reference_args": args.reference_arg,
                       "read_timeout_s": READ_TIMEOUT_S},
        "reference": {"keyframes_per_loop": int(len(reference.seconds)),
                      "faces_per_loop": int(reference.faces.sum()),
                      "loop_s": run["streams"][0].live.loop_s,
                      "clip_s": [float(x) for x in reference.seconds]},
        "faults": [{k: v for k, v in asdict(f).items() if k != "recovered"}
                   | {"start_s": None if f.start is None else round(f.start - run["started"], 2),
                      "end_s": None if f.end is None else round(f.end - run["started"], 2)}
                   for f in faults],
        "ingest_runs": ingest.runs,
        "streams": per_stream,
        "memory": memory_trend(run["samples"], args.minutes * 60),
        "memory_samples": [(t, round(rss / 2**20, 1)) for t, _, rss in run["samples"]],
    }


def print_table(result: dict) -> None:
    print(f"{'stream':8} {'kf stored':>9} {'kf ref':>7} {'kf ref out':>10} {'kf out ok':>9} {'extra':>5} "
          f"{'faces':>6} {'faces ref':>9} {'dup':>4} {'gaps fault/recov/start/tail/UNEXPL':>34}  reconnect s")
    for name, s in result["streams"].items():
        if "error" in s:
            print(f"{name:8} {s['error']}")
            continue
        g = s["gaps_by_window"]
        gaps = f"{g['fault']}/{g['recovery']}/{g['startup']}/{g['tail']}/{g['outside']}"
        rec = " ".join(f"{k}={v}" for k, v in s["reconnect_s"].items())
        print(f"{name:8} {s['keyframes_stored']:9d} {s['keyframes_reference']:7d} "
              f"{s['keyframes_reference_outside_downtime']:10d} {s['keyframes_stored_outside_downtime']:9d} "
              f"{s['keyframes_extra']:5d} {s['faces_stored']:6d} {s['faces_reference']:9d} "
              f"{s['duplicates_pts'] + s['duplicates_time']:4d} {gaps:>34}  {rec}")
    m = result["memory"]
    print(f"memory: {m.get('first_mb')} -> {m.get('last_mb')} MB (max {m.get('max_mb')}); second-half slope "
          f"{m.get('second_half_slope_mb_per_hour', 'n/a')} MB/h over {m.get('second_half_samples')} samples; "
          f"Theil-Sen over {m.get('second_half_window_s', 0):g} s medians "
          f"{m.get('second_half_theil_sen_mb_per_hour', 'n/a')} MB/h ({m.get('second_half_window_medians_mb')})")
    for r in result["ingest_runs"]:
        counters = ", ".join(f"{k}: {v['dropped']} dropped, {v['reconnects']} reconnects"
                             for k, v in r["counters"].items()) or "no summary (killed)"
        print(f"ingest pid {r['pid']} {r['start_s']}-{r['end_s']} s, exit {r['returncode']}: {counters}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--streams", type=int, default=4, help="Live streams.")
    parser.add_argument("--minutes", type=float, default=30.0, help="Wall-clock length of the run.")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="Live clock vs wall clock (see the module docstring before changing it).")
    parser.add_argument("--window", type=int, default=6, help="Segments (2 s each) in a live playlist.")
    parser.add_argument("--clip", type=Path, default=CLIP, help="Clip to loop.")
    parser.add_argument("--faults", default=None,
                        help="kind@at[:seconds][/stream],... (kinds: restart, stall, truncate, kill); "
                        "default: each kind once per stream in the first half, staggered.")
    parser.add_argument("--slack", type=float, default=10.0,
                        help="Seconds before a fault whose scenes may be lost to it.")
    parser.add_argument("--tail", type=float, default=10.0,
                        help="Seconds before the stop whose scenes are not expected.")
    parser.add_argument("--sample-every", type=float, default=5.0, help="Seconds between RSS samples.")
    parser.add_argument("--ingest-arg", action="append", default=[],
                        help="Extra argument for `streamface ingest` (repeatable; "
                        "e.g. --ingest-arg=--batch-size=4).")
    parser.add_argument("--reference-arg", action="append", default=[],
                        help="Extra argument for the reference `streamface run` (repeatable; give it the "
                        "same keyframe/detector options as --ingest-arg).")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="Where the store, segments and logs go [default: a temporary folder, kept].")
    parser.add_argument("--json", type=Path, default=None,
                        help="Output [default: benchmarks/results/soak-<UTC time>.json].")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.minutes <= 0 or args.speed <= 0 or args.window < 1:
        parser.error("--streams, --minutes, --speed and --window must be positive")
    if not args.clip.is_file():
        parser.error(f"--clip: {args.clip} not found")
    duration = args.minutes * 60
    args.schedule = (default_schedule(args.streams, duration) if args.faults is None
                     else parse_faults(args.faults, args.streams, duration))
    for f in args.schedule:
        if f.kind == "stall" and f.seconds <= READ_TIMEOUT_S:
            print(f"note: stall@{f.at:g} lasts {f.seconds:g} s, not longer than the {READ_TIMEOUT_S:g} s "
                  "read timeout: the client may not notice it", file=sys.stderr)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%M")
    out = args.json or REPO / "benchmarks" / "results" / f"soak-{stamp}.json"

    print(f"soak: {args.streams} streams x {args.minutes:g} min at {args.speed:g}x, workdir {workdir}, "
          f"json {out}", flush=True)
    for f in args.schedule:
        print(f"  fault {f.kind}@{f.at:g}s" + (f" for {f.seconds:g}s" if f.seconds else "")
              + ("" if f.stream is None else f" on live{f.stream}"), flush=True)
    streamface = Path(sys.executable).parent / "streamface"
    reference = run_reference(streamface, args.clip, workdir, args.reference_arg)
    print(f"reference: {len(reference.seconds)} keyframes, {int(reference.faces.sum())} faces per loop",
          flush=True)
    run = run_soak(args, reference, workdir)
    result = report(args, reference, run)
    result["workdir"] = str(workdir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print_table(result)
    print(f"-> {out}")
    bad = [n for n, s in result["streams"].items()
           if "error" in s or s["duplicates_pts"] or s["duplicates_time"] or s["gaps_unexplained"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
