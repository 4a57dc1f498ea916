"""``python -m lightsnn bench``: how close the searches and training come to this machine's conv throughput.

Inputs are random tensors of the configured size (timing only: the data does not change the work).
FLOPs are counted analytically (2 x MACs of every Conv2d and Linear call that runs); the reference is the
FLOP/s of plain ``torch.nn.functional.conv2d`` calls of exactly the conv shapes one search scoring runs,
timed in the same process.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from lightsnn.core.budget import MAX_TIMESTEPS
from lightsnn.core.options import Options, opt
from lightsnn.data import Splits
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import PRESETS, SNASNetwork, SuperNet
from lightsnn.space.neurons import run_sequence
from lightsnn.studies.flops import ConvRecorder, forward_flops


@dataclass(frozen=True)
class BenchOptions(Options):
    """The config's ``bench`` section: sizes of the measured work."""

    section: ClassVar[str] = "bench"
    channels: int = opt(32, "C of the benchmarked networks (cell2 has 2C)", min=1)
    image_size: int = opt(32, "input height = width", min=1)
    timesteps: int = opt(5, "T", min=1, max=MAX_TIMESTEPS)
    batch_size: int = opt(32, "search batch (LightSNN search and SNASNet candidates)", min=2)
    repeat: int = opt(2, "forward passes per scoring", min=1)
    snasnet_candidates: int = opt(10, "SNASNet candidates scored", min=1)
    train_batch_size: int = opt(64, "batch of the training-step benchmark", min=1)
    train_batches: int = opt(10, "training steps measured", min=1)
    genotype: str = opt("0302 0030 3003 0000", "genotype trained in the training-step benchmark")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_conv_flops_per_second(shapes: Counter, device: torch.device, dtype=torch.float32,
                                min_seconds: float = 2.0) -> float:
    """FLOP/s of bare F.conv2d over the given shapes with their multiplicities."""
    tensors = {key: (torch.randn(key[0], device=device, dtype=dtype),
                     torch.randn(key[1], device=device, dtype=dtype)) for key in shapes}
    flops_per_pass = 0.0
    for (xs, ws, pad), count in shapes.items():
        out_hw = xs[2] * xs[3]  # stride 1, same padding in every conv of the network
        flops_per_pass += 2.0 * ws[0] * ws[1] * ws[2] * ws[3] * out_hw * xs[0] * count

    def one_pass():
        for (xs, ws, pad), count in shapes.items():
            x, w = tensors[(xs, ws, pad)]
            for _ in range(count):
                F.conv2d(x, w, padding=pad)

    with torch.no_grad():
        one_pass()  # warm-up
        _sync(device)
        passes, start = 0, time.perf_counter()
        while True:
            one_pass()
            passes += 1
            _sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
    return flops_per_pass * passes / elapsed


def _random_splits(opts: BenchOptions, n: int) -> Splits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, opts.image_size, opts.image_size, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return Splits(TensorDataset(x, y), TensorDataset(x[:64], y[:64]))


def bench_network(opts: BenchOptions, pooling: str):
    """The network the bench measures: CIFAR-10's skeleton at the bench's sizes (``plan`` scales from it)."""
    return PRESETS["cifar10"].with_overrides({"channels": opts.channels, "image_size": opts.image_size,
                                              "timesteps": opts.timesteps, "pooling": pooling})


def bench_search(method: str, opts: BenchOptions, device: torch.device, overrides: dict) -> dict:
    from lightsnn.pipeline.config import method_options
    from lightsnn.search import SearchContext, get_method

    options = method_options(method, {}, {"batch_size": opts.batch_size, "repeat": opts.repeat, **overrides})
    cfg = bench_network(opts, options.pooling)
    splits = _random_splits(opts, max(256, opts.batch_size * 2))
    ctx = SearchContext(net_config=cfg, splits=splits, device=device, seed=0, progress=False)
    _sync(device)
    result = get_method(method).run(options, ctx)
    _sync(device)
    seconds = result.record.total_seconds
    flops, shapes = _replay_flops(method, result, options, cfg, opts, device)
    return {"seconds": seconds, "scorings": result.record.num_scorings,
            "scorings_per_second": result.record.num_scorings / seconds,
            "compute_seconds": result.record.compute_seconds, "data_seconds": result.record.data_seconds,
            "scoring": result.record.details.get("scoring"), "chunk": result.record.details.get("chunk"),
            "flops": flops, "flops_per_second": flops / seconds, "conv_shapes": shapes}


