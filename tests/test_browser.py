"""What a user sees in a real browser (headless Chromium from Debian's packages): the MLflow UI served from a store
the pipeline wrote, opened at the address the workflow prints. Skipped, with one line saying what to install,
where Chromium is missing (.ci/run installs it)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from waiting import wait_for
from test_tracking import _free_port, _healthy

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: apt-get install chromium (Debian) runs "
                                                         "the browser test")


def _rendered(url: str, profile: Path, budget_ms: int = 20000) -> str:
    """The page's DOM after its scripts ran (Chromium's own flags for a closed network: nothing to Google)."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def served_store(tmp_path, monkeypatch):
    """A store as the workflow leaves it (a parent run, its search and evaluate runs), served by `mlflow ui`."""
    from lightsnn.pipeline.tracking import LiveRun

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LIGHTSNN_JOURNAL", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config, group = {"name": "lightsnn-default", "tracking": {"uri": uri}}, "digits/snasnet/seed0"
    identity = {"method": "snasnet", "dataset": "digits", "seed": 0}
    search = LiveRun(config, "search", identity, group=group)
    search.start()
    search.finish({"kind": "search", "method": "snasnet", "genotype": {"str": "0012 0000 0001 0000"},
                   "times": {"search_seconds": 12.5}})
    evaluate = LiveRun(config, "evaluate", identity, group=group)
    evaluate.start()
    evaluate.finish({"kind": "evaluate", "top1": 0.5625, "sar": 0.125, "energy_pj_per_sample": 2.5e6})
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "ui", "--host", "127.0.0.1", "--port",
                               str(port), "--backend-store-uri", uri, "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url), "answer from mlflow ui", timeout=120, process=server)
        yield config, url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_the_printed_link_opens_the_runs_table_with_names_that_say_what_each_run_is(served_store, tmp_path):
    from lightsnn.pipeline.tracking import runs_table_link

    config, url = served_store
    link = runs_table_link(config, ui=url)
    assert link.startswith(f"{url}/#/experiments/") and link.endswith("/runs?workflowType=machine_learning")
    page = _rendered(link, tmp_path / "profile")
    assert "lightsnn-default" in page  # the experiment, by a name that is not MLflow's own "Default"
    assert "Run Name" in page and "digits/snasnet/seed0" in page, page[-3000:]  # the runs table, the parent run
    # the bare experiment address opens MLflow 3's GenAI page (no runs, "No data"): why the workflow prints the link
    bare = _rendered(link.split("/runs?")[0], tmp_path / "profile-bare")
    assert "No data" in bare and "digits/snasnet/seed0" not in bare
