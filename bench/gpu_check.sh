#!/usr/bin/env bash
# GPU verification of paramops, in about 5 minutes on an H100/H200:
#
#   bench/gpu_check.sh OUT_DIR
#
# For a GPU machine with no package registry (torch 2.11+cu130, Python 3.12, triton 3.6,
# nvcc 13.0, ninja, compute-sanitizer): nothing is installed but paramops itself.
#   1. builds the extension (C++ and CUDA) with that machine's own torch
#      (PARAMOPS_NO_VENV=1 ./dev.sh setup, sm_90 only unless TORCH_CUDA_ARCH_LIST is set);
#   2. runs the GPU tests once per CUDA backend (PARAMOPS_BACKEND=cuda, then triton);
#   3. runs the GPU benchmark once per backend and checks the issue's targets;
#   4. runs compute-sanitizer memcheck and racecheck over a short workload per backend.
# Logs, JSON and a summary go to OUT_DIR (summary.txt last; a step that fails is recorded
# there and the script goes on). The exit status is the number of failed steps.
# FULL=1 runs the other suites whole and racecheck under every backend too (longer).
# Through the device tool, whose $OUT returns at most 8 files, 2 folders deep: run
#   bench/gpu_check.sh /tmp/gc; tar czf $OUT/gpu_check.tgz -C /tmp gc; cp /tmp/gc/summary.txt $OUT/
set -uo pipefail
OUT=${1:?usage: bench/gpu_check.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONUNBUFFERED=1 PARAMOPS_NO_VENV=1
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-$(nproc)}
PY=${PYTHON:-python3}
FAILED=0
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"

step() {  # step NAME LOG CMD...: run, log, record status and time
    local name=$1 log=$2 t0=$SECONDS rc
    shift 2
    echo "== $name" >&2
    "$@" > "$OUT/$log" 2>&1
    rc=$?
    printf '%-28s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - t0))" "$log" | tee -a "$SUMMARY" >&2
    [[ $rc == 0 ]] || FAILED=$((FAILED + 1))
    return $rc
}

{
    date -u +%FT%TZ
    git rev-parse HEAD 2>/dev/null
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
    nvcc --version | tail -2
    "$PY" -c 'import sys, torch, triton; print(sys.version.split()[0], torch.__version__, triton.__version__)'
} > "$OUT/env.txt" 2>&1

step build build.log ./dev.sh setup
step info info.json "$PY" -m paramops info

BACKENDS=()
for b in cuda triton; do
    if PARAMOPS_BACKEND=$b "$PY" -c 'import paramops' >/dev/null 2>&1; then BACKENDS+=("$b"); fi
done
echo "backends: ${BACKENDS[*]}" >> "$SUMMARY"

# The GPU suite under every backend; the CUDA cases of the other suites once, under the
# default choice (FULL=1: those suites whole).
for b in "${BACKENDS[@]}"; do
    step "tests ($b)" "tests-$b.log" env PARAMOPS_BACKEND=$b "$PY" -m pytest tests/backends/test_gpu.py -q -p no:cacheprovider
done
REST=(tests/test_ops_multi.py tests/test_init.py tests/test_model.py tests/test_patching.py tests/test_capture.py tests/test_compile.py)
if [[ "${FULL:-0}" == 1 ]]; then
    step "tests (other suites)" tests-rest.log "$PY" -m pytest -q -p no:cacheprovider tests/backends/test_triton.py \
        tests/backends/test_cuda_kernels.py tests/test_registration.py "${REST[@]}"
else
    step "tests (other suites)" tests-rest.log "$PY" -m pytest -q -p no:cacheprovider tests/backends/test_triton.py \
        tests/test_registration.py "${REST[@]}" -k "cuda or gpu or triton"
fi

for b in "${BACKENDS[@]}"; do
    step "bench ($b)" "bench-$b.log" env PARAMOPS_BACKEND=$b "$PY" -m paramops bench --device cuda \
        --sizes 24,28 --dtypes float32,bfloat16 --models gpt2,gpt2:trunc,llama7b,llama7b:trunc,tiny \
        --budget 0.2 --no-plot --no-progress --out "$OUT/bench-$b"
done
step targets targets.txt "$PY" bench/gpu_targets.py "$OUT"/bench-*/*.json

# memcheck under every backend; racecheck (shared memory: the CUDA tiled kernel) under cuda.
for b in "${BACKENDS[@]}"; do
    tools=(memcheck)
    [[ $b == cuda || "${FULL:-0}" == 1 ]] && tools+=(racecheck)
    for tool in "${tools[@]}"; do
        step "sanitizer $tool ($b)" "sanitizer-$tool-$b.log" env PARAMOPS_BACKEND=$b compute-sanitizer \
            --tool "$tool" --error-exitcode 9 "$PY" bench/gpu_sanitize.py
    done
done

echo "failed steps: $FAILED" | tee -a "$SUMMARY" >&2
exit $FAILED
