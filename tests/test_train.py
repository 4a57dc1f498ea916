import json
import signal
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import yaml
from torch.utils.data import DataLoader, TensorDataset
from waiting import wait_for

from lightsnn.pipeline.jobs import run_evaluate, run_train
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import SNASNetwork, count_parameters
from lightsnn.space.neurons import make_lif, reset_state
from lightsnn.training.metrics import counter_mode, memory_footprint, spiking_activity_rate
from lightsnn.training.train import TrainOptions

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
    wait_for((out / "checkpoint.pt").exists, "first epoch's checkpoint", process=proc)
    proc.send_signal(signal.SIGKILL)  # killed for real, mid-run: 3 epochs of 12 batches are left
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not (out / "train.json").exists()
    done = torch.load(out / "checkpoint.pt", weights_only=True)["state"]["epoch"]
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


def test_bf16_and_channels_last_apply_on_the_device_that_trains_and_their_weights_evaluate_in_fp32(tmp_path):
    """``train.bf16`` autocasts the step on whatever device trains (here avx512-bf16 or emulated on the CPU), so its
    numerics can be measured without a GPU; channels-last weights save and load as any others."""
    base = {**TRAIN_CONFIG, "train": {**TRAIN_CONFIG["train"], "epochs": 1, "max_batches": 3}}
    runs = {}
    for name, extra in (("fp32", {}), ("bf16", {"bf16": True, "channels_last": True})):
        config = {**base, "train": {**base["train"], **extra}}
        runs[name] = run_train("digits", 3, config, tmp_path / name, genotype=GENOTYPE, progress=False,
                               log=lambda _: None)
    fp32, bf16 = runs["fp32"]["history"][0]["train_loss"], runs["bf16"]["history"][0]["train_loss"]
    assert fp32 != bf16 and abs(fp32 - bf16) < 0.1 * fp32  # rounded differently, trained alike
    assert runs["fp32"]["options"]["bf16"] is False and runs["bf16"]["options"]["channels_last"] is True
    metrics = run_evaluate(runs["bf16"]["checkpoint"], {"device": "cpu"}, energy_samples=8)
    assert metrics["top1"] == pytest.approx(runs["bf16"]["final_test_acc"])


def test_speed_options_left_null_are_on_for_cuda_and_off_elsewhere_and_a_run_records_what_it_used():
    """Device data is on for CUDA by default; bf16 and channels-last are off unless set (docs/bench.md: bf16
    trains to the same mean accuracy but spreads wider over seeds), and null turns them on for CUDA only."""
    from lightsnn.training.train import TrainOptions

    default = TrainOptions.from_config({})
    assert (default.bf16, default.channels_last, default.device_data) == (False, False, None)
    cuda, cpu = default.on("cuda:0"), default.on("cpu")
    assert (cuda.bf16, cuda.channels_last, cuda.device_data) == (False, False, True)
    assert (cpu.bf16, cpu.channels_last, cpu.device_data) == (False, False, False)
    auto = TrainOptions.from_config({"bf16": None, "channels_last": None, "device_data": False})
    assert (auto.on("cuda").bf16, auto.on("cuda").channels_last, auto.on("cuda").device_data) == (True, True, False)
    assert auto.on("cpu").bf16 is False
    with pytest.raises(ValueError, match="bf16"):
        TrainOptions.from_config({"bf16": "yes"})


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
    from lightsnn.pipeline.config import net_config
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


