"""LLM-TRSR's training material, from the training prefixes of a benchmark split.

Each chosen training row (history -> target) gives two examples with the same user prompt (summary + the last
``recent_items`` items): the target -> "Yes" and one negative -> "No" (1 positive : 1 negative, as in the paper),
the negative drawn uniformly from the items the user's rows never show (no history item or target of any of that
user's rows), as the evaluation's stored candidates are drawn from the items the user never touched.

Summaries are expensive, so a user's training rows share one summary: that of the history before the user's
*earliest* chosen row. No summary thus contains the target of any of the user's training rows, and each user is
summarised once per mode however many rows or epochs the training takes. Evaluation rows are summarised from the
history each row shows.
"""

from __future__ import annotations

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


def build_training_examples(rows: Sequence[dict], prompter: TRSRPrompter, num_items: int,
                            summaries: Mapping[int, str] | None = None, seed: int = 0) -> list[dict]:
    """Two tokenized examples per row (``input_ids``, ``labels``): the target answered Yes, a sampled negative No.

    ``summaries``: user id -> summary (:func:`summary_histories` says which history); None for the no-summary
    recommender."""
    rng = random.Random(seed)
    seen: dict[int, set[int]] = {}  # a negative the user touched in another row would be a false "No"
    for row in rows:
        seen.setdefault(int(row["user_id"]), set()).update([*map(int, row["history"]), int(row["target"])])
    out = []
    for row in rows:
        history, target = [int(i) for i in row["history"]], int(row["target"])
        if summaries is not None and int(row["user_id"]) not in summaries:
            raise ValueError(f"No summary for user {row['user_id']}: summarise summary_histories(rows) first")
        negative = sample_negatives(rng, num_items, seen[int(row["user_id"])], 1)[0]
        summary = None if summaries is None else summaries[int(row["user_id"])]
        out += prompter.examples(summary, history, [target, negative], [True, False])
    return out


__all__ = ["build_training_examples", "summary_histories"]
