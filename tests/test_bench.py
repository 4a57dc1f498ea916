from collections import Counter

import pytest
import torch

from lightsnn.space.genotype import Genotype
from lightsnn.space.network import PRESETS, SNASNetwork
from lightsnn.studies.bench import TRAINING_VARIANTS, BenchOptions, plain_conv_flops_per_second, run_bench
from lightsnn.studies.flops import ConvRecorder


def test_flop_count_is_analytic_two_macs_per_conv_and_linear():
    cfg = PRESETS["digits"].with_overrides({"channels": 2, "classifier_width": 8, "num_cluster": 1, "timesteps": 1})
    net = SNASNetwork.from_genotype(cfg, Genotype.from_str("0003 0000 0000 0000")).eval()
    rec = ConvRecorder(net)
    with torch.no_grad():
        net(torch.zeros(3, 1, 8, 8))
    rec.close()
    c = 2
    macs = (1 * c * 9 * 64  # stem
            + c * c * 9 * 64  # cell1 conv3x3 on 8x8
            + c * 2 * c * 9 * 64  # downconv
            + 2 * c * 2 * c * 9 * 16  # cell2 conv3x3 on 4x4
            + 2 * c * 2 * 2 * 8 + 8 * 10)  # classifier
    assert rec.flops == 2 * macs * 3
    assert sum(rec.conv_shapes.values()) == 4


def test_bench_reports_the_search_conv_ratio():
    opts = BenchOptions(channels=2, image_size=8, timesteps=1, batch_size=4, repeat=1, snasnet_candidates=2,
                        train_batch_size=4, train_batches=1)
    figures = run_bench(opts, torch.device("cpu"), log=lambda _: None)
    assert figures["lightsnn"]["scorings"] == 60 and figures["snasnet"]["scorings"] == 2
    assert 0 < figures["search_conv_ratio"] == figures["lightsnn"]["flops_per_second"] / \
        figures["lightsnn"]["plain_conv_flops_per_second"]
    assert figures["training"]["samples_per_second"] > 0
    assert plain_conv_flops_per_second(Counter({((1, 1, 4, 4), (1, 1, 3, 3), 1): 1}), torch.device("cpu"),
                                       min_seconds=0.05) > 0


def test_the_suite_measures_five_workloads_and_plan_costs_a_config_from_it(tmp_path, capsys):
    """`bench --suite smoke` runs the paper suite's code at tiny sizes (the GPU run is the same command with
    `--suite paper`); `plan` turns its JSON into an estimate per job of a config, linear in the work asked."""
    import json

    import yaml

    from lightsnn.cli import main
    from lightsnn.schema import with_defaults
    from lightsnn.studies.plan import job_estimates as estimates, largest, summarise

    def job_estimates(config, bench):  # plan reads a config as the workflow does: its defaults filled in
        return estimates(with_defaults(config), bench)

    assert main(["bench", "--suite", "smoke", "--device", "cpu", "--threads", "1", "--json", str(tmp_path / "b.json")]) == 0
    bench = json.loads((tmp_path / "b.json").read_text())
    work = bench["workloads"]
    assert set(work) == {"lightsnn_search", "snasnet_search", "snasnet_search_bf16", "benchmark_scoring", "training",
                         "training_variants", "litesnn_step"}
    variants = work["training_variants"]
    assert [v["options"] for v in variants.values()] == list(TRAINING_VARIANTS.values())
    assert work["training"] == variants["fp32"] and all(v["samples_per_second"] > 0 for v in variants.values())
    assert work["lightsnn_search"]["scorings"] == 60 and work["benchmark_scoring"]["architectures"] == 2
    assert all(v > 0 for v in (work["training"]["samples_per_second"], work["litesnn_step"]["seconds_per_step"],
                               work["snasnet_search"]["seconds_per_scoring"]))
    config = {"workflow": {"datasets": ["digits"], "methods": ["snasnet", "lightsnn", "litesnn", "random"],
                           "seeds": [0, 1], "variants": {"lightsnn-5op": {"method": "lightsnn",
                                                                           "options": {"space": "snasnet-ops"}}},
                           "table1": {"dataset": "digits", "random": "snasnet", "pruning": "lightsnn-5op"}},
              "networks": {"digits": {"channels": 8, "timesteps": 4}}, "train": {"recipe": "quick", "epochs": 4},
              "search": {"snasnet": {"num_search": 30}}}
    jobs = job_estimates(config, bench)
    assert len(jobs) == 1 * 5 * 2 * 3 and (jobs["seconds"] > 0).all()
    longer = job_estimates({**config, "train": {"recipe": "quick", "epochs": 8}}, bench)
    ratio = longer.loc[longer["rule"] == "train", "seconds"].sum() / jobs.loc[jobs["rule"] == "train", "seconds"].sum()
    assert ratio == pytest.approx(2.0)  # twice the epochs, twice the time
    more = job_estimates({**config, "search": {"snasnet": {"num_search": 60}}}, bench)
    pick = lambda t: t[(t["rule"] == "search") & (t["run"] == "snasnet")]["seconds"].sum()  # noqa: E731
    assert pick(more) == pytest.approx(2 * pick(jobs))
    fast = job_estimates({**config, "train": {**config["train"], "bf16": True, "channels_last": True,
                                               "device_data": True}}, bench)
    rates = variants["fp32"]["flops_per_second"] / variants["bf16_channels_last_device_data"]["flops_per_second"]
    on = lambda t: t[t["rule"] == "train"]  # noqa: E731
    assert on(fast)["seconds"].sum() == pytest.approx(on(jobs)["seconds"].sum() * rates)
    assert "bf16_channels_last_device_data rate" in on(fast)["work"].iloc[0] and "fp32 rate" in on(jobs)["work"].iloc[0]
    half = job_estimates({**config, "train": {**config["train"], "bf16": True}}, bench)  # a variant not measured
    assert on(half)["seconds"].sum() == pytest.approx(on(jobs)["seconds"].sum())
    assert "it measured none with bf16" in on(half)["work"].iloc[0]
    assert "168 scorings" in jobs[(jobs["rule"] == "search") & (jobs["run"] == "lightsnn-5op")]["work"].iloc[0]
    table = summarise(jobs)
    assert list(table["rule"]) == ["search", "train", "evaluate", "total"] and table["jobs"].iloc[-1] == 30
    top = largest(jobs, count=2)  # where the time goes: (rule, dataset) groups, the costliest first
    assert len(top) == 2 and top["hours"].iloc[0] >= top["hours"].iloc[1]
    assert top["total"].iloc[0] == pytest.approx(jobs.groupby(["rule", "dataset"])["seconds"].sum().max())
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["plan", "--bench", str(tmp_path / "b.json"), "--config", str(tmp_path / "c.yaml"),
                 "--out", str(tmp_path / "plan.csv")]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "30 jobs" in out and "where the time goes:" in out and (tmp_path / "plan.csv").exists()
    (tmp_path / "not.json").write_text(json.dumps({"lightsnn": {}}))
    assert main(["plan", "--bench", str(tmp_path / "not.json"), "--config", str(tmp_path / "c.yaml")]) == 2
    assert "is not a suite's" in capsys.readouterr().err


