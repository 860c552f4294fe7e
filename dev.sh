#!/usr/bin/env bash
# paramops developer entry point. Works on a fresh machine with only python3.
#
#   ./dev.sh test  [pytest args]   set up, build, run `python -m pytest tests`
#   ./dev.sh bench [bench args]    set up, build, run `python -m paramops bench`
#   ./dev.sh setup                 set up and build only
#   ./dev.sh python [args]         run the environment's python
#
# Set-up: creates/reuses .venv (python3 -m venv), installs torch pinned
# (PARAMOPS_TORCH, default torch==2.13.0) and then requirements.txt with the
# same pin, and installs paramops editable. That step is skipped while the
# stamp .venv/.paramops-stamp matches a hash of dev.sh, requirements.txt,
# setup.py, pyproject.toml, the torch pin and the interpreter. The C++ extension is then
# (re)built incrementally with ninja on every call.
#
# PARAMOPS_NO_VENV=1 uses the current python3 as is (e.g. a GPU box with its
# own torch and no package registry): nothing is installed but paramops
# itself (editable, offline, no deps).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$PWD
TORCH_SPEC=${PARAMOPS_TORCH:-torch==2.13.0}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

log() { echo "[dev.sh] $*" >&2; }

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case "$cmd" in
    test|bench|setup|python) ;;
    -h|--help|help) usage; exit 0 ;;
    *) usage; exit 2 ;;
esac

setup_env() {
    local install=0
    if [[ "${PARAMOPS_NO_VENV:-0}" == 1 ]]; then
        PY=$(command -v "${PYTHON:-python3}")
        "$PY" -c 'import paramops.backends.kernels' 2>/dev/null || install=1
    else
        local venv=$ROOT/.venv
        PY=$venv/bin/python
        if [[ ! -x $PY ]]; then
            log "creating .venv with $(${PYTHON:-python3} -V)"
            "${PYTHON:-python3}" -m venv "$venv"
        fi
        local stamp=$venv/.paramops-stamp want
        want=$({ cat dev.sh requirements.txt setup.py pyproject.toml; echo "$TORCH_SPEC"; "$PY" -VV; } | sha256sum | cut -d' ' -f1)
        if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
            local t0=$SECONDS
            rm -f "$stamp"
            log "installing requirements into .venv ($TORCH_SPEC first)"
            "$PY" -m pip install -q --upgrade pip setuptools wheel
            # torch first and pinned, so that nothing below can pull a CUDA build.
            "$PY" -m pip install -q "$TORCH_SPEC"
            "$PY" -m pip install -q "$TORCH_SPEC" -r requirements.txt
            log "requirements installed in $((SECONDS - t0)) s"
            install=1
        fi
    fi
    # Build first, with ninja's output visible; incremental (build/temp is kept).
    local t0=$SECONDS
    "$PY" setup.py -q build_ext --inplace
    log "C++ extension up to date ($((SECONDS - t0)) s)"
    if [[ $install == 1 ]]; then
        # Editable install (finds the build above): the package and its Triton kernels (paramops/backends/kernels).
        # No deps and no build isolation, so it works offline and keeps this torch.
        "$PY" -m pip install -q -e . --no-build-isolation --no-deps
        if [[ -n "${want:-}" ]]; then echo "$want" > "$ROOT/.venv/.paramops-stamp"; fi
        log "paramops installed editable into $PY"
    fi
}

setup_env

case "$cmd" in
    setup) ;;
    python) exec "$PY" "$@" ;;
    bench) exec "$PY" -m paramops bench "$@" ;;
    test)
        set +e
        "$PY" -m pytest tests "$@"
        rc=$?
        set -e
        if [[ $rc == 5 ]]; then
            log "FAILURE: pytest collected no tests (exit 5); tests/ must hold tests"
            exit 1
        fi
        exit $rc
        ;;
esac
