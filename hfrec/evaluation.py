"""Honest evaluation of any scorer on a benchmark split, by the two protocols of docs/METHODS.md:
`full` (score every item, mask the user's history) and `candidates` (rank the stored candidate lists).

SR models, the popularity baseline and the LLM methods all go through `evaluate_scorer`, so every row
of the comparison table is computed the same way.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import resource
import time
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from .data import training_sequences
from .metrics import DEFAULT_KS, candidate_target_index, metrics_from_ranks, target_ranks

logger = logging.getLogger(__name__)

PROTOCOLS = ("full", "candidates")

# A scorer maps a batch of rows (dict of lists, as `Dataset[a:b]` returns) to (B, num_items + 1) scores
# for the `full` protocol, or (B, C) scores aligned with `rows["candidates"]` for `candidates`.
Scorer = Callable[[dict, str], torch.Tensor]


def left_pad(sequences: Sequence[Sequence[int]], max_length: int | None = None, pad: int = 0) -> torch.Tensor:
    """Stack id lists into a (B, L) tensor, keeping the most recent `max_length` ids, padded on the left."""
    if max_length is not None:
        sequences = [list(s)[-max_length:] if max_length > 0 else [] for s in sequences]
    width = max((len(s) for s in sequences), default=0)
    out = torch.full((len(sequences), max(width, 1)), pad, dtype=torch.long)
    for row, seq in enumerate(sequences):
        if len(seq):
            out[row, out.shape[1] - len(seq):] = torch.as_tensor(list(seq), dtype=torch.long)
    return out


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}: use one of {PROTOCOLS}.")
    return protocol


def process_rank_and_count() -> tuple[int, int]:
    """``(rank, world_size)`` of this process in a ``torch.distributed`` run (``accelerate launch``), else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


