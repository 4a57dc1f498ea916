"""Bad input gets one clear line naming the bad value and what is allowed (exit 2), never a traceback."""
import json
import os
import stat

import pytest
import yaml

from lightsnn.cli import main

GENOTYPE = "0302 0030 3003 0000"


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse rejects a flag value
        code = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    return code, lines


def _config(tmp_path, data, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("data, verb, message", [
    ({"search": {"snasnet": {"num_search": "two"}}}, "search", "search.snasnet.num_search must be an integer, got 'two'"),
    ({"train": {"epochs": 2.5}}, "train", "train.epochs must be an integer, got 2.5"),
    ({"train": {"lr": "fast"}}, "train", "train.lr must be a finite number, got 'fast'"),
    ({"train": {"max_batches": 0}}, "train", "train.max_batches must be >= 1, got 0"),
    ({"search": {"snasnt": {"num_search": 3}}}, "search", "unknown method(s) ['snasnt'] under 'search'"),
    ({"networks": {"digitz": {"channels": 3}}}, "search", "unknown dataset(s) ['digitz'] under 'networks'"),
    ({"network": {"dropout": "half"}}, "search", "network.dropout must be a finite number, got 'half'"),
    ({"name": "../outside"}, "search", "config name '../outside'"),
    ({"device": "tpu"}, "search", "device 'tpu' is not allowed; use auto, cpu, cuda or cuda:N"),
])
def test_wrong_config_values_are_one_line(tmp_path, capsys, data, verb, message):
    config = _config(tmp_path, {"tracking": {"enabled": False}, **data})
    if verb == "search":
        argv = ["search", "--method", "snasnet", "--dataset", "digits", "--out", str(tmp_path / "s.json")]
    else:
        argv = ["train", "--genotype", GENOTYPE, "--dataset", "digits", "--out", str(tmp_path / "t")]
    code, lines = _run(argv + ["--config", config, "--no-progress"], capsys)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "s.json").exists() and not (tmp_path / "t").exists()


@pytest.mark.parametrize("content, message", [
    ({"kind": "evaluate", "schema_version": 1, "top1": 0.5}, "is not a search result (it holds 'evaluate')"),
    ([1, 2, 3], "is not a search result (it holds 'a JSON list')"),
    ({"kind": "search", "schema_version": 99}, "has schema_version 99; this lightsnn reads version 1"),
    ({"kind": "search", "schema_version": 1, "dataset": "digits"}, "lacks ["),
])
def test_train_reads_only_a_search_result(tmp_path, capsys, content, message):
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps(content))
    code, lines = _run(["train", "--search", str(bad), "--dataset", "digits", "--out", str(tmp_path / "t"),
                        "--no-tracking"], capsys)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines


def test_evidence_reads_only_its_own_inputs(tmp_path, capsys):
    search = tmp_path / "search.json"
    search.write_text(json.dumps({"kind": "search", "schema_version": 1}))
    code, lines = _run(["evidence", "--correlate", str(search), "--out", str(tmp_path / "e")], capsys)
    assert code == 2 and len(lines) == 1 and "is not a correlate result (it holds 'search')" in lines[0], lines


