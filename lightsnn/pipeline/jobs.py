"""Jobs the CLI (and the workflow) run: each resolves its config, runs, and returns a JSON-ready dict."""
from __future__ import annotations

import time
from dataclasses import asdict

import torch

from lightsnn.core.hashing import stable_hash
from lightsnn.core.layout import BEST_FILE, file_name
from lightsnn.data import DataOptions, load_splits
from lightsnn.pipeline.config import check_seed, method_options, net_config, resolve_device
from lightsnn.pipeline.results import SCHEMA_VERSIONS, versions
from lightsnn.search import SearchContext, get_method
from lightsnn.space.families import family_of_text, get_family
from lightsnn.training.metrics import EvaluateOptions, model_parameters

SEARCH_SCHEMA_VERSION = SCHEMA_VERSIONS["search"]


def run_search(method: str, dataset: str, seed: int, config: dict, overrides: dict | None = None,
               progress: bool | None = None, checkpoint=None, on_epoch=None, log=None,
               flags: list[str] | None = None) -> dict:
    """One search. An epoch-based search (LitE-SNN) checkpoints to ``checkpoint`` every epoch, resumes from it,
    and reports each epoch to ``on_epoch``; the others ignore both. ``flags``: the command-line flags the user
    gave, named first when a size is refused."""
    check_seed(seed)
    options = method_options(method, config, overrides, dataset)
    netcfg = net_config(dataset, config, options)
    device = resolve_device(config.get("device"))
    require_network_memory(netcfg, getattr(options, "batch_size", None) or 1, device,
                           training=getattr(options, "epochs", None) is not None, batch=f"search.{method}.batch_size",
                           flags=flags)
    start = time.perf_counter()
    splits = load_splits(dataset, config.get("data"), netcfg.timesteps, progress)
    load_seconds = time.perf_counter() - start
    context = SearchContext(net_config=netcfg, splits=splits, device=device, seed=seed, progress=progress,
                            checkpoint=checkpoint, on_epoch=on_epoch, log=log or (lambda line: print(line, flush=True)),
                            dataset=dataset)
    result = get_method(method).run(options, context)
    record = result.record
    resolved = {"method": method, "dataset": dataset, "options": asdict(options), "network": netcfg.to_dict()}
    genotype = result.genotype
    return {
        "schema_version": SEARCH_SCHEMA_VERSION,
        "kind": "search",
        "method": method,
        "family": genotype.family,
        "dataset": dataset,
        "seed": seed,
        "genotype": {"str": genotype.to_str(), "json": genotype.to_json(), "hash": genotype.short_hash(),
                     "canonical": genotype.canonical().to_str()},
        "score": result.score,
        "num_scorings": record.num_scorings,
        "nonfinite_scores": record.nonfinite_scores,
        "times": {"search_seconds": record.total_seconds, "compute_seconds": record.compute_seconds,
                  "data_seconds": record.data_seconds, "dataset_load_seconds": load_seconds},
        "compat_flags": sorted(options.compat()),
        "options": asdict(options),
        "network": result.net_config.to_dict(),  # the network to train: LitE-SNN's decoded one
        "config_hash": stable_hash(resolved),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "versions": versions(),
        "details": record.details,
        "data": splits.info,
        "candidates": record.candidates,
    }


TRAIN_SCHEMA_VERSION = SCHEMA_VERSIONS["train"]
EVAL_SCHEMA_VERSION = SCHEMA_VERSIONS["evaluate"]


def require_network_memory(netcfg, batch_size: int, device, training: bool, batch: str,
                           flags: list[str] | None = None, sizes: str | None = None) -> None:
    """Refuse a network too large for the device in one line naming its sizes, before anything is built;
    ``flags``: the command-line flags the user gave that set those sizes, named first; ``sizes``: the options
    that size the network where they are not the network's own (a benchmark's width)."""
    from lightsnn.core.budget import require_memory

    given = f"the flags you gave ({', '.join(flags)}) or " if flags else ""
    require_memory(netcfg.memory_floor(batch_size, training),
                   f"a batch of {batch_size} at T={netcfg.timesteps} on {netcfg.image_size}x{netcfg.image_size} inputs"
                   f" ({'training' if training else 'inference'})", f"{given}{sizes or netcfg.SIZE_OPTIONS} or {batch}", device)


