"""Compile every example model at two hardware configs and compare with a saved set.

A refactoring of the compiler must not change what it writes. This script compiles
the bundled digits CNN and the CI-sized variants of every model in examples/models.py
on `a10` at two hardware configs, stores each project tree and `estimate --json`
under OUT, and, with --against, compares OUT file by file with an earlier run:

    python scripts/build_tree_check.py /tmp/before                 # on the old commit
    python scripts/build_tree_check.py /tmp/after --against /tmp/before

Exit status 0 when every file is byte-identical, 1 otherwise (the differing paths
are listed). The HTML report embeds the cnn2gate version only, so it is compared too.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIGS = {
    "v4l4g3": {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3},
    "v8l16g5": {"vec_size": 8, "lane_num": 16, "conv_gp_size_x": 5},
}
TORCH_MODELS = ("lenet5", "alexnet", "vgg16", "resnet18", "mobilenetv2")


def models() -> dict[str, Path]:
    from examples import models as zoo

    out = {"digits": ROOT / "examples" / "digits" / "digits_cnn.onnx"}
    for name in TORCH_MODELS:
        out[name] = Path(zoo.export(name, **zoo.SMALL[name]))
    return out


def cli(*args: str) -> str:
    cmd = [sys.executable, "-c", "from cnn2gate.cli import main; main()", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if res.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{res.stderr}")
    return res.stdout


def build(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name, onnx in models().items():
        for cfg_name, cfg in CONFIGS.items():
            cfg_path = out / f"{cfg_name}.json"
            cfg_path.write_text(json.dumps(cfg))
            proj = out / name / cfg_name
            cli("compile", str(onnx), "--board", "a10", "--config", str(cfg_path), "-o", str(proj), "-q")
            est = cli("estimate", str(onnx), "--board", "a10", "--config", str(cfg_path), "--json")
            (out / name / f"{cfg_name}.estimate.json").write_text(est)
            print(f"built {name} {cfg_name}", flush=True)


def compare(a: Path, b: Path) -> list[str]:
    diffs = []
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    for rel in sorted(files_a ^ files_b):
        diffs.append(f"only in {'new' if rel in files_a else 'old'}: {rel}")
    for rel in sorted(files_a & files_b):
        if not filecmp.cmp(a / rel, b / rel, shallow=False):
            diffs.append(f"differs: {rel}")
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--against", type=Path, help="an earlier OUT to compare with")
    args = ap.parse_args()
    build(args.out)
    if args.against is None:
        return 0
    diffs = compare(args.out, args.against)
    n = sum(1 for p in args.out.rglob("*") if p.is_file())
    for d in diffs:
        print(d)
    print(f"identical files: {n - len(diffs)} of {n}")
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())
