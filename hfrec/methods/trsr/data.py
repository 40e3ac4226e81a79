"""LLM-TRSR's training material, from the training prefixes of a benchmark split.

Each chosen training row (history -> target) gets ``num_negatives`` negatives, drawn from the items the user's rows
never show (no history item or target of any of that user's rows), as the evaluation's stored candidates are drawn
from the items the user never touched: uniformly (the paper's, and how the stored candidates are drawn), or a share
``popular_share`` of them in proportion to the items' training counts (negatives that popularity alone cannot tell
from the target). The row then becomes, with the same user prompt (summary + the last ``recent_items`` items):

* pointwise (the paper's): one example per candidate, the target answered "Yes", each negative "No"
  (1 positive : 1 negative with the paper's single negative);
* listwise: one example holding the target and its negatives (``prompt_ids``, ``candidate_ids`` = each candidate's
  text + the answer suffix, ``positive`` = 0), trained by a softmax over the candidates' yes-minus-no logits
  (:class:`~hfrec.methods.trsr.trainer.TRSRSFTTrainer`); the prompt is encoded once for all of them.

Summaries are expensive, so a user's training rows share one summary: that of the history before the user's
*earliest* chosen row. No summary thus contains the target of any of the user's training rows, and each user is
summarised once per mode however many rows or epochs the training takes. Evaluation rows are summarised from the
history each row shows.
"""

from __future__ import annotations

import bisect
import itertools
import random
from typing import Mapping, Sequence

from ..common.prompts import sample_negatives
from .prompts import TRSRPrompter


def summary_histories(rows: Sequence[dict]) -> dict[int, list[int]]:
    """user id -> the history its training rows' summary covers: the history of its first row in ``rows`` (rows in
    split order, as ``select_training_rows`` returns them, so the first is the earliest prefix)."""
    out: dict[int, list[int]] = {}
    for row in rows:
        out.setdefault(int(row["user_id"]), list(row["history"]))
    return out


def item_counts(train_rows, num_items: int) -> list[float]:
    """Training interactions per item id (index 0 unused): what the popularity baseline ranks by."""
    from ...evaluation import training_sequences

    counts = [0.0] * (num_items + 1)
    for sequence in training_sequences(train_rows):
        for item in sequence:
            counts[int(item)] += 1
    return counts


def sample_popular_negatives(rng: random.Random, cumulative: Sequence[float], exclude: set[int], n: int,
                             max_tries: int = 100_000) -> list[int]:
    """``n`` distinct item ids outside ``exclude``, each drawn with probability proportional to its count
    (``cumulative``: running sums of the counts of items 1..num_items)."""
    out: list[int] = []
    seen = set(exclude)
    for _ in range(max_tries):
        if len(out) == n:
            return out
        item = bisect.bisect_right(cumulative, rng.random() * cumulative[-1]) + 1
        if item <= len(cumulative) and item not in seen:
            seen.add(item)
            out.append(item)
    if len(out) == n:
        return out
    raise ValueError(f"Cannot draw {n} popularity-weighted negatives: too few items with a count outside the "
                     "user's items; lower popular_share")


def build_training_examples(rows: Sequence[dict], prompter: TRSRPrompter, num_items: int,
                            summaries: Mapping[int, str] | None = None, seed: int = 0, num_negatives: int = 1,
                            listwise: bool = False, popular_share: float = 0.0,
                            counts: Sequence[float] | None = None) -> list[dict]:
    """The training examples of ``rows`` (the module docstring says which).

    Args:
        summaries: user id -> summary (:func:`summary_histories` says which history); None for the no-summary
            recommender.
        num_negatives: negatives per row.
        listwise: one example per row (target + negatives) instead of one per candidate.
        popular_share: share of each row's negatives drawn in proportion to ``counts`` (:func:`item_counts`), the
            rest uniformly; rounded to whole negatives.
    """
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be >= 1 (a row needs a negative to answer No to), got {num_negatives}")
    if not 0.0 <= popular_share <= 1.0:
        raise ValueError(f"popular_share must be in [0, 1], got {popular_share}")
    n_popular = round(popular_share * num_negatives)
    if n_popular and counts is None:
        raise ValueError("popular_share > 0 needs the items' training counts (counts=item_counts(ds['train'], n))")
    cumulative = list(itertools.accumulate(counts[1: num_items + 1])) if n_popular else None
    rng = random.Random(seed)
    seen: dict[int, set[int]] = {}  # a negative the user touched in another row would be a false "No"
    for row in rows:
        seen.setdefault(int(row["user_id"]), set()).update([*map(int, row["history"]), int(row["target"])])
    out = []
    for row in rows:
        user = int(row["user_id"])
        history, target = [int(i) for i in row["history"]], int(row["target"])
        if summaries is not None and user not in summaries:
            raise ValueError(f"No summary for user {row['user_id']}: summarise summary_histories(rows) first")
        negatives = sample_popular_negatives(rng, cumulative, seen[user], n_popular) if n_popular else []
        negatives += sample_negatives(rng, num_items, seen[user] | set(negatives), num_negatives - n_popular)
        summary = None if summaries is None else summaries[user]
        if listwise:
            out.append(prompter.listwise_example(summary, history, [target, *negatives]))
        else:
            out += prompter.examples(summary, history, [target, *negatives], [True] + [False] * num_negatives)
    return out


__all__ = ["build_training_examples", "item_counts", "sample_popular_negatives", "summary_histories"]
