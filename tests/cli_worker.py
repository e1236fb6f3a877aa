"""Run one open_prune command in a subprocess (alone, or as one torchrun rank), as open_prune.py
does, and optionally record what this process did, for the tests to check:

    python tests/cli_worker.py <train | branch NAME> [flags]

With $OBSERVE_DIR set, writes `<OBSERVE_DIR>/rank_<RANK>.pt` at exit: the weights of the model
of every `train()` call when it returned (the in-memory weights, which only rank 0 saves), and
every path this process opened for writing, renamed, created or removed (from Python's audit
hooks, so nothing in open_prune is replaced). It dispatches to the command module directly,
with open_prune.main's handling of errors and signals, so a process starts without importing
the reading commands.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
touched: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1] or "", args[2] or 0
        if any(c in str(mode) for c in "wax+") or flags & WRITE_FLAGS:
            touched.append(os.fsdecode(args[0]))
    elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree"):
        touched.append(os.fsdecode(args[0]))


def main(argv: list[str]) -> int:
    observe = os.environ.get("OBSERVE_DIR")
    if observe:
        sys.addaudithook(_audit)
    import torch

    from foundations.errors import UserError
    from runs.target import run_here
    from training.interrupts import Interrupted

    finals: list[dict] = []
    if observe:
        import runs.branch
        import runs.trunk

        def observed(model, *args, _train=runs.trunk.train, **kwargs):
            result = _train(model, *args, **kwargs)
            finals.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            return result

        runs.trunk.train = runs.branch.train = observed
    try:
        code = run_here(argv)
    except UserError as error:
        print(f"open_prune: error: {error}", file=sys.stderr)
        code = 2
    except Interrupted as interrupted:
        print(f"open_prune: {interrupted}", file=sys.stderr)
        code = interrupted.exit_code
    if observe:
        rank = os.environ.get("RANK", "0")
        torch.save({"finals": finals, "touched": list(touched)}, Path(observe) / f"rank_{rank}.pt")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
