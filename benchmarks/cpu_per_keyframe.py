"""CPU per kept keyframe outside decode and model inference, side by side with a baseline.

``bench_pipeline.py --cpu-budget [--baseline REF]`` calls :func:`compare`. Every
measurement runs in a fresh subprocess (:func:`child`), once per tree and round, the
trees interleaved so each gets the same share of a shared machine's load:

* ``decode_cpu_s``: process CPU of decoding the clip's keyframes with the RGB conversion
  keyframe selection needs;
* ``pipeline_cpu_s``: process CPU of ``streamface run``'s :class:`Pipeline` on the clip
  (writes behind the inference, as shipped), models loaded outside it;
* ``model_cpu_s``: the models' CPU in that run: the detector's and recognizer's calls on
  the inference thread (``time.thread_time``) plus ONNX Runtime's pool threads (every
  thread Python did not start that is alive after the run, from ``/proc``; FFmpeg's
  decoding threads have ended by then);
* ``cpu_ms_per_kept_keyframe`` = (pipeline - decode - models) / kept frames, in ms;
* ``model_cpu_alone_s``: the raw detector on the kept frames (in the pipeline's batches of
  8) plus the recognizer on the very crops the pipeline embedded, measured apart (median
  of 3), and ``cpu_ms_per_kept_keyframe_models_apart``, the figure with it instead: the
  models cost more CPU inside the loaded pipeline than alone, and that difference is
  inference, not the work outside it.

Its parts, CPU on the threads that run them (``time.thread_time`` around the call,
``pthread_getcpuclockid`` for helper threads):

* ``selection``: :meth:`KeyframeSelector.offer` (gray, emptiness, blur, similarity);
* ``crops_alignment``: :meth:`FaceExtractor.process` less its detector call (the seed's
  face filters, face crops, alignment and track matching);
* ``frame_encoding``: ``stream_capture.encode_frame`` (the kept frame's JPEG);
* ``store_writes``: a :class:`BatchCommit` less its frame encoding, plus the CPU of the
  threads zarr runs its event loop and file writes on;
* ``other``: the rest (queues, thread hand-offs, Python glue, read-ahead).

The baseline is a git ref exported with ``git archive`` into a folder beside the
system's temporary directory, its kernels built in place there, and imported through
``PYTHONPATH`` with the package layout of ``pyproject.toml`` recreated by symlinks
(the editable install's finder comes after ``PYTHONPATH`` on ``sys.path``).
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ("selection", "crops_alignment", "frame_encoding", "store_writes", "other")


class ThreadCpu:
    """Adds each wrapped call's CPU on its own thread to named buckets."""

    def __init__(self):
        self.cpu_s: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.cpu_s[name] = self.cpu_s.get(name, 0.0) + seconds

    def wrap(self, name: str, func):
        @functools.wraps(func)
        def timed(*args, **kwargs):
            cpu = time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                self.add(name, time.thread_time() - cpu)
        return timed


def helper_thread_cpu() -> dict[int, float]:
    """CPU seconds of every live thread that is not a stage of the pipeline, by ident.

    zarr-python runs its event loop on a thread of its own and hands file writes to
    executor threads; their CPU is the store's, though no wrapped call runs there.
    """
    out = {}
    for thread in threading.enumerate():
        name = thread.name
        if name.startswith(("zarr", "asyncio", "ThreadPoolExecutor")) and thread.ident is not None:
            try:
                out[thread.ident] = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (OSError, ProcessLookupError):
                pass
    return out


