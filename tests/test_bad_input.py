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
     "expected an integer >= 1, got '-1'"),
    (["search", "--method", "random", "--dataset", "digits", "--out", "x.json", "--seed", str(2**70)],
     "seed must be a non-negative integer up to 4294967295, got '1180591620717411303424'"),
    (["evaluate", "--checkpoint", "c.pt", "--energy-samples", "0"], "expected an integer >= 1, got '0'"),
    (["evaluate", "--checkpoint", "c.pt", "--bits", "64"], "argument --bits: expected an integer from 1 to 32, got '64'"),
    (["bench", "--channels", "0"], "argument --channels: expected an integer >= 1, got '0'"),
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

    options = SNASNetOptions(space="snasnet")
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
