"""Fuzz the ONNX loader for longer than the test suite does.

Runs the byte and protobuf mutation generators of tests/test_fuzz_loader.py and
counts, per family, how many mutated models `load_model` accepted (a usable Graph),
rejected (a Cnn2GateError) and let escape (any other exception, or an accepted
graph that is not usable). The first few escapes are printed with their mutations.

    python benchmarks/fuzz_loader.py [--examples N] [--seed S]

Last line: `escaped exceptions: N` (0 is the goal).
"""
from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hypothesis import HealthCheck, Phase, given, seed as hseed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import test_fuzz_loader as F  # noqa: E402

SHOW = 5


def run_family(name, strategy, make_bytes, examples: int, rng_seed: int, folder: Path):
    counts = collections.Counter()
    escapes, messages = [], []

    @hseed(rng_seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(seed=st.integers(0, len(F.SEEDS) - 1), edits=strategy)
    def one(seed, edits):
        counts["run"] += 1
        try:
            data = make_bytes(seed, edits)
        except Exception:  # the mutation itself could not be serialized: not a loader input
            counts["unbuildable"] += 1
            return
        try:
            counts[F.check_outcome(F.write_case(folder, data), messages)] += 1
        except Exception as err:  # noqa: BLE001 - every escape is recorded, none stops the run
            counts["escaped"] += 1
            if len(escapes) < SHOW:
                escapes.append((seed, edits, "".join(traceback.format_exception_only(type(err), err)).strip()))

    t0 = time.perf_counter()
    one()
    dt = time.perf_counter() - t0
    print(f"{name}: {counts['run']} examples in {dt:.1f} s ({counts['run'] / max(dt, 1e-9):.0f}/s): "
          f"accepted {counts['accepted']}, rejected {counts['rejected']}, escaped {counts['escaped']}"
          + (f", not serializable {counts['unbuildable']}" if counts["unbuildable"] else ""), flush=True)
    wrapped = [m for m in messages if F.WRAPPED in m]
    kinds = collections.Counter(m.split(F.WRAPPED, 1)[1].split(":", 1)[0] for m in wrapped)
    if wrapped:
        # still exit 2 and name the file, but the message is an internal exception's, not a node's
        print(f"  rejections that wrap an internal exception ({len(wrapped)}): "
              + ", ".join(f"{k} {v}" for k, v in kinds.most_common(8)), flush=True)
        for m in wrapped[:2]:
            print(f"    e.g. {m.split(': ', 1)[1][:200]}", flush=True)
    for seed, edits, what in escapes:
        print(f"  escaped: seed model {seed}, edits {edits!r}\n    {what}", flush=True)
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=10000, help="examples per family")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    total = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="cnn2gate-fuzz-") as d:
        folder = Path(d)
        total += run_family("byte mutations", st.lists(F.byte_edit, min_size=1, max_size=4),
                            lambda s, e: F.apply_byte_edits(F.SEED_BYTES[s], e), args.examples, args.seed, folder)
        total += run_family("protobuf mutations", st.lists(F.proto_edit, min_size=1, max_size=3),
                            lambda s, e: F.apply_proto_edits(F.SEEDS[s], e).SerializeToString(),
                            args.examples, args.seed + 1, folder)
    print(f"total: {total['run']} examples, accepted {total['accepted']}, rejected {total['rejected']}, "
          f"escaped {total['escaped']}")
    print(f"escaped exceptions: {total['escaped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
