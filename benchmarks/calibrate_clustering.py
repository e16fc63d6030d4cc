"""Calibrate a recognizer's clustering thresholds on the public labelled faces.

A thin caller of :mod:`streamface.evaluate.calibration` (the same as ``streamface calibrate``)
on the four public sets the registry's shipped values come from:

- ``identities/johns``: 5 people x 11 photos (three look alike),
- ``identities/orl``: 40 people x 10 grey photos,
- ``skynews``: the seed's 37 faces, embedded from the frames with the seed's own
  landmarks (``metadata/detections.csv``), labels from ``annotations_manual.json``,
- ``tv/fotb``: 41 frames of a TV series, its 52 named boxes (``labels.csv``) matched to
  YuNet's detections (IoU >= 0.5) and embedded; faces of one frame kept apart.

Sweeps the stage's clustering (average linkage, cannot-link within frames; cosine cut
0.3..0.7, step 0.025) and chooses the thresholds by the rule in
:mod:`streamface.evaluate.calibration` (the cut maximising the worst set's BCubed F, the middle of
its plateau; merging +0.1, cluster matching +0.05/+0.15).

Usage::

    .venv/bin/python benchmarks/calibrate_clustering.py [--model sface] [--shared ../shared] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from streamface.evaluate.calibration import run_calibration

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sface", help="recognizer to calibrate (default sface)")
    parser.add_argument("--shared", default=os.environ.get("STREAMFACE_SHARED", str(ROOT.parent / "shared")))
    parser.add_argument("--json", help="also write the table and the choice to this file")
    args = parser.parse_args(argv)
    data = Path(args.shared) / "data"

    t0 = time.perf_counter()
    sources = [data / "skynews", data / "identities" / "johns", data / "identities" / "orl", data / "tv" / "fotb"]
    run = run_calibration([str(p) for p in sources], model=args.model, what="clustering")
    result = run.clustering
    print(f"embedded {', '.join(f'{k} {n}' for k, (n, _) in result.sizes.items())} faces with {args.model} "
          f"and swept {len(result.cuts)} cuts in {time.perf_counter() - t0:.0f} s")
    for note in run.notes:
        print(f"  {note}", file=sys.stderr)
    print(result.table())
    print(f"chosen for {args.model}: " + ", ".join(f"{k}={v:g}" for k, v in result.chosen.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
