"""DELRec behind the ``next-item-recommendation`` pipeline: the saved folder's tokenizer, prompt settings and SR
teacher (``hfrec_recommender.json`` + ``teacher/``) turn a history into DELRec's prompt; candidates are ranked by
title likelihood, exactly as in the evaluation."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModel, AutoTokenizer

from ..common.ranking import LLMRecommender
from ..common.teachers import teacher_display_name
from .data import build_ranking_inputs
from .prompts import DELRecPrompter


def load_recommender(model, folder: Path, info: dict, dataset=None, data_dir=None) -> LLMRecommender:
    from ...pipelines import load_catalog

    if "teacher" not in info:
        raise ValueError(f"{folder} has no hfrec_recommender.json naming its SR teacher: it was not written by the "
                         "DELRec script (trainers/sft_delrec.py), which the pipeline needs to build DELRec's prompt")
    teacher = AutoModel.from_pretrained(str(Path(folder) / info["teacher"])).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    # runs saved before the prompt variants existed used the dataset's titles and the teacher's top-k
    catalog = load_catalog(info, dataset, data_dir).with_title_style(info.get("item_titles", "as_is"))
    config = model.config
    prompter = DELRecPrompter(tokenizer, catalog, domain=info["domain"], teacher_name=teacher_display_name(teacher),
                              num_virtual_tokens=config.num_virtual_tokens, soft_prompt_token=config.soft_prompt_token,
                              max_history=info["max_history"], show_candidates=info["show_candidates"],
                              teacher_hints=info.get("prompt_hints", "teacher_topk") != "none")

    def prompts(rows):
        return build_ranking_inputs([dict(zip(rows, values)) for values in zip(*rows.values())], prompter, teacher,
                                    info["teacher_top_k"], info["teacher_topk_scope"])[0]

    return LLMRecommender(model, tokenizer, prompts, catalog, teacher=teacher,
                          num_candidates=info.get("num_candidates", 20),
                          length_normalize=info.get("length_normalize") or 1.0)


__all__ = ["load_recommender"]