@torch.no_grad()
def ranks_of(scorer: Scorer, rows, protocol: str, batch_size: int = 256, progress: bool = True,
             desc: str = "ranking", return_invalid: bool = False, distributed: bool = True
             ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """0-based rank of every row's target under `scorer` (history masked for `full`).

    Rows whose scores are invalid (NaN, +inf, or a non-finite target score; see
    `hfrec.metrics.invalid_score_rows`) rank last and are counted; a warning names how many.
    With `return_invalid=True` the (N,) bool mask of those rows comes back too.

    In a multi-process run (`accelerate launch`, `torchrun`) each process scores a contiguous 1/N of the rows and
    the ranks are gathered once, in row order, so every process returns the same ranks of all rows
    (`distributed=False`: this process scores every row).
    """
    check_protocol(protocol)
    rank, world = process_rank_and_count() if distributed else (0, 1)
    total = len(rows)
    if world > 1:
        per = -(-total // world)
        rows = rows.select(range(min(rank * per, total), min((rank + 1) * per, total)))
    all_ranks, all_invalid = [], []
    for start in tqdm(range(0, len(rows), batch_size), desc=f"{desc} ({protocol})", disable=not progress or rank > 0,
                      leave=False):
        batch = rows[start:start + batch_size]
        scores = scorer(batch, protocol).float().cpu()
        targets = torch.as_tensor(batch["target"])
        if protocol == "full":
            ranks, invalid = target_ranks(scores, targets, exclude=left_pad(batch["full_history"]),
                                          return_invalid=True)
        else:
            candidates = torch.as_tensor(batch["candidates"])
            if scores.shape != candidates.shape:
                raise ValueError(f"scorer returned {tuple(scores.shape)} scores for candidates of shape "
                                 f"{tuple(candidates.shape)}")
            ranks, invalid = target_ranks(scores, candidate_target_index(candidates, targets), return_invalid=True)
        all_ranks.append(ranks)
        all_invalid.append(invalid)
    ranks = torch.cat(all_ranks) if all_ranks else torch.empty(0, dtype=torch.long)
    invalid = torch.cat(all_invalid) if all_invalid else torch.empty(0, dtype=torch.bool)
    if world > 1:  # one gather of every process's part, in rank order = row order
        parts = [None] * world
        torch.distributed.all_gather_object(parts, (ranks.tolist(), invalid.tolist()))
        ranks = torch.tensor([r for part, _ in parts for r in part], dtype=torch.long)
        invalid = torch.tensor([i for _, part in parts for i in part], dtype=torch.bool)
    bad = int(invalid.sum())
    if bad and rank == 0:  # counted over the whole evaluation, so one line says how much of the table is affected
        first = invalid.nonzero().view(-1)[:5].tolist()
        logger.warning("%s (%s): %d of %d rows had invalid scores (NaN, +inf, or a non-finite target score) and "
                       "count as misses (first rows: %s). Fix the scorer: look for overflow, log(0) or 0/0.",
                       desc, protocol, bad, len(invalid), first)
    return (ranks, invalid) if return_invalid else ranks


def rows_fingerprint(rows, protocol: str) -> str:
    """A digest of what a ranking was asked: each row's user, target and (for ``candidates``) its stored candidate
    list, in order. Two evaluations with the same fingerprint ranked the same users on the same lists."""
    columns = ["user_id", "target"] + (["candidates"] if protocol == "candidates" else [])
    present = [c for c in columns if c in rows.column_names] if hasattr(rows, "column_names") else columns
    payload = {"protocol": protocol, **{c: list(rows[c]) for c in present}}
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()[:16]


def peak_memory_mb() -> float:
    """Peak memory so far: the GPU's allocator peak when CUDA is in use, else this process's peak resident set."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


class RankedMetrics(dict):
    """The metrics of one evaluation (a plain ``dict`` of floats to every reader), carrying what a comparison of
    rows needs besides them: each row's 0-based target rank (``None`` for a row with invalid scores: a miss at every k, as the metrics
    count it),
    the users ranked, the rows' fingerprint (``rows_fingerprint``) and the ranking's wall seconds.
    ``hfrec.methods.common.ranking.RankingTable.add`` stores these in the ``eval_results.json`` record, so the
    benchmark table can recompute any metric, pair two rows user by user, and refuse rows ranked on other lists."""

    ranks: list[int]
    user_ids: list
    fingerprint: str | None
    seconds: float


def evaluate_scorer(scorer: Scorer, rows, protocol: str, ks=DEFAULT_KS, batch_size: int = 256,
                    progress: bool = True, desc: str = "ranking") -> RankedMetrics:
    """HR/NDCG/MRR@`ks` of `scorer` on `rows`; adds `invalid_score_rows` (a count) only when it is not zero.
    The result also carries the per-row ranks and the rows' identity (:class:`RankedMetrics`)."""
    start = time.perf_counter()
    ranks, invalid = ranks_of(scorer, rows, protocol, batch_size, progress, desc, return_invalid=True)
    metrics = RankedMetrics(metrics_from_ranks(ranks, ks, invalid=invalid))
    if bool(invalid.any()):
        metrics["invalid_score_rows"] = int(invalid.sum())
    metrics.ranks = [None if bad else int(r) for r, bad in zip(ranks.tolist(), invalid.tolist())]
    has_users = "user_id" in getattr(rows, "column_names", ())
    metrics.user_ids = list(rows["user_id"]) if has_users else list(range(len(rows)))
    metrics.fingerprint = rows_fingerprint(rows, protocol) if hasattr(rows, "column_names") else None
    metrics.seconds = round(time.perf_counter() - start, 2)
    return metrics


def sr_model_scorer(model, max_seq_length: int | None = None) -> Scorer:
    """Scorer for any hfrec SR model (the `predict_scores` / `score_candidates` contract)."""
    length = max_seq_length or getattr(model.config, "max_seq_length", None)
    device = next(model.parameters()).device

    def score(batch: dict, protocol: str) -> torch.Tensor:
        model.eval()
        input_ids = left_pad(batch["history"], length).to(device)
        if protocol == "full":
            return model.predict_scores(input_ids)
        return model.score_candidates(input_ids, torch.as_tensor(batch["candidates"], device=device))

    return score


def popularity_scorer(train_rows, num_items: int) -> Scorer:
    """Most-popular baseline: an item's score is its count of training interactions."""
    counts = torch.zeros(num_items + 1)
    for sequence in training_sequences(train_rows):
        counts.index_add_(0, torch.as_tensor(sequence), torch.ones(len(sequence)))
    counts[0] = float("-inf")

    def score(batch: dict, protocol: str) -> torch.Tensor:
        if protocol == "full":
            return counts.expand(len(batch["target"]), -1)
        return counts[torch.as_tensor(batch["candidates"])]

    return score


def evaluation_record(metrics: dict, *, dataset: str, split: str, protocol: str, num_candidates: int, seed: int,
                      model_type: str, num_users: int, command: str | None = None, **extra) -> dict:
    """One entry of `eval_results.json` (docs/CONTRACTS.md); model cards read these."""
    return {
        "dataset": dataset, "split": split, "protocol": protocol,
        "num_candidates": num_candidates if protocol == "candidates" else None,
        "seed": seed, "model_type": model_type, "metrics": metrics, "num_users": num_users,
        "command": command, "date": datetime.date.today().isoformat(), **extra,
    }


__all__ = ["PROTOCOLS", "RankedMetrics", "Scorer", "evaluate_scorer", "peak_memory_mb", "rows_fingerprint", "evaluation_record", "left_pad", "popularity_scorer",
           "process_rank_and_count", "ranks_of", "sr_model_scorer"]
