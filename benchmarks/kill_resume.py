"""Kill `imgclf train` with SIGKILL at random steps (on progress: tests/kill_chain.py), resume each time, and
check that the final weights are bitwise equal to an uninterrupted run with the same seed (CPU).

    python benchmarks/kill_resume.py --kills 20

Prints each kill (which step last.pt held, what was on disk after) and `kills survived and resumed exactly: N/N`.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kill_chain import killed_run, reference, same_weights


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t = time.time()
        ref = reference(out, args.epochs)
        print(f"reference run: {time.time() - t:.1f}s, {ref['global_step']} steps")
        final, resumed_from = killed_run(out, args.epochs, args.kills, random.Random(args.seed))
        ok = same_weights(ref, final)
        print(f"resumes started from steps: {resumed_from}")
        print(f"kills survived and resumed exactly: {len(resumed_from) if ok else 0}/{len(resumed_from)} "
              f"(final weights {'bitwise equal' if ok else 'DIFFERENT'} to the uninterrupted run)")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