@pytest.mark.parametrize("argv, message", [
    (["search", "--method", "random", "--dataset", "digits", "--out", "x.json", "--threads", "-1"],
     "expected a thread count (at most this machine's CPUs) from 1 to"),
    (["search", "--method", "random", "--dataset", "digits", "--out", "x.json", "--seed", str(2**70)],
     "seed must be a non-negative integer up to 4294967295, got '1180591620717411303424'"),
    (["evaluate", "--checkpoint", "c.pt", "--energy-samples", "0"], "expected an integer >= 1, got '0'"),
    (["evaluate", "--checkpoint", "c.pt", "--bits", "64"], "argument --bits: expected an integer from 1 to 32, got '64'"),
    (["bench", "--channels", "0"], "argument --channels: expected an integer >= 1, got '0'"),
    (["search", "--method", "lightsnn", "--dataset", "digits", "--out", "x.json", "--space", ""],
     "argument --space: got an empty value; give a YAML value such as [zero, skip]"),
    (["benchmark", "score", "--proxies", "sahd,hamming"],
     "benchmark.proxies must be a list of strings (YAML: [a, b]) or null, got 'sahd,hamming'"),
    (["bench", "--batch-size", "1"], "argument --batch-size: expected an integer >= 2, got '1'"),
    (["train", "--genotype", GENOTYPE, "--dataset", "digits", "--out", "t", "--max-batches", "0"],
     "expected an integer >= 1, got '0'"),
])
def test_bad_flag_values_name_the_value_and_the_range(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, lines = _run(argv, capsys)
    assert code == 2 and message in lines[-1], lines
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("space, message", [
    ("[zero, 'conv3x3(th=-1)', skip]", "threshold th=-1 of op 'conv3x3(th=-1)' must be a finite number > 0"),
    ("[zero, 'conv3x3(th=nan)', skip]", "threshold th=nan of op 'conv3x3(th=nan)' must be a finite number > 0"),
    ("[zero, 'conv3x3(tau=0.5)', skip]", "time constant tau=0.5"),
])
def test_op_parameters_must_be_usable(tmp_path, capsys, space, message):
    code, lines = _run(["search", "--method", "lightsnn", "--dataset", "digits", "--out", str(tmp_path / "x.json"),
                        "--space", space, "--no-tracking"], capsys)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines


def test_a_config_directory_and_a_yaml_error_are_named(tmp_path, capsys):
    code, lines = _run(["search", "--method", "random", "--dataset", "digits", "--out", str(tmp_path / "x.json"),
                        "--config", str(tmp_path)], capsys)
    assert code == 2 and len(lines) == 1 and "is a directory" in lines[0], lines
    broken = tmp_path / "broken.yaml"
    broken.write_text("workflow:\n  seeds: [0, 1\n  results: x\n")
    code, lines = _run(["schema", "--check", str(broken)], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert "'" + str(broken) + "' is not valid YAML at line 3, column 10" in lines[0]


def test_schema_check_rejects_a_variant_with_another_methods_options(tmp_path, capsys):
    config = _config(tmp_path, {"workflow": {"variants": {"lightsnn-x": {"method": "lightsnn",
                                                                           "options": {"num_search": 3}}}}})
    code, lines = _run(["schema", "--check", "config/config.yaml", config], capsys)
    assert code == 2 and len(lines) == 1 and "'num_search' was unexpected" in lines[0], lines
    assert "workflow.variants.lightsnn-x.options" in lines[0]
    good = _config(tmp_path, {"workflow": {"variants": {"snasnet-x": {"method": "snasnet",
                                                                        "options": {"num_search": 3}}}}}, "ok.yaml")
    assert _run(["schema", "--check", "config/config.yaml", good], capsys)[0] == 0


def test_report_refuses_an_unknown_table1_run(tmp_path, capsys, tiny_config):
    from lightsnn.pipeline.jobs import run_evaluate, run_search, run_train
    from lightsnn.pipeline.results import write_json_atomic

    run = tmp_path / "runs" / "digits" / "random" / "seed0"
    search = run_search("random", "digits", 0, tiny_config)
    write_json_atomic(run / "search.json", search)
    config = {**tiny_config, "train": {"recipe": "quick", "epochs": 1, "batch_size": 32, "max_batches": 1}}
    train = run_train("digits", 0, config, run / "train", search=search, progress=False, log=lambda _: None)
    write_json_atomic(run / "train" / "train.json", train)
    write_json_atomic(run / "evaluate.json", run_evaluate(train["checkpoint"], tiny_config, energy_samples=4))
    code, lines = _run(["report", "--runs", str(run), "--out", str(tmp_path / "t"),
                        "--table1", "digits", "random", "lightsnn-5op"], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert "table 1 run 'lightsnn-5op' has no run folder on dataset 'digits'; runs there: ['random']" in lines[0]
    assert not (tmp_path / "t").exists()  # table2 and runs.csv were written before the refusal
    # one run given twice (by the same or another path) would count as two seeds with a spread of 0
    for twice in ([str(run), str(run)], [str(run), str(run) + "/../seed0"]):
        code, lines = _run(["report", "--runs", *twice, "--out", str(tmp_path / "t2")], capsys)
        assert code == 2 and len(lines) == 1 and "is given twice" in lines[0] and "each run counts once" in lines[0]
    assert not (tmp_path / "t2").exists()


def test_result_files_are_readable_by_others_as_umask_allows(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        code, _ = _run(["search", "--method", "random", "--dataset", "digits", "--out", str(tmp_path / "x.json"),
                        "--no-tracking"], capsys)
    finally:
        os.umask(old)
    assert code == 0
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644  # mkstemp alone gives 0600


def test_options_are_frozen_and_check_themselves_when_built():
    """Every options dataclass is immutable and rejects a bad value however it is built, naming its section."""
    import dataclasses

    from lightsnn.search.snasnet import SNASNetOptions
    from lightsnn.studies.bench import BenchOptions
    from lightsnn.training.metrics import EvaluateOptions
    from lightsnn.training.train import TrainOptions

    options = SNASNetOptions(space="snasnet-ops")
    assert options.space == ["zero", "skip", "conv1x1", "conv3x3", "avgpool3x3"]  # canonical form
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.num_search = 3  # type: ignore[misc]
    for build, message in [
        (lambda: SNASNetOptions(num_search=0), "search.snasnet.num_search must be >= 1, got 0"),
        (lambda: SNASNetOptions(bn_mode="test"), "search.snasnet.bn_mode='test' is not allowed"),
        (lambda: SNASNetOptions(batch_size=True), "search.snasnet.batch_size must be an integer, got True"),
        (lambda: BenchOptions(channels=0), "bench.channels must be >= 1, got 0"),
        (lambda: EvaluateOptions(bits=33), "evaluate.bits must be <= 32, got 33"),
        (lambda: TrainOptions(lr=0.0), "train.lr must be > 0, got 0.0"),
        (lambda: TrainOptions(loss="l1"), "train.loss='l1' is not allowed; choose from ['auto', 'ce', 'mse']"),
    ]:
        with pytest.raises(ValueError) as err:
            build()
        assert message in str(err.value)
    assert TrainOptions(lr=1).lr == 1.0 and isinstance(TrainOptions(lr=1).lr, float)  # ints widen to floats


def _immutable(folder) -> bool:
    """Make ``folder`` immutable (which even root cannot write into); False where chattr is not available."""
    import shutil
    import subprocess

    if not shutil.which("chattr"):
        return False
    return subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0


@pytest.mark.parametrize("argv, message", [
    (["search", "--method", "random", "--dataset", "digits", "--out", "adir"],
     "--out 'adir' is a folder; give the path of a file in it"),
    (["search", "--method", "random", "--dataset", "digits", "--out", "afile/x.json"],
     "--out 'afile/x.json' cannot be written: 'afile' is a file, not a folder"),
    (["train", "--genotype", GENOTYPE, "--dataset", "digits", "--out", "afile"],
     "--out 'afile' is a file, not a folder"),
    (["train", "--search", "adir", "--dataset", "digits", "--out", "t"], "--search 'adir' is a folder; expected a file"),
    (["train", "--search", "missing.json", "--dataset", "digits", "--out", "t"], "--search 'missing.json' does not exist"),
    (["evaluate", "--checkpoint", "afile", "--out", "adir"], "--out 'adir' is a folder"),
    (["prepare", "--dataset", "digits", "--report", "adir"], "--report 'adir' is a folder"),
    (["bench", "--json", "afile/b.json"], "--json 'afile/b.json' cannot be written"),
    (["schema", "--out", "adir"], "--out 'adir' is a folder"),
    (["report", "--runs", "missing", "--out", "r"], "--runs 'missing' does not exist"),
    (["report", "--runs", "adir", "--out", "afile"], "--out 'afile' is a file, not a folder"),
    (["correlate", "--dataset", "digits", "--out", "afile"], "--out 'afile' is a file, not a folder"),
    (["benchmark", "score", "--csv", "adir"], "--csv 'adir' is a folder"),
    (["benchmark", "quality", "--picks", "missing.json", "--out", "q"], "--picks 'missing.json' does not exist"),
    (["relay", "--journal", "afile"], "--journal 'afile' is a file; expected a folder"),
    (["relay", "--journal", "missing"], "--journal 'missing' does not exist"),
    (["evidence", "--replicate", "adir", "--out", "e"], "--replicate 'adir' is a folder; expected a file"),
])
def test_paths_are_checked_before_any_work(tmp_path, capsys, monkeypatch, argv, message):
    """A path that cannot be read or written is named in one line when the command starts, and nothing is
    created (before, search and bench failed after the whole computation, train after its first epoch)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    code, lines = _run(argv + (["--no-tracking"] if argv[0] in ("search", "train", "evaluate") else []), capsys)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]
    assert list((tmp_path / "adir").iterdir()) == []


def test_an_unwritable_folder_is_named_before_the_search(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    if not _immutable(locked):
        pytest.skip("chattr +i is not available here")
    try:
        for argv in (["search", "--method", "random", "--dataset", "digits", "--out", str(locked / "s.json")],
                     ["search", "--method", "random", "--dataset", "digits", "--out", str(locked / "new" / "s.json")],
                     ["train", "--genotype", GENOTYPE, "--dataset", "digits", "--out", str(locked / "t")]):
            code, lines = _run(argv + ["--no-tracking"], capsys)
            assert code == 2 and len(lines) == 1, lines
            assert "cannot be written: this user cannot" in lines[0] and repr(str(locked)) in lines[0], lines
    finally:
        import subprocess
        subprocess.run(["chattr", "-i", str(locked)], check=True)


def test_a_failed_run_leaves_no_folders_it_created(tmp_path, capsys):
    """The output's folders are made when the run claims its output; a run that then fails removes them."""
    out = tmp_path / "new" / "deep" / "s.json"
    code, lines = _run(["search", "--method", "snasnet", "--dataset", "digits", "--out", str(out), "--no-tracking",
                        "--space", "[zero, 'conv3x3(tau=0.5)']"], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert list(tmp_path.iterdir()) == []


def test_argparse_errors_are_one_line_with_where_the_help_is(capsys):
    code, lines = _run(["train", "--dataset", "digits"], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert "the following arguments are required" in lines[0] and "python -m lightsnn train --help" in lines[0]


def test_a_foreign_pt_file_is_named_without_advising_an_unsafe_load(tmp_path, capsys):
    import torch

    for name, content in (("list.pt", [1, 2]), ("junk.pt", None), ("code.pt", {"f": print})):
        path = tmp_path / name
        if content is None:
            path.write_text("hello")
        else:
            torch.save(content, path)
        code, lines = _run(["evaluate", "--checkpoint", str(path), "--no-tracking"], capsys)
        assert code == 2 and len(lines) == 1, lines
        assert f"checkpoint {str(path)!r} is not a lightsnn checkpoint" in lines[0], lines
        assert "weights_only" not in lines[0] and "\x1b" not in lines[0]


@pytest.fixture
def trained(tmp_path, tiny_config):
    """A genuine search result and the checkpoint of one batch of training on it, written as the CLI writes them."""
    from lightsnn.pipeline.jobs import run_search, run_train
    from lightsnn.pipeline.results import write_json_atomic

    search = run_search("random", "digits", 0, tiny_config)
    path = write_json_atomic(tmp_path / "search.json", search)
    config = {**tiny_config, "train": {"recipe": "quick", "epochs": 1, "batch_size": 32, "max_batches": 1}}
    train = run_train("digits", 0, config, tmp_path / "train", search=search, progress=False, log=lambda _: None)
    config_file = _config(tmp_path, {**tiny_config, "tracking": {"enabled": False}}, "tiny.yaml")
    return {"search": search, "search_path": path, "checkpoint": train["checkpoint"], "config": config_file}


def test_a_search_result_that_disagrees_with_itself_or_holds_unknown_keys_is_refused(tmp_path, capsys, trained):
    edited = json.loads(trained["search_path"].read_text())
    other = "0000 0030 3003 0000" if edited["genotype"]["str"] != "0000 0030 3003 0000" else GENOTYPE
    cases = [
        ({**edited, "genotype": {**edited["genotype"], "str": other}},
         f"its string form is {other!r} but its JSON form is {edited['genotype']['str']!r}"),
        ({**edited, "network": {**edited["network"], "chanels": 8}}, "unknown network option(s) ['chanels']"),
        ({**edited, "network": {**edited["network"], "lif": {"tau": 0.5}}}, "network.lif.tau must be > 1.0, got 0.5"),
        ({**edited, "network": {**edited["network"], "lif": {"taux": 2}}}, "unknown network.lif option(s) ['taux']"),
    ]
    for n, (content, message) in enumerate(cases):
        path = tmp_path / f"edited{n}.json"
        path.write_text(json.dumps(content))
        code, lines = _run(["train", "--search", str(path), "--dataset", "digits", "--out", str(tmp_path / f"t{n}"),
                            "--config", trained["config"]], capsys)
        assert code == 2 and len(lines) == 1 and message in lines[0], lines
        assert not (tmp_path / f"t{n}").exists()


@pytest.mark.parametrize("data, message", [
    ({"network": {"lif": {"tau": 0.5}}}, "network.lif.tau must be > 1.0, got 0.5"),
    ({"network": {"lif": {"v_threshold": 0}}}, "network.lif.v_threshold must be > 0.0, got 0"),
    ({"network": {"lif": {"tua": 2}}}, "unknown network.lif option(s) ['tua']"),
    ({"train": [1, 2]}, "config section 'train' in"),
])
def test_a_config_a_later_verb_would_refuse_is_refused_by_the_first(tmp_path, capsys, data, message):
    """``network.lif.tau: 0.5`` passed search and schema --check, then train refused the search's result."""
    config = _config(tmp_path, {"tracking": {"enabled": False}, **data})
    code, lines = _run(["search", "--method", "random", "--dataset", "digits", "--out", str(tmp_path / "s.json"),
                        "--config", config], capsys)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    code, lines = _run(["search", "--method", "random", "--dataset", "digits", "--out", str(tmp_path / "s.json"),
                        "--config-json", json.dumps(data), "--no-tracking"], capsys)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    if "network" in data and "tua" not in str(data):
        code, lines = _run(["schema", "--check", "config/config.yaml", config], capsys)
        assert code == 2 and len(lines) == 1 and "network.lif" in lines[0], lines


def test_evaluate_refuses_non_finite_weights_and_weights_of_another_architecture(tmp_path, capsys, trained):
    import torch

    saved = torch.load(trained["checkpoint"], weights_only=True)
    name = next(k for k, v in saved["model"].items() if v.is_floating_point() and v.numel() > 1)
    broken = {**saved, "model": {**saved["model"], name: torch.full_like(saved["model"][name], float("nan"))}}
    torch.save(broken, tmp_path / "nan.pt")
    code, lines = _run(["evaluate", "--checkpoint", str(tmp_path / "nan.pt"), "--config", trained["config"]], capsys)
    assert code == 2 and len(lines) == 1 and f"holds non-finite weights (NaN or inf in {name!r})" in lines[0], lines
    assert not (tmp_path / "evaluate.json").exists()
    foreign = {**saved, "model": {k: v for k, v in saved["model"].items() if k != name}}
    torch.save(foreign, tmp_path / "foreign.pt")
    code, lines = _run(["evaluate", "--checkpoint", str(tmp_path / "foreign.pt"), "--config", trained["config"]],
                       capsys)
    assert code == 2 and len(lines) == 1 and "its weights do not fit its genotype" in lines[0], lines
    assert "1 missing, 0 unexpected" in lines[0] and len(lines[0]) < 400


def test_wrong_kinds_of_input_file_are_named(tmp_path, capsys, trained):
    search = str(trained["search_path"])
    cut = tmp_path / "cut.json"
    cut.write_text('{"kind": "benchmark-search", "id": 1')
    for argv, message in [
        (["benchmark", "quality", "--picks", search, "--out", "q"],
         "is not a benchmark-search result (it holds 'search')"),
        (["benchmark", "quality", "--picks", str(cut), "--out", "q"], "is not valid JSON"),
        (["evidence", "--out", "e"], "nothing to tabulate: give correlate.json files"),
        (["relay", "--journal", str(tmp_path), "--poll", "nan"], "--poll must be a finite number of seconds > 0"),
    ]:
        code, lines = _run(argv, capsys)
        assert code == 2 and len(lines) == 1 and message in lines[0], (argv, lines)
    assert not (tmp_path / "q").exists() and not (tmp_path / "e").exists()


def test_a_subset_file_of_another_shape_is_named(tmp_path, capsys):
    import numpy as np

    folder = tmp_path / "subsets"
    folder.mkdir()
    images = np.zeros((4, 3, 32, 32), np.uint8)  # channels first: not the layout the loader reads
    np.savez(folder / "cifar10_subset.npz", train_x=images, train_y=np.zeros(4, np.int64), test_x=images,
             test_y=np.zeros(4, np.int64))
    config = _config(tmp_path, {"tracking": {"enabled": False}, "data": {"subsets": str(folder)}})
    code, lines = _run(["prepare", "--dataset", "cifar10-subset", "--config", config], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert "train_x has shape [4, 3, 32, 32] and dtype uint8; expected uint8 images of shape [N, 32, 32, 3]" in lines[0]


@pytest.mark.parametrize("argv, message", [
    (["train", "--genotype", GENOTYPE, "--dataset", "digits", "--out", "t", "--threads", "100000"],
     "--threads: expected a thread count (at most this machine's CPUs) from 1 to"),
    (["train", "--genotype", GENOTYPE, "--dataset", "digits", "--out", "t",
      "--config-json", '{"networks": {"digits": {"channels": 1000000000}}}'],
     "a batch of 64 at T=5 on 8x8 inputs (training) needs at least"),
    (["train", "--genotype", GENOTYPE, "--dataset", "digits", "--out", "t",
      "--config-json", '{"networks": {"digits": {"timesteps": 1000000000}}}'],
     "networks.digits.timesteps must be <= 1000, got 1000000000"),
    (["search", "--method", "snasnet", "--dataset", "digits", "--out", "s.json",
      "--config-json", '{"network": {"channels": 1000000000}}'],
     "lower network.timesteps, network.channels or search.snasnet.batch_size"),
    (["search", "--method", "litesnn", "--dataset", "digits", "--out", "s.json", "--filter-multiplier", "1000000"],
     "lower the flags you gave (--filter-multiplier) or the timesteps (max_timesteps, a genotype's T), "
     "filter_multiplier, steps or search.litesnn.batch_size"),
    (["search", "--method", "litesnn", "--dataset", "digits", "--out", "s.json", "--max-timesteps", "1000000000"],
     "argument --max-timesteps: expected an integer from 1 to 1000, got '1000000000'"),
    (["prepare", "--dataset", "ndigits", "--timesteps", "1000000000"],
     "lower the timesteps (prepare --timesteps, network.timesteps)"),
    (["correlate", "--dataset", "digits", "--n", "100000000"],
     "100000000 architectures (evidence.num_archs, correlate --n) is more than the 531441 cells"),
])
def test_sizes_that_cannot_fit_are_refused_naming_the_option(tmp_path, capsys, monkeypatch, argv, message):
    """Before: libgomp segfaults, the OOM killer, torch's 'tried to allocate 26214400000 bytes', minutes of
    silent sampling. The sizes here fit no machine, so the test does not depend on this one's memory."""
    monkeypatch.chdir(tmp_path)
    code, lines = _run(argv + ["--no-tracking"] * (argv[0] in ("train", "search", "correlate")), capsys)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "t").exists() and not (tmp_path / "s.json").exists()


def test_an_allocation_that_fails_anyway_is_one_line_naming_the_sizes():
    from lightsnn.cli import _is_out_of_memory, _out_of_memory

    err = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 26214400000 bytes. Error code 12 (Cannot allocate memory)")
    assert _is_out_of_memory(err) and not _is_out_of_memory(RuntimeError("shape mismatch"))
    line = _out_of_memory(err)
    assert line.startswith("out of memory (an allocation of 26.2 GB)") and "network.timesteps" in line
    assert "\n" not in line