def test_plan_counts_flops_without_computing_and_runs_an_event_stem_at_every_timestep():
    """Counted on the meta device (a paper-size network costs no compute), equal to a real forward's count; event
    input passes the stem T times where a static image passes it once."""
    from lightsnn.studies.flops import TYPICAL, forward_flops

    cfg = PRESETS["ndigits"].with_overrides({"channels": 3, "timesteps": 4, "classifier_width": 8})
    net = SNASNetwork.from_genotype(cfg, Genotype.from_str(TYPICAL)).eval()
    rec = ConvRecorder(net)
    with torch.no_grad():
        net(torch.zeros(4, 1, 2, 32, 32))
    rec.close()
    assert forward_flops(cfg, events=True) == rec.flops
    stem = 2 * 2 * 3 * 9 * 32 * 32  # 2 x MACs of the 3x3 stem, 2 -> 3 channels on 32 x 32
    assert forward_flops(cfg, events=True) - forward_flops(cfg) == (4 - 1) * stem


def test_plan_names_the_jobs_a_profiles_runtime_would_kill(tmp_path, capsys):
    """`plan --profile` compares each job's estimate with the runtime the Snakemake profile grants its rule
    (set-resources, else default-resources, in minutes or as '2h'): over it exits 1, within the estimates' error
    it warns; the shipped SLURM profile's own runtimes parse."""
    import json

    import yaml

    from lightsnn.cli import main
    from lightsnn.schema import with_defaults
    from lightsnn.studies.plan import job_estimates, over_runtime, profile_runtimes

    assert main(["bench", "--suite", "smoke", "--device", "cpu", "--threads", "1", "--json", str(tmp_path / "b.json")]) == 0
    config = {"workflow": {"datasets": ["digits"], "methods": ["snasnet", "random"], "seeds": [0, 1]},
              "networks": {"digits": {"channels": 4, "timesteps": 2}}, "train": {"recipe": "quick", "epochs": 2}}
    jobs = job_estimates(with_defaults(config), json.loads((tmp_path / "b.json").read_text()))
    train_min = jobs.loc[jobs["rule"] == "train", "seconds"].max() / 60
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(yaml.safe_dump({
        "default-resources": [f"runtime={train_min * 1.2 * 60:.3f}s"],  # within the x1.5 error of the training
        "set-resources": {"search": {"runtime": 0}, "evaluate": {"runtime": "2h"}}}))
    limits = profile_runtimes(profile)
    assert limits["search"] == 0 and limits["evaluate"] == 120 and limits["*"] == pytest.approx(train_min * 1.2, rel=1e-3)
    flagged = over_runtime(jobs, limits)
    assert sorted(zip(flagged["rule"], flagged["run"], flagged["over"])) == [
        ("search", "random", True), ("search", "snasnet", True), ("train", "random", False), ("train", "snasnet", False)]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    args = ["plan", "--bench", str(tmp_path / "b.json"), "--config", str(tmp_path / "c.yaml"), "--profile"]
    assert main(args + [str(profile)]) == 1
    out = capsys.readouterr().out
    assert "over the profile's runtime: search digits snasnet" in out and "set-resources.search.runtime" in out
    assert "within the estimate error (x1.5) of the profile's runtime: train digits random" in out
    assert set(profile_runtimes("workflow/profiles/slurm")) >= {"*", "search", "train", "evaluate"}
    (profile / "config.yaml").write_text(yaml.safe_dump({"set-resources": {"train": {"runtime": "soon"}}}))
    assert main(args + [str(profile)]) == 2
    assert "runtime 'soon' is neither minutes nor a time like '4h'" in capsys.readouterr().err
