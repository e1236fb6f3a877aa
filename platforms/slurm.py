"""Slurm: many runs as one job array, through submitit or as a plain sbatch script.

`--slurm_<option>` flags map onto submitit's SlurmExecutor parameters (OPTIONS). Every task is one
command line that resumes where it stopped, so Slurm may stop it at any time:

  - Slurm sends SIGUSR1 `signal_delay_s` seconds before the time limit (`--signal=USR1@90`), and
    `scancel --signal=USR1` sends it by hand: training checkpoints at the next step, then
    submitit's checkpoint protocol requeues the task (SUBMITIT_PREEMPT_SIGNAL=USR1 in the job),
    which reruns the same command and resumes from the checkpoint;
  - SIGTERM (preemption, `scontrol requeue`, scancel) checkpoints at the next step and exits;
    Slurm requeues a preempted job itself when the cluster is configured to (`--requeue`).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from foundations.errors import UserError

PREEMPT_SIGNAL = "USR1"  # what training checkpoints on and submitit requeues on
DEFAULT_SIGNAL_DELAY_S = 90
DEFAULT_TIME_MINUTES = 5  # submitit's default, given explicitly to submitit and to the sbatch script alike


@dataclass(frozen=True)
class SlurmOption:
    kind: type
    help: str
    repeatable: bool = False


OPTIONS: dict[str, SlurmOption] = {
    "partition": SlurmOption(str, "partition (queue) to run in"),
    "time": SlurmOption(str, "time limit of each task: minutes, HH:MM:SS or D-HH:MM:SS (default: "
                             f"{DEFAULT_TIME_MINUTES} minutes, in the submitted array and the --write_sbatch "
                             "script alike: give it)"),
    "gpus_per_task": SlurmOption(int, "GPUs per task"),
    "gpus_per_node": SlurmOption(int, "GPUs per node"),
    "cpus_per_task": SlurmOption(int, "CPUs per task"),
    "mem": SlurmOption(str, "memory per node, e.g. 16G"),
    "account": SlurmOption(str, "account to charge"),
    "qos": SlurmOption(str, "quality of service"),
    "constraint": SlurmOption(str, "node features required, e.g. a100"),
    "exclude": SlurmOption(str, "nodes not to use"),
    "nodelist": SlurmOption(str, "nodes to use"),
    "comment": SlurmOption(str, "a comment shown by squeue"),
    "job_name": SlurmOption(str, "the array's name (default: open_prune)"),
    "array_parallelism": SlurmOption(int, "at most this many tasks of the array run at once (default: 256)"),
    "signal_delay_s": SlurmOption(int, f"seconds before the time limit at which SIG{PREEMPT_SIGNAL} asks for a "
                                       f"checkpoint (default: {DEFAULT_SIGNAL_DELAY_S})"),
    "setup": SlurmOption(str, "a shell line run before each task, e.g. 'module load cuda' (repeat the flag for "
                              "more)", repeatable=True),
}
FLAG_PREFIX = "slurm_"


def add_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Slurm", "Mapped onto submitit's SlurmExecutor parameters.")
    for key, option in OPTIONS.items():
        group.add_argument(f"--{FLAG_PREFIX}{key}", type=option.kind, help=option.help,
                           metavar=option.kind.__name__.upper(), action="append" if option.repeatable else "store")
    group.add_argument("--slurm_folder", metavar="DIR",
                       help="where the task logs go (default: <root>/slurm_logs, the runs' root)")


def check_option_names(tokens: Sequence[str]) -> None:
    """Refuse a `--slurm_*` flag that is not an option here, listing the options."""
    known = set(OPTIONS) | {"folder"}
    for token in tokens:
        if token.startswith(f"--{FLAG_PREFIX}"):
            key = token[2 + len(FLAG_PREFIX):].split("=", 1)[0]
            if key not in known:
                names = ", ".join(f"--{FLAG_PREFIX}{name}" for name in [*OPTIONS, "folder"])
                raise UserError(f"unknown Slurm option --{FLAG_PREFIX}{key}: the options are {names}")


_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def time_minutes(text: str) -> int:
    """Slurm's time formats (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S) as whole minutes, rounded up."""
    match = _TIME.match(text.strip())
    if not match:
        raise UserError(f"--slurm_time={text} is not a Slurm time: give minutes (90), HH:MM:SS (12:00:00) "
                        f"or D-HH:MM:SS (2-00:00:00)")
    days, first, second, third = match.groups()
    if days is not None:  # D-H, D-H:M, D-H:M:S
        seconds = int(days) * 86400 + int(first) * 3600 + int(second or 0) * 60 + int(third or 0)
    elif third is not None:  # H:M:S
        seconds = int(first) * 3600 + int(second) * 60 + int(third)
    elif second is not None:  # M:S
        seconds = int(first) * 60 + int(second)
    else:  # M
        seconds = int(first) * 60
    if seconds <= 0:
        raise UserError(f"--slurm_time={text} is no time at all: give at least a minute")
    return math.ceil(seconds / 60)


