"""Examples of P2Rec's information-reconstruction SFT and their collator.

User level (the paper's task, the default): one example per user, the user's whole training sequence (the items
before the validation target; the prompt shows its last ``max_history``) -> the user's preference distribution.
Instance level (``instance_level=True``, for the cost comparison the paper's efficiency claim rests on): one example
per interaction prefix ``sequence[:t]``, t = 1..n, each with the distribution of its own shown items.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..common.sft import PaddingCollator
from .categories import preference_targets
from .prompts import PreferencePrompter


def reconstruction_units(sequences: Sequence[Sequence[int]], instance_level: bool = False) -> list[list[int]]:
    """The item sequences that become examples: each non-empty user sequence, or every prefix of each."""
    sequences = [list(s) for s in sequences if len(s)]
    if not instance_level:
        return sequences
    return [s[:t] for s in sequences for t in range(1, len(s) + 1)]


def build_parser_examples(sequences: Sequence[Sequence[int]], prompter: PreferencePrompter, categories: np.ndarray,
                          num_categories: int, teacher=None, teacher_mix: float = 0.0, instance_level: bool = False,
                          max_examples: int | None = None, seed: int = 0) -> list[dict]:
    """``{"input_ids": prompt tokens, "target": K floats summing to 1}`` per user (or per prefix), in user order;
    ``max_examples`` keeps a seeded random subset (in the same order)."""
    units = reconstruction_units(sequences, instance_level)
    if max_examples is not None and len(units) > max_examples:
        keep = sorted(random.Random(seed).sample(range(len(units)), max_examples))
        units = [units[i] for i in keep]
    targets = preference_targets(units, categories, num_categories, prompter.max_history, teacher, teacher_mix)
    return [{"input_ids": prompter.prompt_ids(u), "target": t.tolist()} for u, t in zip(units, targets)]


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


__all__ = ["DistributionCollator", "build_parser_examples", "reconstruction_units"]
