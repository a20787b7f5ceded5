"""How many production files outside cnn2gate/ops/ name an operator kind.

What one operator is lives in its module under cnn2gate/ops/; code elsewhere asks the
op instead of branching on its kind. This script counts, per kind, the Python files
of cnn2gate/ (ops/ excluded) that mention it anywhere (code, comments or strings), and
lists them. The front end may name ONNX's `Concat` in its generic folding of shape
sub-graphs; `np.concatenate` is not a kind and is not counted.

    python scripts/count_op_names.py            # table; exit 1 when a kind is over its limit
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cnn2gate"

#: kind -> (pattern, most files allowed outside ops/)
KINDS = {
    "lrn": (re.compile(r"(?<![a-z])lrn(?![a-z])", re.I), 3),
    "depthwise/dwconv": (re.compile(r"depthwise|dwconv|dw_conv", re.I), 3),
    "concat": (re.compile(r"(?<![a-z])concat(?!enat)", re.I), 4),
}


def files_naming(pattern: re.Pattern) -> list[Path]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "ops") in path.parents:
            continue
        if pattern.search(path.read_text(encoding="utf-8")):
            out.append(path.relative_to(ROOT))
    return out


def main() -> int:
    over = False
    for kind, (pattern, limit) in KINDS.items():
        files = files_naming(pattern)
        verdict = "ok" if len(files) <= limit else "OVER"
        over |= len(files) > limit
        print(f"{kind}: {len(files)} files outside cnn2gate/ops/ (limit {limit}, {verdict})")
        for f in files:
            print(f"  {f}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
