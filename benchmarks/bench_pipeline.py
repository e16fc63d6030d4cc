"""Benchmark decoding and the fused capture + extraction + analysis pipeline on a clip.

Run: ``.venv/bin/python benchmarks/bench_pipeline.py [--clip PATH] [--sample-fps 1]
[--repeat 3] [--json out.json]``

Cases (medians of ``--repeat`` runs):

* decode only, keyframes (``skip_frame=NONKEY``) and all frames: frames per second,
  with and without the RGB conversion the keyframe selection needs;
* the pipeline (``streamface run``'s ``Pipeline``) in keyframe mode and, with
  ``--sample-fps``, in sampling mode: decoded frames per second, faces per second and
  the time share per step (decode + RGB, keyframe selection, frame encoding,
  detection, face filters/crops/alignment, store append, analysis);
* efficiency = (decode-only time + raw model time for the same kept frames and faces,
  measured apart) / pipeline time.

Models come from the user's cache (``STREAMFACE_HOME``), prepared on first use.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import tempfile
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


def decode_only(clip: Path, *, keyframes: bool, rgb: bool) -> tuple[int, float]:
    from streamface.engine import VideoDecoder

    started = time.perf_counter()
    n = 0
    with VideoDecoder(clip, keyframes_only=keyframes) as decoder:
        for frame in decoder:
            if rgb:
                frame.rgb()
            n += 1
    return n, time.perf_counter() - started


class StepTimer:
    """Wraps callables and adds their time to named buckets."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def wrap(self, name, func):
        @functools.wraps(func)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        return timed


def run_pipeline(clip: Path, sample_fps: float | None) -> dict:
    from streamface import keyframes, stream_capture
    from streamface.face_analysis import FaceAnalysis
    from streamface.face_extraction import FaceExtraction, FaceExtractor
    from streamface.pipeline import Pipeline
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
    kept_frames: list = []
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
                analyzer.analyze = timer.wrap("analysis", analyzer.analyze)
                return analyzer
            extraction.make_extractor, analysis.make_analyzer = extractor_factory, analyzer_factory
            models_started = time.perf_counter()
            extractor_factory().detector.detect([])  # load the models outside the timing
            analyzer_factory()
            timer.seconds.clear()
            kept_frames.clear()
            load_s = time.perf_counter() - models_started
            summary = pipeline.call()
    finally:
        for obj, attr, original in originals:
            setattr(obj, attr, original)
    total = summary.seconds
    named = {k: v for k, v in timer.seconds.items()}
    # analysis and detection run inside the store callback; 'store' counts only the writes.
    named["decode_rgb"] = max(0.0, total - sum(named.values()))
    return {"seconds": total, "model_load_s": load_s, "decoded": summary.capture.decoded,
            "kept": summary.capture.kept, "faces": summary.extraction.faces,
            "fps": summary.capture.decoded / total, "faces_per_s": summary.extraction.faces / total,
            "share": {k: v / total for k, v in sorted(named.items())}, "_frames": kept_frames}


def raw_model_time(frames: list, faces: int) -> float:
    """Detector on the kept frames + recognizer on as many aligned crops, measured apart."""
    import numpy as np

    from streamface.engine import load_detector, load_recognizer

    detector, recognizer = load_detector(), load_recognizer()
    detector.detect(frames[:1])
    started = time.perf_counter()
    detector.detect(frames)
    crops = np.zeros((max(faces, 1), recognizer.size, recognizer.size, 3), np.uint8)
    recognizer.embed_aligned(crops[:faces])
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--sample-fps", type=float, default=None,
                        help="also run the pipeline sampling at this rate")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        parser.error(f"clip not found: {args.clip}")

    result = {"benchmark": "pipeline", "clip": str(args.clip), "hardware": hardware(), "decode": {},
              "pipeline": {}}
    for label, keyframes, rgb in (("keyframes", True, False), ("keyframes_rgb", True, True),
                                  ("all_frames", False, False), ("all_frames_rgb", False, True)):
        runs = [decode_only(args.clip, keyframes=keyframes, rgb=rgb) for _ in range(args.repeat)]
        seconds = statistics.median(s for _, s in runs)
        result["decode"][label] = {"frames": runs[0][0], "seconds": seconds, "fps": runs[0][0] / seconds}

    modes = [("keyframes", None)] + ([("sample", args.sample_fps)] if args.sample_fps else [])
    for mode, fps in modes:
        runs = [run_pipeline(args.clip, fps) for _ in range(args.repeat)]
        best = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        frames = best.pop("_frames")
        for r in runs:
            r.pop("_frames", None)
        decode_key = "keyframes_rgb" if fps is None else "all_frames_rgb"
        raw = raw_model_time(frames, best["faces"])
        best["raw_model_s"] = raw
        best["efficiency"] = (result["decode"][decode_key]["seconds"] + raw) / best["seconds"]
        result["pipeline"][mode] = best

    print(f"clip {args.clip.name}; {result['hardware'].get('cpu')}")
    print(f"{'decode':<16}{'frames':>8}{'seconds':>10}{'fps':>10}")
    for label, r in result["decode"].items():
        print(f"{label:<16}{r['frames']:>8}{r['seconds']:>10.3f}{r['fps']:>10.1f}")
    print(f"{'pipeline':<12}{'decoded':>8}{'kept':>6}{'faces':>7}{'seconds':>9}{'fps':>8}{'faces/s':>9}{'eff':>6}")
    for mode, r in result["pipeline"].items():
        print(f"{mode:<12}{r['decoded']:>8}{r['kept']:>6}{r['faces']:>7}{r['seconds']:>9.2f}"
              f"{r['fps']:>8.1f}{r['faces_per_s']:>9.1f}{r['efficiency']:>6.2f}")
        print("  share: " + ", ".join(f"{k} {v:.0%}" for k, v in r["share"].items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