def given_flags(overrides: dict | None) -> list[str]:
    """The command-line flags of options given as ``overrides`` by the CLI (``max_timesteps`` -> ``--max-timesteps``)."""
    return [f"--{name.replace('_', '-')}" for name, value in (overrides or {}).items() if value is not None]


def require_network_fits_data(netcfg, dataset: str, sample: torch.Tensor, where: str) -> None:
    """A network (from a checkpoint or a search result) whose input or class count is not the dataset's is refused
    in one line, not as a shape error deep inside torch: e.g. a file whose dataset was edited to another one."""
    from lightsnn.data import get_dataset_spec
    from lightsnn.space.network import PRESETS

    channels, size = int(sample.shape[-3]), int(sample.shape[-1])
    classes = PRESETS[get_dataset_spec(dataset).preset].num_classes
    have = (netcfg.in_channels, netcfg.image_size, netcfg.num_classes)
    if have != (channels, size, classes):
        raise ValueError(f"{where} holds a network for {have[0]}-channel {have[1]}x{have[1]} inputs and {have[2]} "
                         f"classes, but dataset {dataset!r} has {channels}-channel {size}x{size} inputs and {classes} "
                         "classes; the file was made for another dataset, or edited")


def _genotype_and_network(dataset: str, config: dict, search: dict | None, genotype: str | None):
    if search is not None:
        if search.get("dataset") != dataset:
            raise ValueError(f"the search result is for dataset {search.get('dataset')!r}, not {dataset!r}")
        family = get_family(search.get("family"))
        arch, network = family.load(search["genotype"]["json"], search["network"])
        written = search["genotype"].get("str")
        if written is not None and (not isinstance(written, str) or arch.to_str() != written):
            raise ValueError(f"the search result's genotype disagrees with itself: its string form is {written!r} "
                             f"but its JSON form is {arch.to_str()!r}; the file was edited or damaged, so neither "
                             "is trusted (fix one, or give --genotype)")
        return arch, network
    if genotype is None:
        raise ValueError("give a search result (--search) or a genotype (--genotype)")
    family = family_of_text(genotype)
    arch = family.parse(genotype)
    if family.sized_by is None:
        return arch, net_config(dataset, config)
    options = method_options(family.sized_by, config, dataset=dataset)  # e.g. LitE-SNN's retrain sizes
    return arch, options.network_to_train(net_config(dataset, config, options), arch)


def training_fingerprint(dataset: str, seed: int, arch, netcfg, options, loss: str, data: dict,
                         search: dict | None) -> dict:
    """Everything a trained checkpoint depends on; a checkpoint is resumed only when all of it matches."""
    from lightsnn import __version__
    from lightsnn.training.train import CHECKPOINT_FORMAT

    fields_ = {"dataset": dataset, "seed": seed, "genotype": arch.to_str(), "network": netcfg.to_dict(),
               "loss": loss, "data": data, "code": f"lightsnn {__version__}, checkpoint format {CHECKPOINT_FORMAT}",
               "search_compat": sorted((search or {}).get("compat_flags", []))}
    fields_.update({f"train.{k}": v for k, v in asdict(options).items()})
    if "trained_logits" in fields_["search_compat"]:
        fields_["search_logits"] = search["details"].get("final_logits")
    return fields_


