import json
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn as nn
import yaml
from torch.utils.data import DataLoader, TensorDataset

from lightsnn.genotype import Genotype
from lightsnn.jobs import run_evaluate, run_train
from lightsnn.metrics import memory_footprint, spiking_activity_rate
from lightsnn.network import SNASNetwork, count_parameters
from lightsnn.neurons import make_lif
from lightsnn.train import TrainOptions

GENOTYPE = "0302 0030 3003 0000"
TRAIN_CONFIG = {"device": "cpu", "tracking": {"enabled": False},
                "networks": {"digits": {"channels": 4, "timesteps": 2, "classifier_width": 32}},
                "train": {"recipe": "quick", "epochs": 4, "batch_size": 32, "max_batches": 12}}


def _cli(args, cwd, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "lightsnn", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def test_a_killed_training_resumes_and_ends_exactly_as_an_uninterrupted_one(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(TRAIN_CONFIG))
    args = ["train", "--genotype", GENOTYPE, "--dataset", "digits", "--seed", "7", "--config", str(config),
            "--no-progress"]
    whole = _cli(args + ["--out", str(tmp_path / "whole")], tmp_path)
    assert whole.wait(timeout=300) == 0, whole.stdout.read()
    reference = json.loads((tmp_path / "whole" / "train.json").read_text())

    out = tmp_path / "killed"
    proc = _cli(args + ["--out", str(out)], tmp_path)
    deadline = time.time() + 300
    while not (out / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # killed for real, mid-run
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not (out / "train.json").exists()
    done = torch.load(out / "checkpoint.pt", weights_only=False)["state"]["epoch"]
    assert 1 <= done < 4
    again = _cli(args + ["--out", str(out)], tmp_path)
    log = again.stdout.read()
    assert again.wait(timeout=300) == 0, log
    assert f"resuming from {out / 'checkpoint.pt'} after epoch {done}" in log
    resumed = json.loads((out / "train.json").read_text())
    keys = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc")
    assert [{k: r[k] for k in keys} for r in resumed["history"]] == \
        [{k: r[k] for k in keys} for r in reference["history"]]
    assert not list(out.glob(".*.tmp"))


def test_training_on_digits_beats_chance_and_evaluate_reports_every_metric(tmp_path):
    config = {"device": "cpu", "train": {"recipe": "quick", "epochs": 3, "batch_size": 32}}  # digits preset
    lines = []
    result = run_train("digits", 0, config, tmp_path, genotype=GENOTYPE, progress=False, log=lines.append)
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3 loss")
    assert result["final_test_acc"] > 0.5  # 10 classes: chance is 0.1
    assert result["best_epoch_test_acc"] >= result["final_test_acc"]
    assert "test set" in result["selection"]
    metrics = run_evaluate(result["checkpoint"], {"device": "cpu"}, bits=4, energy_samples=32)
    assert metrics["top1"] == pytest.approx(result["final_test_acc"])
    assert metrics["top5"] >= metrics["top1"]
    assert 0 < metrics["sar"] < 1
    from lightsnn.config import net_config
    net = SNASNetwork.from_genotype(net_config("digits", config), Genotype.from_str(GENOTYPE))
    assert metrics["parameters"] == count_parameters(net) == result["parameters"]
    assert metrics["bytes_4bit"] == metrics["parameters"] / 2 and metrics["bytes_fp32"] == 4 * metrics["parameters"]
    assert metrics["synops_per_sample"] > 0 and metrics["macs_per_sample"] > 0
    assert metrics["energy_pj_per_sample"] == pytest.approx(0.9 * metrics["synops_per_sample"]
                                                           + 4.6 * metrics["macs_per_sample"])
    assert metrics["latency_seconds_per_sample"] > 0


def test_validation_split_is_used_for_selection(tmp_path):
    config = {**TRAIN_CONFIG, "train": {"recipe": "quick", "epochs": 2, "batch_size": 32, "max_batches": 5,
                                        "val_fraction": 0.2}}
    result = run_train("digits", 0, config, tmp_path, genotype=GENOTYPE, progress=False, log=lambda _: None)
    assert result["best_epoch_test_acc"] is None and result["test_acc_at_best_val"] is not None
    assert all("val_acc" in row for row in result["history"])


class Toy(nn.Module):
    """Two timesteps of one LIF layer: every spike can be counted by hand."""

    def __init__(self):
        super().__init__()
        self.lif = make_lif()

    def forward(self, x):
        return sum(self.lif(x) for _ in range(2))


def test_sar_counts_spikes_over_neurons_timesteps_and_samples():
    # tau 4/3: H = V + (X - V) * 0.75. X=2: spikes at t0 and t1; X=1: never; X=1.2: only at t1; X=0: never
    x = torch.tensor([[2.0, 1.0, 1.2, 0.0]]).repeat(5, 1)
    loader = DataLoader(TensorDataset(x, torch.zeros(5)), batch_size=2)
    toy = Toy()
    result = spiking_activity_rate(toy, loader, torch.device("cpu"))
    assert result["spikes"] == 3 * 5 and result["neuron_steps"] == 4 * 2 * 5
    assert result["sar"] == pytest.approx(3 / 8)
    assert not toy.lif._forward_hooks  # hooks removed
    assert memory_footprint(toy, 8)["parameters"] == 0


def test_train_options_come_from_named_recipes():
    assert TrainOptions.from_config({"recipe": "lightsnn"}).lr == 0.2
    assert TrainOptions.from_config({"recipe": "lightsnn"}).floor() == pytest.approx(0.002)
    assert TrainOptions.from_config({"recipe": "snasnet"}).floor() == 0.001
    assert TrainOptions.from_config({"recipe": "snasnet", "epochs": 2}).epochs == 2
    with pytest.raises(ValueError, match="unknown training recipe"):
        TrainOptions.from_config({"recipe": "fast"})
    with pytest.raises(ValueError, match=r"unknown train option\(s\) \['epoch'\]"):
        TrainOptions.from_config({"epoch": 2})


def test_trained_logits_compat_revives_pruned_ops_by_weight_decay(tmp_path, tiny_config):
    from lightsnn.jobs import run_search

    search = run_search("lightsnn", "digits", 0, tiny_config, {"repeat": 1, "reference_compat": ["trained_logits"]})
    config = {**TRAIN_CONFIG, "networks": tiny_config["networks"],
              "train": {"recipe": "quick", "epochs": 1, "batch_size": 16, "max_batches": 1, "lr": 1.0,
                        "weight_decay": 0.3}}
    run_train("digits", 0, config, tmp_path, search=search, progress=False, log=lambda _: None)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    logits = saved["logits"]
    # no gradient reaches the logits; one SGD step of weight decay alone moves a pruned -1000 to
    # -1000 * (1 - lr * wd) = -700: the mechanism that revives pruned ops in the released code (spec 3.3)
    pruned = torch.tensor(search["details"]["final_logits"]) < -1
    assert torch.allclose(logits[pruned], torch.full_like(logits[pruned], -700.0))
    assert torch.all(logits[~pruned] == 0)
