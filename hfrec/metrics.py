"""HR / NDCG / MRR at K for one target per user, over candidate lists or the whole catalogue.

Work in ranks: `target_ranks` turns a batch of scores into 0-based ranks of the positive, batches are
concatenated, and `metrics_from_ranks` averages. Ties count against the target (a model that gives every
item the same score ranks the target last, not first), so constant scorers cannot look good.

Broken scores never look good either: a row whose target score is not finite, or that holds a NaN or +inf
anywhere, is *invalid* (`invalid_score_rows`); it ranks the target after every column and counts as a miss
at every K. `-inf` stays legitimate for the other columns: it is how history masking and missing
candidates are written.
"""

from __future__ import annotations

import logging
from typing import Iterable, Sequence

import torch

logger = logging.getLogger(__name__)

DEFAULT_KS = (1, 5, 10)


def invalid_score_rows(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B,) bool: rows whose scores cannot be ranked honestly.

    A row is invalid when its target score is NaN, +inf or -inf (a masked target is a miss, not a tie),
    or when any of its scores is NaN or +inf (comparisons with NaN are all false, so a NaN row would
    otherwise put the target first). `-inf` in other columns is valid: masked history, missing candidates.
    The raw row is checked, before any exclusion, so a broken scorer is reported even in masked columns.
    """
    scores = torch.as_tensor(scores)
    targets = torch.as_tensor(targets, device=scores.device).long().view(-1, 1)
    target_scores = scores.gather(1, targets).squeeze(1)
    return ~torch.isfinite(target_scores) | (torch.isnan(scores) | (scores == float("inf"))).any(1)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None,
                 return_invalid: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """0-based rank of each row's target column among that row's scores.

    Args:
        scores: (B, C) scores, higher is better.
        targets: (B,) column index of the positive in each row.
        exclude: optional (B, M) column indices to drop from the ranking (e.g. the user's history for
            full ranking); pad with any column the target never takes (hfrec uses 0, the padding item).
        return_invalid: also return the (B,) bool mask of `invalid_score_rows`.

    Rows with invalid scores get rank C (after every column): a miss at every K <= C. Pass the mask to
    `metrics_from_ranks(..., invalid=...)` to make them misses at larger K too.
    """
    scores = torch.as_tensor(scores)
    if scores.dim() != 2:
        raise ValueError(f"scores must be (batch, columns), got shape {tuple(scores.shape)}")
    targets = torch.as_tensor(targets, device=scores.device).long().view(-1)
    if targets.numel() != scores.shape[0]:
        raise ValueError(f"{targets.numel()} targets for {scores.shape[0]} rows of scores")
    if targets.numel() and (targets.min() < 0 or targets.max() >= scores.shape[1]):
        raise ValueError(f"target index out of range [0, {scores.shape[1]}): min {int(targets.min())}, "
                         f"max {int(targets.max())}")
    scores = scores.float()
    invalid = invalid_score_rows(scores, targets)
    if exclude is not None:
        exclude = torch.as_tensor(exclude, device=scores.device).long()
        if bool((exclude == targets[:, None]).any()):
            raise ValueError("a target is among its own excluded items; the split is broken (target in history)")
        scores = scores.scatter(1, exclude, float("-inf"))
    target_scores = scores.gather(1, targets[:, None])
    better = (scores > target_scores).sum(1)
    ties = (scores == target_scores).sum(1) - 1  # the target ties with itself
    ranks = torch.where(invalid, scores.shape[1], better + ties)
    return (ranks, invalid) if return_invalid else ranks


def metrics_from_ranks(ranks: torch.Tensor, ks: Iterable[int] = DEFAULT_KS,
                       invalid: torch.Tensor | None = None) -> dict[str, float]:
    """HR@k, NDCG@k, MRR@k averaged over `ranks`; rows flagged in `invalid` are misses at every k."""
    ranks = torch.as_tensor(ranks).double().view(-1)
    if ranks.numel() == 0:
        raise ValueError("no ranks to average: the evaluation set is empty")
    valid = torch.ones_like(ranks, dtype=torch.bool)
    if invalid is not None:
        invalid = torch.as_tensor(invalid, device=ranks.device).bool().view(-1)
        if invalid.numel() != ranks.numel():
            raise ValueError(f"invalid mask has {invalid.numel()} rows for {ranks.numel()} ranks")
        valid = ~invalid
    # Negative, NaN or infinite ranks are not ranks; clamping keeps every metric finite whatever comes in.
    valid &= torch.isfinite(ranks) & (ranks >= 0)
    safe = torch.where(valid, ranks, 0.0)
    result = {}
    for k in ks:
        hit = valid & (safe < k)
        result[f"HR@{k}"] = hit.double().mean().item()
        result[f"NDCG@{k}"] = torch.where(hit, 1.0 / torch.log2(safe + 2), 0.0).mean().item()
        result[f"MRR@{k}"] = torch.where(hit, 1.0 / (safe + 1), 0.0).mean().item()
    return result


def ranking_metrics(scores: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = DEFAULT_KS,
                    exclude: torch.Tensor | None = None) -> dict[str, float]:
    """HR@k, NDCG@k and MRR@k of one batch (or a whole evaluation set) of scores.

    Rows with invalid scores (`invalid_score_rows`) are misses; their count is logged and returned as
    `invalid_score_rows`, a key present only when it is not zero.

    >>> ranking_metrics(torch.tensor([[0.1, 0.9, 0.3]]), torch.tensor([1]), ks=(1,))
    {'HR@1': 1.0, 'NDCG@1': 1.0, 'MRR@1': 1.0}
    """
    ranks, invalid = target_ranks(scores, targets, exclude, return_invalid=True)
    result = metrics_from_ranks(ranks, ks, invalid=invalid)
    bad = int(invalid.sum())
    if bad:
        logger.warning("%d of %d rows have invalid scores (NaN, +inf, or a non-finite target score); they count "
                       "as misses. Check the scorer for overflow or division by zero.", bad, invalid.numel())
        result["invalid_score_rows"] = bad
    return result


def candidate_target_index(candidates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Column of each row's target item inside its candidate list (exactly one must match)."""
    candidates, targets = torch.as_tensor(candidates), torch.as_tensor(targets).view(-1, 1)
    matches = candidates == targets
    if not bool((matches.sum(1) == 1).all()):
        bad = int((matches.sum(1) != 1).nonzero()[0])
        raise ValueError(f"row {bad}: the target must appear exactly once in its candidate list")
    return matches.float().argmax(1)


def _ranking_metric_class():
    """An `evaluate.Metric` wrapper, built lazily: `evaluate` is optional at import time."""
    import datasets
    import evaluate

    class RankingMetric(evaluate.Metric):
        """`evaluate` front-end: `RankingMetric().compute(predictions=scores, references=target_columns)`."""

        def _info(self):
            return evaluate.MetricInfo(
                description="HR@K, NDCG@K and MRR@K of one positive per row (ties count against it).",
                citation="",
                inputs_description="predictions: list of per-row score lists; references: the target column.",
                features=datasets.Features({
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Value("int64"),
                }),
            )

        def _compute(self, predictions, references, ks=DEFAULT_KS):
            return ranking_metrics(torch.tensor(predictions), torch.tensor(references), ks=ks)

    return RankingMetric


def load_ranking_metric(**kwargs):
    """Return an `evaluate.Metric` computing `ranking_metrics` (supports `add_batch` and distributed runs)."""
    return _ranking_metric_class()(**kwargs)


__all__ = ["DEFAULT_KS", "candidate_target_index", "invalid_score_rows", "load_ranking_metric",
           "metrics_from_ranks", "ranking_metrics", "target_ranks"]
