"""A real one-node Slurm cluster for the tests, not a mock: Debian's slurmctld, slurmd, slurm-client
and munge, started as root from a slurm.conf generated for this host in a temporary folder (state,
spool, logs and munge's key and socket there too), on free ports; stopped at the end, its jobs
cancelled first. No job accounting (no slurmdbd): aoi then reads a job's state from its files.

    cluster = start(folder)          # sinfo shows the node idle
    cluster.env                      # SLURM_CONF for Slurm's commands (and the jobs) to find it
    stop(cluster)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "sinfo", "squeue", "scontrol", "scancel")
CONF = """ClusterName=aoitest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge/socket,cred_expire=5
SlurmUser=root
SlurmdUser=root
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
Waittime=0
SlurmdParameters=config_overrides
NodeName={host} CPUs=2 RealMemory={memory} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass(frozen=True)
class Cluster:
    folder: Path
    env: dict  # os.environ plus SLURM_CONF

    def run(self, *command: str, check: bool = True) -> str:
        """Run one of Slurm's commands on this cluster; its output."""
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60, check=check)
        return done.stdout

    def jobs(self) -> list[str]:
        """The ids of the jobs Slurm holds (queued, running, requeued), as squeue shows them, one array task
        per id (`1_0`, `1_1`; without --array, pending tasks show as one `1_[0-1%2]`)."""
        return self.run("squeue", "--array", "--noheader", "--format=%i").split()


def unavailable() -> str | None:
    """Why no cluster can be started here (not root, a program missing), or None."""
    if os.geteuid() != 0:
        return "a Slurm cluster for the tests needs root (slurmd)"
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    if missing:
        return f"no {', '.join(missing)}: apt-get install slurmctld slurmd slurm-client munge (.ci/run does)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def memory_mb() -> int:
    """90% of this machine's memory in MB (slurmd refuses a node that claims more than it has)."""
    lines = Path("/proc/meminfo").read_text().splitlines()
    total_kb = next(int(line.split()[1]) for line in lines if line.startswith("MemTotal:"))
    return int(total_kb / 1024 * 0.9)


def start(folder: Path) -> Cluster:
    """Start munged, slurmctld and slurmd under ``folder``; return once the node is idle."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # munged wants its socket's folders searchable by all
    for name in ("state", "spool", "munge"):
        (folder / name).mkdir(exist_ok=True)
    (folder / "munge").chmod(0o755)
    key = folder / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(128))
    key.chmod(0o600)
    munge = folder / "munge"
    subprocess.run(
        ["munged", "--force", f"--key-file={key}", f"--socket={munge}/socket", f"--pid-file={munge}/munged.pid",
         f"--log-file={munge}/munged.log", f"--seed-file={munge}/munged.seed"],
        check=True, timeout=60,
    )  # fmt: skip
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    values = {"folder": folder, "host": host, "memory": memory_mb(), "ctld_port": free_port(), "d_port": free_port()}
    conf.write_text(CONF.format(**values))
    cluster = Cluster(folder, {**os.environ, "SLURM_CONF": str(conf)})
    for daemon in ("slurmctld", "slurmd"):
        subprocess.run([daemon, "-f", str(conf)], env=cluster.env, check=True, timeout=60)
    deadline = time.monotonic() + 120
    while cluster.run("sinfo", "--noheader", "--Node", "--format=%t", check=False).split() != ["idle"]:
        if time.monotonic() > deadline:
            stop(cluster)
            raise RuntimeError(f"the test cluster's node did not become idle: see {folder}/slurmd.log")
        time.sleep(1)
    return cluster


def stop(cluster: Cluster) -> None:
    """Cancel every job, wait for them to end, then stop slurmctld, slurmd and munged."""
    jobs = cluster.jobs()
    if jobs:
        cluster.run("scancel", *jobs, check=False)
    deadline = time.monotonic() + 60
    while cluster.jobs() and time.monotonic() < deadline:
        time.sleep(1)
    cluster.run("scontrol", "shutdown", check=False)
    subprocess.run(["munged", "--stop", f"--socket={cluster.folder}/munge/socket"], capture_output=True, timeout=60)
    for pid_file in ("slurmctld.pid", "slurmd.pid", "munge/munged.pid"):
        path = cluster.folder / pid_file
        deadline = time.monotonic() + 30
        while path.exists() and time.monotonic() < deadline:  # the daemon removes it when it is gone
            time.sleep(0.5)
        if path.exists():
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(path.read_text().split()[0]), signal.SIGKILL)