def native_thread_cpu() -> dict[int, float]:
    """CPU seconds of every live thread that Python did not start, by thread id (Linux).

    In the pipeline these are ONNX Runtime's intra-op pools (FFmpeg's decoding threads
    end with their decoder, before this is read); an empty dict off Linux.
    """
    python = {t.native_id for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in map(int, tids):
        if tid in python:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


def store_bytes(store: Path) -> dict[str, int]:
    """Bytes on disk of each array (``frames/<column>``, ``faces/<column>``) of the store's
    one stream, and ``metadata`` (every ``zarr.json`` and attribute file, totals included)."""
    sizes: dict[str, int] = {}
    for path in Path(store).rglob("*"):
        if not path.is_file():
            continue
        parts = path.relative_to(store).parts
        table = next((i for i, part in enumerate(parts) if part in ("frames", "faces")), None)
        key = ("metadata" if table is None or path.name == "zarr.json" and len(parts) <= table + 2
               else "/".join(parts[table:table + 2]))
        sizes[key] = sizes.get(key, 0) + path.stat().st_size
    return dict(sorted(sizes.items()))


def decode_cpu(clip: Path) -> tuple[int, float]:
    from streamface.engine import VideoDecoder

    cpu = time.process_time()
    n = 0
    with VideoDecoder(clip, keyframes_only=True) as decoder:
        for frame in decoder:
            frame.rgb()
            n += 1
    return n, time.process_time() - cpu


def pipeline_cpu(clip: Path) -> dict:
    """One ``run`` of the clip with each part's thread CPU, and the kept frames and crops."""
    import numpy as np

    from streamface.ingest import batch_commit, capture as stream_capture, keyframes
    from streamface.ingest.analysis import FaceAnalysis
    from streamface.ingest.extraction import FaceExtraction, FaceExtractor
    from streamface.ingest.run import Pipeline

    timer = ThreadCpu()
    originals = [(keyframes.KeyframeSelector, "offer"), (FaceExtractor, "process"),
                 (stream_capture, "encode_frame"), (batch_commit.BatchCommit, "__call__")]
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr in originals]
    keyframes.KeyframeSelector.offer = timer.wrap("selection", keyframes.KeyframeSelector.offer)
    FaceExtractor.process = timer.wrap("extractor_process", FaceExtractor.process)
    stream_capture.encode_frame = timer.wrap("frame_encoding", stream_capture.encode_frame)
    batch_commit.BatchCommit.__call__ = timer.wrap("batch_commit", batch_commit.BatchCommit.__call__)
    kept_frames: list = []
    kept_crops: list = []
    made: list = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            capture = stream_capture.StreamCapture("bench", str(clip), tmp, batch_size=8,
                                                   keyframes_only=True)
            extraction, analysis = FaceExtraction(None, None), FaceAnalysis(None, None)
            make_extractor, make_analyzer = extraction.make_extractor, analysis.make_analyzer

            def extractor_factory():
                extractor = make_extractor()
                detect = extractor.detector.detect

                def detect_and_keep(frames):
                    kept_frames.extend(frames)
                    return detect(frames)
                extractor.detector.detect = timer.wrap("detection", detect_and_keep)
                made.append(extractor)
                return extractor

            def analyzer_factory():
                analyzer = make_analyzer()
                embed_aligned = analyzer.recognizer.embed_aligned

                def embed_and_keep(crops):
                    kept_crops.append(np.array(crops, copy=True))
                    return embed_aligned(crops)
                analyzer.recognizer.embed_aligned = timer.wrap("embedding", embed_and_keep)
                made.append(analyzer)  # its sessions (and their threads) outlive the run
                return analyzer
            extraction.make_extractor, analysis.make_analyzer = extractor_factory, analyzer_factory
            # Load the models (and zarr's machinery) outside the measurement.
            extractor_factory().detector.detect([])
            analyzer_factory()
            timer.cpu_s.clear()
            kept_frames.clear()
            kept_crops.clear()
            pipeline = Pipeline(capture, extraction, analysis)
            helpers_before, native_before = helper_thread_cpu(), native_thread_cpu()
            cpu = time.process_time()
            summary = pipeline.call()
            cpu_s = time.process_time() - cpu
            helpers_after, native_after = helper_thread_cpu(), native_thread_cpu()
            sizes = store_bytes(Path(summary.capture.store))
    finally:
        for obj, attr, original in saved:
            setattr(obj, attr, original)
    helpers = sum(v - helpers_before.get(k, 0.0) for k, v in helpers_after.items())
    t = timer.cpu_s
    # The models' CPU in the run: their calls on the inference thread, and their pools.
    pools = sum(v - native_before.get(k, 0.0) for k, v in native_after.items())
    models_in_run = t.get("detection", 0.0) + t.get("embedding", 0.0) + pools
    made.clear()
    parts = {
        "selection": t.get("selection", 0.0),
        "crops_alignment": t.get("extractor_process", 0.0) - t.get("detection", 0.0),
        "frame_encoding": t.get("frame_encoding", 0.0),
        "store_writes": t.get("batch_commit", 0.0) - t.get("frame_encoding", 0.0) + helpers,
    }
    return {"cpu_s": cpu_s, "decoded": summary.capture.decoded, "kept": summary.capture.kept,
            "faces": summary.extraction.faces, "parts_cpu_s": parts, "store_helper_threads_cpu_s": helpers,
            "store_bytes": sizes, "model_cpu_in_run_s": models_in_run, "model_pool_threads_cpu_s": pools,
            "_frames": kept_frames, "_crops": kept_crops}