def chosen(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, by submitit's names (time in minutes, default
    DEFAULT_TIME_MINUTES)."""
    values = {key: getattr(args, FLAG_PREFIX + key) for key in OPTIONS if getattr(args, FLAG_PREFIX + key) is not None}
    values["time"] = time_minutes(values["time"]) if "time" in values else DEFAULT_TIME_MINUTES
    for key in ("gpus_per_task", "gpus_per_node", "cpus_per_task", "array_parallelism", "signal_delay_s"):
        if key in values and values[key] < (0 if key.startswith("gpus") or key == "signal_delay_s" else 1):
            raise UserError(f"--{FLAG_PREFIX}{key}={values[key]} is out of range: give a positive number")
    return values


def check_reachable() -> None:
    """Raise a one-line UserError unless `sinfo` answers (the controller is up and we may talk to it)."""
    sinfo = shutil.which("sinfo")
    hint = "run the grid here with --local, or write a script for elsewhere with --write_sbatch=FILE"
    if sinfo is None:
        raise UserError(f"Slurm is not reachable: sinfo is not installed on this machine; {hint}")
    try:
        result = subprocess.run([sinfo, "--noheader", "--format=%P"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise UserError(f"Slurm is not reachable: sinfo did not answer within 60 s; {hint}") from None
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        raise UserError(f"Slurm is not reachable: sinfo failed: {said[0] if said else f'exit code {result.returncode}'}"
                        f"; {hint}")


def submitit_parameters(options: dict[str, Any]) -> dict[str, Any]:
    """SlurmExecutor.update_parameters arguments: the options, SIGUSR1 as the checkpoint signal,
    requeueable tasks."""
    options = dict(options)
    delay = options.pop("signal_delay_s", DEFAULT_SIGNAL_DELAY_S)
    setup = [f"export SUBMITIT_PREEMPT_SIGNAL={PREEMPT_SIGNAL}", *options.pop("setup", [])]
    return {"job_name": "open_prune", **options, "setup": setup, "signal_delay_s": delay,
            "additional_parameters": {"signal": f"{PREEMPT_SIGNAL}@{delay}", "requeue": True}}


def executor(folder: Path, options: dict[str, Any]) -> Any:
    """A submitit SlurmExecutor writing each task's logs to `<folder>/<job id>/`."""
    try:
        import submitit
    except ImportError:
        raise UserError("submit needs submitit: pip install -e '.[slurm]' (or write a plain script with "
                        "--write_sbatch=FILE)") from None
    ex = submitit.SlurmExecutor(folder=Path(folder) / "%j")
    try:
        ex.update_parameters(**submitit_parameters(options))
    except ValueError as error:
        raise UserError(f"submitit refused the Slurm options: {str(error).splitlines()[0]}") from None
    return ex


def sbatch_script(commands: Sequence[Sequence[str]], options: dict[str, Any], folder: Path,
                  program: Sequence[str], directory: Path) -> str:
    """A plain sbatch job array running `program + command` for each command (task i runs the
    i-th) in `directory`, which checkpoints on SIGUSR1 before the time limit and requeues itself.
    The script may be submitted from anywhere: the log folder and the working directory are
    written absolute (the commands must carry absolute paths too)."""
    options = dict(options)
    delay = options.pop("signal_delay_s", DEFAULT_SIGNAL_DELAY_S)
    setup = options.pop("setup", [])
    parallelism = options.pop("array_parallelism", None)
    options.setdefault("time", DEFAULT_TIME_MINUTES)
    array = f"0-{len(commands) - 1}" + (f"%{parallelism}" if parallelism else "")
    folder = os.path.abspath(Path(folder).expanduser())
    flags = {"job-name": options.pop("job_name", "open_prune"), "array": array,
             "chdir": os.path.abspath(Path(directory).expanduser()),
             "output": f"{folder}/%A_%a.out", "error": f"{folder}/%A_%a.err", "open-mode": "append",
             "signal": f"{PREEMPT_SIGNAL}@{delay}"}
    flags.update({key.replace("_", "-"): value for key, value in options.items()})
    lines = ["#!/bin/bash",
             f"# {len(commands)} open_prune runs as one job array; submit with: sbatch <this file>",
             "# Each task resumes where it stopped. SIGUSR1 (sent before the time limit) checkpoints at the",
             "# next step and the task requeues itself; SIGTERM (preemption) checkpoints and exits.",
             *(f"#SBATCH --{key}={shlex.quote(str(value))}" for key, value in flags.items()),
             "#SBATCH --requeue", ""]
    lines += [*setup, ""] if setup else []
    lines += ['case "$SLURM_ARRAY_TASK_ID" in']
    lines += [f"  {i}) srun {shlex.join([*program, *command])} ;;" for i, command in enumerate(commands)]
    lines += ['  *) echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;', "esac",
              "code=$?",
              f'if [ "$code" -eq {128 + signal.SIGUSR1} ]; then  # SIGUSR1: checkpointed, run the rest later',
              '  scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
              "fi",
              'exit "$code"', ""]
    return "\n".join(lines)


def log_files(job: Any) -> tuple[Path, Path]:
    """(stdout, stderr) of the first task of a submitted submitit job."""
    return Path(job.paths.stdout), Path(job.paths.stderr)


def array_id(job_id: Optional[str]) -> str:
    """'123' of a submitit array task id '123_0'."""
    return str(job_id).split("_")[0]
