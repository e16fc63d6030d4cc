"""Benchmark the engine's model wrappers against raw ``session.run`` on the same tensors.

Run: ``.venv/bin/python benchmarks/bench_engine.py [--device auto] [--threads N]
[--repeat 5] [--json out.json]``

Cases:

* detectors (YuNet, and RetinaFace, CenterFace, MTCNN when fetched; 640 long side): 1080p
  RGB frames (the real skynews frames) per second at batch 1 and 8, letterbox
  (kernels.preprocess_batch), inference, decode and NMS included; raw: ``engine.run`` on
  the identical prepared (B, 3, 384, 640) tensor;
* recognizer (SFace): faces per second at batch 1, 32 and 128: ``embed_aligned`` on
  aligned uint8 crops (layout conversion included) and ``embed`` on a frame plus
  landmarks (alignment included); raw: ``engine.run`` on the identical float32 tensor.

* attribute heads (age, gender, expression, mask, whenet, fairface: those installed in
  ``--heads-home``, by default the user's model cache where ``streamface models fetch``
  puts them): faces per second at batch 32 (``--head-batches``): ``predict_crops`` on
  the head's own uint8 crops (normalisation and post-processing included) and
  ``predict`` on a frame plus landmarks (the head's crop included); raw: ``engine.run``
  on the identical normalised tensor.

``overhead`` is wrapper throughput / raw throughput (1.0: the wrapper costs nothing). For
detectors two ratios are reported because the wrapper also letterboxes the 1080p frames,
which raw ``session.run`` on a prepared tensor does not: ``overhead_prepared`` gives the
identical prepared tensor to the wrapper's post-input path (``detect_tensor``: inference,
decoding, NMS, mapping back: the issue's "identical prepared tensors" ratio), and
``overhead`` is end to end from the 1080p frames (``letterbox_ms`` says what the resize
costs; ``overhead_without_letterbox`` subtracts it). Detectors other than YuNet (RetinaFace,
CenterFace, MTCNN) are timed when installed in ``--heads-home``; MTCNN runs an image
pyramid, so it has frames/s only.
Times are medians of ``--repeat`` samples taken in turns (wrapper, raw, ...) after a
warm-up, so load from other processes hits both alike; the detector ratios are medians of
single calls timed back to back in pairs (``paired``), steadier still on a shared machine.
The models are prepared into a temporary cache unless ``--home`` is given.
"""

from __future__ import annotations

import argparse
import atexit
import ast
import csv
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def skynews_dir() -> Path:
    root = os.environ.get("STREAMFACE_SHARED")
    base = Path(root) / "data" if root else REPO.parent / "shared" / "data"
    return base / "skynews"


