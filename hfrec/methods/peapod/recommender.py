"""PeaPOD in the ``next-item-recommendation`` pipeline: the sequential-task prompt, candidates ranked by title
likelihood (normalised as the training run chose on validation), the personalized prompt composed from the
history.

A pipeline user is not one of the training users: its interest vector is the saved SR teacher's representation of
the given history (the same function that built the training table), so the prompt pool composes a prompt for it.
Without a teacher the cold-start prompt (the mean interest vector, ``user_index`` 0) is used.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..common.ranking import LLMRecommender
from .data import history_interests
from .prompts import TASK_SEQUENTIAL, PeaPODPrompter


def load_recommender(model, folder: Path, info: dict, dataset=None, data_dir=None) -> LLMRecommender:
    """What ``pipeline("next-item-recommendation", model=folder)`` scores with for a PeaPOD folder."""
    from transformers import AutoModel, AutoTokenizer

    from ...pipelines import load_catalog

    if info.get("method") != "peapod":
        raise ValueError(f"{folder} has no PeaPOD hfrec_recommender.json: it was not written by trainers/sft_peapod.py")
    catalog = load_catalog(info, dataset, data_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    teacher = AutoModel.from_pretrained(str(Path(folder) / info["teacher"])).eval() if info.get("teacher") else None
    variant = info.get("variant", "personalized")
    prompter = PeaPODPrompter(tokenizer, catalog, num_virtual_tokens=0 if variant == "none" else
                              model.config.num_virtual_tokens, prompt_token=model.config.prompt_token,
                              domain=info["domain"], max_history=info["max_history"],
                              item_identifier=info["item_identifier"], use_chat_template=info["use_chat_template"])

    def row_inputs(rows: dict) -> dict | None:
        if variant == "none":
            return None
        n = len(rows["history"])
        inputs = {"user_index": torch.zeros(n, dtype=torch.long), "task": torch.full((n,), TASK_SEQUENTIAL)}
        if teacher is not None:
            inputs["user_interests"] = history_interests(teacher, rows["history"])
        return inputs

    return LLMRecommender(model, tokenizer, lambda rows: [prompter.sequential_prompt(h) for h in rows["history"]],
                          catalog, teacher=teacher, num_candidates=info.get("num_candidates", 20),
                          batch_size=info.get("eval_batch_size", 8), row_inputs=row_inputs,
                          length_normalize=float(info.get("length_normalize", 1.0)),
                          candidate_text=prompter.item_text)


__all__ = ["load_recommender"]