def run_train(dataset: str, seed: int, config: dict, out_dir, search: dict | None = None,
              genotype: str | None = None, overrides: dict | None = None, progress: bool | None = None,
              log=None, on_epoch=None, fresh: bool = False, allow_disconnected: bool = False,
              on_start=None) -> dict:
    """Train a search result's (or a genotype's) network; resumes only a matching, unfinished checkpoint."""
    from pathlib import Path

    from lightsnn.training.train import Trainer, TrainOptions, build_model, loss_kind

    check_seed(seed)
    options = TrainOptions.from_config(config.get("train"), overrides)
    arch, netcfg = _genotype_and_network(dataset, config, search, genotype)
    if not allow_disconnected:
        try:
            arch.require_connected()
        except ValueError as err:
            raise ValueError(f"{err}; pass --allow-disconnected to train it anyway") from None
    device = resolve_device(config.get("device"))
    options = options.on(device)  # bf16, channels-last, device data: on for CUDA unless set (recorded as run)
    require_network_memory(netcfg, options.batch_size, device, training=True, batch="train.batch_size",
                           flags=given_flags(overrides))  # a training's overrides are its CLI flags
    splits = load_splits(dataset, config.get("data"), netcfg.timesteps, progress)
    if search is not None:
        require_network_fits_data(netcfg, dataset, splits.test[0][0], "the search result")
    loss = loss_kind(options, dataset)
    torch.manual_seed(seed)
    model, logits = build_model(netcfg, arch, search)
    meta = {"dataset": dataset, "seed": seed, "family": arch.family, "genotype": arch.to_str(),
            "network": netcfg.to_dict(),
            "data": config.get("data") or {}, "loss": loss, "search": search and {
                k: search[k] for k in ("method", "options", "compat_flags", "details", "genotype")}}
    fingerprint = training_fingerprint(dataset, seed, arch, netcfg, options, loss, config.get("data") or {}, search)
    trainer = Trainer(model, options, splits, device, seed, Path(out_dir), netcfg.num_classes, loss,
                      logits, progress, log, meta, fingerprint=fingerprint, fresh=fresh)
    start = time.perf_counter()
    state = trainer.run(on_epoch, on_start)
    history = state["history"]
    final, best = history[-1], state["best"]
    return {
        "schema_version": TRAIN_SCHEMA_VERSION, "kind": "train", "dataset": dataset, "seed": seed,
        "method": search["method"] if search else None, "family": arch.family,
        "genotype": {"str": arch.to_str(), "hash": arch.short_hash()},
        "final_test_acc": final["test_acc"],
        "best_epoch_test_acc": best["test_acc"] if "val_acc" not in best else None,
        "best_epoch": best["epoch"],
        "test_acc_at_best_val": best["test_acc"] if "val_acc" in best else None,
        "selection": "validation split" if options.val_fraction > 0 else
                     "test set (as the papers do: optimistic, report final_test_acc too)",
        "epochs": len(history), "history": history,
        "seconds_this_run": time.perf_counter() - start,
        "seconds_per_epoch": sum(r["seconds"] for r in history) / len(history),
        "samples_per_second": sum(r["samples_per_second"] for r in history) / len(history),
        "parameters": model_parameters(trainer.model),
        "options": asdict(options), "network": netcfg.to_dict(), "loss": loss,
        "checkpoint": str(trainer.checkpoint), "best_checkpoint": str(Path(out_dir) / file_name(BEST_FILE)),
        "compat_flags": (search or {}).get("compat_flags", []),
        "device": str(device), "versions": versions(),
    }


