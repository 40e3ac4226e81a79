"""PeaPOD's training material: collaborative interest vectors and the examples of its three tasks.

* :func:`user_interest_table` - one interest vector per user: a trained hfrec SR model's representation of the user's
  training sequence (the last position of ``encode``: what it scores the next item with). Only training items are
  read (the validation row's history), so nothing of the validation or test targets leaks into the prompts.
* :func:`build_training_examples` - rows of the three tasks, each with ``user_index`` (1 + user id) and ``task``,
  shuffled together so a batch mixes the tasks (the paper trains them in rotation on one backbone).
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

import torch

from ...evaluation import left_pad
from ..common.data import select_training_rows
from ..common.prompts import completion_example
from .prompts import TASK_EXPLANATION, TASK_SEQUENTIAL, TASK_TOPN, PeaPODPrompter


@torch.no_grad()
def history_interests(teacher, histories) -> torch.Tensor:
    """``(B, d)`` float32 on the CPU: an SR model's representation of each history (the last position of
    ``encode``: what it scores the next item with). A new user's interest vector, as the table holds them."""
    ids = left_pad(histories, getattr(teacher.config, "max_seq_length", None)).to(next(teacher.parameters()).device)
    return teacher.encode(ids, ids != 0)[:, -1].float().cpu()


def user_interest_table(teacher, validation_rows, num_users: int, batch_size: int = 256) -> torch.Tensor:
    """``(num_users, d)`` float32: row u = the SR model's representation of user u's training sequence (the history
    of u's validation row). A user with no validation row is an error: the protocol gives every user one."""
    users = [int(u) for u in validation_rows["user_id"]]
    if sorted(users) != list(range(num_users)):
        raise ValueError(f"Expected one validation row for each of the {num_users} users, got {len(users)} rows: "
                         "pass ds['validation'] of the same split")
    teacher.eval()
    table = torch.zeros(num_users, teacher.config.hidden_size)
    histories = validation_rows["history"]
    for start in range(0, len(users), batch_size):
        table[users[start : start + batch_size]] = history_interests(teacher, histories[start : start + batch_size])
    return table


def user_index(user_id: int) -> int:
    """The model's row of a user: 1 + hfrec's user id (row 0 is the cold-start user)."""
    return int(user_id) + 1


def sequential_examples(rows: Sequence[dict], prompter: PeaPODPrompter) -> list[dict]:
    return [{**completion_example(prompter.sequential_prompt(r["history"]), prompter.item_completion(r["target"])),
             "user_index": user_index(r["user_id"]), "task": TASK_SEQUENTIAL} for r in rows]


def topn_examples(train_rows, prompter: PeaPODPrompter, per_user: int, seed: int = 0) -> list[dict]:
    """Per user, ``per_user`` items drawn (seeded) from the user's training targets -> "which item would this user
    like?" with that item as the answer (P5's direct recommendation, the user given by the soft prompt alone)."""
    by_user: dict[int, list[int]] = {}
    for u, target in zip(train_rows["user_id"], train_rows["target"]):
        by_user.setdefault(int(u), []).append(int(target))
    rng = random.Random(seed)
    prompt = prompter.topn_prompt()
    out = []
    for u in sorted(by_user):
        for item in rng.sample(by_user[u], min(per_user, len(by_user[u]))):
            out.append({**completion_example(prompt, prompter.item_completion(item)), "user_index": user_index(u),
                        "task": TASK_TOPN})
    return out


def explanation_examples(reviews: Mapping[tuple[int, int], str], train_rows, prompter: PeaPODPrompter,
                         max_examples: int | None = None, seed: int = 0) -> list[dict]:
    """The reviews of training interactions (a user's validation and test items are held out) -> explanation
    examples: "why would this user like <title>?" -> the review."""
    pairs = sorted({(int(u), int(t)) for u, t in zip(train_rows["user_id"], train_rows["target"])} & set(reviews))
    if max_examples is not None and len(pairs) > max_examples:
        pairs = sorted(random.Random(seed).sample(pairs, max_examples))
    return [{**completion_example(prompter.explanation_prompt(i), prompter.explanation_completion(reviews[(u, i)])),
             "user_index": user_index(u), "task": TASK_EXPLANATION} for u, i in pairs]


def build_training_examples(train_rows, prompter: PeaPODPrompter, reviews: Mapping[tuple[int, int], str],
                            sequential_rows_per_user: int, topn_per_user: int, explanation_max: int | None,
                            seed: int = 0) -> tuple[list[dict], dict[str, int]]:
    """The three tasks' examples shuffled together (seeded), and how many of each."""
    rows = select_training_rows(train_rows, sequential_rows_per_user, seed=seed)
    parts = {
        "sequential": sequential_examples(rows, prompter),
        "topn": topn_examples(train_rows, prompter, topn_per_user, seed=seed + 1) if topn_per_user > 0 else [],
        "explanation": (explanation_examples(reviews, train_rows, prompter, explanation_max, seed=seed + 2)
                        if reviews else []),
    }
    examples = [e for part in parts.values() for e in part]
    random.Random(seed).shuffle(examples)
    return examples, {name: len(part) for name, part in parts.items()}


__all__ = ["build_training_examples", "explanation_examples", "history_interests", "sequential_examples",
           "topn_examples", "user_index", "user_interest_table"]
