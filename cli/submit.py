"""`open_prune.py submit [options] -- <train | branch NAME> [flags]`: a grid of runs, on Slurm.

Comma lists and ranges in the command's flags expand into the runs (foundations/grid.py, as for
`report`); runs already done are left out; the rest go to Slurm as one job array through
submitit (one resumable command per task), or are printed (`--dry_run`), written as a plain
sbatch array script (`--write_sbatch`), or run here one after the other (`--local`), or here with
the compatible runs trained together as stacked models (`--local --stack`, runs/stack_plan.py).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from foundations.cli import Parser
from foundations.errors import UserError
from platforms import slurm
from platforms.storage import write_text
from runs.grid_task import GridTask
from runs.plan import Run, plan
from runs.stack_plan import parse_stack_size, run_stacked
from runs.target import run_here

SUMMARY = "run a grid of train/branch runs as one Slurm job array (or print, script, or run it here)"
PROGRAM = [sys.executable, str(Path(__file__).resolve().parents[1] / "open_prune.py")]


def build_parser() -> Parser:
    parser = Parser(prog="open_prune.py submit", description=__doc__.split("\n\n")[1],
                    usage="open_prune.py submit [options] -- <train | branch NAME> [flags with a,b,c lists and "
                          "a-b ranges]")
    how = parser.add_argument_group("What to do with the runs").add_mutually_exclusive_group()
    how.add_argument("--dry_run", action="store_true", help="print the command of each run to do, one per line")
    how.add_argument("--write_sbatch", metavar="FILE", help="write a plain sbatch job-array script instead")
    how.add_argument("--local", action="store_true", help="run them here, one after the other")
    parser.add_argument("--stack", nargs="?", const="auto", metavar="N|auto",
                        help="with --local: train compatible runs together as one stacked model, N per stack or as "
                             "many as the free memory holds (docs/stacking.md); not hashed")
    slurm.add_args(parser)
    return parser


def main(argv: list[str]) -> int:
    if "--" not in argv:
        if any(arg in ("-h", "--help") for arg in argv):
            build_parser().print_help()
            return 0
        raise UserError("submit needs the command after --, e.g. `open_prune.py submit -- branch oneshot "
                        "--default_hparams=cifar_resnet_20 --strategy=magnitude,snip10 --replicate=1-3`")
    split = argv.index("--")
    own, command = argv[:split], argv[split + 1:]
    slurm.check_option_names(own)
    args = build_parser().parse_args(own)
    if not command:
        raise UserError("nothing to submit after --: give a command, e.g. `-- train --default_hparams=...`")
    options = slurm.chosen(args)
    if args.stack is not None and not args.local:
        raise UserError("--stack trains the grid in this process: add --local (on Slurm each run is its own task, "
                        "whose own independent trainings stack with --stack after the --)")
    stack_size = parse_stack_size(args.stack) if args.stack is not None else None
    runs = plan(command)
    todo = [run for run in runs if not run.done]
    skipped = len(runs) - len(todo)
    if args.dry_run:
        for run in todo:
            print(shlex.join(["python", "open_prune.py", *run.argv]))
        print(f"# {len(todo)} of {len(runs)} runs to do ({skipped} already done)", file=sys.stderr)
        return 0
    if not todo:
        print(f"all {len(runs)} runs are already done: nothing submitted")
        return 0
    folder = Path(os.path.abspath(Path(args.slurm_folder).expanduser() if args.slurm_folder
                                  else todo[0].root / "slurm_logs"))
    if args.write_sbatch:
        return _write_sbatch(Path(args.write_sbatch).expanduser(), todo, options, folder, skipped)
    if args.local and args.stack is not None:
        return run_stacked(todo, skipped, stack_size)
    if args.local:
        return _run_locally(todo, skipped)
    return _submit(todo, options, folder, skipped)


def task_argv(run: Run) -> list[str]:
    """The run's command line for a task that may start in any directory, with any environment:
    its root, from --root or $OPEN_PRUNE_ROOT, given as an absolute --root, and a relative
    --dataset_root made absolute."""
    argv = []
    for arg in run.argv:
        if arg.startswith("--root="):
            continue
        if arg.startswith("--dataset_root="):
            arg = f"--dataset_root={os.path.abspath(Path(arg.split('=', 1)[1]).expanduser())}"
        argv.append(arg)
    return [*argv, f"--root={os.path.abspath(run.root.expanduser())}"]


def _write_sbatch(path: Path, todo: list[Run], options: dict, folder: Path, skipped: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)  # Slurm does not create the log directory
    script = slurm.sbatch_script([task_argv(run) for run in todo], options, folder, PROGRAM, Path.cwd())
    write_text(script, path)
    print(f"wrote {path}: {len(todo)} runs as one job array ({skipped} already done, left out)")
    print(f"submit it with: sbatch {path}    (logs: {folder}/<job>_<task>.out)")
    return 0


def _run_locally(todo: list[Run], skipped: int) -> int:
    print(f"{len(todo)} runs to do here, one after the other ({skipped} already done)")
    for i, run in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {shlex.join(['python', 'open_prune.py', *run.argv])}", flush=True)
        code = run_here(run.argv)
        if code:
            return code
    return 0


def _submit(todo: list[Run], options: dict, folder: Path, skipped: int) -> int:
    slurm.check_reachable()
    executor = slurm.executor(folder, options)
    with executor.batch():
        jobs = [executor.submit(GridTask(task_argv(run))) for run in todo]
    job = slurm.array_id(jobs[0].job_id)
    stdout, stderr = slurm.log_files(jobs[0])
    what = f"job array {job}" if len(jobs) > 1 else f"job {job}"
    print(f"submitted {len(jobs)} run(s) as Slurm {what} ({skipped} already done, not submitted)")
    print(f"logs:   {folder}, one directory per task (the first: {stdout.parent.name}/{stdout.name}, {stderr.name})")
    print(f"follow: squeue -j {job}; tail -f {stdout}")
    return 0
