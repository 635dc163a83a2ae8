# Shared by the project's scripts: find Python >= 3.12 and keep the venv in step with
# pyproject.toml + constraints.txt (reinstalling only when they change).
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${STUDIOLO_VENV:-$ROOT/.venv}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

python_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }

find_python() {
  local candidate
  for candidate in "${STUDIOLO_PYTHON:-}" python3.13 python3.12 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
      command -v "$candidate"; return 0
    fi
  done
  # pyenv installs are common on developer machines and present on this project's CI image.
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  for candidate in $(ls -d "$root"/versions/3.1[2-9]* 2>/dev/null | sort -rV); do
    if [ -x "$candidate/bin/python" ] && python_ok "$candidate/bin/python"; then
      echo "$candidate/bin/python"; return 0
    fi
  done
  return 1
}

# ensure_venv EXTRAS: create .venv if needed and install the project with EXTRAS
# ("" or "test,dev") pinned by constraints.txt. A stamp of the inputs skips reinstalls.
ensure_venv() {
  local extras="$1" python stamp want
  if [ ! -x "$VENV/bin/python" ] || ! python_ok "$VENV/bin/python"; then
    python="$(find_python)" || die "Studiolo needs Python 3.12 or newer (set STUDIOLO_PYTHON to one)"
    log "creating $VENV with $("$python" --version)"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
  fi
  want="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -c1-16)-${extras:-base}"
  stamp="$VENV/.studiolo-installed"
  if [ -f "$stamp" ] && grep -qx -- "$want" "$stamp" 2>/dev/null; then
    return 0
  fi
  log "installing Studiolo${extras:+ with [$extras]} into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$ROOT/constraints.txt" -e "$ROOT${extras:+[$extras]}"
  echo "$want" >"$stamp"
}
