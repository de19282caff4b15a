"""Engine samples/s of two checkouts of the project, side by side: `python -m bench.engine_ab
OLD_DIR NEW_DIR [--keys N] [--rounds R]`. Each round runs the numpy engine of each checkout in a
process of its own (its directory first on PYTHONPATH), alternating, so machine load falls on
both alike; the best round of each is reported with the ratio new/old. For a change of the step
itself (say the row blocks that make scores deterministic), where `--only engine` of a single
checkout has no baseline to compare with.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

BATCHES = (256, 1024, 4096)
_CHILD = """
import gc, json, os, sys
from pathlib import Path
import numpy as np
from bench import engine_bench, workload
from bench.models import save_streaming_model
from consumer.model import load_step_function
path = Path(sys.argv[1])
step = load_step_function(path, "numpy")
gc.freeze()
keys = int(sys.argv[2])
_, engine = engine_bench.filled_table(step, keys, 0)
rng = np.random.default_rng(1)
result = {}
for batch in (256, 1024, 4096):
    pool = workload.record_pool(keys, batch, 65536 // batch, rng)
    result[str(batch)] = engine_bench.time_engine(engine, "numpy", pool, 4.0).samples_per_cpu_s
print(json.dumps(result))
"""


def _run(tree: Path, model: Path, keys: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "OPENBLAS_NUM_THREADS": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(model), str(keys)],
        env=env,
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path, default=Path("build/engine-ab.keras"))
    args = parser.parse_args()
    if not args.model.exists():
        from bench.models import save_streaming_model  # noqa: PLC0415  (imports Keras)

        args.model.parent.mkdir(parents=True, exist_ok=True)
        save_streaming_model(args.model)
    best: dict[str, dict[str, float]] = {"old": {}, "new": {}}
    for _ in range(args.rounds):
        for name, tree in (("old", args.old), ("new", args.new)):
            for batch, rate in _run(tree.resolve(), args.model.resolve(), args.keys).items():
                best[name][batch] = max(best[name].get(batch, 0.0), rate)
    print(f"engine samples per CPU-second, {args.keys:,} live keys, best of {args.rounds} rounds")
    print(f"{'batch':>6} {'old':>10} {'new':>10} {'new/old':>8}")
    for batch in map(str, BATCHES):
        old, new = best["old"][batch], best["new"][batch]
        print(f"{batch:>6} {old:>10,.0f} {new:>10,.0f} {new / old:>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
