"""Examples of P2Rec's information-reconstruction SFT, their collator, and what they cost.

User level (``SFTLevel.USER``, the paper's task, the default): one example per user, the user's whole training
sequence (the items before the validation target; the prompt shows its last ``max_history``) -> the user's preference
distribution (category frequencies of the shown items).

Instance level (``SFTLevel.INSTANCE``, the conventional SFT the paper's efficiency claim is measured against): one
example per interaction, i.e. per prefix ``sequence[:t]`` (t = 1..n-1) -> the category of the item that followed,
``sequence[t]`` (one-hot). These are exactly the SR training rows, so the instance-level set is about
interactions / users times the user-level one; ``max_prefixes_per_user`` keeps a seeded sample of each user's prefixes.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

from ..common.sft import PaddingCollator
from .categories import next_item_targets, preference_targets
from .prompts import PreferencePrompter


class SFTLevel(str, Enum):
    USER = "user"  # one example per user (P2Rec)
    INSTANCE = "instance"  # one example per interaction prefix (the cost comparison)

    @classmethod
    def parse(cls, value) -> "SFTLevel":
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"sft_level {value!r} is unknown; use one of {[m.value for m in cls]}") from None


class ReconstructionUnit(NamedTuple):
    user: int  # index of the user's sequence in the list given
    items: list[int]  # what the prompt reads (its last max_history)
    next_item: int | None  # instance level: the item that followed ``items``


def level_counts(sequences: Sequence[Sequence[int]], level: SFTLevel | str) -> list[int]:
    """Examples each user gives at ``level`` with no cap: 1 (user; 0 for an empty sequence) or n - 1 (instance)."""
    if SFTLevel.parse(level) is SFTLevel.USER:
        return [int(len(s) > 0) for s in sequences]
    return [max(len(s) - 1, 0) for s in sequences]


def choose_users(sequences: Sequence[Sequence[int]], max_users: int | None = None, seed: int = 0) -> list[int]:
    """Indices of the users with a non-empty sequence; with ``max_users``, a seeded sample of them (in order)."""
    users = [user for user, sequence in enumerate(sequences) if len(sequence)]
    if max_users is not None and len(users) > max_users:
        users = [users[i] for i in sorted(random.Random(seed).sample(range(len(users)), max_users))]
    return users


def reconstruction_units(sequences: Sequence[Sequence[int]], level: SFTLevel | str = SFTLevel.USER,
                         max_prefixes_per_user: int | None = None, seed: int = 0,
                         users: Sequence[int] | None = None) -> list[ReconstructionUnit]:
    """The units that become examples, in user order, for ``users`` (indices; None: all): each non-empty user
    sequence, or (instance level) every (prefix, next item) pair of each, at most ``max_prefixes_per_user`` per user
    (a sample seeded by ``seed`` and the user's index, so a user's prefixes do not depend on the other users; kept in
    time order)."""
    level = SFTLevel.parse(level)
    if max_prefixes_per_user is not None and max_prefixes_per_user < 1:
        raise ValueError(f"max_prefixes_per_user must be >= 1 or None (every prefix), got {max_prefixes_per_user}")
    units = []
    for user in range(len(sequences)) if users is None else users:
        sequence = list(sequences[user])
        if level is SFTLevel.USER:
            if sequence:
                units.append(ReconstructionUnit(user, sequence, None))
            continue
        ends = range(1, len(sequence))
        if max_prefixes_per_user is not None and len(ends) > max_prefixes_per_user:
            ends = sorted(np.random.default_rng([seed, user]).choice(ends, max_prefixes_per_user, replace=False))
        units += [ReconstructionUnit(user, sequence[:t], sequence[t]) for t in ends]
    return units


def build_parser_examples(sequences: Sequence[Sequence[int]], prompter: PreferencePrompter, categories: np.ndarray,
                          num_categories: int, teacher=None, teacher_mix: float = 0.0,
                          level: SFTLevel | str = SFTLevel.USER, max_prefixes_per_user: int | None = None,
                          max_users: int | None = None, seed: int = 0) -> list[dict]:
    """``{"input_ids": prompt tokens, "target": K floats summing to 1, "user": index}`` per unit
    (:func:`reconstruction_units`), in user order, for every user or a seeded sample of ``max_users`` (the same users
    at both levels, so the levels train on the same data)."""
    level = SFTLevel.parse(level)
    units = reconstruction_units(sequences, level, max_prefixes_per_user, seed,
                                 users=choose_users(sequences, max_users, seed))
    items = [u.items for u in units]
    if level is SFTLevel.USER:
        targets = preference_targets(items, categories, num_categories, prompter.max_history, teacher, teacher_mix)
    else:
        targets = next_item_targets(items, [u.next_item for u in units], categories, num_categories, teacher,
                                    teacher_mix)
    return [{"input_ids": prompter.prompt_ids(u.items), "target": t.tolist(), "user": u.user}
            for u, t in zip(units, targets)]


def uncapped_cost(examples: list[dict], sequences: Sequence[Sequence[int]], level: SFTLevel | str) -> dict:
    """What the uncapped example set of ``level`` would hold: ``{"examples", "prompt_tokens", "exact"}``. When the
    examples are a sample (a cap), each user's tokens are their sampled examples' mean times their uncapped count
    (users without a sampled example count at the overall mean): a per-user estimate, since prompt length grows with
    the prefix."""
    counts = level_counts(sequences, level)
    lengths: dict[int, list[int]] = defaultdict(list)
    for example in examples:
        lengths[example["user"]].append(len(example["input_ids"]))
    total = sum(counts)
    if not examples:
        return {"examples": total, "prompt_tokens": 0 if total == 0 else None, "exact": total == 0}
    exact = all(len(lengths.get(user, ())) == count for user, count in enumerate(counts))
    overall = float(np.mean([n for ns in lengths.values() for n in ns]))
    tokens = sum(count * (float(np.mean(lengths[user])) if user in lengths else overall)
                 for user, count in enumerate(counts))
    return {"examples": total, "prompt_tokens": int(round(tokens)), "exact": exact}


@dataclass
class DistributionCollator(PaddingCollator):
    """The shared padding of ``input_ids`` (+ ``attention_mask``) with each example's float ``target`` distribution
    stacked as ``labels`` (B, K). The shared collator needs token labels and stacks integer columns only, so the
    prompt ids stand in for its token labels and are replaced."""

    target_column: str = "target"

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = super().__call__([{"input_ids": e["input_ids"], "labels": e["input_ids"]} for e in examples])
        batch["labels"] = torch.as_tensor(np.asarray([e[self.target_column] for e in examples], dtype=np.float32))
        return batch


__all__ = ["DistributionCollator", "ReconstructionUnit", "SFTLevel", "build_parser_examples", "choose_users",
           "level_counts",
           "reconstruction_units", "uncapped_cost"]
