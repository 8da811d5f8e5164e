#!/usr/bin/env bash
# aoi: the one entry point.
#   ./reproduce.sh                 run the study on the default profile (embedded data, 2 CPU cores)
#   ./reproduce.sh test            run the whole test suite (unit tests, notebooks under nbval, JupyterLab in Chromium)
#   ./reproduce.sh --help          list the options
# Both create .venv on first use (python3 -m venv; pip install -e ".[test,nir]") and reuse it after.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
  cat <<'USAGE'
usage: ./reproduce.sh [test [PYTEST_ARGS...]] | [--profile NAME] [--jobs N] [--force] [--keep-stale] [--only PATTERN]

  test                 lint (ruff), then the tests: unit tests, `pytest --nbval-lax notebooks` on a fresh copy
                       (compute notebooks on the smoke profile), the presentation notebooks in JupyterLab
                       in headless Chromium (skipped without Debian's chromium and chromium-driver)
  --profile NAME       smoke | default | sweep | capacity | fashion | paper, or a .yaml path (default: default)
  --jobs N             run N independent runs in parallel (default: the profile's jobs; default profile: 2)
  --force              rerun runs that are already finished
  --keep-stale         keep stale runs (finished by other code or another torch thread count; by default
                       their run folders are removed and they rerun; --dry-run lists them and why)
  --only PATTERN       only runs whose name contains PATTERN (substring or glob)
  --dry-run            list the runs and their status; run nothing
  -h, --help           this help
Environment: AOI_DATA (data root, default ./data), PYTHON (interpreter for the venv, default python3).
USAGE
}

ensure_env() {
  local py="${PYTHON:-python3}"
  if ! command -v "$py" >/dev/null 2>&1 || ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: aoi needs python3 >= 3.10 on PATH (or set PYTHON=/path/to/python3.10+)" >&2
    exit 1
  fi
  local stamp=.venv/.aoi-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[aoi] setting up .venv (first use: a few minutes)" >&2
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install --quiet -e ".[test,nir]"
    touch "$stamp"
  fi
  export PATH="$PWD/.venv/bin:$PATH"
  # glibc hands large freed blocks back to the OS and faults them in again at every step
  # (benchmarks/README.md): keeping them makes CPU training about 20% faster; no number changes.
  export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-4294967296}" MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-4294967296}"
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  test)
    shift
    ensure_env
    python -m ruff check aoi tests benchmarks notebooks
    python -m ruff format --check --quiet aoi tests benchmarks notebooks
    exec python -m pytest tests "$@"
    ;;
esac

ensure_env
exec python -m aoi reproduce "$@"
