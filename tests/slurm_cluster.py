"""A real one-node SLURM cluster for tests: munge, slurmctld and slurmd started here, stopped by their pids.

Facts of this setup: the Snakemake executor's job step drops SLURM_CONF, so the config must live at
/etc/slurm/slurm.conf (an existing one is backed up and restored); without slurmdbd, squeue is the status
command and MinJobAge must be long; munge's socket folder must be mode 0755.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from waiting import wait_for

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
CONF = Path("/etc/slurm/slurm.conf")


def unavailable_reason() -> str | None:
    """None when a cluster can be started here (installing the packages if needed), else why not."""
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (to start munge and slurmd)"
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch", "squeue")):
        return None
    if not shutil.which("apt-get"):
        return "SLURM is not installed and apt-get is unavailable"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    update = subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, text=True, timeout=600)
    install = subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], env=env, capture_output=True,
                             text=True, timeout=900)
    if install.returncode != 0:
        return f"apt-get could not install {' '.join(PACKAGES)}: {(update.stderr + install.stderr)[-300:]}"
    return None


def _signal(pid: int, signum: int) -> bool:
    """Send ``signum`` (0: only check) to ``pid``; False when no such process is left."""
    try:
        os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 1024
    return 4000


class LocalSlurm:
    def __init__(self, base: Path):
        self.base = base
        self.host = socket.gethostname().split(".")[0]
        self.pids: dict[str, Path] = {}
        self.backup: bytes | None = None

    def _write_conf(self) -> None:
        state, spool = self.base / "state", self.base / "spool"
        state.mkdir(parents=True, exist_ok=True)
        spool.mkdir(parents=True, exist_ok=True)
        cpus = os.cpu_count() or 1
        CONF.parent.mkdir(parents=True, exist_ok=True)
        if CONF.exists():
            self.backup = CONF.read_bytes()
        CONF.write_text(f"""ClusterName=lightsnntest
SlurmctldHost={self.host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={state}
SlurmdSpoolDir={spool}
SlurmctldPidFile={self.base}/slurmctld.pid
SlurmdPidFile={self.base}/slurmd.pid
SlurmctldLogFile={self.base}/slurmctld.log
SlurmdLogFile={self.base}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
ReturnToService=2
MpiDefault=none
NodeName={self.host} CPUs={cpus} RealMemory={_memory_mb()} State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")

    def start(self) -> "LocalSlurm":
        self._write_conf()
        run_dir = Path("/run/munge")
        run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(run_dir, 0o755)
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["mungekey", "--create"], check=True, capture_output=True)
        munge_pid = self.base / "munged.pid"
        subprocess.run(["munged", "--force", f"--pid-file={munge_pid}", f"--log-file={self.base}/munged.log"],
                       check=True, capture_output=True, text=True)
        self.pids["munged"] = munge_pid
        subprocess.run(["slurmctld"], check=True, capture_output=True, text=True)
        self.pids["slurmctld"] = self.base / "slurmctld.pid"
        subprocess.run(["slurmd"], check=True, capture_output=True, text=True)
        self.pids["slurmd"] = self.base / "slurmd.pid"
        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
            return out.returncode == 0 and out.stdout.strip() in ("idle", "mix")

        try:
            wait_for(idle, "idle SLURM node", timeout=60)
        except AssertionError as err:
            raise RuntimeError(f"{err}: {self.logs()}") from None
        return self

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.base.glob("*.log")))

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "munged"):
            path = self.pids.get(name)
            if path and path.exists():
                try:
                    pid = int(path.read_text().split()[0])
                except ValueError:
                    continue
                if _signal(pid, signal.SIGTERM):
                    try:  # the next daemon stops only once this one is gone (slurmd reports to slurmctld)
                        wait_for(lambda: not _signal(pid, 0), f"exit of {name} (pid {pid})", timeout=60)
                    except AssertionError:
                        _signal(pid, signal.SIGKILL)
        if self.backup is not None:
            CONF.write_bytes(self.backup)
        elif CONF.exists():
            CONF.unlink()
