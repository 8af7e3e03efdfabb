# Sourced by scripts/test and scripts/demo: create .venv and install tfvideo into it.
# Usage: ensure_venv [EXTRAS]   e.g. ensure_venv dev
# Reinstalls only when setup.cfg or pyproject.toml changed since the last install.

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "tfvideo needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

ensure_venv() {
  local extras="${1:-}" venv="${VENV:-.venv}" spec="." stamp
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x "$venv/bin/python" ]; then
    local py; py=$(find_python) || return 1
    echo "==> creating $venv with $py"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
  fi
  stamp="$venv/.tfvideo-installed-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)-${extras:-base}"
  if [ ! -e "$stamp" ]; then
    echo "==> installing tfvideo ($spec) into $venv"
    "$venv/bin/python" -m pip install --quiet --progress-bar off -e "$spec"
    touch "$stamp"
  fi
  export PATH="$PWD/$venv/bin:$PATH"
}