def model_cpu(frames: list, crops: list, repeat: int = 3) -> float:
    """Process CPU of the raw detector on ``frames`` and recognizer on ``crops`` (warmed up;
    the median of ``repeat``: on a loaded machine one run's CPU varies by ~15%)."""
    import numpy as np

    from streamface.engine import load_detector, load_recognizer

    detector, recognizer = load_detector(), load_recognizer()
    aligned = (np.concatenate(crops) if crops
               else np.zeros((0, recognizer.size, recognizer.size, 3), np.uint8))
    detector.detect(frames[:1])
    recognizer.embed_aligned(aligned[:1])
    seconds = []
    for _ in range(repeat):
        cpu = time.process_time()
        for lo in range(0, len(frames), 8):  # the pipeline's batches of kept frames
            detector.detect(frames[lo:lo + 8])
        recognizer.embed_aligned(aligned)
        seconds.append(time.process_time() - cpu)
    return statistics.median(seconds)


def child(clip: Path) -> dict:
    """One round in this process: decode, the pipeline, the raw models."""
    import streamface

    frames, decode_s = decode_cpu(clip)
    run = pipeline_cpu(clip)
    models_s = model_cpu(run.pop("_frames"), run.pop("_crops"))
    models_in_run = run["model_cpu_in_run_s"]
    outside = run["cpu_s"] - decode_s - models_in_run
    parts = dict(run.pop("parts_cpu_s"))
    parts["other"] = outside - sum(parts.values())
    kept = max(run["kept"], 1)
    sizes = run["store_bytes"]
    frame_bytes = sum(v for k, v in sizes.items() if k.startswith("frames/"))
    face_bytes = sum(v for k, v in sizes.items() if k.startswith("faces/"))
    return {"tree": str(Path(streamface.__file__).resolve().parents[1]), "decoded_only": frames,
            "decode_cpu_s": decode_s, "pipeline_cpu_s": run["cpu_s"], "model_cpu_s": models_in_run,
            "model_cpu_alone_s": models_s, "model_pool_threads_cpu_s": run["model_pool_threads_cpu_s"],
            "outside_cpu_s": outside, "decoded": run["decoded"], "kept": run["kept"],
            "faces": run["faces"], "store_helper_threads_cpu_s": run["store_helper_threads_cpu_s"],
            "cpu_ms_per_kept_keyframe": 1e3 * outside / kept,
            # The issue's first estimate: the models' CPU measured apart, not in the run.
            "cpu_ms_per_kept_keyframe_models_apart": 1e3 * (run["cpu_s"] - decode_s - models_s) / kept,
            "store_bytes": sizes, "store_bytes_total": sum(sizes.values()),
            "bytes_per_kept_frame": frame_bytes / kept,
            "bytes_per_face": face_bytes / max(run["faces"], 1),
            "crop_bytes_per_face": sizes.get("faces/crop", 0) / max(run["faces"], 1),
            "parts_ms_per_kept_keyframe": {k: 1e3 * v / kept for k, v in parts.items()}}


def prepare_baseline(ref: str, root: Path | None = None) -> Path:
    """Export ``ref`` of this repository and build its kernels; return its PYTHONPATH entry.

    Reused when the folder already holds that commit's build.
    """
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", ref], check=True, capture_output=True,
                         text=True).stdout.strip()
    root = root or Path(tempfile.gettempdir()) / f"streamface-baseline-{sha[:12]}"
    tree, layout = root / "tree", root / "layout"
    done = root / "built"
    if not done.is_file():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", sha], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree, check=True,
                       capture_output=True)
        # pyproject.toml maps streamface.kernels to kernels/ and streamface.engine to engine/.
        (layout / "streamface").mkdir(parents=True, exist_ok=True)
        for entry in (tree / "streamface").iterdir():
            link = layout / "streamface" / entry.name
            if not link.exists():
                link.symlink_to(entry)
        for name, target in (("kernels", tree / "kernels"), ("engine", tree / "engine")):
            link = layout / "streamface" / name
            if not link.exists():
                link.symlink_to(target)
        done.write_text(sha)
    return layout


