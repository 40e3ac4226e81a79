"""HR / NDCG / MRR at K for one target per user, over candidate lists or the whole catalogue.

Work in ranks: `target_ranks` turns a batch of scores into 0-based ranks of the positive, batches are
concatenated, and `metrics_from_ranks` averages. Ties count against the target (a model that gives every
item the same score ranks the target last, not first), so constant scorers cannot look good.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

DEFAULT_KS = (1, 5, 10)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """0-based rank of each row's target column among that row's scores.

    Args:
        scores: (B, C) scores, higher is better.
        targets: (B,) column index of the positive in each row.
        exclude: optional (B, M) column indices to drop from the ranking (e.g. the user's history for
            full ranking); pad with any column the target never takes (hfrec uses 0, the padding item).
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
    if exclude is not None:
        exclude = torch.as_tensor(exclude, device=scores.device).long()
        if bool((exclude == targets[:, None]).any()):
            raise ValueError("a target is among its own excluded items; the split is broken (target in history)")
        scores = scores.scatter(1, exclude, float("-inf"))
    target_scores = scores.gather(1, targets[:, None])
    better = (scores > target_scores).sum(1)
    ties = (scores == target_scores).sum(1) - 1  # the target ties with itself
    return better + ties


def metrics_from_ranks(ranks: torch.Tensor, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    ranks = torch.as_tensor(ranks).double().view(-1)
    if ranks.numel() == 0:
        raise ValueError("no ranks to average: the evaluation set is empty")
    result = {}
    for k in ks:
        hit = ranks < k
        result[f"HR@{k}"] = hit.double().mean().item()
        result[f"NDCG@{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 2), 0.0).mean().item()
        result[f"MRR@{k}"] = torch.where(hit, 1.0 / (ranks + 1), 0.0).mean().item()
    return result


def ranking_metrics(scores: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = DEFAULT_KS,
                    exclude: torch.Tensor | None = None) -> dict[str, float]:
    """HR@k, NDCG@k and MRR@k of one batch (or a whole evaluation set) of scores.

    >>> ranking_metrics(torch.tensor([[0.1, 0.9, 0.3]]), torch.tensor([1]), ks=(1,))
    {'HR@1': 1.0, 'NDCG@1': 1.0, 'MRR@1': 1.0}
    """
    return metrics_from_ranks(target_ranks(scores, targets, exclude), ks)


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


__all__ = ["DEFAULT_KS", "candidate_target_index", "load_ranking_metric", "metrics_from_ranks",
           "ranking_metrics", "target_ranks"]
