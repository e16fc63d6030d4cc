"""Benchmark the geometry and preprocessing kernels against their reference pipelines.

Run: ``.venv/bin/python benchmarks/bench_geometry.py [--json out.json] [--repeat 7]``

Cases, each on one and on two threads (our ``threads=``; ``cv2.setNumThreads``):

* align: the seed's 37 real faces, all faces of a frame per call, vs
  ``cv2.estimateAffinePartial2D`` + ``cv2.warpAffine`` per face;
* crop: the same faces vs the seed's path (``np.pad`` of the frame + Pillow ``thumbnail``);
* preprocess_rgb: 8 real 1080p RGB frames -> (8, 3, 640, 640) float32 vs
  ``cv2.resize`` + ``copyMakeBorder`` + normalise + transpose per frame;
* preprocess_yuv: 8 decoded yuv420p frames of the clip, planes read in place, vs
  PyAV ``to_ndarray(format="rgb24")`` then the OpenCV path.

Times are the median of ``--repeat`` runs after one warm-up run. The machine's
load average and ``OMP_WAIT_POLICY`` are recorded: on a machine whose cores are
taken by other processes, OpenMP threads spinning at the end of a parallel
loop make two-thread runs slower than one (``OMP_WAIT_POLICY=passive`` avoids that).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from streamface.kernels import ARCFACE_TEMPLATE, align_faces, crop_faces, preprocess_batch

REPO = Path(__file__).resolve().parent.parent
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
RETINA_MEAN = (104.0, 117.0, 127.0)  # BGR, MODELS.md
NET = 640


def skynews_dir() -> Path:
    root = os.environ.get("STREAMFACE_SHARED")
    base = Path(root) / "data" if root else REPO.parent / "shared" / "data"
    return base / "skynews"


def hardware() -> dict:
    """The colleague's hardware description when present, else what platform knows."""
    try:
        from hardware import describe_hardware  # benchmarks/ is on sys.path as a script
    except ImportError:
        return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                "platform": platform.platform(), "python": platform.python_version()}
    return describe_hardware()


