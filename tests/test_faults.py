"""Faults a careful or hostile user meets (issue 36): each ends in one line naming what was wrong and a non-zero
exit, before any work where it can be known before, and nothing the user gave is changed or left half-written."""
import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from lightsnn.cli import main
from test_bad_input import _run  # the CLI's exit code and stderr lines, never a traceback

GENOTYPE = "0302 0030 3003 0000"
TINY = {"device": "cpu", "tracking": {"enabled": False},
        "networks": {"digits": {"channels": 4, "timesteps": 2, "classifier_width": 16, "num_cluster": 2}}}
SHARED = Path(__file__).resolve().parents[2] / "shared"
BENCH_ROOT = SHARED / "benchmarks" / "spikenas-bench"


def _config(tmp_path, data=None, name="c.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**TINY, **(data or {})}))
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny trained checkpoint (one batch of digits)."""
    out = tmp_path_factory.mktemp("trained") / "t"
    config = _config(out.parent)
    assert main(["train", "--genotype", GENOTYPE, "--dataset", "digits", "--out", str(out), "--config", config,
                 "--epochs", "1", "--max-batches", "1", "--no-progress"]) == 0
    return out


# --- sizes that cannot run: refused in one line naming the flag or key that set them -------------------------

@pytest.mark.parametrize("argv, message", [
    (["search", "--method", "litesnn", "--dataset", "digits", "--out", "l.json", "--max-timesteps", "100000"],
     "argument --max-timesteps: expected an integer from 1 to 1000, got '100000'"),
    (["bench", "--timesteps", "100000"], "argument --timesteps: expected an integer from 1 to 1000, got '100000'"),
])
def test_absurd_timestep_flags_are_refused_naming_the_flag(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, lines = _run(argv, capsys)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert list(tmp_path.iterdir()) == []


def test_absurd_timesteps_in_a_config_are_refused_naming_the_key(tmp_path, capsys):
    """A training-free search holds one timestep at a time, so T = 100000 fits memory and would run for days."""
    config = _config(tmp_path, {"networks": {"digits": {"timesteps": 100000}}})
    code, lines = _run(["search", "--method", "snasnet", "--dataset", "digits", "--out", str(tmp_path / "s.json"),
                        "--config", config, "--no-progress"], capsys)
    assert code == 2 and lines == ["error: networks.digits.timesteps must be <= 1000, got 100000"], lines
    assert not (tmp_path / "s.json").exists()


def test_a_litesnn_network_with_absurd_timesteps_is_refused_however_it_is_built():
    from lightsnn.space.litesnn_net import LiteNetConfig

    for build in (lambda: LiteNetConfig(timesteps=100000), lambda: LiteNetConfig.from_dict({"timesteps": 100000})):
        with pytest.raises(ValueError, match="litesnn network.timesteps must be <= 1000, got 100000"):
            build()


def test_an_edited_checkpoint_with_absurd_timesteps_is_refused_naming_the_file(tmp_path, capsys, trained):
    saved = torch.load(trained / "best.pt", weights_only=True)
    saved["meta"]["network"]["timesteps"] = 100000
    edited = tmp_path / "edited.pt"
    torch.save(saved, edited)
    code, lines = _run(["evaluate", "--checkpoint", str(edited), "--out", str(tmp_path / "e.json"), "--no-tracking",
                        "--device", "cpu"], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert f"checkpoint {str(edited)!r}: " in lines[0] and "timesteps must be <= 1000, got 100000" in lines[0]
    assert not (tmp_path / "e.json").exists()


def test_a_checkpoint_edited_to_another_dataset_is_named_not_a_shape_error(tmp_path, capsys, trained):
    saved = torch.load(trained / "best.pt", weights_only=True)
    saved["meta"]["dataset"] = "ndigits"
    edited = tmp_path / "other.pt"
    torch.save(saved, edited)
    code, lines = _run(["evaluate", "--checkpoint", str(edited), "--out", str(tmp_path / "e.json"), "--no-tracking",
                        "--device", "cpu", "--config", _config(tmp_path, {"data": {"cache": str(tmp_path / "c")}})],
                       capsys)
    assert code == 2 and len(lines) == 1, lines
    assert ("holds a network for 1-channel 8x8 inputs and 10 classes, but dataset 'ndigits' has 2-channel 32x32 "
            "inputs") in lines[0], lines


def _saved_bytes(model, x) -> int:
    """Bytes a training step keeps for its backward pass (every storage saved by autograd, once)."""
    seen = {}

    def pack(tensor):
        seen[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x).sum()
    return sum(seen.values())


@pytest.mark.parametrize("dataset", ["digits", "ndigits"])
def test_memory_floors_are_floors_that_count_the_cells_and_every_timestep(dataset):
    """A floor below what a training step really keeps, but no longer a small part of it: LitE-SNN's counted
    only its input and stem (2-13 % of the kept bytes); now every edge's spikes and node outputs, at all T."""
    from lightsnn.search.litesnn import LiteSNNOptions
    from lightsnn.space.litesnn_net import LiteSearchNet
    from lightsnn.space.network import PRESETS, SNASNetwork

    torch.manual_seed(0)
    options = LiteSNNOptions().for_dataset(dataset)
    lite = options.search_network(PRESETS[dataset])
    net = LiteSearchNet(lite, tuple(options.bit_widths), options.keep)
    x = torch.rand(4, lite.in_channels, lite.image_size, lite.image_size)
    kept = _saved_bytes(net, x)
    assert 0.15 * kept < lite.memory_floor(4, training=True) < kept
    half = replace(lite, timesteps=lite.timesteps // 2)
    assert lite.timesteps % 2 == 0 and lite.memory_floor(4, True) == 2 * half.memory_floor(4, True)  # all T count
    for genotype in (GENOTYPE, "0001 0000 0000 0000", "0111 3031 3301 3330"):  # the floor holds for every cell
        from lightsnn.space.families import family_of_text

        config = PRESETS[dataset].with_overrides({"timesteps": 3})
        model = SNASNetwork.from_genotype(config, family_of_text(genotype).parse(genotype))
        x = torch.rand(4, config.in_channels, config.image_size, config.image_size)
        floor = config.memory_floor(4, training=True) - 4 * 3 * 18 * config.channels ** 2  # less the weights
        assert floor < _saved_bytes(model, x), genotype
        assert config.memory_floor(4, training=True) > config.memory_floor(4, training=False)


def test_a_benchmark_width_that_cannot_fit_names_the_flag_and_leaves_no_files(tmp_path, capsys):
    if not (BENCH_ROOT / "CIFAR10").is_dir():
        pytest.skip("../shared/benchmarks/spikenas-bench is not beside the repo")
    config = _config(tmp_path, {"data": {"cache": str(tmp_path / "cache")}})
    code, lines = _run(["benchmark", "score", "--width", "100000", "--root", str(BENCH_ROOT), "--out",
                        str(tmp_path / "bm"), "--config", config, "--no-tracking"], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert "lower the flags you gave (--width) or benchmark.width or benchmark.batch_size" in lines[0], lines
    assert "network.channels" not in lines[0]
    assert not (tmp_path / "bm").exists()


# --- outputs that would destroy what the user gave -----------------------------------------------------------

def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, capsys, trained):
    best = tmp_path / "best.pt"
    shutil.copy(trained / "best.pt", best)
    before = best.read_bytes()
    code, lines = _run(["evaluate", "--checkpoint", str(best), "--out", str(best), "--no-tracking"], capsys)
    assert code == 2 and len(lines) == 1 and f"--out {str(best)!r} is an input of this run (--checkpoint" in lines[0]
    assert best.read_bytes() == before
    config = Path(_config(tmp_path, name="my.yaml"))
    text = config.read_text()
    for out in (str(config), str(tmp_path / "." / "my.yaml")):  # the same file by another spelling, too
        code, lines = _run(["search", "--method", "random", "--dataset", "digits", "--config", str(config), "--out",
                            out], capsys)
        assert code == 2 and len(lines) == 1 and "is an input of this run (--config" in lines[0], lines
    assert config.read_text() == text


@pytest.mark.parametrize("make, kind", [
    (lambda path: os.mkfifo(path), "is a FIFO, not a regular file"),
    (lambda path: os.symlink(path.parent / "fifo", path), "is a FIFO (a link to"),
    (lambda path: os.symlink("/dev/null", path), "lies in the system's 'dev' folder (through a link to '/dev/null')"),
])
def test_an_output_that_is_not_a_regular_file_is_refused_and_left_as_it_is(tmp_path, capsys, make, kind):
    os.mkfifo(tmp_path / "fifo")
    out = tmp_path / "out.json"
    make(out) if "link" in kind else make(tmp_path / "out.json")
    was_link = out.is_symlink()
    code, lines = _run(["search", "--method", "random", "--dataset", "digits", "--out", str(out), "--no-tracking"],
                       capsys)
    assert code == 2 and len(lines) == 1 and kind in lines[0], lines
    assert out.is_symlink() == was_link and not out.is_file()


def test_the_systems_standard_output_is_never_replaced(capsys):
    target = os.readlink("/dev/stdout")
    try:
        for out in ("/dev/stdout", "/proc/self/fd/1"):
            code, lines = _run(["search", "--method", "random", "--dataset", "digits", "--out", out,
                                "--no-tracking"], capsys)
            assert code == 2 and len(lines) == 1 and "lies in the system's" in lines[0], lines
        assert Path("/dev/stdout").is_symlink()
    finally:  # a regression here replaces the machine's /dev/stdout (as root): put it back
        if not os.path.islink("/dev/stdout") and os.access("/dev", os.W_OK):
            os.unlink("/dev/stdout")
            os.symlink(target, "/dev/stdout")


def test_an_over_long_output_name_is_refused_before_any_work(tmp_path, capsys):
    name = "a" * 240 + ".json"  # fits the file system, but not with the temporary name written beside it
    code, lines = _run(["search", "--method", "random", "--dataset", "digits", "--out", str(tmp_path / name),
                        "--no-tracking"], capsys)
    assert code == 2 and len(lines) == 1 and "has a name of 245 bytes" in lines[0] and "so at most 231" in lines[0]
    code, lines = _run(["train", "--genotype", GENOTYPE, "--dataset", "digits", "--out", str(tmp_path / ("b" * 300)),
                        "--no-tracking"], capsys)
    assert code == 2 and len(lines) == 1 and "has a name of 300 bytes" in lines[0], lines
    assert list(tmp_path.iterdir()) == []


# --- a full disk ----------------------------------------------------------------------------------------------

@pytest.fixture
def full_disk(tmp_path):
    """A small tmpfs filled to its last few kilobytes (root only: skipped where mounting is not allowed)."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root; run as root to test a full disk")
    try:
        with open(mount / "filler", "wb") as handle:
            try:
                handle.write(b"\0" * (256 * 1024 - 6 * 1024))
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _half_written(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_a_full_disk_ends_in_one_line_naming_the_path_and_nothing_half_written(full_disk, capsys, trained):
    cases = [
        (["train", "--genotype", GENOTYPE, "--dataset", "digits", "--out", str(full_disk / "t"), "--epochs", "1",
          "--max-batches", "1", "--no-progress"], str(full_disk / "t")),
        (["evaluate", "--checkpoint", str(trained / "best.pt"), "--out", str(full_disk / "e.json"),
          "--energy-samples", "2", "--no-progress"], str(full_disk / "e.json")),
    ]
    for argv, path in cases:
        code, lines = _run(argv + ["--config", _config(full_disk.parent)], capsys)
        assert code == 1 and len(lines) == 1, lines
        assert "No space left on device" in lines[0] and path in lines[0], lines
        assert _half_written(full_disk) == []
    # a checkpoint that no longer fits: torch's own writer said 'enforce fail at inline_container.cc'
    from lightsnn.core.checkpoints import save_checkpoint

    with pytest.raises(OSError) as err:
        save_checkpoint({"weights": torch.zeros(64 * 1024)}, full_disk / "ckpt.pt")
    assert err.value.filename == str(full_disk / "ckpt.pt") and "No space left" in err.value.strerror
    assert _half_written(full_disk) == [] and not (full_disk / "ckpt.pt").exists()


def test_a_search_result_on_a_full_disk(full_disk, capsys):
    (full_disk / "more").write_bytes(b"\0" * 4096)  # now not even a result file fits
    code, lines = _run(["search", "--method", "random", "--dataset", "digits", "--out", str(full_disk / "s.json"),
                        "--no-tracking"], capsys)
    assert code == 1 and len(lines) == 1 and "No space left on device" in lines[0], lines
    assert not (full_disk / "s.json").exists() and _half_written(full_disk) == []


# --- silent nonsense, wrong words ----------------------------------------------------------------------------

def test_score_files_with_no_rows_or_of_another_benchmark_are_refused(tmp_path, capsys):
    if not (BENCH_ROOT / "CIFAR10").is_dir():
        pytest.skip("../shared/benchmarks/spikenas-bench is not beside the repo")
    header = tmp_path / "header.csv"
    header.write_text("id,sahd,params,score_seconds\n")
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("id,sahd,params,score_seconds\n20000,1.5,100,0.2\n30000,2.5,300,0.1\n")
    config = _config(tmp_path, {"data": {"cache": str(tmp_path / "cache")}})
    for path, message in ((header, "hold no scored architecture (a header alone)"),
                          (foreign, "hold 2 id(s) this benchmark does not have (e.g. [20000, 30000]; it holds 0..15624)")):
        code, lines = _run(["benchmark", "correlate", "--scores", str(path), "--root", str(BENCH_ROOT), "--out",
                            str(tmp_path / "c"), "--config", config, "--no-tracking"], capsys)
        assert code == 2 and len(lines) == 1 and message in lines[0], lines
        assert not (tmp_path / "c" / "correlation.csv").exists()


def test_schema_docs_refuses_a_file_without_its_markers(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# my notes\n")
    code, lines = _run(["schema", "--docs", str(readme)], capsys)
    assert code == 2 and len(lines) == 1 and "holds no option tables to regenerate" in lines[0], lines
    assert readme.read_text() == "# my notes\n"


def test_a_binary_config_and_a_bad_environment_variable_are_named(tmp_path, capsys, monkeypatch):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x00\xff\xfe\x00")
    code, lines = _run(["search", "--method", "random", "--dataset", "digits", "--out", str(tmp_path / "x.json"),
                        "--config", str(binary)], capsys)
    assert code == 2 and len(lines) == 1 and f"config file {str(binary)!r} is not a text file" in lines[0], lines
    monkeypatch.setenv("LIGHTSNN_TRACKING", "{garbage")
    code, lines = _run(["search", "--method", "random", "--dataset", "digits", "--out", str(tmp_path / "x.json")],
                       capsys)
    assert code == 2 and len(lines) == 1, lines
    assert "the environment variable LIGHTSNN_TRACKING is not valid JSON" in lines[0] and "--config-json" not in lines[0]


def test_ctrl_c_before_the_first_checkpoint_promises_no_resume(tmp_path):
    from lightsnn.cli import _resume_hint

    args = argparse.Namespace(command="train", out=str(tmp_path / "t"))
    assert _resume_hint(args) == "; no epoch had finished, so the same command starts the training anew"
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "checkpoint.pt").write_bytes(b"x")
    assert "resumes from" in _resume_hint(args)


def test_snakemake_with_an_unwritable_results_folder_says_so_in_one_line(tmp_path):
    if not shutil.which("chattr") or os.geteuid() != 0:
        pytest.skip("chattr +i (as root) makes a folder no one can write into")
    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "workflow", tmp_path / "workflow")
    shutil.copytree(root / "config", tmp_path / "config")
    results = tmp_path / "results"
    results.mkdir()
    if subprocess.run(["chattr", "+i", str(results)], capture_output=True).returncode != 0:
        pytest.skip("this file system has no immutable flag")
    try:
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        done = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--cores", "1"], cwd=tmp_path,
                              capture_output=True, text=True, env=env, timeout=300)
    finally:
        subprocess.run(["chattr", "-i", str(results)], check=True)
    output = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert ("error: workflow.results 'results' cannot be written: this user cannot write into 'results' "
            "(permission denied, immutable or read-only)") in output.splitlines(), output[-3000:]
