"""Face store throughput: appends and reads of faces with crops, aligned crops and embeddings.

Writes ``--faces`` faces (2 per frame) with 256x256x3 crops, 112x112x3 aligned
crops and 128-D float32 embeddings to a store in a temporary directory, in
batches of ``--batch`` faces (each batch: one append commit plus one embedding
commit, as the fused pipeline does), then reads them all back in batches.
Crops are the seed's real face crops (``../shared/data/skynews``) when present,
varied per row (flips, brightness, crop offsets) so that no two rows in a chunk
repeat; smooth gradients plus noise otherwise.

Run::

    .venv/bin/python benchmarks/bench_store.py [--faces 100000] [--batch 256] [--json out.json]
        [--codec-pipelines default zarrs] [--clip CLIP [--baseline REF]]
        [--crop-jpeg [--contact-sheet PNG]]

``--codec-pipelines`` repeats the append/read run under each zarr codec pipeline named
(``zarrs``: the ``zarrs`` package's Rust pipeline), side by side, with the process CPU.

``--clip`` stores the clip through ``streamface run``'s pipeline (this tree and, with
``--baseline``, that git ref beside it; ``cpu_per_keyframe.py``) and reports the bytes of
every array, ``bytes_per_face`` (all ``faces/`` arrays) and ``bytes_per_kept_frame`` (all
``frames/`` arrays) of what was really stored.

``--crop-jpeg`` is an experiment that changes nothing in the store: the seed's real face
crops (``skynews/faces``) encoded as JPEG at several qualities, bytes per crop (scaled to
a full 256x256 crop) against the stored raw crop's bytes, and the error; with
``--contact-sheet`` a PNG of original | JPEG | 4x difference, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamface.store import FaceRecords, FaceStore, FrameRecords  # noqa: E402

CROP, ALIGNED, DIM = 256, 112, 128
T0 = 1_684_998_098_412_614


def hardware() -> dict:
    """``benchmarks/hardware.py``'s description when it exists, else what ``platform`` knows."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from hardware import describe_hardware  # type: ignore[import-not-found]

        return describe_hardware()
    except ImportError:
        return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                "system": platform.platform(), "python": platform.python_version(), "gpu": None}


def _load_seed(folder: Path, size: int) -> list[np.ndarray]:
    from PIL import Image

    images = []
    for png in sorted(folder.glob("*.png")):
        with Image.open(png) as im:
            images.append(np.asarray(im.convert("RGB").resize((size + 16, size + 16), Image.BILINEAR)))
    return images


