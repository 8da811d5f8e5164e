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
                       [--executor local|slurm] [--partition P] [--account A] [--qos Q] [--constraint C] [--slurm-option K=V]

  test                 lint (ruff), then the tests: unit tests, `pytest --nbval notebooks` (strict) on a fresh copy
                       (compute notebooks on the smoke profile), the presentation notebooks in JupyterLab
                       in headless Chromium (skipped without Debian's chromium and chromium-driver), the
                       Slurm executor on a real one-node Slurm (skipped without root or Debian's slurmctld,
                       slurmd, slurm-client and munge)
  --profile NAME       smoke | default | sweep | capacity | fashion | nmnist | paper, or a .yaml path (default: default)
  --jobs N             run N independent runs in parallel (default: the profile's jobs; default profile: 2;
                       with --executor slurm: at most N jobs of an array at once)
  --force              rerun runs that are already finished
  --keep-stale         keep stale runs (finished by other code or another torch thread count; by default
                       their run folders are removed and they rerun; --dry-run lists them and why)
  --only PATTERN       only the runs of dataset PATTERN (exactly: digits is not ndigits), or whose whole
                       name <dataset>/<run> matches the glob PATTERN: 'ndigits/*-str-*', '*-s0'
  --dry-run            list the runs and their status (and what would be deleted); run nothing
                       (with --executor slurm: each job's resources and the plan's GPU-hours; submit nothing)
  --executor E         where runs execute: local (processes on this machine, the default) or slurm (one Slurm
                       job per run through submitit, resources from the profile; Ctrl-C stops waiting only,
                       the same command collects the jobs; logs in runs/<profile>/slurm/)
  --partition P, --account A, --qos Q, --constraint C
                       the site's sbatch settings for --executor slurm (else AOI_SLURM_PARTITION, ...)
  --slurm-option K=V   any other sbatch option, repeatable (else AOI_SLURM_OPTIONS, space-separated)
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
  ensure_notebook_setup
}

ensure_notebook_setup() {  # what keeps saved notebooks clean; each part set up once, where missing
  # git sees the notebooks through nbstripout (.gitattributes): no execution counts, run metadata or
  # widget state; outputs only where a notebook's metadata says keep_output (the presentation notebooks)
  if git rev-parse --git-dir >/dev/null 2>&1 && ! git config --get filter.nbstripout.clean >/dev/null; then
    git config filter.nbstripout.clean '.venv/bin/python -m nbstripout'
    git config filter.nbstripout.smudge cat
    git config filter.nbstripout.required true
    git config filter.nbstripout.extrakeys 'metadata.papermill cell.metadata.papermill metadata.language_info'
  fi
  # JupyterLab run from .venv loads aoi's server extension: a saved notebook keeps the epsilon explorer's
  # static figure, not a widget view that no kernel serves once it is reopened (aoi.notebook.before_save)
  local extension=.venv/etc/jupyter/jupyter_server_config.d/aoi.json
  if [ ! -f "$extension" ]; then
    mkdir -p "${extension%/*}"
    echo '{"ServerApp": {"jpserver_extensions": {"aoi.notebook": true}}}' >"$extension"
  fi
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
