"""Benchmark decoding, the fused pipeline (``run``) and multi-stream ingest on a clip.

Run: ``.venv/bin/python benchmarks/bench_pipeline.py [--clip PATH] [--sample-fps 1]
[--repeat 3] [--streams 1 4] [--json benchmarks/results/bench_pipeline.json]``

Cases (medians of ``--repeat`` runs):

* decode only, keyframes (``skip_frame=NONKEY``) and all frames: frames per second,
  with and without the RGB conversion the keyframe selection needs;
* the pipeline (``streamface run``'s ``Pipeline``) in keyframe mode and, with
  ``--sample-fps``, in sampling mode, with its store writes behind the inference
  (``async``, as shipped) and, side by side, run inline (``sync``, the former
  behaviour): decoded frames per second, faces per second and the time per step
  (decode + RGB and keyframe selection on the decoding thread; detection, face
  filters/crops/alignment, embedding and attributes on the inference thread; frame
  encoding and the store writes on the commit thread, so with ``async`` the shares
  add up to more than 100%);
* efficiency = (decode-only time + raw model time for the same kept frames and faces,
  measured apart) / pipeline time;
* the CPU budget: the process's CPU seconds (all threads) of the pipeline, of the
  decode-only run and of the raw models; ``uncounted_cpu_s`` is the pipeline's CPU
  beyond those two (selection, crops, encoding, store), and ``efficiency_ceiling`` is
  the efficiency the pipeline would reach if it kept every usable core busy from start
  to end (wall time = CPU seconds / cores): no overlap can lift it higher;
* ``streamface ingest`` of the clip as 1 and as N concurrent streams (``--streams``),
  each configuration in its own subprocess: total frames/s and faces/s, per-stream
  latency from a kept frame's decoding to its commit, peak RSS (``VmHWM`` on Linux,
  where a child's ``ru_maxrss`` starts at its parent's size; ``ru_maxrss`` elsewhere,
  both recorded) and the peak RSS each stream beyond the first adds; efficiency of the
  1-stream ingest;
* the photo pass (``--photo-pass``, or alone with ``--photo-pass-only``): the extraction
  of photo folders detects a photo again, padded, only where the batched pass found no
  face. On the clip's keyframes with faces, ``FaceExtractor.process`` (video) and
  ``process_photos`` side by side: detector calls, frames detected and seconds (the
  extra pass must cost nothing there); on ``identities/johns`` (close crops) the cost
  where it does run. Video extraction (``run``, ``ingest``, ``extract`` of a store)
  never calls ``process_photos``;
* the CPU budget (``--cpu-budget``, or alone with ``--cpu-budget-only``):
  ``cpu_ms_per_kept_keyframe``, the CPU ms per kept keyframe outside decode and model
  inference, and its parts (selection, crops/alignment, frame encoding, store writes,
  other), with ``--baseline REF`` side by side with that git ref built beside this tree,
  in interleaved rounds of fresh subprocesses (``cpu_per_keyframe.py``);
  ``--zarrs-experiment`` adds this tree with the zarrs codec pipeline.

Models come from the user's cache (``STREAMFACE_HOME``), prepared on first use.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "skynews" / "skynews_sample.mp4"


def hardware() -> dict:
    try:
        from hardware import describe_hardware  # type: ignore[import-not-found]
    except ImportError:
        return {"cpu": platform.processor(), "python": platform.python_version()}
    return describe_hardware()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def decode_only(clip: Path, *, keyframes: bool, rgb: bool) -> tuple[int, float, float]:
    """Frames decoded, wall seconds, CPU seconds of this process."""
    from streamface.engine import VideoDecoder

    started, cpu = time.perf_counter(), time.process_time()
    n = 0
    with VideoDecoder(clip, keyframes_only=keyframes) as decoder:
        for frame in decoder:
            if rgb:
                frame.rgb()
            n += 1
    return n, time.perf_counter() - started, time.process_time() - cpu


class StepTimer:
    """Wraps callables and adds their time to named buckets (from any thread)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def wrap(self, name, func):
        @functools.wraps(func)
        def timed(*args, **kwargs):
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                    # This thread's CPU only: ONNX Runtime's own workers are not in it.
                    self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.thread_time() - cpu
        return timed


