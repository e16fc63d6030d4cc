"""Face clustering at scale: time, peak memory and quality of ``hac`` and ``knn``; the seed's algorithm beside ours.

Generated 128-D unit embeddings with identity structure
(:func:`streamface.identify.clustering.make_identities`: Zipf identity sizes, look-alike
families, hard faces, 3% noise) at each ``--sizes``; each method runs in a fresh
process (so peak memory is its own: ``ru_maxrss`` of that process, which also
holds the input) and is scored with BCubed / pairwise F against the generating
identities. ``--reference`` runs the seed's algorithm written plainly here
(SciPy linkage + fcluster on each batch, then twice on cluster means, the
``BatchedHierarchicalClustering`` of SEED_NOTES §5) on the first size and checks
that ``hac`` gives identical labels, with the speed ratio. ``--quality`` adds the
threshold sweep on the real identities in ``../shared/data`` (engine embeddings).
``--matching`` times ``ClusterMatching`` single mode on ``--clusters`` clusters.
``--collection N`` builds one identity set the way ``streamface cluster`` grows a
collection: ``knn`` over N generated faces of ``--identities`` people, then a
new day of ``--day`` faces of the same people added incrementally
(:func:`streamface.identify.identities.grow_identities`: only the day's faces are
clustered and joined to the identities), in one fresh process; time, peak memory
and BCubed F per step, and, with ``--all-at-once``, the same N + day faces
clustered in one go for comparison.

Run::

    .venv/bin/python benchmarks/bench_clustering.py [--sizes 20000,100000,1000000] [--methods hac,knn]
        [--reference] [--quality] [--matching] [--hac-limit 200000] [--json out.json]
    .venv/bin/python benchmarks/bench_clustering.py --sizes "" --collection 2600000 --identities 29000 \
        --day 50000 [--all-at-once]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamface.identify.clustering import batched_hac, canonical_labels, knn_hac, make_identities, order_by_size  # noqa: E402
from streamface.evaluate.metrics import bcubed, pairwise_fscore  # noqa: E402

THRESHOLD = 0.3  # the seed's matching_threshold
BATCH = 20000  # the seed's matching_batchsize


def hardware() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from hardware import describe_hardware  # type: ignore[import-not-found]

        return describe_hardware()
    except ImportError:
        return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def seed_reference(x: np.ndarray, threshold: float = THRESHOLD, batch_size: int = BATCH) -> np.ndarray:
    """The seed's BatchedHierarchicalClustering, plainly (the same reference the tests use)."""
    sys.path.insert(0, str(REPO / "tests"))
    from analysis_fixtures import seed_batched_hac

    return seed_batched_hac(x, threshold, batch_size=batch_size)


def _child(method: str, path: str, queue) -> None:
    x = np.load(path)
    start = time.perf_counter()
    stats: dict = {}
    if method == "hac":
        labels = batched_hac(x, THRESHOLD, batch_size=BATCH)
    elif method == "knn":
        labels = knn_hac(x, THRESHOLD, stats=stats)
    else:
        labels = seed_reference(x)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    np.save(path + f".{method}.npy", order_by_size(canonical_labels(labels)))
    queue.put({"seconds": seconds, "peak_bytes": peak, "stats": stats})


