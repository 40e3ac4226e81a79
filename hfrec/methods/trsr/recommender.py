"""LLM-TRSR's ranking: :class:`YesNoScorer` (a scorer of the ``hfrec.evaluation`` contract, so the table ranks it
exactly as it ranks SASRec) and the ``next-item-recommendation`` pipeline's recommender (:func:`load_recommender`).

A candidate's score is P(Yes) = softmax over the logits of the first tokens of "Yes" and "No" after
``prompt + candidate text + suffix`` (``hfrec.methods.common.scoring.candidate_answer_probabilities``): each user's
prompt (summary + recent items) is encoded once and shared by all of that user's candidates in one packed forward.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..common.ranking import LLMRecommender
from ..common.scoring import candidate_answer_probabilities
from .config import SummaryMode, TRSRSummaryConfig
from .prompts import TRSRPrompter
from .summaries import TRSRSummarizer


@dataclass
class YesNoScorer:
    """Scores each row's stored candidates by P(Yes) under the recommender.

    Args:
        model, tokenizer: the recommender (a causal LM with or without its LoRA adapter).
        prompter: :class:`~hfrec.methods.trsr.prompts.TRSRPrompter` (the same one the training examples came from).
        summarizer: summarises each row's history (cached: nothing already summarised is generated again); None for
            the no-summary recommender.
        batch_size: users per packed forward.
    """

    model: object
    tokenizer: object
    prompter: TRSRPrompter
    summarizer: TRSRSummarizer | None = None
    batch_size: int = 8
    progress: bool = False
    seconds: float = 0.0

    def prompts(self, histories: Sequence[Sequence[int]]) -> list[list[int]]:
        """Per history: the prompt ids shared by its candidates."""
        summaries = (self.summarizer.summarize(histories, progress=False) if self.summarizer is not None
                     else [None] * len(histories))  # a run summarises up front; the pipeline's few are quick
        return [self.prompter.prompt_ids(s, h) for s, h in zip(summaries, histories)]

    def scores(self, histories: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]]) -> torch.Tensor:
        """``(B, C)`` P(Yes) of every candidate (``-inf`` where a ragged list has no candidate)."""
        prompts = self.prompts(histories)
        texts = [[self.prompter.item_text(c) for c in cands] for cands in candidates]
        start = time.perf_counter()
        probs = candidate_answer_probabilities(self.model, self.tokenizer, prompts, texts,
                                               suffix=self.prompter.suffix_ids, answer_texts=self.prompter.answers,
                                               batch_size=self.batch_size, progress=self.progress)
        self.seconds += time.perf_counter() - start
        return probs

    def __call__(self, rows: dict, protocol: str) -> torch.Tensor:
        if protocol != "candidates":
            raise ValueError(f"LLM-TRSR ranks the stored candidate lists (protocol 'candidates'), not {protocol!r}: "
                             "asking every item of the catalogue yes/no is not offered")
        return self.scores(rows["history"], rows["candidates"])


@dataclass
class TRSRRecommender(LLMRecommender):
    """The pipeline's scorer: P(Yes) of the given candidates, or of the SR teacher's top ``num_candidates``
    unseen items (``LLMRecommender.default_candidates``)."""

    scorer: YesNoScorer | None = None

    def score(self, histories, candidates) -> torch.Tensor:
        return self.scorer.scores([list(h) for h in histories], [list(c) for c in candidates])


def summary_cache_dir(folder: Path, info: dict) -> Path:
    """The run's summary cache when the folder is writable (a local run), else one in the hfrec cache (a Hub
    snapshot is not written into)."""
    from ...data import hfrec_cache_dir

    cache = Path(folder) / info.get("summary_cache", "summaries")
    return cache if os.access(folder, os.W_OK) else hfrec_cache_dir() / "trsr-summaries"


def load_summarizer(info: dict, catalog, cache_dir, device=None) -> TRSRSummarizer | None:
    """The summariser a run recorded (``hfrec_recommender.json``: its model, dtype and settings), or None for the
    no-summary recommender. The model loads as the run loaded it, so the run's cached summaries are found."""
    from ..common.backbones import load_backbone

    if SummaryMode(info["summary_mode"]) == SummaryMode.NONE:
        return None
    source = info.get("summarizer")
    if source and Path(str(source)).is_absolute() and not Path(str(source)).exists():
        raise FileNotFoundError(f"The summariser {source} recorded in hfrec_recommender.json is not on this machine: "
                                "set 'summarizer' there to a Hub model id or a local folder of the same model")
    model, tokenizer = load_backbone(source, dtype=info.get("summarizer_dtype", "auto"))
    if device is not None:
        model = model.to(device)
    return TRSRSummarizer(model.eval(), tokenizer, catalog, cache_dir, TRSRSummaryConfig(**info["summary"]))


def load_recommender(model, folder: Path, info: dict, dataset=None, data_dir=None) -> TRSRRecommender:
    """What ``pipeline("next-item-recommendation", model=folder)`` scores with: the folder's model (base + adapter),
    tokenizer, prompt settings, summariser and SR teacher (``hfrec_recommender.json`` + ``teacher/``)."""
    from transformers import AutoModel, AutoTokenizer

    from ...pipelines import load_catalog

    if info.get("method") != "trsr" or "summary_mode" not in info:
        raise ValueError(f"{folder} has no LLM-TRSR hfrec_recommender.json (its summary and prompt settings): it was "
                         "not written by the LLM-TRSR script (trainers/sft_trsr.py)")
    catalog = load_catalog(info, dataset, data_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    teacher = AutoModel.from_pretrained(str(Path(folder) / info["teacher"])).eval() if info.get("teacher") else None
    prompter = TRSRPrompter(tokenizer, catalog, domain=info["domain"], item_text_tokens=info["item_text_tokens"],
                            use_chat_template=info["use_chat_template"], recent_items=info["recent_items"],
                            answers=tuple(info["answers"]))
    summarizer = load_summarizer(info, catalog, summary_cache_dir(Path(folder), info), device=model.device)
    scorer = YesNoScorer(model, tokenizer, prompter, summarizer, batch_size=info.get("eval_batch_size", 8))
    return TRSRRecommender(model, tokenizer, lambda rows: scorer.prompts(rows["history"]), catalog, teacher=teacher,
                           num_candidates=info.get("num_candidates", 20), scorer=scorer)


__all__ = ["TRSRRecommender", "YesNoScorer", "load_recommender", "load_summarizer", "summary_cache_dir"]