def run_child(clip: Path, pythonpath: Path | None, extra_env: dict | None = None) -> dict:
    env = dict(os.environ, **(extra_env or {}))
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath)] + [p for p in [env.get("PYTHONPATH")] if p])
    # The child runs in the temporary directory: a relative clip path is this one's.
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(Path(clip).resolve())],
                          capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(), check=False)
    if done.returncode != 0:
        raise RuntimeError(f"CPU budget child failed ({pythonpath or 'this tree'}): "
                           f"{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_average() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def summarise(rounds: list[dict]) -> dict:
    """Medians over rounds of every figure of :func:`child`."""
    def median(key):
        return statistics.median(r[key] for r in rounds)
    out = {key: median(key) for key in ("decode_cpu_s", "pipeline_cpu_s", "model_cpu_s", "model_cpu_alone_s",
                                         "model_pool_threads_cpu_s", "outside_cpu_s",
                                         "store_helper_threads_cpu_s", "cpu_ms_per_kept_keyframe",
                                         "cpu_ms_per_kept_keyframe_models_apart")}
    out.update({key: rounds[0][key] for key in ("tree", "decoded", "kept", "faces", "store_bytes",
                                                 "store_bytes_total", "bytes_per_kept_frame",
                                                 "bytes_per_face", "crop_bytes_per_face")})
    out["parts_ms_per_kept_keyframe"] = {
        part: statistics.median(r["parts_ms_per_kept_keyframe"][part] for r in rounds) for part in PARTS}
    out["rounds"] = rounds
    return out


#: zarr-python reads its configuration from ZARR_* variables (donfig): this runs a
#: child's store writes through the zarrs package's Rust codec pipeline, strict (an
#: array zarrs cannot write is an error instead of a silent fall-back to zarr-python's).
ZARRS_ENV = {"ZARR_CODEC_PIPELINE__PATH": "zarrs.ZarrsCodecPipeline", "ZARR_CODEC_PIPELINE__STRICT": "True"}


def compare(clip: Path, baseline: str | None, repeat: int, zarrs: bool = False) -> dict:
    """This tree and (optionally) the baseline ref, ``repeat`` interleaved rounds each;
    ``zarrs``: also this tree with the zarrs codec pipeline (an experiment, ``current_zarrs``)."""
    trees: dict[str, tuple] = {"current": (None, None)}
    if baseline is not None:
        trees = {"baseline": (prepare_baseline(baseline), None), "current": (None, None)}
    if zarrs:
        trees["current_zarrs"] = (None, ZARRS_ENV)
    rounds: dict[str, list] = {name: [] for name in trees}
    load_before = load_average()
    for _ in range(repeat):
        for name, (path, env) in trees.items():
            rounds[name].append(run_child(clip, path, env))
    out = {"load_average_before": load_before, "load_average_after": load_average(), "repeat": repeat}
    if baseline is not None:
        out["baseline_ref"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", baseline],
                                             capture_output=True, text=True).stdout.strip()
    for name, got in rounds.items():
        out[name] = summarise(got)
    out["cpu_ms_per_kept_keyframe"] = out["current"]["cpu_ms_per_kept_keyframe"]
    if baseline is not None:
        # Each round's ratio: the two trees ran back to back, under the same load.
        out["ratio_current_to_baseline"] = statistics.median(
            c["cpu_ms_per_kept_keyframe"] / b["cpu_ms_per_kept_keyframe"]
            for b, c in zip(rounds["baseline"], rounds["current"]))
    return out


def print_comparison(r: dict) -> None:
    names = [n for n in ("baseline", "current", "current_zarrs") if n in r]
    print(f"CPU ms per kept keyframe outside decode and inference (medians of {r['repeat']} rounds; "
          f"load average {r['load_average_before']} -> {r['load_average_after']})")
    print(f"{'':<22}" + "".join(f"{n:>12}" for n in names))
    for key in ("decode_cpu_s", "model_cpu_s", "model_cpu_alone_s", "pipeline_cpu_s", "outside_cpu_s"):
        print(f"{key:<22}" + "".join(f"{r[n][key]:>12.3f}" for n in names))
    print(f"{'kept / decoded':<22}" + "".join(f"{str(r[n]['kept']) + '/' + str(r[n]['decoded']):>12}"
                                            for n in names))
    print(f"{'cpu_ms_per_kept_kf':<22}" + "".join(f"{r[n]['cpu_ms_per_kept_keyframe']:>12.1f}" for n in names))
    for part in PARTS:
        print(f"  {part:<20}" + "".join(f"{r[n]['parts_ms_per_kept_keyframe'][part]:>12.1f}" for n in names))
    print(f"{'(models apart)':<22}" + "".join(f"{r[n]['cpu_ms_per_kept_keyframe_models_apart']:>12.1f}"
                                            for n in names))
    print(f"{'bytes_per_kept_frame':<22}" + "".join(f"{r[n]['bytes_per_kept_frame']:>12.0f}" for n in names))
    print(f"{'bytes_per_face':<22}" + "".join(f"{r[n]['bytes_per_face']:>12.0f}" for n in names))
    if "ratio_current_to_baseline" in r:
        print(f"current / baseline (median of per-round ratios): {r['ratio_current_to_baseline']:.2f}")


if __name__ == "__main__":
    print(json.dumps(child(Path(sys.argv[1]))))
