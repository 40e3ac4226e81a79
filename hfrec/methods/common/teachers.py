"""SR teachers of the LLM methods: load one or train it, and read its recommendations.

DELRec shows a teacher's top-k in its prompts and distils its top-1; P2Rec clusters its item embeddings; PeaPOD
can take its user representations. A teacher is any hfrec SR model (SASRec, GRU4Rec, Caser: the
``predict_scores`` / ``score_candidates`` / ``top_k`` contract of docs/CONTRACTS.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch

from ...evaluation import left_pad

logger = logging.getLogger(__name__)

TEACHER_NAMES = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "caser": "Caser"}


def teacher_display_name(teacher) -> str:
    """``"SASRec"`` for a SASRec model: the name prompts and tables show."""
    return TEACHER_NAMES.get(teacher.config.model_type, teacher.config.model_type)


def load_or_train_teacher(output_dir, teacher_dir=None, model_type: str = "sasrec", dataset: str = "ml-100k",
                          data_dir=None, epochs: float = 200, seed: int = 42, split_seed: int = 42,
                          num_candidates: int = 20, disable_tqdm: bool = False):
    """``(teacher, folder)``: the trained SR model in ``teacher_dir`` if given, else the one under
    ``output_dir/teacher``, else one trained there now (``hfrec train sr`` with these settings). On the GPU when
    there is one, in eval mode."""
    from transformers import AutoModel

    from ... import models  # noqa: F401  registers the SR model types

    folder = Path(teacher_dir) if teacher_dir else Path(output_dir) / "teacher"
    if not (folder / "config.json").exists():
        if teacher_dir:
            raise FileNotFoundError(f"teacher_dir {folder} holds no trained model (config.json missing): train one "
                                    "with `hfrec train sr` or leave teacher_dir unset to train it here")
        from ...trainers.train_sr import main as train_sr_main

        logger.info("Training the %s teacher into %s", model_type, folder)
        train_sr_main([
            "--model", model_type, "--dataset", dataset, "--output_dir", str(folder),
            "--num_train_epochs", str(epochs), "--seed", str(seed), "--split_seed", str(split_seed),
            "--num_candidates", str(num_candidates), "--disable_tqdm", str(disable_tqdm).lower(),
            *(["--data_dir", str(data_dir)] if data_dir else []),
        ])
    teacher = AutoModel.from_pretrained(str(folder))
    if torch.cuda.is_available():
        teacher = teacher.cuda()
    return teacher.eval(), folder


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
        ids = left_pad(hist, max_length).to(device)
        ex_len = max(1, max(len(e) for e in exclude[s : s + batch_size]))
        ex = left_pad(exclude[s : s + batch_size], ex_len).to(device)
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
        ids = left_pad(histories[s : s + batch_size], max_length).to(device)
        cands = torch.as_tensor([list(c) for c in candidates[s : s + batch_size]], device=device)
        scores = teacher.score_candidates(ids, cands).float()
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, : min(k, cands.shape[1])]
        out.append(cands.gather(1, order).cpu())
    teacher.train(was_training)
    return torch.cat(out)


TOPK_SCOPES = ("candidates", "catalogue")


def teacher_recommendations(teacher, histories, candidates, k: int, scope: str = "candidates",
                            exclude=None) -> list[list[int]]:
    """The teacher's top-``k`` per row, best first: among the row's candidates (``scope="candidates"``) or over
    the catalogue minus ``exclude`` (default: the history) (``"catalogue"``); empty lists without a teacher."""
    if not k or teacher is None:
        return [[] for _ in histories]
    if scope == "candidates":
        return teacher_top_k_among(teacher, histories, candidates, k).tolist()
    if scope == "catalogue":
        return teacher_top_k(teacher, histories, k, exclude=exclude).tolist()
    raise ValueError(f"teacher top-k scope must be one of {TOPK_SCOPES}, got {scope!r}")


__all__ = ["TEACHER_NAMES", "TOPK_SCOPES", "load_or_train_teacher", "teacher_display_name", "teacher_recommendations",
           "teacher_top_k", "teacher_top_k_among"]