def _replay_flops(method, result, options, cfg, opts, device):
    """FLOPs of the whole search, counted by replaying each scored architecture on one forward."""
    net = SuperNet(cfg, options.search_space(), shared=True).to(device).eval()
    x = torch.zeros(1, 3, opts.image_size, opts.image_size, device=device)  # FLOPs scale with the batch
    total, first_shapes = 0.0, None
    per_arch: dict = {}
    for entry in result.record.candidates:
        if method == "lightsnn":
            logits = torch.zeros_like(net.logits)
            for rnd in result.record.details["rounds"][: entry["round"]]:
                for key, op in rnd["pruned"].items():
                    cell, edge = key.split(":")
                    logits[int(cell[4:]), [f"{a}->{b}" for a, b in net.edges].index(edge), net.space.index(op)] = -1000
            e = [f"{a}->{b}" for a, b in net.edges].index(entry["edge"])
            logits[entry["cell"], e, net.space.index(entry["removed"])] = -1000
            key = tuple(logits.flatten().tolist())
            arch = logits
        else:
            key = entry["genotype"]
            arch = Genotype.from_str(entry["genotype"])
        if key not in per_arch:
            net.set_logits(arch) if method == "lightsnn" else net.set_genotype(arch)
            rec = ConvRecorder(net)
            with torch.no_grad():
                run_sequence(net, x)
            rec.close()
            per_arch[key] = (rec.flops, rec.conv_shapes)
        flops, shapes = per_arch[key]
        total += flops * opts.repeat * opts.batch_size
        if first_shapes is None:  # the conv calls of one scoring, at the real batch size
            first_shapes = Counter({((opts.batch_size,) + k[0][1:], k[1], k[2]): v * opts.repeat
                                    for k, v in shapes.items()})
    return total, first_shapes


#: Training variants the suite measures side by side (before/after in one run): the speed options each sets
#: (``TrainOptions.SPEED_OPTIONS``). ``plan`` costs a config's trainings with the variant of its options on the
#: bench's device (on CUDA the defaults are the last one, elsewhere the first).
TRAINING_VARIANTS: dict[str, dict] = {
    "fp32": {"bf16": False, "channels_last": False, "device_data": False},
    "fp32_device_data": {"bf16": False, "channels_last": False, "device_data": True},
    "bf16_channels_last_device_data": {"bf16": True, "channels_last": True, "device_data": True},
}


