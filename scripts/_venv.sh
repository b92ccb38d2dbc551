# Sourced by scripts/install, scripts/test and scripts/demo: where polyroute's
# virtual environment lives, and the interpreter inside it.
#
#   PYTHON          the base interpreter that creates the venv (default python3;
#                   a distribution's /usr/bin/python3 works: PEP 668 forbids
#                   installing into it, so nothing is installed there)
#   POLYROUTE_VENV  the venv's folder (default .venv in the repository)
#
# After sourcing: BASE_PYTHON, VENV, VPY (the venv's python).
BASE_PYTHON=${PYTHON:-python3}
VENV=${POLYROUTE_VENV:-$(pwd)/.venv}
VPY="$VENV/bin/python"

venv_ready() {  # the venv exists and its interpreter runs
  [ -x "$VPY" ] && "$VPY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}

require_venv() {  # for scripts/test and scripts/demo: the venv scripts/install made
  if ! venv_ready; then
    echo "no polyroute virtual environment at $VENV: run scripts/install first" >&2
    echo "(or set POLYROUTE_VENV to the one it created)" >&2
    exit 1
  fi
}
