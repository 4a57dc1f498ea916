"""The Snakemake workflow, run for real (in a copy of the workflow files in a temporary folder)."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from waiting import wait_for
from workflow_configs import with_budgeted_workers

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
pytestmark = pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed beside this python")


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env['PATH']}"  # rules call `python -m lightsnn`
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _workdir(tmp_path: Path) -> Path:
    work = tmp_path / "wf"
    work.mkdir()
    shutil.copytree(ROOT / "workflow", work / "workflow")
    shutil.copytree(ROOT / "config", work / "config")
    return work


def _smk(work, *args, timeout=600):
    return subprocess.run(["timeout", "-k", "10", str(timeout), str(SNAKEMAKE), *args], cwd=work, env=_env(),
                          capture_output=True, text=True)


def test_schema_file_is_generated_from_the_registries():
    from lightsnn.schema import schema_yaml

    committed = (ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text()
    assert committed == schema_yaml(), "run: python -m lightsnn schema --out workflow/schemas/config.schema.yaml"
    schema = yaml.safe_load(committed)
    from lightsnn.data import DATASET_NAMES
    from lightsnn.search import METHODS
    wf = schema["properties"]["workflow"]["properties"]
    assert wf["methods"]["items"]["enum"] == list(METHODS)
    assert wf["datasets"]["items"]["enum"] == list(DATASET_NAMES)
    assert schema["properties"]["search"]["properties"]["snasnet"]["properties"]["num_search"]["default"] == 5000


def test_config_readme_tables_are_generated_from_the_options():
    """config/README.md's option tables come from the dataclasses: a changed help text or default shows as drift."""
    from lightsnn.schema import BLOCK, config_reference, render_config_readme

    committed = (ROOT / "config" / "README.md").read_text()
    assert committed == render_config_readme(committed), "run: python -m lightsnn schema --docs config/README.md"
    sections = [m.group("section") for m in BLOCK.finditer(committed)]
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    documented = {s for s in sections if s in schema["properties"]} | {"name", "device", "networks"}
    assert documented == set(schema["properties"]), "every config section has a generated table"
    assert "| `num_search` | `5000` |" in config_reference("search")
    stale = committed.replace("| `num_search` | `5000` |", "| `num_search` | `50` |")
    assert render_config_readme(stale) == committed


@pytest.mark.parametrize("change, message", [
    ({"workflow": {"methods": ["snasnet", "darts"]}}, "'darts' is not one of"),
    ({"workflow": {"seeds": [-1]}}, "-1 is less than the minimum of 0"),
    ({"serach": {}}, "'serach' was unexpected"),
    ({"search": {"lightsnn": {"batch_sise": 3}}}, "'batch_sise' was unexpected"),
])
def test_a_bad_config_stops_before_any_job_with_the_schema_message(tmp_path, change, message):
    work = _workdir(tmp_path)
    config = yaml.safe_load((work / "config" / "test.yaml").read_text())
    for key, value in change.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    bad = work / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    proc = _smk(work, "--cores", "1", "--configfile", str(bad))
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (work / "results").exists()


def test_a_config_string_never_reaches_the_shell(tmp_path):
    work = _workdir(tmp_path)
    config = yaml.safe_load((work / "config" / "test.yaml").read_text())
    config["workflow"]["results"] = "results/x$(touch INJECTED)"
    (work / "evil.yaml").write_text(yaml.safe_dump(config))
    proc = _smk(work, "--cores", "1", "--configfile", "evil.yaml")
    assert proc.returncode != 0
    assert "does not match" in proc.stdout + proc.stderr and "results" in proc.stdout + proc.stderr
    assert not (work / "INJECTED").exists() and not (work / "results").exists()
    # and every path a rule puts on a command line is shell-quoted (shown with an allowed space)
    config["workflow"]["results"] = "results/a b"
    (work / "spaced.yaml").write_text(yaml.safe_dump(config))
    dry = _smk(work, "-n", "--printshellcmds", "--configfile", "spaced.yaml")
    assert dry.returncode == 0, dry.stderr[-2000:]
    commands = [line for line in dry.stdout.splitlines() if "python -m lightsnn" in line]
    assert len(commands) >= 10
    for command in commands:
        assert "results/a b" in command and "> 'results/a b/logs/" in command, command
        assert command.count("results/a b") == command.count("'results/a b"), command