def bench_training(opts: BenchOptions, device: torch.device, variant: dict | None = None) -> dict:
    """Training epochs of ``opts.train_batches`` batches through the real :class:`Trainer` (its loader, its step,
    its precision and memory format) on CIFAR-shaped uint8 images with the papers' augmentation, so a
    ``device_data`` variant measures the device pipeline a CIFAR training gets; one warm-up epoch first. The
    network is CIFAR's (32 x 32 inputs) whatever ``opts.image_size`` says: that is the data path measured.
    ``variant``: speed options (a :data:`TRAINING_VARIANTS` value); those it leaves out take the device's
    defaults, and the figures record what ran."""
    import tempfile

    import numpy as np

    from lightsnn.data.static import ArrayImageDataset, cifar_transforms
    from lightsnn.training.train import Trainer, TrainOptions

    variant = variant or {}
    opts = replace(opts, image_size=32)
    cfg = bench_network(opts, "max")
    torch.manual_seed(0)
    net = SNASNetwork.from_genotype(cfg, Genotype.from_str(opts.genotype))
    rng = np.random.default_rng(0)
    n = opts.train_batches * opts.train_batch_size
    images = rng.integers(0, 256, (n, opts.image_size, opts.image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    train = ArrayImageDataset(images, labels, cifar_transforms("cifar10")[0])
    options = TrainOptions(epochs=2, batch_size=opts.train_batch_size, max_batches=opts.train_batches, **variant)
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(net, options, Splits(train, train), device, seed=0, out_dir=Path(folder), num_classes=10,
                          loss_kind="ce", progress=False, log=lambda _: None)
        used = {key: getattr(trainer.options, key) for key in TrainOptions.SPEED_OPTIONS}  # null ones decided
        trainer.train_epoch(1)  # warm-up: kernels, cuDNN's algorithm choice, the allocator
        _sync(device)
        start = time.perf_counter()
        epoch = trainer.train_epoch(2)
        _sync(device)
        seconds = time.perf_counter() - start
    flops = 3.0 * forward_flops(cfg, opts.genotype) * epoch["samples"]  # backward ~ 2x forward; shapes only
    return {"samples_per_second": epoch["samples"] / seconds, "seconds": seconds, "batches": opts.train_batches,
            "options": used, "flops_per_second": flops / seconds,
            "flops_note": "3 x forward FLOPs per step (backward ~ 2x)"}


def require_bench_memory(opts: BenchOptions, device: torch.device, flags: list[str] | None = None) -> None:
    """The searches' and the training's networks at these sizes fit the device, or one line naming the flags."""
    from lightsnn.pipeline.jobs import require_network_memory

    netcfg = bench_network(opts, "max")
    require_network_memory(netcfg, opts.batch_size, device, training=False, batch="bench.batch_size", flags=flags,
                           sizes="bench.timesteps, bench.channels, bench.image_size")
    require_network_memory(bench_network(opts, "avg"), opts.train_batch_size, device, training=True,
                           batch="bench.train_batch_size", flags=flags,
                           sizes="bench.timesteps, bench.channels, bench.image_size")


def run_bench(opts: BenchOptions, device: torch.device, log=print, flags: list[str] | None = None) -> dict:
    """The measured work at ``opts``' sizes; ``flags``: the command-line flags given, named if a size is refused."""
    require_bench_memory(opts, device, flags)
    figures: dict = {"options": asdict(opts), "device": str(device), "threads": torch.get_num_threads(),
                     "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    log(f"bench on {figures['device_name']} ({figures['threads']} threads): C={opts.channels} "
        f"{opts.image_size}x{opts.image_size} B={opts.batch_size} T={opts.timesteps}")
    light = bench_search("lightsnn", opts, device, {})
    conv = plain_conv_flops_per_second(light.pop("conv_shapes"), device)
    figures["lightsnn"] = {**light, "plain_conv_flops_per_second": conv}
    figures["search_conv_ratio"] = light["flops_per_second"] / conv
    log(f"lightsnn search ({light['scoring']}, {light['chunk']} candidates per pass): {light['scorings']} scorings "
        f"in {light['seconds']:.1f}s "
        f"({light['scorings_per_second']:.3f}/s), {light['flops_per_second'] / 1e9:.1f} GFLOP/s; plain conv2d of "
        f"the same shapes {conv / 1e9:.1f} GFLOP/s; ratio {figures['search_conv_ratio']:.2f}")
    snas = bench_search("snasnet", opts, device, {"num_search": opts.snasnet_candidates})
    snas_conv = plain_conv_flops_per_second(snas.pop("conv_shapes"), device, min_seconds=1.0)
    figures["snasnet"] = {**snas, "plain_conv_flops_per_second": snas_conv,
                          "conv_ratio": snas["flops_per_second"] / snas_conv}
    log(f"snasnet search: {snas['scorings']} candidates in {snas['seconds']:.1f}s "
        f"({snas['scorings_per_second']:.2f}/s), {snas['flops_per_second'] / 1e9:.1f} GFLOP/s, ratio to plain conv "
        f"{figures['snasnet']['conv_ratio']:.2f}")
    train = bench_training(opts, device)
    figures["training"] = train
    log(f"training: {train['samples_per_second']:.0f} samples/s, {train['flops_per_second'] / 1e9:.1f} GFLOP/s "
        f"(batch {opts.train_batch_size}, genotype {opts.genotype})")
    return figures


# --- the suite: the five workloads a paper-size run pays for, each at the size users run ----------------------
#: Sizes per suite. ``paper``: the papers' presets on CIFAR-10 (by the H200 figures of 2026-12-04 in
#: docs/bench.md about a minute, most of it the LightSNN search and the LitE-SNN steps; the suite itself has not
#: run there yet); ``smoke``: the same code at tiny sizes, for a CPU and the test suite.
SUITES: dict[str, dict] = {
    "paper": {"bench": {"channels": 256, "image_size": 32, "timesteps": 5, "batch_size": 32, "repeat": 2,
                        "snasnet_candidates": 20, "train_batch_size": 64, "train_batches": 10,
                        "genotype": "0313 3031 1303 3310"},  # a LightSNN pick: 10 conv edges per cell
              "snasnet_batch": 256, "benchmark": {"width": 128, "batch_size": 64, "batches": 2, "archs": 20},
              "litesnn": {"preset": "paper", "batch_size": 120, "steps": 6}},
    "smoke": {"bench": {"channels": 4, "image_size": 8, "timesteps": 2, "batch_size": 4, "repeat": 1,
                        "snasnet_candidates": 2, "train_batch_size": 4, "train_batches": 2,
                        "genotype": "0313 3031 1303 3310"},
              "snasnet_batch": 8, "benchmark": {"width": 4, "batch_size": 4, "batches": 1, "archs": 2},
              "litesnn": {"preset": "tiny", "batch_size": 4, "steps": 2}},
}


def bench_benchmark_scoring(sizes: dict, timesteps: int, device: torch.device) -> dict:
    """Kernel proxies (SAHD and its relatives, Hamming, the counts) of SpikeNAS-Bench architectures at the
    benchmark's width, on random images (timing only: no benchmark files are needed)."""
    import numpy as np

    from lightsnn.nasbench.benchmark_options import BenchmarkOptions
    from lightsnn.nasbench.spikenas_bench import NUM_ARCHS, genotype_of, is_valid
    from lightsnn.proxies.registry import PROXIES
    from lightsnn.studies.nasbench import score_architecture

    class Space:  # what score_architecture reads of a benchmark: its genotypes and its network
        genotype = staticmethod(genotype_of)

        @staticmethod
        def network(width: int | None = None):
            return PRESETS["spikenas-bench"].with_overrides(None if width is None else {"channels": width})

    kernel = [name for name, proxy in PROXIES.items() if proxy.kind in ("kernel", "count")]
    options = BenchmarkOptions(width=sizes["width"], weight_seeds=1, batch_size=sizes["batch_size"],
                               batches=sizes["batches"], proxies=kernel)
    image_size = Space.network().image_size  # the benchmark's network, at its own input size
    rng = np.random.default_rng(0)
    valid = [i for i in rng.permutation(NUM_ARCHS)[:4 * sizes["archs"]] if is_valid(int(i))][: sizes["archs"]]
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(sizes["batch_size"], 3, image_size, image_size, generator=g).to(device)
               for _ in range(sizes["batches"])]
    labels = [torch.randint(0, 10, (sizes["batch_size"],), generator=g).to(device) for _ in range(sizes["batches"])]
    score_architecture(Space, int(valid[0]), options, batches, device, labels)  # warm-up (kernels, allocator)
    _sync(device)
    start = time.perf_counter()
    for arch in valid:
        score_architecture(Space, int(arch), options, batches, device, labels)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"architectures": len(valid), "seconds": seconds, "seconds_per_architecture": seconds / len(valid),
            "proxies": kernel, "width": sizes["width"], "timesteps": timesteps}