def test_operation_counts_equal_spikingjellys_counter_and_skip_importing_torch_dynamo(tiny):
    """The evaluate job's counter is spikingjelly's handler without torch's compile guard (which imports
    torch._dynamo, seconds per job): the same SynOps and MACs, and no dynamo import in a fresh process."""
    from spikingjelly.activation_based.op_counter import DispatchCounterMode, MACCounter, SynOpCounter

    torch.manual_seed(0)
    net = SNASNetwork.from_genotype(tiny, Genotype.from_str("0302 0030 3003 0000"))
    x = torch.rand(4, 1, 8, 8)
    counts = []
    for mode in (DispatchCounterMode, counter_mode()):
        synops, macs = SynOpCounter(), MACCounter()
        with torch.no_grad(), mode([synops, macs]):
            reset_state(net)
            net(x)
        counts.append((synops.get_total(), macs.get_total(), synops.get_counts()))
    assert counts[0] == counts[1] and counts[0][0] > 0 and counts[0][1] > 0
    code = ("import sys, torch; from torch.utils.data import DataLoader, TensorDataset; "
            "from lightsnn.training.metrics import operation_counts; "
            "net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)); "
            "r = operation_counts(net, DataLoader(TensorDataset(torch.rand(3, 4), torch.zeros(3)), 2), "
            "torch.device('cpu'), 3); assert r['macs_per_sample'] == 8, r; "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_train_options_come_from_named_recipes():
    assert TrainOptions.from_config({"recipe": "lightsnn-paper"}).lr == 0.2
    assert TrainOptions.from_config({"recipe": "lightsnn-paper"}).floor() == pytest.approx(0.002)
    assert TrainOptions.from_config({"recipe": "snasnet-paper"}).floor() == 0.001
    assert TrainOptions.from_config({"recipe": "snasnet-paper", "epochs": 2}).epochs == 2
    with pytest.raises(ValueError, match="unknown training recipe"):
        TrainOptions.from_config({"recipe": "fast"})
    with pytest.raises(ValueError, match=r"unknown train option\(s\) \['epoch'\]"):
        TrainOptions.from_config({"epoch": 2})


def test_trained_logits_compat_revives_pruned_ops_by_weight_decay(tmp_path, tiny_config):
    from lightsnn.pipeline.jobs import run_search

    search = run_search("lightsnn", "digits", 0, tiny_config, {"repeat": 1, "reference_compat": ["trained_logits"]})
    config = {**TRAIN_CONFIG, "networks": tiny_config["networks"],
              "train": {"recipe": "quick", "epochs": 1, "batch_size": 16, "max_batches": 1, "lr": 1.0,
                        "weight_decay": 0.3}}
    run_train("digits", 0, config, tmp_path, search=search, progress=False, log=lambda _: None)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    logits = saved["logits"]
    # no gradient reaches the logits; one SGD step of weight decay alone moves a pruned -1000 to
    # -1000 * (1 - lr * wd) = -700: the mechanism that revives pruned ops in the released code (methods.md §3.3)
    pruned = torch.tensor(search["details"]["final_logits"]) < -1
    assert torch.allclose(logits[pruned], torch.full_like(logits[pruned], -700.0))
    assert torch.all(logits[~pruned] == 0)


# --- a checkpoint is trusted only when it is safe and of this very, unfinished training ------------------

SHORT = {**TRAIN_CONFIG, "train": {"recipe": "quick", "epochs": 2, "batch_size": 32, "max_batches": 3}}


class _Crash(Exception):
    pass


def _crash_after_first_epoch(row):
    raise _Crash()


def _train(out, lines, config=SHORT, genotype=GENOTYPE, seed=0, **kwargs):
    return run_train("digits", seed, config, out, genotype=genotype, progress=False, log=lines.append, **kwargs)


def test_an_interrupted_training_resumes_only_with_the_same_setup(tmp_path):
    with pytest.raises(_Crash):
        _train(tmp_path, [], on_epoch=_crash_after_first_epoch)
    lines = []
    result = _train(tmp_path, lines)
    assert f"resuming from {tmp_path / 'checkpoint.pt'} after epoch 1" in lines
    assert [row["epoch"] for row in result["history"]] == [1, 2]


@pytest.mark.parametrize("change, differs", [
    ({"config": {**SHORT, "train": {**SHORT["train"], "lr": 0.5}}}, "train.lr"),
    ({"seed": 5}, "seed"),
    ({"genotype": "0303 0030 3000 0000"}, "genotype"),
    ({"config": {**SHORT, "networks": {"digits": {**SHORT["networks"]["digits"], "channels": 6}}}}, "network"),
])
def test_a_checkpoint_of_another_setup_is_never_resumed(tmp_path, change, differs):
    with pytest.raises(_Crash):
        _train(tmp_path, [], on_epoch=_crash_after_first_epoch)
    lines = []
    result = _train(tmp_path, lines, **change)  # the old code resumed it (or failed loading its state_dict)
    assert not any(line.startswith("resuming") for line in lines)
    notice = [line for line in lines if "was trained for another setup" in line]
    assert len(notice) == 1 and differs in notice[0] and notice[0].endswith("training from scratch")
    assert [row["epoch"] for row in result["history"]] == [1, 2]
    assert result["seed"] == change.get("seed", 0)
    if "config" in change and differs == "train.lr":
        assert result["history"][0]["lr"] == 0.5


def test_a_finished_training_run_again_trains_anew_as_forcerun_asks(tmp_path):
    first = _train(tmp_path, [])
    lines = []
    again = _train(tmp_path, lines)
    assert any("holds a finished training (2 epochs); a rerun trains anew" in line for line in lines)
    assert sum(line.startswith("epoch ") for line in lines) == 2  # both epochs trained again
    assert [r["train_loss"] for r in again["history"]] == [r["train_loss"] for r in first["history"]]


def test_fresh_ignores_a_resumable_checkpoint(tmp_path):
    with pytest.raises(_Crash):
        _train(tmp_path, [], on_epoch=_crash_after_first_epoch)
    lines = []
    _train(tmp_path, lines, fresh=True)
    assert any(line.startswith("fresh start requested") for line in lines)
    assert not any(line.startswith("resuming") for line in lines)


class _Payload:
    """A pickle that creates a file when unpickled: what a crafted checkpoint could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_checkpoint_is_refused_by_evaluate_and_ignored_by_train_without_running(tmp_path):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil" / "checkpoint.pt"
    evil.parent.mkdir()
    torch.save({"model": _Payload(marker), "meta": {"dataset": "digits"}}, evil)
    proc = subprocess.run([sys.executable, "-m", "lightsnn", "evaluate", "--checkpoint", str(evil), "--no-tracking"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and not marker.exists()
    assert proc.stderr.count("\n") == 1 and "is not a lightsnn checkpoint: it holds Python objects" in proc.stderr
    assert "weights_only" not in proc.stderr and "can still be loaded" not in proc.stderr  # never advise the unsafe load
    lines = []
    _train(evil.parent, lines)
    assert not marker.exists()
    assert any("is not a lightsnn checkpoint" in line and "training from scratch" in line for line in lines)


def test_checkpoints_load_as_weights_only(tmp_path):
    from lightsnn.training.train import load_checkpoint
    _train(tmp_path, [])
    for name in ("checkpoint.pt", "best.pt"):
        saved = torch.load(tmp_path / name, weights_only=True)  # raises if anything but weights and plain types
        assert saved["meta"]["fingerprint"] == load_checkpoint(tmp_path / name)["meta"]["fingerprint"]


def test_a_cell_with_no_path_from_input_to_output_is_refused_unless_asked_for(tmp_path):
    with pytest.raises(ValueError, match="no path of non-zero edges from the input node 0 to the output node 3.*"
                                         "--allow-disconnected"):
        _train(tmp_path, [], genotype="0000 0000 0000 0000")
    assert not (tmp_path / "checkpoint.pt").exists()
    proc = subprocess.run([sys.executable, "-m", "lightsnn", "train", "--genotype", "0100 0000 0001 0000",
                           "--dataset", "digits", "--out", str(tmp_path / "cli"), "--no-tracking"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "cell 1" in proc.stderr, proc.stderr
    result = _train(tmp_path, [], genotype="0000 0000 0000 0000", allow_disconnected=True)
    assert result["epochs"] == 2


def test_a_checkpoint_never_chooses_paths_or_network_access(tmp_path):
    """Where data lives and whether torchvision may download are this machine's settings: a checkpoint whose
    recorded data section names other folders and a download is evaluated with the user's config instead."""
    mine = {"cache": str(tmp_path / "mine"), "ndigits": {"max_samples": 12}}
    config = {"device": "cpu", "data": mine, "networks": {"ndigits": {"channels": 4, "timesteps": 2}},
              "train": {"recipe": "quick", "epochs": 1, "batch_size": 8, "max_batches": 1}}
    result = run_train("ndigits", 0, config, tmp_path / "run", genotype=GENOTYPE, progress=False, log=lambda _: None)
    saved = torch.load(result["checkpoint"], weights_only=True)
    saved["meta"]["data"] = {**mine, "cache": str(tmp_path / "steered"), "root": str(tmp_path / "elsewhere"),
                             "download": True}
    torch.save(saved, result["checkpoint"])
    metrics = run_evaluate(result["checkpoint"], {"device": "cpu", "data": {"cache": mine["cache"]}},
                           energy_samples=4)
    assert not (tmp_path / "steered").exists() and not (tmp_path / "elsewhere").exists()
    assert metrics["test_samples"] == run_evaluate(result["checkpoint"], config, energy_samples=4)["test_samples"]


def test_a_second_run_into_the_same_output_is_refused_naming_the_first(tmp_path):
    """Two runs into one folder (or one result file) would both 'succeed' with one result left: while a run
    holds its output, a second one is refused in one line, before any work, and may go once the first ended."""
    import os

    from lightsnn.core.atomic import claimed

    out, found = tmp_path / "o" / "cc", tmp_path / "search.json"
    small = ["--no-progress", "--no-tracking", "--config-json",
             json.dumps({"device": "cpu", "networks": {"digits": {"channels": 4, "timesteps": 2}}})]
    train = ["train", "--genotype", GENOTYPE, "--dataset", "digits", "--out", str(out), "--epochs", "1",
             "--max-batches", "1", *small]
    search = ["search", "--method", "random", "--dataset", "digits", "--out", str(found), *small]

    def cli(args):
        return subprocess.run([sys.executable, "-m", "lightsnn", *args], capture_output=True, text=True, cwd=tmp_path)

    for args, path, folder, kind, result in ((train, out, True, "folder", out / "train.json"),
                                             (search, found, False, "output", found)):
        with claimed(path, folder=folder):  # the first run, still writing
            proc = cli(args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert f"{kind} '{path}' is being written by another run (pid {os.getpid()}: " in proc.stderr
        assert not result.exists() and not (folder and (out / "checkpoint.pt").exists())  # before any work
        assert cli(args).returncode == 0 and result.exists()  # the first has ended


def test_ctrl_c_stops_a_training_with_one_line_saying_where_it_resumes(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lightsnn", "train", "--genotype", GENOTYPE, "--dataset", "digits", "--out", str(out),
         "--epochs", "30", "--max-batches", "4", "--no-progress", "--no-tracking", "--config-json",
         json.dumps({"device": "cpu", "networks": {"digits": {"channels": 4, "timesteps": 2}}})],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a terminal
    wait_for((out / "checkpoint.pt").exists, "first epoch's checkpoint", process=proc)
    proc.send_signal(signal.SIGINT)  # at once: 29 epochs are left
    assert proc.wait(timeout=60) == 130
    assert proc.stderr.read().splitlines() == [
        f"interrupted; the same command resumes from {out / 'checkpoint.pt'} (its last epoch)"]


def test_a_sigterm_inside_signals_deferred_waits_for_its_end_even_when_another_thread_receives_it():
    """torch's worker threads do not block the signals the main thread blocks: the kernel hands a SIGTERM to one
    of them, and Python ran the handler inside the block (a kill between an epoch's checkpoint and its log). The
    deferral must hold whichever thread the signal reaches."""
    import os
    import signal
    import threading
    import time

    from lightsnn.core.checkpoints import signals_deferred

    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    done, started = threading.Event(), threading.Event()
    worker = threading.Thread(target=lambda: (started.set(), done.wait(30)))  # a thread that blocks nothing
    worker.start()
    started.wait(10)
    reached = []
    try:
        with pytest.raises(Stop):
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                for step in range(200_000):  # bytecodes and a blocking call, as a checkpoint's writes
                    reached.append(step) if step % 50_000 == 0 else None
                time.sleep(0.2)
                reached.append("end of block")
        assert reached[-1] == "end of block"
    finally:
        signal.signal(signal.SIGTERM, previous)
        done.set()
        worker.join()


def test_the_old_recipe_and_op_space_names_still_work_and_say_their_new_ones(capsys):
    """One meaning per word: a bare method name is the method; recipes and op spaces have their own names, and
    the old spellings are read as the new ones with one line saying so."""
    import lightsnn.core.names as names
    from lightsnn.space.ops import SPACES, parse_space

    names._told.clear()  # as in a fresh process (another test may have used an old name already)
    assert TrainOptions.from_config({"recipe": "lightsnn"}).lr == TrainOptions.from_config(
        {"recipe": "lightsnn-paper"}).lr == 0.2
    assert parse_space("lightsnn") == parse_space("lightsnn-ops") == SPACES["lightsnn-ops"]
    err = capsys.readouterr().err
    assert "note: training recipe 'lightsnn' is now called 'lightsnn-paper'" in err
    assert "note: op space 'lightsnn' is now called 'lightsnn-ops'" in err
    parse_space("lightsnn")
    assert capsys.readouterr().err == ""  # said once per process
