"""GPU throughput of the torch backend and of device-side preprocessing, side by side.

Run: ``python benchmarks/bench_gpu.py --device cuda:0 [--batches 1,16,64,256]
[--seconds 1.0] [--home DIR] [--json out.json]``; on ``--device cpu`` (the default
when torch sees no GPU) it runs a short smoke version (batches 1 and 4, few repeats).

Cases, each at every batch size, images/s and ms per batch (median of ``--repeat``
samples taken in turns, so load from other processes hits all alike):

* ``detector`` (YuNet, (B, 3, 384, 640): a 1080p frame letterboxed to 640):
  torch fp32 and fp16 (CUDA graphs), inputs already on the device (``run_device``) and
  from host arrays (``run``: pinned upload and download included); ONNX Runtime CUDA
  when onnxruntime-gpu is installed, else ONNX Runtime CPU on the CPU only.
* ``recognizer`` (SFace, (B, 3, 112, 112)): the same.
* ``letterbox``: B real 1080p frames -> the detector batch: ``kernels.preprocess_batch``
  on the CPU (all cores) vs :class:`DeviceLetterbox` on device frames, and the same
  with the frames' upload from host memory included.
* ``align``: B faces -> 112x112 crops: ``kernels.align_faces`` on the CPU vs the device
  warp from a device frame.

Ratios (``speedup``) are computed inside one run on one machine. JSON goes to
``--json`` (default ``benchmarks/results/bench_gpu_<device>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def skynews_frames(count: int) -> list[np.ndarray]:
    """Up to ``count`` real 1080p frames (repeated to ``count``), RGB uint8."""
    from PIL import Image

    root = os.environ.get("STREAMFACE_SHARED")
    base = Path(root) / "data" if root else REPO.parent / "shared" / "data"
    paths = sorted((base / "skynews" / "frames").glob("*.png"))[:8]
    if not paths:
        raise SystemExit(f"no frames under {base / 'skynews' / 'frames'} (set STREAMFACE_SHARED)")
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    return [frames[i % len(frames)] for i in range(count)]


class Timer:
    """Median seconds per call of ``fn``, with the device synchronised around each sample."""

    def __init__(self, device: str, seconds: float, repeat: int):
        import torch

        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        self.seconds, self.repeat = seconds, repeat

    def calls_per_sample(self, fn) -> int:
        fn()
        self.sync()
        start = time.perf_counter()
        fn()
        self.sync()
        once = max(time.perf_counter() - start, 1e-6)
        return max(1, int(self.seconds / self.repeat / once))

    def compare(self, cases: dict) -> dict:
        """Time the ``cases`` (name -> fn) in turns; name -> median seconds per call."""
        counts = {name: self.calls_per_sample(fn) for name, fn in cases.items()}
        samples = {name: [] for name in cases}
        for _ in range(self.repeat):
            for name, fn in cases.items():
                self.sync()
                start = time.perf_counter()
                for _ in range(counts[name]):
                    fn()
                self.sync()
                samples[name].append((time.perf_counter() - start) / counts[name])
        return {name: statistics.median(s) for name, s in samples.items()}


def rates(times: dict, batch: int) -> dict:
    return {name: {"images_per_s": round(batch / t, 1), "ms_per_batch": round(t * 1e3, 3)}
            for name, t in times.items()}


def bench_model(model: bytes, input_name: str, shape: tuple, device: str, batches, timer,
                ort_cuda: bool) -> dict:
    """Inference images/s per backend at each batch size."""
    import torch

    from streamface.engine.backends import OrtEngine
    from streamface.engine.backends.torch_backend import TorchEngine

    cuda = device.startswith("cuda")
    engines = {"torch_fp32": TorchEngine(model, device=device)}
    if cuda:
        engines["torch_fp16"] = TorchEngine(model, device=device, fp16=True)
    if ort_cuda and cuda:
        engines["ort_cuda"] = OrtEngine(model, device=device)
    elif not cuda:
        engines["ort_cpu"] = OrtEngine(model, device="cpu")
    results = {}
    rng = np.random.default_rng(0)
    for batch in batches:
        x = rng.uniform(0, 255, (batch,) + shape).astype(np.float32)
        x_dev = torch.from_numpy(x).to(device)
        cases = {}
        for name, engine in engines.items():
            cases[f"{name}_host"] = lambda e=engine: e.run({input_name: x})
            if name.startswith("torch"):
                cases[f"{name}_device"] = lambda e=engine: e.run_device({input_name: x_dev})
        try:
            results[str(batch)] = rates(timer.compare(cases), batch)
        except torch.cuda.OutOfMemoryError as exc:  # batch 256 of a big model on a small GPU
            results[str(batch)] = {"error": f"out of memory: {str(exc)[:120]}"}
    return results


def bench_preprocessing(device: str, batches, timer, threads: int) -> dict:
    """Letterbox and alignment: CPU kernels vs the device versions."""
    import torch

    from streamface import kernels
    from streamface.engine.backends.torch_preprocess import (
        DeviceLetterbox,
        FrameUploader,
        align_faces,
    )

    results = {"letterbox": {}, "align": {}}
    uploader = FrameUploader(device)
    letterbox = DeviceLetterbox(channel_order="bgr")
    rng = np.random.default_rng(0)
    frame = skynews_frames(1)[0]
    frame_dev = uploader([frame])[0]
    template = kernels.ARCFACE_TEMPLATE
    for batch in batches:
        frames = skynews_frames(batch)
        cpu_out = np.zeros((batch, 3, 384, 640), np.float32)
        dev_out = torch.zeros((batch, 3, 384, 640), device=device)
        on_device = uploader.batch(frames)
        cases = {
            "cpu_kernel": lambda: kernels.preprocess_batch(frames, cpu_out, channel_order="bgr",
                                                           threads=threads),
            "device": lambda: letterbox(on_device, dev_out),
            "device_with_upload": lambda: letterbox(uploader.batch(frames), dev_out),
        }
        times = timer.compare(cases)
        entry = rates(times, batch)
        entry["speedup_device"] = round(times["cpu_kernel"] / times["device"], 2)
        entry["speedup_device_with_upload"] = round(
            times["cpu_kernel"] / times["device_with_upload"], 2)
        results["letterbox"][str(batch)] = entry

        # Faces scattered over the frame at face-like scales and angles.
        scale = rng.uniform(0.8, 2.5, (batch, 1, 1))
        points = (template[None] - 56) * scale + rng.uniform((200, 200), (1700, 880),
                                                             (batch, 1, 2)) + 56
        points = points.astype(np.float32)
        crops = np.empty((batch, 112, 112, 3), np.uint8)
        cases = {
            "cpu_kernel": lambda: kernels.align_faces(frame, points, out=crops, threads=threads),
            "device": lambda: align_faces(frame_dev, points),
        }
        times = timer.compare(cases)
        entry = rates(times, batch)
        entry["speedup_device"] = round(times["cpu_kernel"] / times["device"], 2)
        results["align"][str(batch)] = entry
    return results


def prepared_models(home: Path | None) -> dict:
    """Prepared ONNX bytes of yunet and sface (prepared into the cache if missing)."""
    from streamface.engine import ModelCache

    cache = ModelCache(home)
    return {name: cache.load(name).data for name in ("yunet", "sface")}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cpu or cuda:N (default: cuda:0 if "
                                                       "torch sees a GPU, else cpu)")
    parser.add_argument("--batches", default=None,
                        help="comma-separated batch sizes (default 1,16,64,256; cpu: 1,4)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="time budget per case and batch (default 2.0; cpu: 0.3)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--home", type=Path, default=None, help="model cache (default: "
                        "$STREAMFACE_HOME or ~/.cache/streamface, models prepared if missing)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        raise SystemExit("bench_gpu needs PyTorch, which is not installed here: "
                         "pip install 'streamface[torch]'") from None

    from hardware import describe_hardware
    from streamface.engine.backends.base import ort_cuda_available

    device = args.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    if not cuda:
        # Smoke run: one torch thread, as torch's OpenMP team on a loaded 2-core box
        # spends more time waiting at barriers than computing (align: 52 ms vs 3.9 ms).
        torch.set_num_threads(1)
    batches = [int(b) for b in (args.batches or ("1,16,64,256" if cuda else "1,4")).split(",")]
    seconds = args.seconds if args.seconds is not None else (2.0 if cuda else 0.3)
    repeat = args.repeat if cuda else min(args.repeat, 3)
    threads = os.cpu_count() or 1
    timer = Timer(device, seconds, repeat)
    models = prepared_models(args.home)
    ort_cuda = ort_cuda_available()
    started = time.time()
    result = {
        "benchmark": "bench_gpu",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "device": device,
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "ort_cuda_available": ort_cuda,
        "smoke": not cuda,
        "batches": batches,
        "cpu_threads_for_kernels": threads,
        "hardware": describe_hardware(),
        "detector": bench_model(models["yunet"], "input", (3, 384, 640), device, batches,
                                timer, ort_cuda),
        "recognizer": bench_model(models["sface"], "data", (3, 112, 112), device, batches,
                                  timer, ort_cuda),
        "preprocessing": bench_preprocessing(device, batches, timer, threads),
    }
    result["wall_s"] = round(time.time() - started, 1)
    name = "cpu" if not cuda else device.replace(":", "")
    path = args.json or REPO / "benchmarks" / "results" / f"bench_gpu_{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("device", "gpu", "detector", "recognizer",
                                              "preprocessing")}, indent=1))
    print(f"written {path}")
    return result


if __name__ == "__main__":
    main()
