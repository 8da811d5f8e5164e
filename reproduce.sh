#!/usr/bin/env bash
# aoi: the one entry point.
#   ./reproduce.sh                 run the study on the default profile (embedded data, 2 CPU cores)
#   ./reproduce.sh test            run the whole test suite (unit tests, notebooks under nbval, JupyterLab in Chromium)
#   ./reproduce.sh --help          list the options
# Both create .venv on first use (python3 -m venv; pip install -e ".[test,nir]") and reuse it after;
# an interpreter older than pyproject.toml's requires-python is refused before .venv is made.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
  cat <<'USAGE'
usage: ./reproduce.sh [test [PYTEST_ARGS...]] | [--profile NAME] [--jobs N] [--force] [--keep-stale] [--only PATTERN] [--dry-run]

  test                 lint (ruff), then the tests: unit tests, `pytest --nbval-lax notebooks` on a fresh copy
                       (compute notebooks on the smoke profile), the presentation notebooks in JupyterLab
                       in headless Chromium (skipped without Debian's chromium and chromium-driver)
  --profile NAME       smoke | default | sweep | capacity | fashion | paper, or a .yaml path (default: default)
  --jobs N             run N independent runs in parallel (default: the profile's jobs; default profile: 2)
  --force              rerun runs that are already finished
  --keep-stale         keep stale runs (finished by other code or another torch thread count; by default
                       their run folders are removed and they rerun; --dry-run lists them and why)
  --only PATTERN       only the runs of dataset PATTERN (exactly: digits is not ndigits), or whose whole
                       name <dataset>/<run> matches the glob PATTERN: 'ndigits/*-str-*', '*-s0'
  --dry-run            list the runs and their status (and what would be deleted); run nothing
  --debug              show the traceback of an error (a mistake in a profile or an option prints one line)
  -h, --help           this help
Environment: AOI_DATA (data root, default ./data), PYTHON (interpreter for the venv, default python3;
Python >= the requires-python of pyproject.toml).
USAGE
}

at_least() {  # MAJOR.MINOR $1 >= $2
  local major=${1%%.*} minor=${1#*.} want_major=${2%%.*} want_minor=${2#*.}
  ((major > want_major || (major == want_major && minor >= want_minor)))
}

check_python() {  # refuse an interpreter older than requires-python, before any .venv is made with it
  local py=$1 want have
  want=$(sed -n 's/^requires-python = ">=\([0-9]*\.[0-9]*\)".*/\1/p' pyproject.toml)
  have=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || have=""
  if [[ ! $have =~ ^[0-9]+\.[0-9]+$ ]] || ! at_least "$have" "$want"; then
    if [ "$py" = .venv/bin/python ]; then
      echo "error: aoi needs Python >= $want, and .venv was made with Python ${have:-of unknown version}: remove .venv and rerun (PYTHON=/path/to/python$want or newer)" >&2
    else
      echo "error: aoi needs Python >= $want; $py is ${have:+Python }${have:-not found}: rerun with PYTHON=/path/to/python$want or newer" >&2
    fi
    exit 1
  fi
}

ensure_env() {
  local py="${PYTHON:-python3}"
  [ -x .venv/bin/python ] && py=.venv/bin/python  # an existing .venv keeps its interpreter
  check_python "$py"
  local stamp=.venv/.aoi-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[aoi] setting up .venv (first use: a few minutes)" >&2
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install --quiet -e ".[test,nir]"
    touch "$stamp"
  fi
  export PATH="$PWD/.venv/bin:$PATH"
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
