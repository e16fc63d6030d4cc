"""Hierarchical Retrieval Index: insert and query speed, tree depth, and recall against exact search.

Generated unit embeddings with identity structure
(:func:`streamface.identify.clustering.make_identities`: Zipf identity sizes, look-alike
families, hard faces, noise) are shuffled into a stream; the first ``n`` are
inserted one after another (``HierarchicalRetrievalIndex.insert`` on the whole
array, i.e. the C loop), the next ``--queries`` are held-out queries.

Reported per (dim, n):

- ``insert_per_s``: vectors inserted per second (the default insert rule).
- ``query_per_s``: held-out queries per second of ``search_batch`` (k = 1, the
  index's own beam, i.e. the label an insert would join), on one thread and on all
  threads; ``exact_query_per_s``: the same queries by exact search over all ``n``
  inserted vectors (FAISS ``IndexFlatIP`` when installed, else NumPy matrix
  products), all threads.
- ``recall_at_1``: share of queries whose HRI label equals the HRI label of their
  exact nearest inserted vector; ``recall_at_k`` the same with HRI's ``k`` nearest
  end nodes (beam search) containing that label.
- ``end_node_recall_at_1``: share of queries whose HRI end node is their exact nearest
  end node (the same search over the index's end-node values, FAISS flat:
  ``exact_end_node_query_per_s``): what the tree's search loses against exact search
  over the same identities. ``end_node_recall_at_1_within_threshold``: the same over the
  queries whose exact nearest end node is within the threshold (those an insert would
  join to an existing identity; for the others the nearest end node decides no label).
- ``beams``: the same two recalls and query speeds for wider search beams
  (``search_batch(beam=...)``, ``--query-beams``).
- ``depth``: end-node depth statistics (min / mean / median / max) and node counts.
- ``load``: the 1-minute load average before and after (the machine may be shared).

``--real`` (on by default where ``../shared/data/identities`` exists) repeats the
measures on the real faces we have: ORL (40 people x 10) and johns (5 x 11),
embedded with SFace; the last photo of each person is the query, the rest are
inserted; ``identity_accuracy`` is the share of queries whose HRI label is the
label most of that person's inserted faces got.

``--reference N`` also inserts the first ``N`` vectors (128-D) with the original code
(``../shared/reference/original_hri``, MIT, imported where present) and with HRI's
default in the same run, and reports the insert speed-up (one original run, it takes
about a minute at 20k, over the best of 5 HRI runs, in wall time and in process CPU
time) and the BCubed F agreement of the two labelings. Without the original, the
seed-faithful pure-Python reference of ``tests/test_hri.py`` is timed against
``mode='greedy'`` instead, and the labels must be identical.

Run::

    .venv/bin/python benchmarks/bench_hri.py [--sizes 10000,100000,1000000] [--dims 128,512]
        [--reference 20000] [--threshold 0.4] [--query-beams 32,64]
        [--json benchmarks/results/bench_hri.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardware import describe_hardware  # noqa: E402

from streamface.identify.clustering import make_identities  # noqa: E402
from streamface.identify.hri import HierarchicalRetrievalIndex  # noqa: E402
from streamface.evaluate.metrics import bcubed  # noqa: E402

ORIGINAL = REPO.parent / "shared" / "reference" / "original_hri"


def stream_of_faces(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``n`` unit embeddings (float32) with identity structure, in random (stream) order."""
    x, _ = make_identities(n, dim=dim, random_state=seed)
    return x[np.random.default_rng(seed).permutation(n)]


class ExactSearch:
    """Exact nearest neighbour by inner product over unit vectors (cosine)."""

    def __init__(self, base: np.ndarray):
        try:
            import faiss
        except ImportError:
            faiss = None
        self.kind = "faiss.IndexFlatIP" if faiss is not None else "numpy"
        base = np.ascontiguousarray(base, dtype=np.float32)
        if faiss is not None:
            self.index = faiss.IndexFlatIP(base.shape[1])
            self.index.add(base)
        else:
            self.index = None
            self.base = base

    def nearest(self, queries: np.ndarray) -> np.ndarray:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.index is not None:
            return self.index.search(queries, 1)[1][:, 0]
        out = np.empty(len(queries), dtype=np.int64)
        for start in range(0, len(queries), 1024):
            out[start:start + 1024] = np.argmax(queries[start:start + 1024] @ self.base.T, axis=1)
        return out


def end_node_values(index: HierarchicalRetrievalIndex) -> tuple[np.ndarray, np.ndarray]:
    """The index's end-node values (float32, unit length for cosine) and their labels."""
    tree = index.to_arrays()
    ends = tree["labels"] >= 0
    values = tree["values"][ends].astype(np.float32)
    if index.metric == "cosine":
        values /= np.linalg.norm(values, axis=1, keepdims=True)
    return values, tree["labels"][ends]