def load_faces(data: Path):
    """Frames (RGB) with their faces' boxes and landmarks, grouped by frame."""
    by_frame: dict[str, dict] = {}
    with open(data / "metadata" / "detections.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            stem = row["name"].rsplit("_face_", 1)[0]
            if stem not in by_frame:
                with Image.open(data / "frames" / f"{stem}.png") as im:
                    by_frame[stem] = {"frame": np.asarray(im.convert("RGB")),
                                      "boxes": [], "landmarks": []}
            by_frame[stem]["boxes"].append(ast.literal_eval(row["box"]))
            by_frame[stem]["landmarks"].append([ast.literal_eval(row[c]) for c in LANDMARKS])
    return [{"frame": v["frame"], "boxes": np.array(v["boxes"], float),
             "landmarks": np.array(v["landmarks"], float)} for v in by_frame.values()]


def load_rgb_frames(data: Path, count: int = 8):
    frames = []
    for png in sorted((data / "frames").glob("*.png"))[:count]:
        with Image.open(png) as im:
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def decode_frames(data: Path, count: int = 8):
    with av.open(str(data / "skynews_sample.mp4")) as container:
        return [frame for _, frame in zip(range(count), container.decode(video=0))]


# --------------------------------------------------------------------------- the two sides

def align_ours(faces, threads):
    for face in faces:
        align_faces(face["frame"], face["landmarks"], threads=threads)


def align_cv2(faces, threads):
    for face in faces:
        for points in face["landmarks"]:
            matrix, _ = cv2.estimateAffinePartial2D(points, ARCFACE_TEMPLATE,
                                                    ransacReprojThreshold=1e6)
            cv2.warpAffine(face["frame"], matrix, (112, 112), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def crop_ours(faces, threads):
    for face in faces:
        crop_faces(face["frame"], face["boxes"], threads=threads)


def crop_seed(faces, threads):
    """The seed's way: pad the whole frame, slice, Pillow thumbnail (Lanczos)."""
    for face in faces:
        frame = face["frame"]
        py, px = frame.shape[0] // 2, frame.shape[1] // 2
        padded = np.pad(frame, ((py, py), (px, px), (0, 0)))
        for x, y, w, h in face["boxes"].astype(int):
            cx, cy, half = x + px + w // 2, y + py + h // 2, int(2 * max(w, h) / 2)
            im = Image.fromarray(padded[max(0, cy - half):cy + half, max(0, cx - half):cx + half])
            im.thumbnail((256, 256), resample=Image.LANCZOS)
            np.asarray(im)


def letterbox_cv2(rgb, out):
    h, w = rgb.shape[:2]
    ratio = min(NET / w, NET / h)
    out_w, out_h = int(w * ratio + 0.5), int(h * ratio + 0.5)
    resized = cv2.resize(rgb, (out_w, out_h), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    values = resized.astype(np.float32) - np.float32(RETINA_MEAN)
    padded = cv2.copyMakeBorder(values, 0, NET - out_h, 0, NET - out_w, cv2.BORDER_CONSTANT,
                                value=0)
    out[:] = padded.transpose(2, 0, 1)


def preprocess_ours(frames, out, threads):
    preprocess_batch(frames, out, mean=RETINA_MEAN, channel_order="bgr", threads=threads)


def preprocess_rgb_cv2(frames, out, threads):
    for i, frame in enumerate(frames):
        letterbox_cv2(frame, out[i])


def preprocess_yuv_pyav(frames, out, threads):
    for i, frame in enumerate(frames):
        letterbox_cv2(frame.to_ndarray(format="rgb24"), out[i])


# --------------------------------------------------------------------------- timing

def median_ms(run, repeat: int) -> float:
    run()  # warm-up: page faults, OpenMP team start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per case (default 7)")
    args = parser.parse_args(argv)

    data = skynews_dir()
    if not (data / "frames").is_dir():
        print(f"skynews sample not found at {data} (set STREAMFACE_SHARED)", file=sys.stderr)
        return 2
    faces = load_faces(data)
    n_faces = sum(len(f["boxes"]) for f in faces)
    rgb, yuv = load_rgb_frames(data), decode_frames(data)
    batch = np.empty((len(rgb), 3, NET, NET), np.float32)
    cases = [
        ("align_faces (per face)", n_faces, lambda t: align_ours(faces, t),
         lambda t: align_cv2(faces, t), "cv2 estimateAffinePartial2D+warpAffine"),
        ("crop_faces (per face)", n_faces, lambda t: crop_ours(faces, t),
         lambda t: crop_seed(faces, t), "np.pad + PIL thumbnail (seed)"),
        ("preprocess RGB 8x1080p->640", 1, lambda t: preprocess_ours(rgb, batch, t),
         lambda t: preprocess_rgb_cv2(rgb, batch, t), "cv2 resize+border+normalise+transpose"),
        ("preprocess YUV 8x1080p->640", 1, lambda t: preprocess_ours(yuv, batch, t),
         lambda t: preprocess_yuv_pyav(yuv, batch, t), "PyAV to_ndarray(rgb24) + cv2 path"),
    ]

    load_before = os.getloadavg()[0]
    results = []
    for name, per, ours, ref, ref_name in cases:
        for threads in (1, 2):
            cv2.setNumThreads(threads)
            ours_ms = median_ms(lambda: ours(threads), args.repeat) / per
            ref_ms = median_ms(lambda: ref(threads), args.repeat) / per
            results.append({"case": name, "threads": threads, "ours_ms": round(ours_ms, 4),
                            "reference_ms": round(ref_ms, 4), "reference": ref_name,
                            "speedup": round(ref_ms / ours_ms, 2)})
    cv2.setNumThreads(-1)
    # Other processes on the machine skew timings, two-thread ones most: record it.
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}

    wait_policy = os.environ.get("OMP_WAIT_POLICY", "default (spin, then sleep)")
    print(f"load average (1 min) before/after: {load['before']} / {load['after']} "
          f"on {os.cpu_count()} cores; OMP_WAIT_POLICY={wait_policy}")
    print(f"{'case':30} {'thr':>3} {'ours ms':>9} {'ref ms':>9} {'speedup':>8}  reference")
    for r in results:
        print(f"{r['case']:30} {r['threads']:>3} {r['ours_ms']:>9.3f} {r['reference_ms']:>9.3f} "
              f"{r['speedup']:>7.2f}x  {r['reference']}")

    if args.json:
        report = {
            "benchmark": "geometry",
            "hardware": hardware(),
            "versions": {"numpy": np.__version__, "opencv": cv2.__version__, "av": av.__version__,
                         "pillow": Image.__version__},
            "repeat": args.repeat,
            "load_average": load,
            "omp_wait_policy": wait_policy,
            "results": results,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
