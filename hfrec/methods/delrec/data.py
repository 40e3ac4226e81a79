"""Examples of the two DELRec stages, built from a benchmark split and a trained SR teacher.

* Stage 1, temporal analysis (TA, ``task=0``): the history with one of its ``ta_window`` most recent items shown
  as ``[MASK]``, a candidate list holding that item; target = the masked item.
* Stage 1, recommendation pattern simulating (RPS, ``task=1``): the history and a candidate list holding the
  teacher's top-``rps_top_k`` (the rest random unseen items); target = the teacher's top-1.
* Stage 2, recommendation: history + the teacher's top-k (unless the prompter's ``teacher_hints`` is off) +
  ``num_candidates`` candidates (the target and unseen negatives: sampled for training rows, the stored lists for
  validation/test); target = the true next item.

Training rows are prefixes of the train split (leave-one-out; CONTRACTS.md). The slices are taken so the target
is never inside the shown history (the released code's off-by-one is not copied: ``history`` here is exactly
the items before ``target``).
"""

from __future__ import annotations

import random
from typing import Sequence

from ..common.prompts import sample_negatives
from ..common.teachers import teacher_recommendations, teacher_top_k
from .prompts import DELRecPrompter

TASK_TA, TASK_RPS = 0, 1


def build_stage1_examples(
    rows: Sequence[dict],
    prompter: DELRecPrompter,
    teacher,
    num_items: int,
    num_candidates: int = 10,
    rps_top_k: int = 5,
    ta_window: int = 3,
    seed: int = 0,
) -> list[dict]:
    """Interleaved TA / RPS examples (one of each per row): ``input_ids``, ``labels``, ``task``."""
    rng = random.Random(seed)
    histories = [list(r["history"]) for r in rows]
    tops = teacher_top_k(teacher, histories, max(rps_top_k, 1)).tolist()
    out = []
    for r, hist, top in zip(rows, histories, tops):
        shown = hist[-prompter.max_history :]
        seen = set(hist) | {int(r["target"])}
        # TA: mask one of the `ta_window` most recent shown items (needs >= 2 items so context remains)
        if len(shown) >= 2:
            pos = len(shown) - 1 - rng.randrange(min(ta_window, len(shown) - 1))
            masked = shown[pos]
            cands = [masked] + sample_negatives(rng, num_items, seen, num_candidates - 1)
            rng.shuffle(cands)
            text = prompter.temporal_analysis_text(shown, pos, cands)
            out.append({**prompter.example(text, masked), "task": TASK_TA})
        # RPS: candidates hold the teacher's top-k; target = its top-1
        top = top[:rps_top_k]
        cands = list(top) + sample_negatives(rng, num_items, seen | set(top), max(num_candidates - len(top), 0))
        rng.shuffle(cands)
        text = prompter.pattern_simulating_text(shown, cands)
        out.append({**prompter.example(text, top[0]), "task": TASK_RPS})
    return out


def build_recommendation_examples(
    rows: Sequence[dict],
    prompter: DELRecPrompter,
    teacher,
    num_items: int,
    teacher_top_k_n: int = 10,
    num_candidates: int = 20,
    seed: int = 0,
    topk_scope: str = "candidates",
) -> list[dict]:
    """Stage-2 training examples (``input_ids``, ``labels``) with sampled candidate lists.

    ``topk_scope="candidates"``: the prompt shows the teacher's top-k *among the candidates* (its ranking of the
    same list the LLM ranks); ``"catalogue"``: its top-k over every item the user has not seen."""
    rng = random.Random(seed)
    histories = [list(r["history"]) for r in rows]
    all_cands = []
    for r, hist in zip(rows, histories):
        target = int(r["target"])
        cands = [target] + sample_negatives(rng, num_items, set(hist) | {target}, num_candidates - 1)
        rng.shuffle(cands)
        all_cands.append(cands)
    tops = (teacher_recommendations(teacher, histories, all_cands, teacher_top_k_n, topk_scope)
            if prompter.teacher_hints else [()] * len(rows))
    out = []
    for r, hist, cands, top in zip(rows, histories, all_cands, tops):
        text = prompter.recommendation_text(hist, cands, top)
        out.append(prompter.example(text, int(r["target"])))
    return out


def build_ranking_inputs(
    rows,
    prompter: DELRecPrompter,
    teacher,
    teacher_top_k_n: int = 10,
    topk_scope: str = "candidates",
) -> tuple[list[list[int]], list[list[str]], list[list[int]], list[int]]:
    """Prompts (token ids), candidate titles, candidate ids and targets of evaluation rows (stored candidates)."""
    rows = [dict(r) for r in rows]
    histories = [list(r["history"]) for r in rows]
    excl = [list(r.get("full_history", r["history"])) for r in rows]
    tops = (teacher_recommendations(teacher, histories, [r["candidates"] for r in rows], teacher_top_k_n, topk_scope,
                                    excl) if prompter.teacher_hints else [()] * len(rows))
    prompts, cand_titles = [], []
    for r, hist, top in zip(rows, histories, tops):
        prompts.append(prompter.encode(prompter.recommendation_text(hist, r["candidates"], top)))
        cand_titles.append(prompter.catalog.titles_of(r["candidates"], "candidate"))
    return prompts, cand_titles, [list(r["candidates"]) for r in rows], [int(r["target"]) for r in rows]


__all__ = [
    "TASK_RPS",
    "TASK_TA",
    "build_ranking_inputs",
    "build_recommendation_examples",
    "build_stage1_examples",
]