def run_size(x: np.ndarray, n: int, queries: int, threshold: float, metric: str, k: int,
             threads: int, query_beams=()) -> dict:
    base, held_out = x[:n], x[n:n + queries]
    index = HierarchicalRetrievalIndex(threshold, metric)
    chunk = 100_000  # bounds the float64 copy the index makes of its input
    t = time.perf_counter()
    labels = np.concatenate([index.insert(base[s:s + chunk]) for s in range(0, n, chunk)])
    insert_s = time.perf_counter() - t

    t = time.perf_counter()
    hri_1, _ = index.search_batch(held_out, k=1, threads=1)
    query_1t_s = time.perf_counter() - t
    t = time.perf_counter()
    hri_all, _ = index.search_batch(held_out, k=1, threads=threads)
    query_s = time.perf_counter() - t
    assert (hri_1 == hri_all).all()
    t = time.perf_counter()
    hri_k, _ = index.search_batch(held_out, k=k, threads=threads)
    query_k_s = time.perf_counter() - t

    exact = ExactSearch(base)
    t = time.perf_counter()
    nearest = exact.nearest(held_out)
    exact_s = time.perf_counter() - t
    truth = labels[nearest]
    values, value_labels = end_node_values(index)
    exact_ends = ExactSearch(values)
    t = time.perf_counter()
    nearest_row = exact_ends.nearest(held_out)
    exact_ends_s = time.perf_counter() - t
    nearest_end = value_labels[nearest_row]
    if metric == "cosine":
        unit = held_out / np.linalg.norm(held_out, axis=1, keepdims=True)
        near = 1.0 - np.einsum("ij,ij->i", unit, values[nearest_row]) <= threshold
    else:
        near = np.linalg.norm(held_out - values[nearest_row], axis=1) <= threshold
    beams = []
    for beam in query_beams:
        t = time.perf_counter()
        found_1, _ = index.search_batch(held_out, threads=1, beam=beam)
        one_s = time.perf_counter() - t
        t = time.perf_counter()
        found, _ = index.search_batch(held_out, threads=threads, beam=beam)
        all_s = time.perf_counter() - t
        assert (found == found_1).all()
        beams.append({"beam": beam, "query_per_s_1_thread": len(held_out) / one_s,
                      "query_per_s": len(held_out) / all_s,
                      "recall_at_1": float((found[:, 0] == truth).mean()),
                      "end_node_recall_at_1": float((found[:, 0] == nearest_end).mean()),
                      "end_node_recall_at_1_within_threshold":
                          float((found[near, 0] == nearest_end[near]).mean())})
    return {
        "n": n, "dim": x.shape[1], "queries": len(held_out), "labels": index.num_labels,
        "insert_s": insert_s, "insert_per_s": n / insert_s,
        "query_per_s_1_thread": len(held_out) / query_1t_s,
        "query_per_s": len(held_out) / query_s, "threads": threads,
        f"query_per_s_k{k}": len(held_out) / query_k_s,
        "exact": exact.kind, "exact_query_per_s": len(held_out) / exact_s,
        "recall_at_1": float((hri_1[:, 0] == truth).mean()),
        f"recall_at_{k}": float((hri_k == truth[:, None]).any(axis=1).mean()),
        "end_node_recall_at_1": float((hri_1[:, 0] == nearest_end).mean()),
        "queries_within_threshold": int(near.sum()),
        "end_node_recall_at_1_within_threshold":
            float((hri_1[near, 0] == nearest_end[near]).mean()),
        "exact_end_node_query_per_s": len(held_out) / exact_ends_s,
        "beam": index.beam, "max_children": index.max_children, "mode": index.mode,
        "beams": beams, "depth": index.depth_stats(),
    }


