"""Rows of a benchmark split turned into training material for the LLM methods."""

from __future__ import annotations

import random


def select_training_rows(train_rows, rows_per_user: int = 1, max_rows: int | None = None, seed: int = 0,
                         min_history: int = 1, stride: int = 1) -> list[dict]:
    """The ``rows_per_user`` most recent training prefixes of each user (closest to the test distribution),
    taking every ``stride``-th one, then a seeded subsample of at most ``max_rows``.

    With ``stride=1`` consecutive prefixes overlap: the target of one row is the last history item of the next,
    so an LLM can answer a row from another row of the same user (memorising that user's sequence) instead of
    learning what generalises to the unseen test item. ``stride > max_history`` keeps each row's target out of the
    shown history of the user's other rows."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    by_user: dict[int, list[int]] = {}
    users, hist_lens = train_rows["user_id"], [len(h) for h in train_rows["history"]]
    for i, u in enumerate(users):
        if hist_lens[i] >= min_history:
            by_user.setdefault(int(u), []).append(i)
    chosen = sorted(i for idx in by_user.values() for i in idx[::-1][::stride][:rows_per_user])
    rng = random.Random(seed)
    if max_rows is not None and len(chosen) > max_rows:
        chosen = sorted(rng.sample(chosen, max_rows))
    sub = train_rows.select(chosen) if hasattr(train_rows, "select") else [train_rows[i] for i in chosen]
    return [dict(r) for r in sub]


__all__ = ["select_training_rows"]
