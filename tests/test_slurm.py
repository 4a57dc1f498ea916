"""The workflow's SLURM profile, run through a real local SLURM cluster started by the test."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from slurm_cluster import LocalSlurm, unavailable_reason  # noqa: E402
from workflow_configs import with_budgeted_workers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if not (BIN / "snakemake").exists():
        pytest.skip("snakemake is not installed beside this python")
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def test_tiny_config_runs_through_the_slurm_profile(slurm, tmp_path):
    work = tmp_path / "wf"
    work.mkdir()
    shutil.copytree(ROOT / "workflow", work / "workflow")
    shutil.copytree(ROOT / "config", work / "config")
    # random, and two workers of the budgeted search on one study, each its own SLURM job
    config = with_budgeted_workers(yaml.safe_load((work / "config" / "test.yaml").read_text()))
    (work / "slurm-test.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("SLURM_CONF", None)
    # the profile as users run it; only what a 2-CPU node without GPUs cannot give is overridden
    small = "gpu=0 mem_mb=1000 runtime=10"
    rules = ("search", "search_worker", "train", "evaluate", "prepare")
    overrides = [f"{rule}:{item}" for rule in rules for item in small.split()]
    start = time.time()
    proc = subprocess.run(
        ["timeout", "-k", "10", "900", str(BIN / "snakemake"), "--workflow-profile", "workflow/profiles/slurm",
         "--configfile", "slurm-test.yaml", "--default-resources", "mem_mb=1000", "runtime=10",
         "--set-resources", *overrides, "--set-threads", *[f"{rule}=1" for rule in rules], "--jobs", "4",
         "--slurm-init-seconds-before-status-checks", "1"],
        cwd=work, env=env, capture_output=True, text=True)
    elapsed = time.time() - start
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:] + slurm.logs()
    assert "sbatch" in proc.stdout + proc.stderr or "slurm" in (proc.stdout + proc.stderr).lower()
    run = work / "results/test/runs/digits/random/seed0"
    assert json.loads((run / "evaluate.json").read_text())["top1"] > 0
    budgeted = work / "results/test/runs/digits/budgeted/seed0"
    assert (budgeted / "workers" / "worker-0.json").is_file() and (budgeted / "workers" / "worker-1.json").is_file()
    result = json.loads((budgeted / "search.json").read_text())
    assert result["details"]["paid_epochs"] == 0 and (budgeted / "evaluate.json").is_file()
    assert sum(t["state"] in ("complete", "pruned") for t in result["candidates"]) >= 4
    assert (work / "results/test/tables/table2.csv").exists()
    jobs = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%j %T"], capture_output=True, text=True).stdout
    print(f"SLURM workflow finished in {elapsed:.0f}s; jobs seen by squeue:\n{jobs}")