def run_original(x: np.ndarray, n: int, threshold: float, metric: str) -> dict:
    """The original code against HRI's default on the first ``n`` vectors, in one run."""
    sys.path.insert(0, str(ORIGINAL))
    try:
        from hri.matching import HierarchicalRetrievalIndexMatching
    finally:
        sys.path.remove(str(ORIGINAL))
    data = np.ascontiguousarray(x[:n])
    original = HierarchicalRetrievalIndexMatching(metric, threshold)
    t, c = time.perf_counter(), time.process_time()
    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
        expected = original.match(data)[0]
    ref_s, ref_cpu = time.perf_counter() - t, time.process_time() - c
    hri_s, hri_cpu = [], []
    for _ in range(5):
        index = HierarchicalRetrievalIndex(threshold, metric)
        t, c = time.perf_counter(), time.process_time()
        labels = index.insert(data)
        hri_s.append(time.perf_counter() - t)
        hri_cpu.append(time.process_time() - c)
    return {"baseline": "original_hri", "n": n, "dim": x.shape[1],
            "original_labels": int(expected.max()) + 1, "hri_labels": index.num_labels,
            "bcubed_f_hri_vs_original": bcubed(expected, labels)[2],
            "reference_runs_s": [ref_s], "hri_runs_s": hri_s,
            "reference_runs_cpu_s": [ref_cpu], "hri_runs_cpu_s": hri_cpu,
            "reference_insert_per_s": n / ref_s, "hri_insert_per_s": n / min(hri_s),
            "speedup": ref_s / min(hri_s), "speedup_cpu": ref_cpu / min(hri_cpu)}


def run_reference(x: np.ndarray, n: int, threshold: float, metric: str,
                  reference_repeats: int = 2) -> dict:
    from test_hri import ReferenceHRI

    # Best of several runs each: the machine may be shared, and a load spike should not
    # decide the ratio (the reference runs for seconds, HRI for milliseconds).
    # Both inserts are single-threaded, so CPU time is also reported: on a shared machine
    # it is much less sensitive to other processes than wall time.
    data = np.asarray(x[:n], dtype=np.float64)
    ref_s, hri_s, ref_cpu, hri_cpu = [], [], [], []
    for _ in range(reference_repeats):
        ref = ReferenceHRI(metric, threshold)
        t, c = time.perf_counter(), time.process_time()
        expected = ref.match(data)
        ref_s.append(time.perf_counter() - t)
        ref_cpu.append(time.process_time() - c)
    for _ in range(5):
        index = HierarchicalRetrievalIndex(threshold, metric, mode="greedy")
        t, c = time.perf_counter(), time.process_time()
        labels = index.insert(data)
        hri_s.append(time.perf_counter() - t)
        hri_cpu.append(time.process_time() - c)
    return {"baseline": "tests/test_hri.py ReferenceHRI (mode='greedy')", "n": n,
            "dim": x.shape[1], "identical_labels": bool((labels == expected).all()),
            "reference_runs_s": ref_s, "hri_runs_s": hri_s,
            "reference_runs_cpu_s": ref_cpu, "hri_runs_cpu_s": hri_cpu,
            "reference_insert_per_s": n / min(ref_s), "hri_insert_per_s": n / min(hri_s),
            "speedup": min(ref_s) / min(hri_s), "speedup_cpu": min(ref_cpu) / min(hri_cpu)}