class InlineCommits:
    """Stand-in for :class:`~streamface.ingest.commit_queue.CommitQueue` that runs each job as it
    is submitted: the pipeline as it was before its writes moved behind the inference."""

    pending = 0

    def __init__(self, writer, *, close_writer=True, **_):
        self.writer = writer
        self.close_writer = close_writer

    def submit(self, job):
        job(self.writer)

    def close(self):
        if self.close_writer and self.writer is not None:
            self.writer.close()


#: Steps that run on the decoding thread with async writes (the rest of its time is
#: decode + RGB); detection, filters/crops, embedding and attributes run on the inference
#: thread, frame encoding and the store writes on the commit thread.
DECODING_THREAD_STEPS = ("selection", "wait_for_commits")


def run_pipeline(clip: Path, sample_fps: float | None, writes: str = "async") -> dict:
    from streamface.ingest import capture as stream_capture, keyframes, run as pipeline_module
    from streamface.ingest import session as session_module
    from streamface.ingest.analysis import FaceAnalysis
    from streamface.ingest.extraction import FaceExtraction, FaceExtractor
    from streamface.ingest.run import Pipeline
    from streamface.store import StreamWriter

    timer = StepTimer()
    patches = [
        (keyframes.KeyframeSelector, "offer", "selection"),
        (stream_capture, "encode_frame", "encode"),
        (FaceExtractor, "_filter", "filters_crops"),
        (StreamWriter, "append", "store"),
    ]
    originals = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
    for obj, attr, name in patches:
        setattr(obj, attr, timer.wrap(name, getattr(obj, attr)))
    if writes == "sync":  # the inference queue (run) and the commit queue (the stream's session)
        for module in (pipeline_module, session_module):
            originals.append((module, "CommitQueue", module.CommitQueue))
            module.CommitQueue = InlineCommits
    else:  # the decoding thread waiting for room in the commit queue
        queue_class = pipeline_module.CommitQueue
        originals.append((queue_class, "submit", queue_class.submit))
        queue_class.submit = timer.wrap("wait_for_commits", queue_class.submit)
    kept_frames: list = []
    kept_crops: list = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            capture = stream_capture.StreamCapture("bench", str(clip), tmp, batch_size=8,
                                                   sample_fps=sample_fps,
                                                   keyframes_only=sample_fps is None)
            extraction = FaceExtraction(None, None)
            analysis = FaceAnalysis(None, None)
            pipeline = Pipeline(capture, extraction, analysis)
            make_extractor, make_analyzer = extraction.make_extractor, analysis.make_analyzer

            def extractor_factory():
                extractor = make_extractor()
                detect = extractor.detector.detect

                def detect_and_keep(frames):
                    kept_frames.extend(frames)
                    return detect(frames)
                extractor.detector.detect = timer.wrap("detection", detect_and_keep)
                return extractor

            def analyzer_factory():
                analyzer = make_analyzer()
                analyzer.embed = timer.wrap("embedding", analyzer.embed)
                analyzer.describe = timer.wrap("attributes", analyzer.describe)
                analyzer.write = timer.wrap("analysis_writes", analyzer.write)
                embed_aligned = analyzer.recognizer.embed_aligned

                def embed_and_keep(crops):
                    kept_crops.append(crops.copy())
                    return embed_aligned(crops)
                analyzer.recognizer.embed_aligned = embed_and_keep
                return analyzer
            extraction.make_extractor, analysis.make_analyzer = extractor_factory, analyzer_factory
            models_started = time.perf_counter()
            extractor_factory().detector.detect([])  # load the models outside the timing
            analyzer_factory()
            timer.seconds.clear()
            timer.cpu_seconds.clear()
            kept_frames.clear()
            kept_crops.clear()
            load_s = time.perf_counter() - models_started
            cpu = time.process_time()
            summary = pipeline.call()
            cpu_s = time.process_time() - cpu
    finally:
        for obj, attr, original in originals:
            setattr(obj, attr, original)
    total = summary.seconds
    named = {k: v for k, v in timer.seconds.items()}
    # 'store' counts the frame/face appends, 'analysis_writes' the embeddings and attributes.
    on_decoding_thread = DECODING_THREAD_STEPS if writes == "async" else tuple(named)
    named["decode_rgb"] = max(0.0, total - sum(v for k, v in named.items() if k in on_decoding_thread))
    return {"writes": writes, "seconds": total, "cpu_s": cpu_s, "model_load_s": load_s,
            "decoded": summary.capture.decoded,
            "kept": summary.capture.kept, "faces": summary.extraction.faces,
            "fps": summary.capture.decoded / total, "faces_per_s": summary.extraction.faces / total,
            "share": {k: v / total for k, v in sorted(named.items())},
            "thread_cpu_s": dict(sorted(timer.cpu_seconds.items())), "_frames": kept_frames,
            "_crops": kept_crops}


