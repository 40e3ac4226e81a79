"""Examples of the two DELRec stages, built from a benchmark split and a trained SR teacher.

* Stage 1, temporal analysis (TA, ``task=0``): the history with one of its ``ta_window`` most recent items shown
  as ``[MASK]``, a candidate list holding that item; target = the masked item.
* Stage 1, recommendation pattern simulating (RPS, ``task=1``): the history and a candidate list holding the
  teacher's top-``rps_top_k`` (the rest random unseen items); target = the teacher's top-1.
* Stage 2, recommendation: history + the teacher's top-k + ``num_candidates`` candidates (the target and
  unseen negatives: sampled for training rows, the stored lists for validation/test); target = the true next item.

Training rows are prefixes of the train split (leave-one-out; CONTRACTS.md). The slices are taken so the target
is never inside the shown history (the released code's off-by-one is not copied: ``history`` here is exactly
the items before ``target``).
"""

from __future__ import annotations

import random
from typing import Sequence

import torch

from ..prompts import DELRecPrompter, sample_negatives

TASK_TA, TASK_RPS = 0, 1


def _left_pad(seqs: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    out = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        s = list(s)[-length:]
        if s:
            out[i, length - len(s) :] = torch.tensor(s)
    return out


@torch.no_grad()
def teacher_top_k(
    teacher,
    histories: Sequence[Sequence[int]],
    k: int,
    exclude: Sequence[Sequence[int]] | None = None,
    max_length: int | None = None,
    batch_size: int = 512,
) -> torch.Tensor:
    """(N, k) item ids: the teacher's ``top_k(input_ids, k, exclude)`` over the whole catalogue, in batches.

    ``exclude`` defaults to each history (an SR teacher should not recommend what the user already has)."""
    if k <= 0 or len(histories) == 0:
        return torch.zeros((len(histories), max(k, 0)), dtype=torch.long)
    max_length = max_length or getattr(teacher.config, "max_seq_length", 50)
    exclude = histories if exclude is None else exclude
    device = next(teacher.parameters()).device
    was_training = teacher.training
    teacher.eval()
    out = []
    for s in range(0, len(histories), batch_size):
        hist = histories[s : s + batch_size]
        ids = _left_pad(hist, max_length).to(device)
        ex_len = max(1, max(len(e) for e in exclude[s : s + batch_size]))
        ex = _left_pad(exclude[s : s + batch_size], ex_len).to(device)
        out.append(teacher.top_k(ids, k, exclude=ex).cpu())
    teacher.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def teacher_top_k_among(
    teacher,
    histories: Sequence[Sequence[int]],
    candidates: Sequence[Sequence[int]],
    k: int,
    max_length: int | None = None,
    batch_size: int = 512,
) -> torch.Tensor:
    """(N, k) item ids: the teacher's k best among each row's candidates (``score_candidates``), best first."""
    if k <= 0 or len(histories) == 0:
        return torch.zeros((len(histories), max(k, 0)), dtype=torch.long)
    max_length = max_length or getattr(teacher.config, "max_seq_length", 50)
    device = next(teacher.parameters()).device
    was_training = teacher.training
    teacher.eval()
    out = []
    for s in range(0, len(histories), batch_size):
        ids = _left_pad(histories[s : s + batch_size], max_length).to(device)
        cands = torch.as_tensor([list(c) for c in candidates[s : s + batch_size]], device=device)
        scores = teacher.score_candidates(ids, cands).float()
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, : min(k, cands.shape[1])]
        out.append(cands.gather(1, order).cpu())
    teacher.train(was_training)
    return torch.cat(out)


TOPK_SCOPES = ("candidates", "catalogue")


def _teacher_lists(teacher, histories, candidates, k, scope, exclude=None) -> list[list[int]]:
    if not k or teacher is None:
        return [[] for _ in histories]
    if scope == "candidates":
        return teacher_top_k_among(teacher, histories, candidates, k).tolist()
    if scope == "catalogue":
        return teacher_top_k(teacher, histories, k, exclude=exclude).tolist()
    raise ValueError(f"teacher top-k scope must be one of {TOPK_SCOPES}, got {scope!r}")


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
    tops = _teacher_lists(teacher, histories, all_cands, teacher_top_k_n, topk_scope)
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
    tops = _teacher_lists(teacher, histories, [r["candidates"] for r in rows], teacher_top_k_n, topk_scope, excl)
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
    "select_training_rows",
    "teacher_top_k",
    "teacher_top_k_among",
]