def bench_litesnn(sizes: dict, image_size: int, device: torch.device) -> dict:
    """Bi-level steps of LitE-SNN's search at its preset (weights on one half, architecture on the other)."""
    from lightsnn.pipeline.config import method_options
    from lightsnn.search import SearchContext, get_method
    from lightsnn.search.litesnn import SIZE_PRESETS

    options = method_options("litesnn", {}, {"preset": sizes["preset"], "epochs": 2, "warmup_epochs": 1,
                                             "batch_size": sizes["batch_size"], "max_batches": sizes["steps"]}, "cifar10")
    n = 2 * sizes["batch_size"] * sizes["steps"] + 2
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, image_size, image_size, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    preset = bench_network(BenchOptions(image_size=image_size, timesteps=SIZE_PRESETS[sizes["preset"]]["max_timesteps"]),
                         "avg")
    ctx = SearchContext(net_config=options.search_network(preset), splits=Splits(TensorDataset(x, y),
                        TensorDataset(x[:8], y[:8])), device=device, seed=0, progress=False, log=lambda _: None)
    _sync(device)
    result = get_method("litesnn").run(options, ctx)
    _sync(device)
    steps = 2 * sizes["steps"]  # two epochs: the warm-up one and one with psi updates
    return {"steps": steps, "seconds": result.record.total_seconds,
            "seconds_per_step": result.record.compute_seconds / steps, "batch_size": sizes["batch_size"],
            "preset": sizes["preset"]}


