#!/usr/bin/env bash
# Builds the wheel, installs it into a fresh venv outside the checkout and uses it from
# another folder: `cnn2gate boards`, then compiling the digits example. Proves the wheel
# carries its templates and board files and never reads them from the checkout.
#
# Offline: the wheel is installed with pip --no-index --no-deps, and the fresh venv sees
# the third-party packages of the project's venv through a plain path entry (a .pth
# line; the editable install's import hook there is not activated), as tests/test_wheel.py does.
#
# Usage: scripts/wheel-check.sh [PYTHON]   (default: .venv/bin/python of the checkout)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${1:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || { echo "wheel-check: $PY not found; run \`make setup\` first" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cnn2gate-wheel-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "wheel-check: building the wheel"
"$PY" -m build --wheel --no-isolation -o "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log" >&2; echo "wheel-check: building the wheel failed" >&2; exit 1; }
WHEEL=$(ls "$WORK"/dist/cnn2gate-*.whl)
LISTING=$("$PY" -m zipfile -l "$WHEEL")
for want in cnn2gate/boards/a10.toml cnn2gate/templates/; do
  grep -q "$want" <<<"$LISTING" || { echo "wheel-check: $want missing from $(basename "$WHEEL")" >&2; exit 1; }
done

echo "wheel-check: installing $(basename "$WHEEL") into a fresh venv"
BASE=$("$PY" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')
"$BASE" -m venv "$WORK/venv"
VENV_PY=$WORK/venv/bin/python
SITE=$("$VENV_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' >"$SITE/deps.pth"
"$VENV_PY" -m pip install --quiet --no-deps --no-index "$WHEEL"

mkdir "$WORK/elsewhere"
cd "$WORK/elsewhere"
unset PYTHONPATH
WHERE=$("$VENV_PY" -c 'import cnn2gate; print(cnn2gate.__file__)')
case "$WHERE" in
  "$ROOT"/*) echo "wheel-check: the checkout was imported instead of the wheel: $WHERE" >&2; exit 1 ;;
esac

CLI=$WORK/venv/bin/cnn2gate
echo "wheel-check: cnn2gate boards"
BOARDS=$("$CLI" boards)
grep -q a10 <<<"$BOARDS" || { echo "wheel-check: 'cnn2gate boards' does not list a10" >&2; exit 1; }
echo "wheel-check: compiling examples/digits/digits_cnn.onnx from $PWD"
"$CLI" compile "$ROOT/examples/digits/digits_cnn.onnx" --board a10 -o proj -q
ls proj/device/*.cl >/dev/null && [ -f proj/Makefile ] && [ -f proj/host/main.cpp ] \
  || { echo "wheel-check: the compiled project is incomplete" >&2; exit 1; }
echo "wheel-check: OK ($(basename "$WHEEL") installs and runs outside the checkout)"