def crop_pool(size: int, count: int, seed_folder: Path | None, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct realistic-ish RGB crops ``(count, size, size, 3)`` uint8."""
    base = _load_seed(seed_folder, size) if seed_folder is not None and seed_folder.is_dir() else []
    pool = np.empty((count, size, size, 3), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        if base:
            img = base[i % len(base)]
            dy, dx = rng.integers(0, 17, 2)
            img = img[dy:dy + size, dx:dx + size].astype(np.int16)
            if rng.random() < 0.5:
                img = img[:, ::-1]
            img = img + rng.integers(-20, 21)
        else:
            a, b, c = rng.random(3) * 255
            img = np.stack([a * yy + b * xx, b * yy + c * (1 - xx), c * xx * yy + a * (1 - yy)], -1)
            img = img + rng.normal(0, 6, img.shape)
        pool[i] = np.clip(img, 0, 255).astype(np.uint8)
    return pool


def make_batches(n_faces: int, batch: int, seed_dir: Path | None, rng):
    """Yield (frames, faces, embeddings) batches; built lazily (100k faces are 23 GB raw)."""
    crops = crop_pool(CROP, 509, seed_dir / "faces" if seed_dir else None, rng)
    aligned = crop_pool(ALIGNED, 509, seed_dir / "aligned_faces" if seed_dir else None, rng)
    emb_pool = rng.standard_normal((4096, DIM)).astype(np.float32)
    emb_pool /= np.linalg.norm(emb_pool, axis=1, keepdims=True)
    for start in range(0, n_faces, batch):
        n = min(batch, n_faces - start)
        rows = np.arange(start, start + n)
        n_frames = (n + 1) // 2
        f0 = start // 2
        frames = FrameRecords(time_us=T0 + (f0 + np.arange(n_frames)) * 40_000,
                              width=np.full(n_frames, 1920), height=np.full(n_frames, 1080),
                              blur=rng.random(n_frames).astype(np.float32) * 500)
        faces = FaceRecords(
            frame=np.arange(n) // 2, face=np.arange(n) % 2, score=0.95 + rng.random(n) * 0.05,
            box=rng.random((n, 4)).astype(np.float32) * 500, landmarks=rng.random((n, 5, 2)).astype(np.float32) * 500,
            crop=crops[rows % len(crops)], aligned=aligned[(rows * 7) % len(aligned)],
            blur=rng.random(n).astype(np.float32) * 100, match=rows // 3)
        yield frames, faces, emb_pool[rows % len(emb_pool)]


def run(n_faces: int, batch: int, directory: Path, seed_dir: Path | None) -> dict:
    rng = np.random.default_rng(0)
    path = directory / "bench.zarr"
    store = FaceStore.create(path)
    t = time.perf_counter()
    batches = make_batches(n_faces, batch, seed_dir, rng)
    frames, faces, emb = next(batches)  # builds the crop pools
    prep_s = time.perf_counter() - t

    append_s = 0.0
    with store.writer("bench", create=True, crop_size=CROP, aligned_size=ALIGNED, flush_rows=batch) as w:
        while True:
            t = time.perf_counter()
            _, rows = w.append(frames, faces)
            w.write_embeddings(int(rows[0]), emb, model="bench")
            append_s += time.perf_counter() - t
            try:
                frames, faces, emb = next(batches)  # generating the next batch is not timed
            except StopIteration:
                break
        t = time.perf_counter()
    append_s += time.perf_counter() - t  # close: final flush, arrays cut to size, lock released

    stream = FaceStore.open(path, mode="r").stream("bench")
    assert stream.num_faces == n_faces and stream.num_embedded == n_faces
    t = time.perf_counter()
    checksum = 0
    for start in range(0, n_faces, batch):
        stop = min(n_faces, start + batch)
        faces = stream.read_faces(start, stop)
        emb = stream.read_embeddings(start, stop)
        checksum += int(faces.crop[:, 0, 0, 0].sum()) + int(emb.shape[0])
    read_s = time.perf_counter() - t

    t = time.perf_counter()
    for start in range(0, n_faces, 4096):
        stream.read_faces(start, min(n_faces, start + 4096), columns=("frame", "face", "score", "box", "landmarks"))
    read_meta_s = time.perf_counter() - t

    nbytes = store.nbytes()
    raw_per_face = CROP * CROP * 3 + ALIGNED * ALIGNED * 3 + DIM * 4 + 4 * (1 + 4 + 10 + 1) + 8 * 2 + 4 * 4
    return {
        "faces": n_faces, "batch": batch, "crop": CROP, "aligned": ALIGNED, "embedding_dim": DIM,
        "crop_source": "seed faces" if seed_dir else "synthetic gradients + noise",
        "prepare_s": round(prep_s, 2),
        "append_s": round(append_s, 2), "append_faces_per_s": round(n_faces / append_s, 1),
        "append_raw_mb_per_s": round(n_faces * raw_per_face / append_s / 1e6, 1),
        "read_s": round(read_s, 2), "read_faces_per_s": round(n_faces / read_s, 1),
        "read_metadata_faces_per_s": round(n_faces / read_meta_s, 1),
        "store_bytes": nbytes, "bytes_per_face": round(nbytes / n_faces, 1),
        "raw_bytes_per_face": raw_per_face, "compression_ratio": round(raw_per_face * n_faces / nbytes, 2),
        "checksum": checksum,
    }


def run_codec_pipelines(names: list[str], n_faces: int, batch: int, directory: Path,
                        seed_dir: Path | None) -> dict:
    """:func:`run` under each zarr codec pipeline, with its process CPU seconds."""
    import zarr

    paths = {"default": "zarr.core.codec_pipeline.BatchedCodecPipeline",
             "zarrs": "zarrs.ZarrsCodecPipeline"}
    out = {}
    for name in names:
        sub = directory / name
        sub.mkdir()
        # Strict: an array the pipeline cannot write is an error, not a silent fall-back.
        with zarr.config.set({"codec_pipeline.path": paths.get(name, name), "codec_pipeline.strict": True}):
            cpu = time.process_time()
            got = run(n_faces, batch, sub, seed_dir)
            got["cpu_s"] = round(time.process_time() - cpu, 2)
        out[name] = got
    return out


def crop_jpeg(seed_faces: Path, qualities=(70, 80, 85, 90, 95), contact_sheet: Path | None = None,
              sheet_quality: int = 85) -> dict:
    """Bytes and error of the seed's real face crops as JPEG (an experiment; see above)."""
    import simplejpeg
    from PIL import Image

    crops = []
    for png in sorted(seed_faces.glob("*.png")):
        with Image.open(png) as im:
            crops.append(np.ascontiguousarray(np.asarray(im.convert("RGB"))))
    out = {"crops": len(crops), "qualities": {}}
    for q in qualities:
        sizes, errors, psnrs, full = [], [], [], []
        for crop in crops:
            blob = simplejpeg.encode_jpeg(crop, quality=q, colorspace="RGB", colorsubsampling="420")
            back = simplejpeg.decode_jpeg(blob, colorspace="RGB").astype(np.float64)
            diff = back - crop
            sizes.append(len(blob))
            full.append(len(blob) * (CROP * CROP) / (crop.shape[0] * crop.shape[1]))
            errors.append(np.abs(diff).mean())
            psnrs.append(10 * np.log10(255.0 ** 2 / max((diff ** 2).mean(), 1e-12)))
        out["qualities"][q] = {"bytes_median": float(np.median(sizes)),
                               "bytes_per_256px_crop_median": float(np.median(full)),
                               "bytes_per_256px_crop_max": float(np.max(full)),
                               "mean_abs_error": float(np.mean(errors)), "psnr_db_median": float(np.median(psnrs))}
    if contact_sheet is not None:
        rows = []
        for crop in crops[:8]:
            blob = simplejpeg.encode_jpeg(crop, quality=sheet_quality, colorspace="RGB", colorsubsampling="420")
            back = simplejpeg.decode_jpeg(blob, colorspace="RGB")
            diff = np.clip(np.abs(back.astype(np.int16) - crop) * 4, 0, 255).astype(np.uint8)
            tile = np.zeros((CROP, 3 * CROP, 3), np.uint8)
            h, w = crop.shape[:2]
            for k, img in enumerate((crop, back, diff)):
                tile[:h, k * CROP:k * CROP + w] = img
            rows.append(tile)
        Image.fromarray(np.concatenate(rows)).save(contact_sheet)
        out["contact_sheet"] = {"path": str(contact_sheet), "quality": sheet_quality,
                                "columns": "original | JPEG | 4x |difference|"}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=100_000, help="faces to write (default 100000)")
    parser.add_argument("--batch", type=int, default=256, help="faces per append batch (default 256)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the store (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--synthetic", action="store_true", help="don't use the seed's face crops")
    parser.add_argument("--codec-pipelines", nargs="+", default=None, metavar="NAME",
                        help="repeat the run under each codec pipeline: default, zarrs (see above)")
    parser.add_argument("--clip", type=Path, default=None, help="store this clip through the pipeline")
    parser.add_argument("--baseline", default=None, metavar="REF", help="with --clip: also this git ref")
    parser.add_argument("--crop-jpeg", action="store_true", help="face crops as JPEG (an experiment)")
    parser.add_argument("--contact-sheet", type=Path, default=None, help="with --crop-jpeg: write this PNG")
    args = parser.parse_args(argv)

    seed_dir = None if args.synthetic else REPO.parent / "shared" / "data" / "skynews"
    if seed_dir is not None and not (seed_dir / "faces").is_dir():
        seed_dir = None
    tmp = Path(tempfile.mkdtemp(prefix="bench_store_", dir=args.dir))
    try:
        if args.codec_pipelines:
            pipelines = run_codec_pipelines(args.codec_pipelines, args.faces, args.batch, tmp, seed_dir)
            result = dict(pipelines[args.codec_pipelines[0]])
            result["codec_pipelines"] = pipelines
        else:
            result = run(args.faces, args.batch, tmp, seed_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["hardware"] = hardware()
    if args.clip is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from cpu_per_keyframe import prepare_baseline, run_child  # type: ignore[import-not-found]

        trees = {"current": None}
        if args.baseline is not None:
            trees = {"baseline": prepare_baseline(args.baseline), "current": None}
        result["clip"] = {"path": str(args.clip), "baseline_ref": args.baseline}
        for name, tree in trees.items():
            got = run_child(args.clip, tree)
            result["clip"][name] = {k: got[k] for k in ("tree", "decoded", "kept", "faces", "store_bytes",
                                                        "store_bytes_total", "bytes_per_kept_frame",
                                                        "bytes_per_face", "crop_bytes_per_face")}
    if args.crop_jpeg and seed_dir is not None:
        result["crop_jpeg"] = crop_jpeg(seed_dir / "faces", contact_sheet=args.contact_sheet)

    rows = [("faces", f"{result['faces']} (batches of {result['batch']})"),
            ("crops", f"{CROP}px + {ALIGNED}px aligned + {DIM}-D embedding ({result['crop_source']})"),
            ("append", f"{result['append_faces_per_s']:,.0f} faces/s ({result['append_raw_mb_per_s']} MB/s raw, "
                       f"{result['append_s']} s)"),
            ("read (all columns)", f"{result['read_faces_per_s']:,.0f} faces/s ({result['read_s']} s)"),
            ("read (metadata only)", f"{result['read_metadata_faces_per_s']:,.0f} faces/s"),
            ("size on disk", f"{result['bytes_per_face']:,.0f} bytes/face "
                             f"(raw {result['raw_bytes_per_face']:,}, ratio {result['compression_ratio']})")]
    for name, got in result.get("codec_pipelines", {}).items():
        rows.append((f"pipeline {name}", f"append {got['append_faces_per_s']:,.0f} faces/s, read "
                                         f"{got['read_faces_per_s']:,.0f} faces/s, {got['cpu_s']} s CPU, "
                                         f"{got['bytes_per_face']:,.0f} bytes/face"))
    for name in ("baseline", "current"):
        got = result.get("clip", {}).get(name)
        if got:
            rows.append((f"clip {name}", f"{got['kept']} kept frames, {got['faces']} faces: "
                                         f"{got['bytes_per_kept_frame']:,.0f} bytes/kept frame, "
                                         f"{got['bytes_per_face']:,.0f} bytes/face "
                                         f"(crop {got['crop_bytes_per_face']:,.0f})"))
    for q, got in result.get("crop_jpeg", {}).get("qualities", {}).items():
        rows.append((f"crop JPEG q{q}", f"{got['bytes_per_256px_crop_median']:,.0f} bytes/256px crop "
                                        f"(max {got['bytes_per_256px_crop_max']:,.0f}), error "
                                        f"{got['mean_abs_error']:.2f}, PSNR {got['psnr_db_median']:.1f} dB"))
    width = max(len(k) for k, _ in rows)
    print("streamface.store benchmark")
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