def run_suite(name: str, device: torch.device, log=print) -> dict:
    """The five workloads of ``SUITES[name]``: a table on the log and one JSON-able dict (``plan`` reads it)."""
    if name not in SUITES:
        raise ValueError(f"unknown bench suite {name!r}; known: {', '.join(SUITES)}")
    suite = SUITES[name]
    opts = BenchOptions(**suite["bench"])
    figures: dict = {"suite": name, "device": str(device), "threads": torch.get_num_threads(),
                     "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     "torch": torch.__version__, "options": asdict(opts), "workloads": {}}
    work = figures["workloads"]
    log(f"bench suite {name} on {figures['device_name']} ({figures['threads']} threads), torch {torch.__version__}")
    started = time.perf_counter()
    # untimed: the device's context, cuDNN's first fp32 and bf16 convolutions, the allocator; without it the first
    # workload (and the first bf16 one) would pay them
    for bf16 in (False, True):
        bench_search("snasnet", opts, device, {"num_search": 2, "batch_size": suite["snasnet_batch"], "bf16": bf16})
    figures["warm_up_seconds"] = time.perf_counter() - started
    light = _without_shapes(bench_search("lightsnn", opts, device, {}))
    work["lightsnn_search"] = {**light, "seconds_per_scoring": light["seconds"] / light["scorings"]}
    snas = _without_shapes(bench_search("snasnet", opts, device, {"num_search": opts.snasnet_candidates,
                                                                  "batch_size": suite["snasnet_batch"]}))
    work["snasnet_search"] = {**snas, "seconds_per_scoring": snas["seconds"] / snas["scorings"],
                              "batch_size": suite["snasnet_batch"]}
    work["benchmark_scoring"] = bench_benchmark_scoring(suite["benchmark"], opts.timesteps, device)
    work["snasnet_search_bf16"] = _without_shapes(bench_search(
        "snasnet", opts, device, {"num_search": opts.snasnet_candidates, "batch_size": suite["snasnet_batch"],
                                  "bf16": True}))
    variants = {name: bench_training(opts, device, variant) for name, variant in TRAINING_VARIANTS.items()}
    work["training"] = variants[next(iter(TRAINING_VARIANTS))]
    work["training_variants"] = variants
    work["litesnn_step"] = bench_litesnn(suite["litesnn"], opts.image_size, device)
    figures["seconds"] = time.perf_counter() - started
    rows = [("LightSNN search", f"{light['scorings']} scorings in {light['seconds']:.1f} s",
             _rate(light["flops_per_second"])),
            ("SNASNet search", f"{snas['scorings']} candidates in {snas['seconds']:.1f} s",
             _rate(snas["flops_per_second"])),
            ("benchmark scoring", f"{work['benchmark_scoring']['seconds_per_architecture']:.3f} s per architecture",
             f"C={suite['benchmark']['width']}"),
            ("SNASNet search, bf16", f"{work['snasnet_search_bf16']['scorings']} candidates in "
             f"{work['snasnet_search_bf16']['seconds']:.1f} s", _rate(work["snasnet_search_bf16"]["flops_per_second"])),
            *((f"training, {name.replace('_', ' ')}", f"{v['samples_per_second']:.0f} samples/s",
               _rate(v["flops_per_second"])) for name, v in variants.items()),
            ("LitE-SNN search", f"{work['litesnn_step']['seconds_per_step']:.3f} s per bi-level step",
             f"batch {suite['litesnn']['batch_size']}")]
    width = max(len(r[0]) for r in rows)
    for workload, speed, rate in rows:
        log(f"  {workload:{width}s}  {speed:40s} {rate}")
    log(f"suite {name}: {figures['seconds']:.0f} s")
    return figures


def _without_shapes(figures: dict) -> dict:
    figures.pop("conv_shapes")
    return figures


def _rate(flops_per_second: float) -> str:
    return (f"{flops_per_second / 1e12:.2f} TFLOP/s" if flops_per_second >= 1e12
            else f"{flops_per_second / 1e9:.2f} GFLOP/s")
