"""What a user sees in a real browser (headless Chromium from Debian's packages): the MLflow UI served from a store
the pipeline wrote, opened at the address the workflow prints. Skipped, with one line saying what to install,
where Chromium is missing (.ci/run installs it)."""

import pytest

from browser import CHROMIUM, NO_CHROMIUM, rendered, served_ui

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)


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
    with served_ui(uri) as url:
        yield config, url


def test_the_printed_link_opens_the_runs_table_with_names_that_say_what_each_run_is(served_store, tmp_path):
    from lightsnn.pipeline.tracking import runs_table_link

    config, url = served_store
    link = runs_table_link(config, ui=url)
    assert link.startswith(f"{url}/#/experiments/") and link.endswith("/runs?workflowType=machine_learning")
    page = rendered(link, tmp_path / "profile")
    assert "lightsnn-default" in page  # the experiment, by a name that is not MLflow's own "Default"
    assert "Run Name" in page and "digits/snasnet/seed0" in page, page[-3000:]  # the runs table, the parent run
    # the bare experiment address opens MLflow 3's GenAI page (no runs, "No data"): why the workflow prints the link
    bare = rendered(link.split("/runs?")[0], tmp_path / "profile-bare")
    assert "No data" in bare and "digits/snasnet/seed0" not in bare
