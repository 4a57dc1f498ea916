"""LightSNN: pruning by importance over a supernet with the SAHD score (methods.md §3.2)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from lightsnn.core.options import opt
from lightsnn.search.method_options import BN_MODES, ScoringOptions
from lightsnn.search.protocol import Method, SearchContext, SearchRecord, SearchResult, timed
from lightsnn.search.scoring import CandidateScorer, Scorer
from lightsnn.space.genotype import edge_key
from lightsnn.space.network import POOLINGS, SuperNet
from lightsnn.space.ops import SPACES

PRUNED = -1000.0  # the logit LightSNN writes for a removed op


@dataclass(frozen=True)
class LightSNNOptions(ScoringOptions):
    section: ClassVar[str] = "search.lightsnn"
    space: str | list[str] = opt("lightsnn-ops", "op space: a named space (" + ", ".join(SPACES) + ") or a list of ops")
    pooling: str = opt("max", "resdown pooling of the macro network (LightSNN: max)", POOLINGS)
    batch_size: int = opt(32, "search batch size (paper 32; released code 64)", min=2)
    bn_mode: str = opt("eval", "BatchNorm/Dropout mode while scoring (LightSNN calls eval())", BN_MODES)
    threshold: float = opt(0.01, "an op runs while its softmax weight exceeds this", min=0.0, max=1.0)
    separate_cell_alphas: bool = opt(False, "one set of logits per cell instead of one shared by both")
    stacked: bool = opt(True, "score a round's candidates in stacked forward passes (same scores; used with "
                              "eval-mode BN, fixed batches and reset state, else one at a time)")
    max_chunk: int = opt(0, "most candidates per stacked pass; 0: as many as half the free memory holds", min=0)
    compat_flags: ClassVar[tuple[str, ...]] = ("dead_backward", "carry_state", "count_normalize",
                                               "fresh_batches", "trained_logits")

    def planned_work(self, train_samples: int) -> tuple[str, int]:
        from lightsnn.space.genotype import edges_of

        return "lightsnn_search", expected_scorings(len(edges_of(self.cell_type)), len(self.space),
                                                    2 if self.separate_cell_alphas else 1)


def expected_scorings(num_edges: int, num_ops: int, num_alpha_cells: int = 1) -> int:
    """Each round scores every remaining op of every edge, then prunes one op per edge."""
    return num_alpha_cells * num_edges * sum(range(2, num_ops + 1))


@timed
def run_lightsnn(options: LightSNNOptions, ctx: SearchContext) -> SearchResult:
    """Score the supernet with each remaining op of each edge removed; prune per edge the op whose
    removal scores highest; repeat until one op per edge remains."""
    torch.manual_seed(ctx.seed)
    flags = options.compat()
    record = SearchRecord()
    batches = ctx.batches(options)
    net = SuperNet(ctx.net_config, options.search_space(), shared=not options.separate_cell_alphas,
                   threshold=options.threshold, dead_backward="dead_backward" in flags).to(ctx.device)
    scorer = Scorer(options, batches, record)
    stacked = CandidateScorer(scorer, net, options.max_chunk) \
        if options.stacked and CandidateScorer.applies(options) is None else None
    logits = torch.zeros_like(net.logits)
    rounds = []
    total = expected_scorings(len(net.edges), len(net.space), logits.shape[0])
    with ctx.bar(total, "lightsnn") as bar:
        round_index = 0
        while not bool((net.active_mask(logits).sum(-1) == 1).all()):
            active = net.active_mask(logits)
            trials, removals = [], []
            for c in range(logits.shape[0]):
                for e in range(len(net.edges)):
                    if active[c, e].sum() <= 1:
                        continue
                    for o in active[c, e].nonzero().flatten().tolist():
                        trial = logits.clone()
                        trial[c, e, o] = PRUNED
                        trials.append(trial)
                        removals.append((c, e, o))
            if stacked is not None:
                scores = stacked(trials, bar.update)
            else:
                scores = []
                for trial in trials:
                    net.set_logits(trial)
                    scores.append(scorer(net))
                    bar.update()
            candidates = []
            for score, (c, e, o) in zip(scores, removals):
                record.add(score, round=round_index, cell=c, edge=edge_key(net.edges[e]), removed=net.space[o])
                candidates.append((score, (c, e, o)))
            # highest score first, non-finite never pruned first; ties: larger (cell, edge, op) first
            candidates.sort(key=lambda item: (item[0] if math.isfinite(item[0]) else -math.inf, item[1]),
                            reverse=True)
            pruned = {}
            for score, (c, e, o) in candidates:
                if (c, e) not in pruned:
                    logits[c, e, o] = PRUNED
                    pruned[(c, e)] = net.space[o]
            rounds.append({"round": round_index,
                           "pruned": {f"cell{c}:{edge_key(net.edges[e])}": op for (c, e), op in pruned.items()}})
            round_index += 1
        net.set_logits(logits)
        genotype = net.genotype()
        if stacked is not None:
            final_score = stacked([logits])[0]
        else:
            final_score = scorer(net)  # the chosen path's own score, not one of the search's scorings
    record.details = {"rounds": rounds, "final_logits": logits.tolist(),
                      "scoring": "stacked" if stacked else "one at a time",
                      **({"chunk": stacked.chunk} if stacked else {})}
    return SearchResult(genotype, final_score if math.isfinite(final_score) else None, record, ctx.net_config)


METHOD = Method("lightsnn", "LightSNN: pruning by importance over a supernet with SAHD (arXiv 2503.21846)", LightSNNOptions, run_lightsnn,
                position=20)