def run_method(method: str, x_path: str, timeout: float) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(method, x_path, queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.exitcode != 0:
        return {"error": f"exit code {proc.exitcode}"}
    out = queue.get()
    out["labels"] = np.load(x_path + f".{method}.npy")
    return out


def scale(sizes: list[int], methods: list[str], hac_limit: int, reference: bool, timeout: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            start = time.perf_counter()
            x, y = make_identities(n, random_state=n)
            gen = time.perf_counter() - start
            path = os.path.join(tmp, f"x{n}.npy")
            np.save(path, x)
            input_bytes = x.nbytes
            del x
            sizes_ = np.bincount(y)
            print(f"\n{n} faces: {len(sizes_)} identities (largest {sizes_.max()}), generated in {gen:.1f} s",
                  flush=True)
            wanted = [m for m in methods if not (m == "hac" and n > hac_limit)]
            if reference and n == sizes[0]:
                wanted.append("seed")
            results = {}
            for method in wanted:
                out = run_method(method, path, timeout)
                results[method] = out
                row = {"faces": n, "method": method, "identities": int(len(sizes_)), "input_bytes": int(input_bytes)}
                if "error" in out:
                    row["error"] = out["error"]
                    print(f"  {method:5s} {out['error']}", flush=True)
                else:
                    labels = out["labels"]
                    p, r, f = bcubed(y, labels)
                    row.update(seconds=round(out["seconds"], 2), peak_gib=round(out["peak_bytes"] / 2**30, 2),
                               clusters=int(labels.max()) + 1, bcubed_precision=round(p, 4),
                               bcubed_recall=round(r, 4), bcubed_f=round(f, 4),
                               pairwise_f=round(pairwise_fscore(y, labels)[2], 4), graph=out["stats"].get("levels"))
                    print(f"  {method:5s} {row['seconds']:8.1f} s  peak {row['peak_gib']:5.2f} GiB  "
                          f"{row['clusters']:7d} clusters  BCubed P {p:.4f} R {r:.4f} F {f:.4f}  "
                          f"pairwise F {row['pairwise_f']:.4f}", flush=True)
                rows.append(row)
            if "seed" in results and "hac" in results and "error" not in results["seed"] \
                    and "error" not in results["hac"]:
                same = bool(np.array_equal(results["seed"]["labels"], results["hac"]["labels"]))
                ratio = results["seed"]["seconds"] / results["hac"]["seconds"]
                print(f"  hac vs the seed's algorithm: identical labels: {same}; {ratio:.1f}x faster", flush=True)
                rows.append({"faces": n, "method": "hac-vs-seed", "identical_labels": same, "speedup": round(ratio, 2)})
    return rows


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30


def _collection_child(path: str, n: int, all_at_once: bool, queue, truth: bool = False, workers: int = 1) -> None:
    from streamface.identify.identities import grow_identities
    from streamface.ops.processes import ProcessExecutor

    executor = ProcessExecutor(workers) if workers > 1 else None

    x = np.load(path)
    y = np.load(path + ".labels.npy")
    steps = []
    start = time.perf_counter()
    if truth:  # the generating identities stand for the clustered ones: times the day's step alone
        known = np.unique(y[:n], return_inverse=True)[1]
        steps.append({"step": f"identities of {n} faces taken from the generator (not clustered)", "faces": n,
                      "identities": int(known.max()) + 1})
    else:
        stats: dict = {}
        known = knn_hac(x[:n], THRESHOLD, stats=stats, executor=executor)
        steps.append({"step": f"cluster {n} faces", "faces": n, "seconds": round(time.perf_counter() - start, 1),
                      "peak_gib": round(_peak_gib(), 2), "identities": int(known.max()) + 1,
                      "bcubed_f": round(bcubed(y[:n], known)[2], 4), "levels": stats.get("levels", [])})
    print(f"  {steps[-1]}", flush=True)
    del y  # read again for the scores: the day's step is timed with what a run would hold
    start = time.perf_counter()
    new = np.zeros(len(x), bool)
    new[n:] = True
    day = knn_hac(x[n:], THRESHOLD, executor=executor)
    labels = np.concatenate([known, np.full(len(x) - n, -2)])
    growth = grow_identities(x, labels, new, day, THRESHOLD, next_id=int(known.max()) + 1)
    steps.append({"step": f"add a day of {len(x) - n} faces", "faces": int(len(x) - n),
                  "seconds": round(time.perf_counter() - start, 1), "peak_gib": round(_peak_gib(), 2),
                  "joined_faces": growth.joined_faces, "new_identities": growth.new_identities,
                  "ids_kept": bool(np.array_equal(growth.labels[:n], known))})
    y = np.load(path + ".labels.npy")
    steps[-1].update({"bcubed_f": round(bcubed(y, growth.labels)[2], 4),
                      "bcubed_f_day": round(bcubed(y[n:], growth.labels[n:])[2], 4)})
    print(f"  {steps[-1]}", flush=True)
    if all_at_once:
        start = time.perf_counter()
        whole = knn_hac(x, THRESHOLD, executor=executor)
        steps.append({"step": f"all {len(x)} faces at once", "faces": int(len(x)),
                      "seconds": round(time.perf_counter() - start, 1), "peak_gib": round(_peak_gib(), 2),
                      "identities": int(whole.max()) + 1, "bcubed_f": round(bcubed(y, whole)[2], 4)})
        print(f"  {steps[-1]}", flush=True)
    queue.put(steps)


def collection(n: int, identities: int, day: int, all_at_once: bool, timeout: float, truth: bool = False,
               workers: int = 1) -> dict:
    """One identity set over ``n`` faces, then a day of ``day`` more added (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        x, y = make_identities(n + day, n_identities=identities, random_state=n)
        path = os.path.join(tmp, "x.npy")
        np.save(path, x)
        np.save(path + ".labels.npy", y)
        print(f"\ncollection: {n} + {day} faces of {len(np.unique(y))} identities (noise faces included), "
              f"generated in {time.perf_counter() - start:.1f} s; knn at {THRESHOLD}", flush=True)
        del x, y
        load = os.getloadavg()
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_collection_child, args=(path, n, all_at_once, queue, truth, workers))
        proc.start()
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()
            proc.join()
            return {"faces": n, "day": day, "error": f"timed out after {timeout:.0f} s"}
        if proc.exitcode != 0:
            return {"faces": n, "day": day, "error": f"exit code {proc.exitcode}"}
        return {"faces": n, "identities": identities, "day": day, "threshold": THRESHOLD, "workers": workers,
                "load_before": [round(v, 2) for v in load], "load_after": [round(v, 2) for v in os.getloadavg()],
                "steps": queue.get()}


def matching(n_clusters: int, per_cluster: int) -> dict:
    """ClusterMatching's single mode (closest members) on ``n_clusters`` generated clusters."""
    from streamface.identify.clustering.cluster_distances import cluster_pair_distances

    x, y = make_identities(n_clusters * per_cluster, n_identities=n_clusters, zipf_exponent=0.0,
                           noise_fraction=0.0, random_state=1)
    start = time.perf_counter()
    a, b, d = cluster_pair_distances(x, y, np.arange(y.max() + 1), mode="single", metric="cosine", max_distance=0.5)
    seconds = time.perf_counter() - start
    print(f"\nClusterMatching single mode: {y.max() + 1} clusters, {len(x)} faces: {seconds:.1f} s, "
          f"{len(a)} pairs within 0.5", flush=True)
    return {"clusters": int(y.max() + 1), "faces": int(len(x)), "seconds": round(seconds, 2), "pairs": int(len(a))}


def quality(thresholds: list[float]) -> list[dict]:
    """Threshold sweep on the real identities (engine: YuNet landmarks + SFace), both methods."""
    import ast
    import csv

    from PIL import Image

    from streamface.identify.annotations import read_annotations
    from streamface.engine import box_iou, load_detector, load_recognizer
    from streamface.evaluate.metrics import evaluate_labels

    shared = Path(os.environ.get("STREAMFACE_SHARED", REPO.parent / "shared")) / "data"
    det, rec = load_detector(device="cpu"), load_recognizer(device="cpu")

    def photo(path):
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
        h, w = img.shape[:2]
        pad = np.zeros((2 * h, 2 * w, 3), np.uint8)
        pad[h // 2:h // 2 + h, w // 2:w // 2 + w] = img
        [found] = det.detect([pad])
        k = int(np.argmax(found.scores))
        return rec.embed(pad, found.landmarks[k:k + 1])[0]

    sets = {}
    for subset, pattern in (("johns", "*.jpg"), ("orl", "*.pgm")):
        root = shared / "identities" / subset
        people = sorted(p for p in root.iterdir() if p.is_dir())
        paths = [(k, p) for k, person in enumerate(people) for p in sorted(person.glob(pattern))]
        sets[subset] = (np.array([photo(p) for _, p in paths]), np.array([k for k, _ in paths]))

    sky = shared / "skynews"
    truth = read_annotations(sky / "metadata" / "annotations_manual.json").label_of()
    boxes: dict[str, list] = {}
    with open(sky / "metadata" / "detections.csv", newline="") as fp:
        for row in csv.DictReader(fp):
            stem = row["name"][:-4]
            boxes.setdefault(stem.rsplit("_face_", 1)[0], []).append((stem, ast.literal_eval(row["box"])))
    emb, labels = [], []
    for frame_name, seed in boxes.items():
        with Image.open(sky / "frames" / f"{frame_name}.png") as im:
            frame = np.asarray(im.convert("RGB"))
        [found] = det.detect([frame])
        iou = box_iou(np.array([b for _, b in seed]), found.boxes)
        for i, (stem, _) in enumerate(seed):
            j = int(np.argmax(iou[i])) if iou.shape[1] else -1
            if j >= 0 and iou[i, j] >= 0.3:
                emb.append(rec.embed(frame, found.landmarks[j:j + 1])[0])
                labels.append(truth[stem])
    sets["skynews"] = (np.array(emb), np.array(labels))

    rows = []
    for name, (x, y) in sets.items():
        print(f"\n{name}: {len(x)} faces, {len(set(y.tolist()))} true labels", flush=True)
        for t in thresholds:
            line = []
            for method, fn in (("hac", batched_hac), ("knn", knn_hac)):
                s = evaluate_labels(y, order_by_size(fn(x, t)))
                rows.append({"set": name, "threshold": t, "method": method, "clusters": s.pred_clusters,
                             "pairwise_f": round(s.pairwise[2], 4), "bcubed_p": round(s.bcubed[0], 4),
                             "bcubed_r": round(s.bcubed[1], 4), "bcubed_f": round(s.bcubed[2], 4),
                             "nmi": round(s.nmi, 4)})
                line.append(f"{method}: {s.pred_clusters:3d} clusters, pairwise F {s.pairwise[2]:.3f}, "
                            f"BCubed F {s.bcubed[2]:.3f} (P {s.bcubed[0]:.3f}), NMI {s.nmi:.3f}")
            print(f"  t={t:.3f}  " + " | ".join(line), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="20000,100000", help="comma-separated numbers of faces")
    parser.add_argument("--methods", default="hac,knn")
    parser.add_argument("--hac-limit", type=int, default=200_000, help="skip hac above this many faces")
    parser.add_argument("--reference", action="store_true", help="the seed's algorithm on the first size")
    parser.add_argument("--quality", action="store_true", help="threshold sweep on the real identities")
    parser.add_argument("--matching", action="store_true", help="time ClusterMatching single mode")
    parser.add_argument("--clusters", type=int, default=10000, help="clusters for --matching")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per method run")
    parser.add_argument("--collection", type=int, default=0, help="faces of the identity-set run (0: none)")
    parser.add_argument("--identities", type=int, default=29000, help="people of the identity-set run")
    parser.add_argument("--day", type=int, default=50000, help="faces of the day added to the identity set")
    parser.add_argument("--all-at-once", action="store_true", help="also cluster the collection and the day at once")
    parser.add_argument("--truth-identities", action="store_true",
                        help="take the collection's identities from the generator instead of clustering them "
                             "(times adding the day alone)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes running the collection's linkages (streamface.ops.processes)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    result = {"benchmark": "clustering", "hardware": hardware(), "threshold": THRESHOLD, "batch_size": BATCH}
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if sizes:
        result["scale"] = scale(sizes, args.methods.split(","), args.hac_limit, args.reference, args.timeout)
    if args.collection:
        result["collection"] = collection(args.collection, args.identities, args.day, args.all_at_once,
                                          args.timeout, args.truth_identities, args.workers)
    if args.matching:
        result["matching"] = matching(args.clusters, 10)
    if args.quality:
        result["quality"] = quality([0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
