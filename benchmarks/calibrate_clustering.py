"""Calibrate a recognizer's clustering thresholds on the public labelled faces.

Embeds three public labelled sets with the engine (default: SFace) and sweeps the
complete-linkage HAC cut (cosine distance 0.3..0.7, step 0.025), scoring BCubed F
against the identities:

- ``identities/johns``: 5 people x 11 photos (three look alike),
- ``identities/orl``: 40 people x 10 grey photos,
- ``skynews``: the seed's 37 faces, embedded from the frames with the seed's own
  landmarks (``metadata/detections.csv``), labels from ``annotations_manual.json``.

The identity photos are padded by half their size, the most confident YuNet face is
aligned on its 5 landmarks and embedded (as ``tests/test_clustering_quality.py``).

Chosen values (the rule the registry's numbers come from):

- ``matching_threshold``: the cut maximising the mean BCubed F over the three sets
  (ties: the smaller cut, i.e. precision first);
- ``merging_threshold``: matching + 0.1 (joins only track-matched clusters, on their
  mean member distance, so it may be looser than the cut);
- cluster matching ``min_threshold`` = matching + 0.05, ``max_threshold`` = matching + 0.15
  (suggestions for review just beyond the cut, as the seed's 0.35/0.5 around its 0.3).

Usage::

    .venv/bin/python benchmarks/calibrate_clustering.py [--model sface] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

THRESHOLDS = np.round(np.arange(0.3, 0.7 + 1e-9, 0.025), 3)


def _padded(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        img = np.asarray(im.convert("RGB"))
    h, w = img.shape[:2]
    pad = np.zeros((2 * h, 2 * w, 3), np.uint8)
    pad[h // 2:h // 2 + h, w // 2:w // 2 + w] = img
    return pad


def identity_set(root: Path, pattern: str, detector, recognizer) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and labels of ``root/<identity>/<pattern>`` (photos with no face are skipped)."""
    emb, labels = [], []
    for k, person in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        for path in sorted(person.glob(pattern)):
            pad = _padded(path)
            [found] = detector.detect([pad])
            if not len(found.scores):
                print(f"  no face in {path}", file=sys.stderr)
                continue
            j = int(np.argmax(found.scores))
            emb.append(recognizer.embed(pad, found.landmarks[j:j + 1])[0])
            labels.append(k)
    return np.array(emb), np.array(labels)


def skynews_set(root: Path, recognizer) -> tuple[np.ndarray, np.ndarray]:
    """The seed's 37 faces embedded with the seed's landmarks; human labels."""
    from PIL import Image

    from streamface.annotations import read_annotations

    truth = read_annotations(root / "metadata" / "annotations_manual.json").label_of()
    emb, labels = [], []
    with open(root / "metadata" / "detections.csv", newline="") as fp:
        rows = list(csv.DictReader(fp))
    for row in rows:
        stem = row["name"][:-4]
        frame_name = stem.rsplit("_face_", 1)[0]
        with Image.open(root / "frames" / f"{frame_name}.png") as im:
            frame = np.asarray(im.convert("RGB"))
        points = np.array([ast.literal_eval(row[k]) for k in
                           ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")], np.float32)
        emb.append(recognizer.embed(frame, points[None])[0])
        labels.append(truth[stem])
    return np.array(emb), np.array(labels)


def sweep(x: np.ndarray, y: np.ndarray, thresholds=THRESHOLDS) -> np.ndarray:
    """BCubed (P, R, F) of complete-linkage HAC at each cut, shape (len(thresholds), 3)."""
    from streamface.clustering import batched_hac, order_by_size
    from streamface.metrics import evaluate_labels

    return np.array([evaluate_labels(y, order_by_size(batched_hac(x, float(t)))).bcubed for t in thresholds])


def choose(mean_f: np.ndarray, thresholds=THRESHOLDS) -> dict[str, float]:
    """The rule of the module docstring."""
    best = int(np.flatnonzero(mean_f >= mean_f.max() - 1e-12)[0])  # ties: the smaller cut
    t = float(thresholds[best])
    return {"matching_threshold": round(t, 3), "merging_threshold": round(t + 0.1, 3),
            "min_threshold": round(t + 0.05, 3), "max_threshold": round(t + 0.15, 3)}


def main(argv=None) -> int:
    from streamface.engine import load_detector, load_recognizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sface", help="recognizer to calibrate (default sface)")
    parser.add_argument("--shared", default=os.environ.get("STREAMFACE_SHARED", str(ROOT.parent / "shared")))
    parser.add_argument("--json", help="also write the table and the choice to this file")
    args = parser.parse_args(argv)
    data = Path(args.shared) / "data"

    t0 = time.perf_counter()
    detector = load_detector("yunet")
    recognizer = load_recognizer(args.model)
    sets = {
        "johns": identity_set(data / "identities" / "johns", "*.jpg", detector, recognizer),
        "orl": identity_set(data / "identities" / "orl", "*.pgm", detector, recognizer),
        "skynews": skynews_set(data / "skynews", recognizer),
    }
    print(f"embedded {', '.join(f'{k} {len(v[0])}' for k, v in sets.items())} faces with "
          f"{args.model} in {time.perf_counter() - t0:.0f} s")

    scores = {name: sweep(x, y) for name, (x, y) in sets.items()}
    mean_f = np.mean([s[:, 2] for s in scores.values()], axis=0)
    header = "cut    " + "  ".join(f"{n + ' P/R/F':>20}" for n in scores) + "  mean F"
    print(header)
    for i, t in enumerate(THRESHOLDS):
        cells = "  ".join(f"{s[i, 0]:.3f}/{s[i, 1]:.3f}/{s[i, 2]:.3f}".rjust(20) for s in scores.values())
        print(f"{t:.3f}  {cells}  {mean_f[i]:.4f}")
    chosen = choose(mean_f)
    print(f"chosen for {args.model}: " + ", ".join(f"{k}={v:g}" for k, v in chosen.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": args.model, "thresholds": THRESHOLDS.tolist(), "chosen": chosen,
            "bcubed": {k: v.tolist() for k, v in scores.items()}, "mean_f": mean_f.tolist()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