def test_lint_and_the_paper_dag(tmp_path):
    work = _workdir(tmp_path)
    lint = _smk(work, "--lint")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # with data/ empty, the dry run stops before scheduling anything, naming the files and where they go
    missing = _smk(work, "-n", "--quiet", "rules", "--configfile", "config/paper.yaml")
    out = missing.stdout + missing.stderr
    assert missing.returncode != 0 and "Missing input files for rule prepare" in out, out[-3000:]
    assert "data/cifar-10-batches-py/data_batch_1" in out or "data/DVSGesture/ibmGestureTrain.tar.gz" in out, out
    from lightsnn.data import DATASETS

    for name in ("cifar10", "cifar100", "dvs128_gesture"):  # files in the datasets' layout, enough for a dry run
        for template in DATASETS[name].files:
            path = work / template.format(root="data", subsets="data/cifar-subsets")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    dry = _smk(work, "-n", "--quiet", "rules", "--configfile", "config/paper.yaml")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    counts = {line.split()[0]: int(line.split()[1]) for line in dry.stdout.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    # 3 datasets x 5 methods x 3 seeds, plus table 1's pruning variant on CIFAR10 x 3 seeds
    assert counts["search"] == counts["train"] == counts["evaluate"] == 3 * 5 * 3 + 3
    # the library's one list of the jobs (Targets, which plan reads) is the list Snakemake schedules
    from lightsnn.pipeline.config import load_config
    from lightsnn.pipeline.targets import Targets
    from lightsnn.schema import with_defaults

    paper = Targets(with_defaults(load_config([work / "config" / "config.yaml", work / "config" / "paper.yaml"])))
    assert len(paper.runs()) == len(set(paper.searches())) == counts["search"]
    assert [(r.dataset, r.method, r.options) for r in paper.runs() if r.run == "lightsnn-5op"] == \
        [("cifar10", "lightsnn", {"space": "snasnet-ops"})] * 3
    assert counts["prepare"] == 3 and counts["aggregate"] == 1
    # the default config: 2 offline datasets x 5 methods (LitE-SNN among them) x 2 seeds
    dry = _smk(work, "-n", "--quiet", "rules")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    counts = {line.split()[0]: int(line.split()[1]) for line in dry.stdout.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert counts["search"] == counts["train"] == counts["evaluate"] == 2 * 5 * 2


def test_the_whole_workflow_produces_tables_plots_report_and_mlflow_runs(tmp_path):
    work = _workdir(tmp_path)
    config = yaml.safe_load((work / "config" / "test.yaml").read_text())
    config["workflow"]["results"] = "results/test run"  # every rule quotes its paths: a space breaks nothing
    (work / "spaced.yaml").write_text(yaml.safe_dump(config))
    proc = _smk(work, "--cores", "2", "--configfile", "spaced.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Using workflow specific profile workflow/profiles/default" in proc.stdout + proc.stderr
    results = work / "results" / "test run"
    tables = results / "tables"
    table2 = pd.read_csv(tables / "table2.csv")
    assert set(table2["run"]) == {"lightsnn", "litesnn", "random"} and set(table2["dataset"]) == {"digits"}
    assert {"acc_mean", "acc_std", "search_s_mean", "sar_mean", "params_mean", "synops_mean", "energy_uj_mean",
            "memory_mb_mean", "size_kb_mean", "bit_synops_mean", "paper_acc"} <= set(table2.columns)
    by_run = table2.set_index("run")
    # LitE-SNN's weights are stored at its searched bits and pruned: a smaller model than fp32 weights would be
    assert by_run.loc["litesnn", "size_kb_mean"] < 0.5 * by_run.loc["litesnn", "memory_mb_mean"] * 1e3
    assert by_run.loc["random", "size_kb_mean"] == pytest.approx(by_run.loc["random", "memory_mb_mean"] * 1e3)
    assert by_run.loc["litesnn", "structure"].startswith("4 cells 2 nodes")
    assert (table2["acc_mean"] > 0).all()
    md = [line for line in (tables / "table2.md").read_text().splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in md]
    assert cells[0][:6] == ["dataset", "run", "structure", "T", "seeds", "epochs"]  # run = method: shown once
    shown = {row[1]: row for row in cells[2:]}
    for _, row in table2.iterrows():  # one seed per run: the md shows the mean alone, to 2 decimals
        assert shown[row["run"]][cells[0].index("accuracy (%)")] == f"{row['acc_mean']:.2f}"
        assert shown[row["run"]][cells[0].index("epochs")] == "2"
    assert shown["lightsnn"][cells[0].index("vs random (pp, 95% CI)")] == "no test (1 seed paired)"
    assert (tables / "table2.tex").read_text().startswith("\\begin{tabular}")
    table1 = pd.read_csv(tables / "table1.csv")
    assert list(table1["algorithm"]) == ["Random search", "Pruning-by-importance"]
    for plot in ("accuracy_vs_sar.png", "search_time.png"):
        assert (tables / plot).read_bytes()[:4] == b"\x89PNG"
    search = json.loads((results / "runs/digits/lightsnn-5op/seed0/search.json").read_text())
    assert search["num_scorings"] == 168 and search["options"]["space"][0] == "zero"
    assert (results / "timings/train/digits/lightsnn/seed0.tsv").exists()
    # every job logged to the default MLflow store
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    kinds = sorted(r.data.tags["kind"] for r in runs)
    assert kinds.count("train") == 4 and kinds.count("group") == 4 and len(runs) == 16
    groups = {r.info.run_id: r.data.tags["group"] for r in runs if r.data.tags["kind"] == "group"}
    for r in runs:  # each job's run nests under its dataset/run/seed, and finished
        if r.data.tags["kind"] != "group":
            assert groups[r.data.tags["mlflow.parentRunId"]] == r.data.tags["group"], r.data.tags
            assert r.info.status == "FINISHED"
        if r.data.tags["kind"] == "train":  # one point per epoch, logged as each epoch ended
            history = client.get_metric_history(r.info.run_id, "epoch.test_acc")
            assert [m.step for m in history] == [1, 2]
            assert history[0].timestamp < history[1].timestamp
    # MLflow as its users read it: a model-training experiment and nothing else; parent runs that carry the run's
    # Table 2 columns and span their jobs; every job's run as long as the job (evaluate's opens after its work)
    assert client.get_experiment_by_name("test").tags["mlflow.experimentKind"] == "custom_model_development"
    assert [e.name for e in client.search_experiments()] == ["test"]
    for parent in (r for r in runs if r.data.tags["kind"] == "group"):
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert {"acc", "sar", "energy_uj", "search_s", "params"} <= set(parent.data.metrics), parent.data.metrics
        assert parent.data.tags["method"] in ("lightsnn", "litesnn", "random") and len(children) == 3
        assert parent.info.start_time <= min(c.info.start_time for c in children)
        assert parent.info.end_time >= max(c.info.end_time for c in children) and parent.info.status == "FINISHED"
        evaluate = next(c for c in children if c.data.tags["kind"] == "evaluate")
        assert evaluate.info.end_time - evaluate.info.start_time >= 200  # ms: the job loads data and measures
        # one unit in MLflow: accuracy in %, on the parent to 4 significant digits
        assert parent.data.metrics["acc"] == pytest.approx(evaluate.data.metrics["top1"], abs=0.01)
        assert parent.data.params["method"] == parent.data.tags["method"] and "genotype" in parent.data.params
        assert 0 < parent.data.metrics["work_s"] <= (parent.info.end_time - parent.info.start_time) / 1000 + 0.01
        assert {c.info.run_name.split()[0] for c in children} == {"search", "train", "evaluate"}
    lightsnn_search = [r for r in runs if r.data.tags["kind"] == "search" and r.data.tags["group"].endswith("5op/seed0")]
    assert "candidates.json" in [a.path for a in client.list_artifacts(lightsnn_search[0].info.run_id)]
    litesnn_search = [r for r in runs if r.data.tags["kind"] == "search" and "/litesnn/" in r.data.tags["group"]]
    psi = client.get_metric_history(litesnn_search[0].info.run_id, "epoch.psi_T2")  # the search curves, per epoch
    assert [m.step for m in psi] == [1, 2]
    report = _smk(work, "--configfile", "spaced.yaml", "--report", "results/test run/report.html")
    assert report.returncode == 0, report.stderr[-3000:]
    html = (results / "report.html").read_text(errors="replace")
    assert "Table 2: one row per dataset and search run" in html and "table2.csv" in html
    assert "LitE-SNN" in html and "each network trained 2 epoch(s) of at most 5 batches" in html
    # the table itself is in the report, as HTML: its headings, its rows and the caption with the budget
    embedded = _embedded_html(html)
    table = next(page for page in embedded if "vs random (pp, 95% CI)" in page)
    assert "trained 2 epoch(s) of at most 5 batches" in table and all(f"<td>{run}</td>" in table
                                                                       for run in ("lightsnn", "litesnn", "random"))
    assert any("Pruning-by-importance" in page for page in embedded)  # table 1 too
    _what_a_browser_shows(work, results, proc.stdout + proc.stderr, runs, tmp_path)
    _only_what_a_change_affects_reruns(work, config)


def _what_a_browser_shows(work, results, output: str, runs, tmp_path) -> None:
    """The workflow's last words name the address of the runs table; in a real browser that address shows every
    parent run of this workflow, and the report's front page reads as written (a Jinja tag once ate its space)."""
    import re

    from browser import CHROMIUM, rendered, served_ui

    printed = re.search(r"MLflow: mlflow ui --backend-store-uri (\S+), then open (http://127\.0\.0\.1:5000(\S+))",
                        output)
    assert printed, output[-2000:]
    # the report's accuracy-vs-SAR plot, built from this run's folders: every run of a dataset in its panel
    import matplotlib.pyplot as plt

    from lightsnn.pipeline.report import accuracy_vs_sar_figure, load_runs

    frame = load_runs(sorted(p.parent for p in (results / "runs").glob("*/*/seed*/search.json")))
    figure = accuracy_vs_sar_figure(frame)
    for ax in figure.axes:
        part = frame[frame["dataset"] == ax.get_title()]
        points = [p for c in ax.collections for p in c.get_offsets()]
        assert len(points) == len(part) + part["run"].nunique()  # every seed and every run's mean
        assert all(ax.get_xlim()[0] <= x <= ax.get_xlim()[1] and 0 <= y <= 100 for x, y in points)
    plt.close(figure)
    if CHROMIUM is None:
        print("no Chromium here: apt-get install chromium (Debian) runs the browser checks", file=sys.stderr)
        return
    with served_ui(printed.group(1).rstrip(",")) as url:
        page = rendered(url + printed.group(3), tmp_path / "profile-mlflow")
    groups = {r.data.tags["group"] for r in runs if r.data.tags["kind"] == "group"}
    assert "Run Name" in page and all(group in page for group in groups), (groups, page[-2000:])
    front = rendered((results / "report.html").as_uri(), tmp_path / "profile-report")
    assert " on digits" in front and not re.search(r"[A-Za-z0-9]on digits", front)  # "randomon digits" before
    assert "Every run" in front and "accuracy_vs_sar.png" in front


def test_the_default_run_as_a_user_sees_it(tmp_path):
    """The README's quick start, `snakemake --cores all` with the default config, then its report: every job ends,
    and a browser shows what a user opens: each plot panel with every run of its dataset, the printed link's runs
    table with every parent run, the report's front page. Prints the run's time (the README's figure comes from a
    quiet machine; this one may share its cores)."""
    import time

    work = _workdir(tmp_path)
    started = time.perf_counter()
    proc = _smk(work, "--cores", "2", timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"the default run on this machine: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    report = _smk(work, "--report", "results/report.html")
    assert report.returncode == 0, report.stderr[-3000:]
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'results' / 'mlflow.db'}")
    assert [e.name for e in client.search_experiments()] == ["lightsnn-default"]
    runs = client.search_runs([client.get_experiment_by_name("lightsnn-default").experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags["kind"] == "group"]
    assert len(parents) == 2 * 5 * 2  # datasets x methods x seeds
    assert {r.info.run_name.split()[0] for r in runs if r.data.tags["kind"] != "group"} == \
        {"search", "train", "evaluate"}
    _what_a_browser_shows(work, work / "results", proc.stdout + proc.stderr, runs, tmp_path)


def _embedded_html(report: str) -> list[str]:
    """The HTML pages a self-contained Snakemake report embeds (base64 data URIs)."""
    import base64
    import re

    pages = []
    for payload in re.findall(r"data:text/html[^,\"']*;base64,([A-Za-z0-9+/=]+)", report):
        pages.append(base64.b64decode(payload).decode("utf-8", errors="replace"))
    return pages


def _scheduled(work, *configfiles, extra=()) -> tuple[dict, str]:
    """A dry run over a finished run: how many jobs of each rule would run, and the shell commands."""
    args = ["--configfile", *configfiles]  # one flag: a repeated --configfile keeps only its last files
    dry = _smk(work, "-n", "-p", *extra, *args)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    counts = {}
    for line in dry.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0].isidentifier() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts, dry.stdout


def _only_what_a_change_affects_reruns(work, config):
    """Each job gets exactly the config sections it depends on, so a change reruns precisely what it affects."""
    assert _scheduled(work, "spaced.yaml")[0] == {}  # finished: nothing to do
    longer = {**config, "train": {**config["train"], "epochs": 3}}
    (work / "longer.yaml").write_text(yaml.safe_dump(longer))
    counts, shell = _scheduled(work, "spaced.yaml", "longer.yaml")
    assert counts == {"train": 4, "evaluate": 4, "aggregate": 1, "all": 1}, counts
    trainings = {line.split("python -m", 1)[1] for line in shell.splitlines() if "python -m lightsnn train" in line}
    assert len(trainings) == 4 and all('"epochs":3' in line for line in trainings)  # the value Snakemake validated
    bigger = {**config, "search": {"lightsnn": {**config["search"]["lightsnn"], "batch_size": 8}}}
    (work / "bigger.yaml").write_text(yaml.safe_dump(bigger))
    counts, _ = _scheduled(work, "spaced.yaml", "bigger.yaml")
    # LightSNN and its 5-op variant (which inherits search.lightsnn) rerun; random does not
    assert counts == {"search": 2, "train": 2, "evaluate": 2, "aggregate": 1, "all": 1}, counts
    # a command-line --config reaches the jobs too; the tracking store is no input of any result
    counts, shell = _scheduled(work, "spaced.yaml", extra=("--config", "device=cuda"))
    assert counts["search"] == counts["train"] == counts["evaluate"] == 4 and "prepare" not in counts, counts
    jobs = {line.split("python -m", 1)[1] for line in shell.splitlines() if "python -m lightsnn" in line}
    assert len([line for line in jobs if '"device":"cuda"' in line]) == 12
    # a wider network reruns every search, training and evaluation on digits, but not its prepare: a static
    # dataset reads nothing of the network (an event dataset's reads its timesteps)
    wider = {**config, "networks": {"digits": {**config["networks"]["digits"], "channels": 6, "timesteps": 3}}}
    (work / "wider.yaml").write_text(yaml.safe_dump(wider))
    counts, _ = _scheduled(work, "spaced.yaml", "wider.yaml")
    assert counts["search"] == counts["train"] == counts["evaluate"] == 4 and "prepare" not in counts, counts
    moved = {**config, "tracking": {"uri": "sqlite:///elsewhere.db"}, "name": "renamed"}
    (work / "moved.yaml").write_text(yaml.safe_dump(moved))
    counts, _ = _scheduled(work, "spaced.yaml", "moved.yaml")
    assert counts == {}, counts


def _interruptible() -> None:
    """Snakemake starts as from a terminal: Ctrl-C (SIGINT) reaches it. A test suite started in the background
    by a non-interactive shell inherits SIGINT ignored, and Python then keeps ignoring it in every child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _start_a_slow_training(tmp_path, epochs: int):
    """A one-run workflow (slow.yaml) started in the background, returned once its first checkpoint exists."""
    work = _workdir(tmp_path)
    config = yaml.safe_load((work / "config" / "test.yaml").read_text())
    config["workflow"].update(methods=["random"], table1=None, variants={})
    config["train"] = {"recipe": "quick", "epochs": epochs, "batch_size": 64, "max_batches": 4}
    config["tracking"] = {"enabled": False}
    (work / "slow.yaml").write_text(yaml.safe_dump(config))
    run = work / "results/test/runs/digits/random/seed0"
    proc = subprocess.Popen([str(SNAKEMAKE), "--cores", "1", "--configfile", "slow.yaml"], cwd=work, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_interruptible)
    wait_for((run / "train" / "checkpoint.pt").exists, "first epoch's checkpoint", process=proc)
    return work, run, proc


def _epochs_done(run) -> int:
    return int(torch.load(run / "train" / "checkpoint.pt", weights_only=True)["state"]["epoch"])


def test_killed_pipeline_restarts_without_redoing_finished_jobs(tmp_path):
    epochs = 40  # interrupted after epoch 1 is seen: 39 epochs of margin, on a fast machine too
    work, run, proc = _start_a_slow_training(tmp_path, epochs=epochs)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: snakemake stops its jobs and releases its lock
    proc.wait(timeout=120)
    done = _epochs_done(run)
    assert not (run / "train" / "train.json").exists() and 1 <= done < epochs, done
    search_mtime = (run / "search.json").stat().st_mtime
    again = _smk(work, "--cores", "1", "--configfile", "slow.yaml")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert (run / "search.json").stat().st_mtime == search_mtime  # finished jobs are not redone
    log = (work / "results/test/logs/train/digits/random/seed0.log").read_text()
    assert f"resuming from {(run / 'train' / 'checkpoint.pt').relative_to(work)} after epoch {done}" in log
    assert json.loads((run / "train" / "train.json").read_text())["epochs"] == epochs
    # --forcerun means a fresh training, not a resume of the finished checkpoint
    forced = _smk(work, "--cores", "1", "--configfile", "slow.yaml", "--forcerun", "train")
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr[-3000:]
    log = (work / "results/test/logs/train/digits/random/seed0.log").read_text()
    assert f"holds a finished training ({epochs} epochs); a rerun trains anew" in log and "resuming" not in log
    assert log.count("\nepoch ") + log.startswith("epoch ") == epochs


def test_after_snakemake_itself_is_killed_the_readme_commands_finish_the_run(tmp_path):
    work, run, proc = _start_a_slow_training(tmp_path, epochs=30)
    os.killpg(proc.pid, signal.SIGKILL)  # no chance to release the lock; 29 epochs of margin
    proc.wait(timeout=60)
    done = _epochs_done(run)
    assert 1 <= done < 30, done
    locked = _smk(work, "--cores", "1", "--configfile", "slow.yaml")
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr
    # a job killed while writing leaves a partial output, which Snakemake has marked incomplete
    (run / "train" / "train.json").write_text('{"partial')
    unlock = _smk(work, "--unlock", "--configfile", "slow.yaml")  # the README's restart commands
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    again = _smk(work, "--cores", "1", "--configfile", "slow.yaml")  # no flag: the default profile's rerun-incomplete
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "Using workflow specific profile workflow/profiles/default" in again.stdout + again.stderr
    assert json.loads((run / "train" / "train.json").read_text())["epochs"] == 30
    assert f"resuming from {(run / 'train' / 'checkpoint.pt').relative_to(work)} after epoch {done}" in \
        (work / "results/test/logs/train/digits/random/seed0.log").read_text()


def test_the_evidence_target_writes_its_tables_and_plots(tmp_path):
    work = _workdir(tmp_path)
    proc = _smk(work, "evidence", "--cores", "2", "--configfile", "config/test.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = work / "results" / "test" / "evidence"
    corr = pd.read_csv(out / "correlation.csv")
    assert {"sahd", "sahd_count", "sahd_bn_eval", "sahd_b8", "hamming", "params", "conv_edges"} <= set(corr["score"])
    assert (corr["n"] == 4).all()
    comparison = pd.read_csv(out / "comparison.csv")
    assert set(comparison["method"]) == {"lightsnn", "random"}
    assert comparison.set_index("method").loc["lightsnn", "vs_random_n"] == 2
    ablation = pd.read_csv(out / "ablation.csv").set_index("run")
    assert ablation.loc["lightsnn-carry-state", "compat"] == "carry_state"
    assert ablation.loc["lightsnn", "compat"] == "none"
    noise = pd.read_csv(out / "noise.csv")
    assert noise.loc[0, "retrain_n"] == 3
    for plot in ("comparison.png", "digits/scatter.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(out / "digits" / "architectures.csv")) == 4
    # each seed of each run is a full run folder, and the replicate jobs logged their jobs to MLflow
    assert (out / "digits/runs/random/seed1/evaluate.json").is_file()
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    kinds = [r.data.tags["kind"] for r in runs]
    assert kinds.count("correlate") == 1 and kinds.count("evaluate") == 3 * 2


SHARED = ROOT.parent / "shared"


@pytest.mark.skipif(not (SHARED / "benchmarks" / "spikenas-bench").is_dir(), reason="../shared/benchmarks is absent")
def test_the_benchmark_target_scores_correlates_and_looks_searches_up(tmp_path):
    work = _workdir(tmp_path)
    tiny = {"benchmark": {"root": str(SHARED / "benchmarks" / "spikenas-bench"), "sample": 6, "width": 4,
                          "weight_seeds": 1, "batch_size": 8, "batches": 1, "shards": 2, "seeds": 2, "top_n": [1, 3],
                          "budgets": [1.0, 10.0], "budget_seeds": 2,
                          "search": {"snasnet": {"num_search": 2, "batch_size": 8}, "lightsnn": {"batch_size": 8}}},
            "data": {"subsets": str(SHARED / "data" / "cifar-subsets")}}
    (work / "bench.yaml").write_text(yaml.safe_dump(tiny))
    proc = _smk(work, "benchmark", "--cores", "2", "--configfile", "config/test.yaml", "bench.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = work / "results" / "test" / "benchmark"
    corr = pd.read_csv(out / "correlation.csv").set_index("score")
    assert {"sahd", "hamming", "params", "val_acc_ep40"} <= set(corr.index) and corr.loc["sahd", "n"] == 6
    quality = pd.read_csv(out / "search_quality.csv").set_index("method")
    assert set(quality.index) == {"snasnet", "lightsnn", "random"} and (quality["seeds"] == 2).all()
    assert quality.loc["snasnet", "scorings_mean"] == 2 and "vs_random_wilcoxon_p" in quality.columns
    assert (out / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    pick = json.loads((out / "picks/lightsnn/seed1.json").read_text())
    assert pick["options"]["space"][2] == "conv3x3(th=0.5)" and 0 <= pick["id"] < 15625
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert sorted(r.data.tags["kind"] for r in runs) == ["benchmark-anytime", "benchmark-correlate",
                                                         "benchmark-front", "benchmark-search-quality"]
    # the cost study: training-based searches at equal GPU-hours beside the picks, and the energy plane
    anytime = pd.read_csv(out / "anytime.csv")
    assert {"successive halving (Optuna)", "Hyperband (Optuna)", "random pick (no training; exact expectation)",
            "snasnet (training-free)", "sahd top 10% + successive halving",
            "two objectives at 10 steps, energy <= 1 mJ"} <= set(anytime["method"])
    with_pick = anytime[anytime["seeds"] > 0]  # at 1 h no training-based search can finish its pick's training
    assert with_pick["near_front_share"].between(0, 1).all() and with_pick["hypervolume_share"].between(0, 1).all()
    trained = with_pick[with_pick["kind"] == "training"]  # a tiny training-free search may pick only invalid cells
    assert trained["energy_uj_mean"].between(500, 2300).all()  # the valid networks' 0.54-2.28 mJ
    assert set(anytime["budget_gpu_hours"]) == {1.0, 10.0} and (anytime["hours_mean"].dropna() <= 10.0).all()
    plane = pd.read_csv(out / "plane.csv")
    assert len(plane) == 7424 and plane["on_front"].sum() >= 1 and (plane["energy_uj"] > 0).all()
    front_picks = pd.read_csv(out / "front_picks.csv")
    assert (front_picks["method"] == "successive halving (Optuna) (10 h)").sum() == 2  # the replayed searches too
    assert len(front_picks) == 3 * 2 + 13 * 2  # 3 training-free methods, 13 replayed searches, 2 seeds each
    assert front_picks.loc[front_picks["valid"], "energy_uj"].notna().all() and front_picks["valid"].sum() >= 26
    # more search seeds rerun the searches they add and the tables, never the scores
    more = {"benchmark": {**tiny["benchmark"], "seeds": 3}}
    (work / "more.yaml").write_text(yaml.safe_dump(more))
    counts, _ = _scheduled(work, "config/test.yaml", "bench.yaml", "more.yaml", extra=("benchmark",))
    assert counts == {"benchmark_search": 3, "benchmark_quality": 1, "benchmark_anytime": 1, "benchmark_front": 1,
                      "benchmark": 1}, counts


def test_the_budgeted_searchs_workers_share_one_study_then_one_job_writes_the_result(tmp_path):
    """search.budgeted.workers: 2 makes two worker jobs per dataset and seed on one journal in the run folder;
    the run's search job comes after them, trains nothing more (the trial budget is spent) and writes the result
    from the study, which the pipeline trains and evaluates as every method's pick."""
    work = _workdir(tmp_path)
    config = with_budgeted_workers(yaml.safe_load((work / "config" / "test.yaml").read_text()))
    (work / "workers.yaml").write_text(yaml.safe_dump(config))
    dry = _smk(work, "-n", "--quiet", "rules", "--configfile", "workers.yaml")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    counts = {line.split()[0]: int(line.split()[1]) for line in dry.stdout.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert counts["search_worker"] == 2 and counts["search"] == 2  # budgeted's result job and random's search
    proc = _smk(work, "--cores", "2", "--configfile", "workers.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = work / "results" / "test" / "runs" / "digits" / "budgeted" / "seed0"
    result = json.loads((run / "search.json").read_text())
    trials = {t["trial"]: t for t in result["candidates"]}
    assert result["details"]["paid_epochs"] == 0  # the result job trained nothing
    assert sum(t["state"] in ("complete", "pruned") for t in trials.values()) >= 4
    for k in (0, 1):  # each worker wrote the study as it saw it when it ended: all of it is in the result
        seen = json.loads((run / "workers" / f"worker-{k}.json").read_text())["candidates"]
        assert {t["trial"] for t in seen} <= set(trials)
        assert all(trials[t["trial"]]["worker"] == t["worker"] for t in seen)
    assert (run / "study.journal").is_file() and (run / "evaluate.json").is_file()