def raw_model_time(frames: list, crops: list, repeat: int = 3) -> tuple[float, float]:
    """Detector on the kept frames + recognizer on the same aligned crops, measured apart:
    wall and CPU seconds (medians of ``repeat``).

    The crops are the ones the pipeline embedded, not stand-ins: ONNX Runtime runs SFace
    about twice as fast on all-zero crops as on real faces (measured), which would make
    the pipeline look less efficient than it is.
    """
    import numpy as np

    from streamface.engine import load_detector, load_recognizer

    detector, recognizer = load_detector(), load_recognizer()
    detector.detect(frames[:1])
    aligned = np.concatenate(crops) if crops else np.zeros((0, recognizer.size, recognizer.size, 3), np.uint8)
    recognizer.embed_aligned(aligned[:1])
    seconds, cpu_seconds = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        detector.detect(frames)
        recognizer.embed_aligned(aligned)
        seconds.append(time.perf_counter() - started)
        cpu_seconds.append(time.process_time() - cpu)
    return statistics.median(seconds), statistics.median(cpu_seconds)


def ingest_child(clip: Path, streams: int, sample_fps: float | None) -> dict:
    """One ingest of ``streams`` copies of the clip (in a fresh subprocess: ``ru_maxrss``
    is the peak of the whole process)."""
    from streamface.ingest.analysis import FaceAnalysis
    from streamface.ingest.extraction import FaceExtraction
    from streamface.ingest.multi_stream import Ingest
    from streamface.ingest.capture import StreamCapture

    # The models are loaded once, inside the ingest (the parent's runs left their files
    # in the page cache), so the peak is models + streams, not two copies of the models.
    extraction, analysis = FaceExtraction(None, None), FaceAnalysis(None, None)
    with tempfile.TemporaryDirectory() as tmp:
        captures = [StreamCapture(f"s{i}", str(clip), tmp, sample_fps=sample_fps,
                                  keyframes_only=sample_fps is None) for i in range(streams)]
        job = Ingest(captures, extraction, analysis, store=str(Path(tmp) / "s.zarr"))
        summary = job.call()
    peak_kib = peak_rss_kib()
    frames = sum(c.frames for c in summary.streams)
    faces = sum(c.faces for c in summary.streams)
    return {"streams": streams, "seconds": summary.seconds, "load_s": summary.load_seconds,
            "frames": frames, "keyframes": sum(c.keyframes for c in summary.streams), "faces": faces,
            "fps": frames / summary.seconds, "faces_per_s": faces / summary.seconds,
            "latency_s": statistics.mean(c.latency_s for c in summary.streams),
            "latency_max_s": max(c.latency_max_s for c in summary.streams),
            "errors": [c.error for c in summary.streams if c.error],
            "peak_rss_mib": peak_kib / 1024,
            "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def peak_rss_kib() -> int:
    """Peak resident memory of this process image, KiB.

    Linux keeps ``ru_maxrss`` across fork + exec, so a child of a big parent reports at
    least the parent's size at the fork; ``VmHWM`` (``/proc/self/status``) is the
    high-water mark of this program alone. Elsewhere ``ru_maxrss`` is all there is.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_ingest(clip: Path, streams: int, sample_fps: float | None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--clip", str(clip),
           "--ingest-child", str(streams)] + (["--sample-fps", str(sample_fps)] if sample_fps else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ingest of {streams} streams failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class CountingDetector:
    """A detector that counts its calls and the frames it detects."""

    def __init__(self, detector):
        self.detector, self.calls, self.frames = detector, 0, 0

    @property
    def conf_threshold(self):
        return self.detector.conf_threshold

    @conf_threshold.setter
    def conf_threshold(self, value):
        self.detector.conf_threshold = value

    def detect(self, frames):
        self.calls += 1
        self.frames += len(frames)
        return self.detector.detect(frames)


def photo_pass(clip: Path, crops_dir: Path, repeat: int) -> dict:
    """Detector calls, frames detected and median seconds of the video and photo paths of
    :class:`FaceExtractor` on the clip's keyframes with faces, and of the photo path on crops."""
    from streamface.engine import VideoDecoder, load_detector
    from streamface.ingest.extraction import FaceExtractor
    from streamface.ingest.photos import photo_files, read_photo

    detector = CountingDetector(load_detector())
    with VideoDecoder(clip, keyframes_only=True) as decoder:
        keyframes = [frame.rgb() for frame in decoder]
    with_faces = [f for f in keyframes if len(detector.detector.detect([f])[0])]
    crops = [read_photo(p) for p in photo_files(crops_dir)] if crops_dir.is_dir() else []
    out = {"keyframes_with_faces": len(with_faces), "crops": len(crops)}
    cases = [("video_process", with_faces, "process"), ("photo_process", with_faces, "process_photos")]
    if crops:
        cases.append(("photo_crops", crops, "process_photos"))
    timings: dict[str, list] = {}
    for _ in range(repeat):
        for label, frames, method in cases:  # interleaved rounds: the same share of the load
            detector.calls = detector.frames = 0
            extractor = FaceExtractor(detector)
            started = time.perf_counter()
            faces = 0
            for lo in range(0, len(frames), 8):
                got = getattr(extractor, method)(frames[lo:lo + 8], 0)
                faces += len(got[0] if isinstance(got, tuple) else got)
            timings.setdefault(label, []).append(time.perf_counter() - started)
            out[label] = {"frames": len(frames), "faces": faces, "detector_calls": detector.calls,
                          "frames_detected": detector.frames}
    for label, seconds in timings.items():
        out[label]["seconds"] = statistics.median(seconds)
    out["extra_detections_on_frames_with_faces"] = (out["photo_process"]["frames_detected"]
                                                    - out["video_process"]["frames_detected"])
    return out


def print_photo_pass(r: dict) -> None:
    print(f"{'photo pass':<16}{'frames':>7}{'faces':>7}{'calls':>7}{'detected':>9}{'seconds':>9}")
    for label in ("video_process", "photo_process", "photo_crops"):
        if label in r:
            c = r[label]
            print(f"{label:<16}{c['frames']:>7}{c['faces']:>7}{c['detector_calls']:>7}"
                  f"{c['frames_detected']:>9}{c['seconds']:>9.3f}")
    print(f"  extra detections on keyframes with faces: {r['extra_detections_on_frames_with_faces']}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--sample-fps", type=float, default=None,
                        help="also run the pipeline sampling at this rate")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--streams", type=int, nargs="*", default=[1, 4],
                        help="ingest the clip as this many concurrent streams (each count "
                        "in its own subprocess)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--photo-pass", action="store_true",
                        help="also compare the video and photo extraction paths (see above)")
    parser.add_argument("--photo-pass-only", action="store_true", help="only that comparison")
    parser.add_argument("--crops", type=Path, default=DEFAULT_CLIP.parents[1] / "identities" / "johns",
                        help="folder of close face crops for the photo pass")
    parser.add_argument("--cpu-budget", action="store_true",
                        help="also report CPU ms per kept keyframe outside decode and inference")
    parser.add_argument("--cpu-budget-only", action="store_true", help="only that figure")
    parser.add_argument("--baseline", default=None, metavar="REF",
                        help="git ref whose tree the CPU budget is compared with, side by side")
    parser.add_argument("--zarrs-experiment", action="store_true",
                        help="CPU budget also with the zarrs codec pipeline (an experiment)")
    parser.add_argument("--ingest-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        parser.error(f"clip not found: {args.clip}")
    if args.ingest_child is not None:
        print(json.dumps(ingest_child(args.clip, args.ingest_child, args.sample_fps)))
        return {}

    result = {"benchmark": "pipeline", "clip": str(args.clip), "hardware": hardware(), "decode": {},
              "pipeline": {}}
    if args.cpu_budget or args.cpu_budget_only:
        from cpu_per_keyframe import compare, print_comparison  # type: ignore[import-not-found]

        result["cpu_budget"] = compare(args.clip, args.baseline, args.repeat, zarrs=args.zarrs_experiment)
        result["cpu_ms_per_kept_keyframe"] = result["cpu_budget"]["cpu_ms_per_kept_keyframe"]
    if args.cpu_budget_only:
        print(f"clip {args.clip.name}; {result['hardware'].get('cpu')}")
        print_comparison(result["cpu_budget"])
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return result
    if args.photo_pass or args.photo_pass_only:
        result["photo_pass"] = photo_pass(args.clip, args.crops, args.repeat)
    if args.photo_pass_only:
        print(f"clip {args.clip.name}; {result['hardware'].get('cpu')}")
        print_photo_pass(result["photo_pass"])
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return result
    decodes = (("keyframes", True, False), ("keyframes_rgb", True, True),
               ("all_frames", False, False), ("all_frames_rgb", False, True))
    modes = [("keyframes", None)] + ([("sample", args.sample_fps)] if args.sample_fps else [])
    # Every configuration once per round, rounds repeated: on a shared machine the load
    # drifts, and interleaving gives each configuration the same share of it. Each
    # efficiency is a ratio within one round (the decode, the raw models and the run it
    # divides by were measured back to back), and the median round's ratio is reported.
    runs: dict[str, list] = {}
    decoded: dict[str, list] = {}
    raw: dict[str, list] = {}
    for _ in range(args.repeat):
        for label, keyframes, rgb in decodes:
            decoded.setdefault(label, []).append(decode_only(args.clip, keyframes=keyframes, rgb=rgb))
        for mode, fps in modes:
            for writes in ("sync", "async"):
                runs.setdefault(f"{mode}_{writes}", []).append(run_pipeline(args.clip, fps, writes))
            for n in args.streams:
                runs.setdefault(f"ingest_{mode}_x{n}", []).append(run_ingest(args.clip, n, fps))
            last = runs[f"{mode}_async"][-1]
            raw.setdefault(mode, []).append(raw_model_time(last["_frames"], last["_crops"], repeat=1))
            for label in (f"{mode}_sync", f"{mode}_async"):
                runs[label][-1].pop("_frames")
                runs[label][-1].pop("_crops")

    for label, timed in decoded.items():
        seconds = statistics.median(s for _, s, _ in timed)
        result["decode"][label] = {"frames": timed[0][0], "seconds": seconds, "fps": timed[0][0] / seconds,
                                   "cpu_s": statistics.median(c for *_, c in timed)}

    def median_run(label):
        return sorted(runs[label], key=lambda r: r["seconds"])[len(runs[label]) // 2]

    result["ingest"] = {}
    for mode, fps in modes:
        decode_label = "keyframes_rgb" if fps is None else "all_frames_rgb"
        # Per round: decode-only + raw model time, the numerator of that round's efficiency.
        ideal = [s + r for (_, s, _), (r, _) in zip(decoded[decode_label], raw[mode])]
        counted_cpu = [c + rc for (*_, c), (_, rc) in zip(decoded[decode_label], raw[mode])]
        cores = usable_cores()

        def efficiency(label):
            return statistics.median(i / r["seconds"] for i, r in zip(ideal, runs[label]))
        for writes in ("sync", "async"):
            label = f"{mode}_{writes}"
            best = median_run(label)
            best["raw_model_s"] = statistics.median(r for r, _ in raw[mode])
            best["raw_model_cpu_s"] = statistics.median(c for _, c in raw[mode])
            best["efficiency"] = efficiency(label)
            best["uncounted_cpu_s"] = statistics.median(r["cpu_s"] - c for c, r in zip(counted_cpu, runs[label]))
            best["efficiency_ceiling"] = statistics.median(i / (r["cpu_s"] / cores)
                                                           for i, r in zip(ideal, runs[label]))
            result["pipeline"][f"{mode}_{writes}"] = best
        for n in args.streams:
            best = median_run(f"ingest_{mode}_x{n}")
            if n == 1:
                best["efficiency"] = efficiency(f"ingest_{mode}_x{n}")
            result["ingest"][f"{mode}_x{n}"] = best
        one = result["ingest"].get(f"{mode}_x1")
        for n in args.streams:
            many = result["ingest"][f"{mode}_x{n}"]
            if one is not None and n > 1:
                # Memory each extra stream adds (decoder, frames in flight, commit queue).
                many["rss_per_extra_stream_mib"] = (many["peak_rss_mib"] - one["peak_rss_mib"]) / (n - 1)
                many["throughput_vs_x1"] = many["fps"] / one["fps"]

    print(f"clip {args.clip.name}; {result['hardware'].get('cpu')}")
    print(f"{'decode':<16}{'frames':>8}{'seconds':>10}{'fps':>10}")
    for label, r in result["decode"].items():
        print(f"{label:<16}{r['frames']:>8}{r['seconds']:>10.3f}{r['fps']:>10.1f}")
    print(f"{'pipeline':<12}{'decoded':>8}{'kept':>6}{'faces':>7}{'seconds':>9}{'fps':>8}{'faces/s':>9}{'eff':>6}")
    for mode, r in result["pipeline"].items():
        print(f"{mode:<12}{r['decoded']:>8}{r['kept']:>6}{r['faces']:>7}{r['seconds']:>9.2f}"
              f"{r['fps']:>8.1f}{r['faces_per_s']:>9.1f}{r['efficiency']:>6.2f}")
        print(f"  CPU: {r['cpu_s']:.2f} s, of which {r['uncounted_cpu_s']:.2f} s beyond decode + models; "
              f"efficiency ceiling on {usable_cores()} cores {r['efficiency_ceiling']:.2f}")
        print("  share: " + ", ".join(f"{k} {v:.0%}" for k, v in r["share"].items()))
    if result["ingest"]:
        print(f"{'ingest':<14}{'frames':>7}{'faces':>6}{'seconds':>8}{'fps':>7}{'faces/s':>8}"
              f"{'latency':>8}{'max':>6}{'peakMiB':>8}{'+MiB/str':>9}{'eff':>6}")
        for label, r in result["ingest"].items():
            eff = f"{r['efficiency']:>6.2f}" if "efficiency" in r else f"{'':>6}"
            print(f"{label:<14}{r['frames']:>7}{r['faces']:>6}{r['seconds']:>8.2f}{r['fps']:>7.1f}"
                  f"{r['faces_per_s']:>8.1f}{r['latency_s']:>8.2f}{r['latency_max_s']:>6.2f}"
                  f"{r['peak_rss_mib']:>8.0f}{r.get('rss_per_extra_stream_mib', float('nan')):>9.0f}{eff}")
    if "cpu_budget" in result:
        print_comparison(result["cpu_budget"])
    if "photo_pass" in result:
        print_photo_pass(result["photo_pass"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