def real_faces(identities: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """SFace embeddings of the labelled face sets: {set: (vectors (n, 128), person ids (n,))}."""
    from PIL import Image

    from streamface.engine import load_recognizer

    recognizer = load_recognizer()
    sets = {}
    for name, pattern in (("orl", "*.pgm"), ("johns", "*.jpg")):
        folder = identities / name
        people = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        if not people:
            continue
        crops, ids = [], []
        for person, path in ((i, f) for i, p in enumerate(people)
                             for f in sorted(p.glob(pattern), key=lambda f: (len(f.name), f.name))):
            with Image.open(path) as im:
                crops.append(np.asarray(im.convert("RGB").resize((112, 112), Image.BILINEAR)))
            ids.append(person)
        sets[name] = (recognizer.embed_aligned(np.stack(crops)), np.asarray(ids))
    return sets


def run_real(vectors: np.ndarray, people: np.ndarray, threshold: float, metric: str) -> dict:
    last = np.zeros(len(people), bool)
    last[np.r_[np.flatnonzero(np.diff(people)), len(people) - 1]] = True
    base, queries = vectors[~last], vectors[last]
    index = HierarchicalRetrievalIndex(threshold, metric)
    t = time.perf_counter()
    labels = index.insert(base)
    insert_s = time.perf_counter() - t
    t = time.perf_counter()
    found, _ = index.search_batch(queries, k=1, threads=1)
    query_s = time.perf_counter() - t
    truth = labels[ExactSearch(base).nearest(queries)]
    majority = np.array([np.bincount(labels[people[~last] == p]).argmax() for p in people[last]])
    return {"inserted": len(base), "queries": len(queries), "labels": index.num_labels,
            "people": len(queries), "insert_per_s": len(base) / insert_s,
            "query_per_s_1_thread": len(queries) / query_s,
            "recall_at_1": float((found[:, 0] == truth).mean()),
            "identity_accuracy": float((found[:, 0] == majority).mean())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dims", default="128,512")
    parser.add_argument("--max-512", type=int, default=100_000,
                        help="largest size run at 512-D (memory), default 100000")
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--threshold", type=float, default=0.4)
    parser.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"])
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--query-beams", default="32,64",
                        help="wider search beams also measured (comma-separated; empty: none)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reference", type=int, default=20_000,
                        help="vectors for the pure-Python reference (0 to skip)")
    parser.add_argument("--real", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure on the real labelled faces (../shared/data/identities)")
    parser.add_argument("--real-threshold", type=float, default=0.5,
                        help="threshold for the real SFace embeddings")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from streamface.kernels import _hri

    threads = args.threads or _hri.default_threads()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    dims = [int(d) for d in args.dims.split(",") if d]
    query_beams = [int(b) for b in args.query_beams.split(",") if b]
    results = {"hardware": describe_hardware(), "threshold": args.threshold,
               "metric": args.metric, "load_before": os.getloadavg()[0], "runs": []}
    for dim in dims:
        dim_sizes = [n for n in sizes if dim <= 128 or n <= args.max_512]
        if not dim_sizes:
            continue
        x = stream_of_faces(max(max(dim_sizes), args.reference) + args.queries, dim)
        if args.reference and dim == 128:
            if (ORIGINAL / "hri" / "matching.py").is_file():
                ref = run_original(x, args.reference, args.threshold, args.metric)
                same = f"BCubed F vs original {ref['bcubed_f_hri_vs_original']:.3f}"
            else:
                ref = run_reference(x, args.reference, args.threshold, args.metric)
                same = f"identical={ref['identical_labels']}"
            results["reference"] = ref
            print(f"{ref['baseline']} {ref['n']} x {dim}: {same} "
                  f"ref {ref['reference_insert_per_s']:,.0f}/s  hri {ref['hri_insert_per_s']:,.0f}/s"
                  f"  speed-up {ref['speedup']:,.0f}x (wall) {ref['speedup_cpu']:,.0f}x (CPU time)",
                  flush=True)
        for n in dim_sizes:
            r = run_size(x, n, args.queries, args.threshold, args.metric, args.k, threads,
                         query_beams)
            results["runs"].append(r)
            d = r["depth"]
            print(f"n={n:>8,} dim={dim}: insert {r['insert_per_s']:>10,.0f}/s  "
                  f"query {r['query_per_s_1_thread']:>10,.0f}/s (1 thr) "
                  f"{r['query_per_s']:>10,.0f}/s ({threads} thr)  "
                  f"k={args.k} {r[f'query_per_s_k{args.k}']:>9,.0f}/s  "
                  f"exact {r['exact_query_per_s']:>9,.0f}/s  "
                  f"R@1 {r['recall_at_1']:.4f}  R@{args.k} {r[f'recall_at_{args.k}']:.4f}  "
                  f"end-node R@1 {r['end_node_recall_at_1']:.4f} (exact "
                  f"{r['exact_end_node_query_per_s']:,.0f}/s; "
                  f"{r['end_node_recall_at_1_within_threshold']:.4f} over the "
                  f"{r['queries_within_threshold']} within the threshold)  "
                  f"labels {r['labels']:,}  depth {d.get('min')}/{d.get('mean', 0):.1f}/"
                  f"{d.get('max')}", flush=True)
            for b in r["beams"]:
                print(f"    search beam {b['beam']:>3}: query {b['query_per_s_1_thread']:>10,.0f}/s "
                      f"(1 thr) {b['query_per_s']:>10,.0f}/s ({threads} thr)  "
                      f"R@1 {b['recall_at_1']:.4f}  end-node R@1 {b['end_node_recall_at_1']:.4f} "
                      f"({b['end_node_recall_at_1_within_threshold']:.4f} within the threshold)",
                      flush=True)
        del x
    identities = REPO.parent / "shared" / "data" / "identities"
    if args.real and identities.is_dir():
        results["real"] = {}
        for name, (vectors, people) in real_faces(identities).items():
            r = run_real(vectors, people, args.real_threshold, args.metric)
            results["real"][name] = r
            print(f"real {name}: {r['inserted']} inserted, {r['labels']} labels for "
                  f"{r['people']} people; insert {r['insert_per_s']:,.0f}/s  "
                  f"query {r['query_per_s_1_thread']:,.0f}/s  R@1 {r['recall_at_1']:.3f}  "
                  f"identity accuracy {r['identity_accuracy']:.3f}", flush=True)
    results["load_after"] = os.getloadavg()[0]
    print(f"load average (1 min): {results['load_before']:.1f} before, "
          f"{results['load_after']:.1f} after", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
