"""A one-node Slurm cluster in a temporary directory, for tests that submit real jobs.

Debian's slurm-wlm: munged with a fresh key, slurmctld and slurmd with a slurm.conf generated for
this host (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none, no accounting), all running
as root in the foreground under this process and stopped at the end. Clients (sinfo, sbatch,
scontrol, and submitit, which calls them) find it through $SLURM_CONF.

`start_cluster(directory)` returns the running cluster, or raises `Unavailable` with one line
saying why it cannot run here (not root, slurm-wlm not installed, a daemon that did not start).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sinfo", "sbatch", "scontrol", "squeue", "scancel", "srun")


class Unavailable(Exception):
    """The cluster cannot run on this machine (the message says why, in one line)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mb() -> int:
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return max(256, pages * page_size // 2**20 // 2)


def slurm_conf(directory: Path, node: str, munge_socket: Path, message_timeout: int = 10) -> str:
    """slurm.conf for one node named `node` (this host) with every CPU, half the memory."""
    ctld_port, slurmd_port = _free_port(), _free_port()
    return "\n".join([
        "ClusterName=open_prune_test",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        # cred_expire also sets how long Slurm holds a requeued job (default 120 s); a short one lets the
        # requeue test wait for Slurm itself instead of forcing StartTime=now, which races the revoked
        # credential of the job's first run ("Job credential revoked": the rerun fails at once)
        f"AuthInfo=socket={munge_socket},cred_expire=10",
        f"StateSaveLocation={directory / 'state'}",
        f"SlurmdSpoolDir={directory / 'spool'}",
        f"SlurmctldPidFile={directory / 'slurmctld.pid'}",
        f"SlurmdPidFile={directory / 'slurmd.pid'}",
        f"SlurmctldLogFile={directory / 'slurmctld.log'}",
        f"SlurmdLogFile={directory / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "SchedulerType=sched/builtin",
        "SchedulerParameters=sched_interval=2",  # a requeued job starts soon after its hold, not a minute later
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "ReturnToService=2",
        "MinJobAge=600",
        "KillWait=10",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        f"MessageTimeout={message_timeout}",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={_memory_mb()} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


@dataclass
class SlurmCluster:
    directory: Path
    conf: Path
    node: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """What a client needs in its environment to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def command(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a Slurm client command against this cluster."""
        result = subprocess.run(list(argv), env={**os.environ, **self.env}, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
        return result

    def wait_until_idle(self, timeout: float = 60.0) -> None:
        """Until the node takes jobs (or Unavailable, with the daemons' last words)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.command("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
            if state.startswith("idle"):
                return
            if any(process.poll() is not None for process in self.processes):
                break
            time.sleep(0.3)
        logs = " | ".join(self._last_line(name) for name in ("slurmctld.log", "slurmd.log"))
        raise Unavailable(f"the test Slurm node never became idle ({logs})")

    def _last_line(self, name: str) -> str:
        path = self.directory / name
        lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
        return f"{name}: {lines[-1] if lines else '(empty)'}"

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (the processes we started)."""
        if self.processes and self.processes[-1].poll() is None:
            self.command("scancel", "--full", "--signal=KILL", "--user=root", check=False)
            self.command("scancel", "--user=root", check=False)
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "the test Slurm cluster runs its daemons as root, and this is not root"
    missing = [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name) is None]
    if missing:
        return (f"slurm-wlm is not installed ({', '.join(missing)} missing): `make test` installs it as root, "
                f"or run `apt-get install slurm-wlm`")
    return None


def start_cluster(directory: Path) -> SlurmCluster:
    reason = unavailable_reason()
    if reason:
        raise Unavailable(reason)
    directory = Path(directory)
    for sub in ("state", "spool", "munge"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    munge = directory / "munge"
    munge.chmod(0o700)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    munge_socket = munge / "munge.socket"
    node = socket.gethostname().split(".")[0]
    conf = directory / "slurm.conf"
    conf.write_text(slurm_conf(directory, node, munge_socket))
    cluster = SlurmCluster(directory, conf, node)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    try:
        cluster.processes.append(subprocess.Popen(
            ["munged", "--foreground", "--force", f"--key-file={key}", f"--socket={munge_socket}",
             f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
             f"--seed-file={munge / 'munged.seed'}"], **quiet))
        _wait_for(munge_socket, cluster, "munged")
        cluster.processes.append(subprocess.Popen(["slurmctld", "-D", "-c", "-i", "-f", str(conf)], **quiet))
        cluster.processes.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf), "-N", node], **quiet))
        cluster.wait_until_idle()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_for(path: Path, cluster: SlurmCluster, name: str, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if time.time() > deadline or cluster.processes[-1].poll() is not None:
            raise Unavailable(f"{name} did not start ({cluster._last_line('munge/munged.log')})")
        time.sleep(0.05)
