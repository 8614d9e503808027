# Shared by scripts/run and scripts/test: make .venv and install the package into it.
# Usage: . scripts/_env.sh [extras]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "dittofs needs Python 3.11 or newer ($PY is older)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extras="${1:-}"
stamp=".venv/.installed${extras:+-$extras}"
# Reinstall when the package metadata changed since the last install.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # compat mode puts the project root on sys.path, so twistd finds twisted/plugins/.
  .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}" --config-settings editable_mode=compat
  .venv/bin/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
  touch "$stamp"
fi