def _load_weights(model, weights: dict, path, arch) -> None:
    """The checkpoint's weights into the network its genotype builds, or one line saying why not: weights of
    another architecture (torch's own message lists every key, kilobytes of them) or non-finite weights (a
    diverged training would otherwise be measured as 10 % accuracy and no spikes without a word)."""
    import torch

    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ValueError(f"checkpoint {str(path)!r} holds no weights of a network (its 'model' is not a state dict)")
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    reshaped = [k for k in own if k in weights and weights[k].shape != own[k].shape]
    if missing or unexpected or reshaped:
        example = (missing or unexpected or reshaped)[0]
        raise ValueError(f"checkpoint {str(path)!r}: its weights do not fit its genotype {arch.to_str()!r} "
                         f"({len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape; "
                         f"e.g. {example!r}); the file was edited or damaged")
    bad = next((k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise ValueError(f"checkpoint {str(path)!r} holds non-finite weights (NaN or inf in {bad!r}): the training "
                         "diverged or the file is damaged; nothing to evaluate (train again, e.g. with a lower lr)")
    model.load_state_dict(weights)


def run_evaluate(checkpoint: str, config: dict | None = None, bits: int = EvaluateOptions.bits,
                 energy_samples: int = EvaluateOptions.energy_samples,
                 batch_size: int = 64, progress: bool | None = None) -> dict:
    from pathlib import Path

    from torch.utils.data import DataLoader

    from lightsnn.training.metrics import latency_per_sample, memory_footprint, operation_counts, spiking_activity_rate
    from lightsnn.training.train import build_model, collate, evaluate_accuracy, load_checkpoint, loss_fn

    EvaluateOptions(bits=bits, energy_samples=energy_samples)  # the one place their limits live
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist or is not a file")
    saved = load_checkpoint(path)  # weights only: a crafted pickle is refused, never run
    meta = saved["meta"]
    missing = [k for k in ("dataset", "seed", "genotype", "network") if k not in meta]
    if missing:
        raise ValueError(f"checkpoint {str(path)!r} is not a lightsnn training checkpoint (meta lacks {missing})")
    config = config or {}
    device = resolve_device(config.get("device"))
    try:
        arch, netcfg = get_family(meta.get("family")).load(meta["genotype"], meta["network"])
    except ValueError as err:  # an edited or foreign checkpoint: say which file
        raise ValueError(f"checkpoint {str(path)!r}: {err}") from None
    search = meta.get("search")
    if search is not None:
        search = {**search, "details": search.get("details") or {}}
    require_network_memory(netcfg, batch_size, device, training=False, batch="the evaluation batch size")
    model, logits = build_model(netcfg, arch, search)
    _load_weights(model, saved["model"], path, arch)
    if logits is not None:
        model.set_logits(saved["logits"])
    model.to(device)
    data = DataOptions.recorded_on_this_machine(meta.get("data"), config.get("data"))  # never the checkpoint's paths
    splits = load_splits(meta["dataset"], data, netcfg.timesteps, progress)
    require_network_fits_data(netcfg, meta["dataset"], splits.test[0][0], f"checkpoint {str(path)!r}")
    loader = DataLoader(splits.test, batch_size=batch_size, shuffle=False, collate_fn=collate(splits.events))
    topk = (1, 5) if netcfg.num_classes >= 5 else (1,)
    start = time.perf_counter()
    acc = evaluate_accuracy(model, loader, device, loss_fn(meta.get("loss", "ce"), netcfg.num_classes), topk)
    sar = spiking_activity_rate(model, loader, device)
    ops = operation_counts(model, loader, device, energy_samples)
    sample = collate(splits.events)([splits.test[0]])[0]
    latency = latency_per_sample(model, sample, device)
    return {
        "schema_version": EVAL_SCHEMA_VERSION, "kind": "evaluate", "checkpoint": str(path),
        "dataset": meta["dataset"], "seed": meta["seed"], "family": arch.family, "genotype": meta["genotype"],
        "method": (search or {}).get("method"),
        "top1": acc["top1"], "top5": acc.get("top5"), "test_loss": acc["loss"], "test_samples": len(splits.test),
        "sar": sar["sar"], "spikes": sar["spikes"], "neuron_steps": sar["neuron_steps"],
        **memory_footprint(model, bits), "bits": bits,
        **{k: v for k, v in ops.items() if k != "samples"}, "op_count_samples": ops["samples"],
        "latency_seconds_per_sample": latency, "seconds": time.perf_counter() - start,
        "device": str(device), "versions": versions(),
    }