def hardware() -> dict:
    """``benchmarks/hardware.py``'s description when it exists, else what ``platform`` knows."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from hardware import describe_hardware  # type: ignore[import-not-found]
    except ImportError:
        return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                "system": platform.platform(), "python": platform.python_version(), "gpu": None}
    return describe_hardware()


def _sample(fn, min_time: float) -> float:
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls


def timed(*fns, repeat: int, min_time: float = 0.2) -> list[float]:
    """Median seconds per call of each of ``fns``, sampled in turns.

    Samples of the functions alternate (a, b, a, b, ...) so that load from other
    processes on a shared machine hits them alike; each sample loops ``min_time``.
    """
    for fn in fns:
        fn()
    samples = [[] for _ in fns]
    for _ in range(repeat):
        for fn, out in zip(fns, samples):
            out.append(_sample(fn, min_time))
    return [statistics.median(out) for out in samples]


def paired(reference, candidate, *, pairs: int = 60, min_time: float = 1.0) -> dict:
    """Single calls of ``reference`` and ``candidate`` timed back to back, in alternating
    order, at least ``pairs`` times and ``min_time`` seconds.

    Returns the median seconds per call of each, the median of the per-pair ratios
    reference / candidate (``ratio``) and the same for the CPU time of the whole process
    (``cpu_ratio``: every thread's work, which other processes' load barely changes).
    Pairs see the same load from other processes, so on a shared machine the ratio is far
    steadier than a ratio of separately taken medians.
    """
    reference(), candidate()
    ref_times, cand_times, ratios, cpu_ratios = [], [], [], []
    start = time.perf_counter()
    while len(ratios) < pairs or time.perf_counter() - start < min_time:
        order = (reference, candidate) if len(ratios) % 2 == 0 else (candidate, reference)
        spent, cpu = {}, {}
        for fn in order:
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            spent[fn], cpu[fn] = time.perf_counter() - t0, time.process_time() - c0
        ref_times.append(spent[reference])
        cand_times.append(spent[candidate])
        ratios.append(spent[reference] / spent[candidate])
        cpu_ratios.append(cpu[reference] / max(cpu[candidate], 1e-9))
    return {"reference_s": statistics.median(ref_times),
            "candidate_s": statistics.median(cand_times), "ratio": statistics.median(ratios),
            "cpu_ratio": statistics.median(cpu_ratios), "pairs": len(ratios)}


def load_data(data: Path):
    frames = {p.stem: np.asarray(Image.open(p).convert("RGB"))
              for p in sorted((data / "frames").glob("*.png"))}
    faces = []
    with open(data / "metadata" / "detections.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            faces.append((row["name"][:-4].rsplit("_face_", 1)[0],
                          np.array([ast.literal_eval(row[k]) for k in LANDMARKS], np.float32)))
    return frames, faces


def bench_detector(detector, frames: list[np.ndarray], batches, repeat: int) -> list[dict]:
    rows = []
    for batch in batches:
        chunk = (frames * (batch // len(frames) + 1))[:batch]
        detector.prepare(max_batch=batch)
        if not hasattr(detector, "detect_tensor"):  # MTCNN: an image pyramid, no one tensor
            (wrapper,) = timed(lambda: detector.detect(chunk), repeat=repeat)
            rows.append({"case": "detector", "model": detector.spec.name, "batch": batch,
                         "input": f"{chunk[0].shape[1]}x{chunk[0].shape[0]} (pyramid)",
                         "wrapper_per_s": batch / wrapper, "raw_per_s": None,
                         "overhead": None, "unit": "frames"})
            continue
        sizes = [f.shape[:2] for f in chunk]
        tensor, letterbox = detector._batch.fill(chunk, sizes)
        tensor = tensor.copy()
        name = detector.engine.input_names[0]

        def raw():
            detector.engine.run({name: tensor})

        # Ratios from back-to-back pairs (see ``paired``); throughputs from their medians.
        prepared = paired(raw, lambda: detector.detect_tensor(tensor, letterbox),
                          pairs=10 * repeat)
        whole = paired(raw, lambda: detector.detect(chunk), pairs=10 * repeat)
        (fill,) = timed(lambda: detector._batch.fill(chunk, sizes), repeat=repeat)
        wrapper = whole["candidate_s"]
        rows.append({"case": "detector", "model": detector.spec.name, "batch": batch,
                     "input": f"{chunk[0].shape[1]}x{chunk[0].shape[0]} -> "
                              f"{tensor.shape[3]}x{tensor.shape[2]}",
                     "wrapper_per_s": batch / wrapper, "raw_per_s": batch / whole["reference_s"],
                     "prepared_per_s": batch / prepared["candidate_s"],
                     "overhead_prepared": prepared["ratio"], "overhead": whole["ratio"],
                     "overhead_prepared_cpu": prepared["cpu_ratio"],
                     "overhead_cpu": whole["cpu_ratio"],
                     "letterbox_ms": fill * 1e3,
                     "overhead_without_letterbox": whole["reference_s"] / max(wrapper - fill, 1e-9),
                     "pairs": prepared["pairs"], "unit": "frames"})
    detector.prepare()
    return rows


def bench_recognizer(recognizer, frames: dict, faces: list, batches, repeat: int) -> list[dict]:
    from streamface import kernels

    rows = []
    crops = np.stack([kernels.align_faces(frames[f], lm[None])[0] for f, lm in faces])
    # One frame with many faces for ``embed``: the seed's faces of one frame, tiled.
    stem, _ = faces[0]
    frame_marks = np.stack([lm for f, lm in faces if f == stem])
    for batch in batches:
        recognizer.prepare(max_batch=batch)
        chunk = crops[np.arange(batch) % len(crops)]
        marks = frame_marks[np.arange(batch) % len(frame_marks)]
        tensor = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2), dtype=np.float32)
        name = recognizer.engine.input_names[0]
        wrapper, raw, embed = timed(lambda: recognizer.embed_aligned(chunk),
                                    lambda: recognizer.engine.run({name: tensor}),
                                    lambda: recognizer.embed(frames[stem], marks), repeat=repeat)
        rows.append({"case": "recognizer", "model": recognizer.spec.name, "batch": batch,
                     "input": "112x112 aligned", "wrapper_per_s": batch / wrapper,
                     "embed_with_alignment_per_s": batch / embed, "raw_per_s": batch / raw,
                     "overhead": raw / wrapper, "unit": "faces"})
    recognizer.prepare()
    return rows


HEADS = ("age", "gender", "expression", "mask", "whenet", "fairface")
DETECTORS = ("retinaface", "centerface", "mtcnn")


def bench_heads(heads, frames: dict, faces: list, batches, repeat: int) -> list[dict]:
    rows = []
    stem, _ = faces[0]
    frame_marks = np.stack([lm for f, lm in faces if f == stem])
    for head in heads:
        crops = np.concatenate([head.crops(frames[f], lm[None]) for f, lm in faces])
        for batch in batches:
            head.prepare(max_batch=batch)
            chunk = crops[np.arange(batch) % len(crops)]
            marks = frame_marks[np.arange(batch) % len(frame_marks)]
            tensor = head.tensor(chunk).copy()
            name = head.engine.input_names[0]
            wrapper, raw, predict = timed(lambda: head.predict_crops(chunk),
                                          lambda: head.engine.run({name: tensor}),
                                          lambda: head.predict(frames[stem], marks),
                                          repeat=repeat)
            size = head.spec.input_size
            rows.append({"case": "attribute", "model": head.spec.name, "batch": batch,
                         "input": f"{size[0]}x{size[1]} crop", "wrapper_per_s": batch / wrapper,
                         "predict_with_crop_per_s": batch / predict, "raw_per_s": batch / raw,
                         "overhead": raw / wrapper, "unit": "faces"})
        head.prepare()
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda:N")
    parser.add_argument("--backend", default="auto", help="auto or ort")
    parser.add_argument("--threads", type=int, default=None,
                        help="ONNX Runtime intra-op threads (default: all cores)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--home", type=Path, default=None,
                        help="model cache (default: a temporary one)")
    parser.add_argument("--detector-batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--recognizer-batches", type=int, nargs="+", default=[1, 32, 128])
    parser.add_argument("--head-batches", type=int, nargs="+", default=[32])
    parser.add_argument("--heads-home", type=Path, default=None,
                        help="model cache holding fetched attribute heads (default: --home, "
                             "else $STREAMFACE_HOME or ~/.cache/streamface)")
    parser.add_argument("--heads", nargs="*", default=list(HEADS),
                        help="attribute heads to time when installed")
    parser.add_argument("--detectors", nargs="*", default=list(DETECTORS),
                        help="detectors besides yunet to time when installed (in --heads-home)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    from streamface.engine import load_detector, load_recognizer

    data = skynews_dir()
    if not (data / "frames").is_dir():
        sys.exit(f"skynews data not found at {data} (set STREAMFACE_SHARED)")
    frames, faces = load_data(data)
    home = args.home
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="streamface-bench-"))
        atexit.register(shutil.rmtree, home, ignore_errors=True)
    options = {"device": args.device, "backend": args.backend, "home": home,
               "intra_op_threads": args.threads}
    detector = load_detector("yunet", **options)
    recognizer = load_recognizer("sface", **options)
    with_faces = [frames[s] for s in sorted({f for f, _ in faces})][:8]

    rows = bench_detector(detector, with_faces, args.detector_batches, args.repeat)
    rows += bench_recognizer(recognizer, frames, faces, args.recognizer_batches, args.repeat)

    from streamface.engine import ModelCache, load_attribute_head

    heads_cache = ModelCache(args.heads_home or args.home)
    installed = [n for n in args.heads if heads_cache.is_installed(n)]
    missing = [n for n in args.heads if n not in installed]
    if missing:
        print(f"attribute heads not installed in {heads_cache.models_dir} (skipped): "
              f"{', '.join(missing)}; `streamface models fetch NAME` installs them (fairface: "
              f"`streamface models prepare fairface --model-path FILE`)")
    heads = [load_attribute_head(n, **{**options, "home": heads_cache.home}) for n in installed]
    rows += bench_heads(heads, frames, faces, args.head_batches, args.repeat)
    for name in args.detectors:
        if not heads_cache.is_installed(name):
            print(f"detector {name} not installed in {heads_cache.models_dir} (skipped); "
                  f"`streamface models fetch {name}` installs it")
            continue
        other = load_detector(name, **{**options, "home": heads_cache.home})
        rows += bench_detector(other, with_faces, args.detector_batches, args.repeat)

    result = {"benchmark": "engine", "hardware": hardware(), "device": detector.engine.device,
              "backend": detector.engine.backend,
              "providers": list(getattr(detector.engine, "providers", [])),
              "intra_op_threads": args.threads, "repeat": args.repeat, "rows": rows}
    print(f"device {result['device']} via {result['backend']}, "
          f"threads {args.threads or 'all'}; {result['hardware'].get('cpu')}")
    print(f"{'case':<11}{'model':<11}{'batch':>6}  {'wrapper/s':>10}  {'raw/s':>10}  "
          f"{'overhead':>8}  {'prepared':>8}  {'letterbox ms':>12}  "
          f"{'overhead w/o letterbox':>22}  {'with align/crop/s':>17}")

    def cell(value, width: int, fmt: str) -> str:
        return f"{'' if value is None else format(value, fmt):>{width}}"

    for row in rows:
        extra = row.get("embed_with_alignment_per_s", row.get("predict_with_crop_per_s"))
        print(f"{row['case']:<11}{row['model']:<11}{row['batch']:>6}  "
              f"{row['wrapper_per_s']:>10.1f}  {cell(row['raw_per_s'], 10, '.1f')}  "
              f"{cell(row['overhead'], 8, '.3f')}  {cell(row.get('overhead_prepared'), 8, '.3f')}  "
              f"{cell(row.get('letterbox_ms'), 12, '.2f')}  "
              f"{cell(row.get('overhead_without_letterbox'), 22, '.3f')}  "
              f"{cell(extra, 17, '.1f')}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
