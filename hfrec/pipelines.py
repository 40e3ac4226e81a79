"""One way to get recommendations out of any trained hfrec folder or Hub repo: a ``transformers`` pipeline.

    import hfrec
    from transformers import pipeline

    recommend = pipeline("next-item-recommendation", model="runs/delrec")      # a folder or a Hub id
    recommend({"history": ["Star Wars (1977)", "Fargo (1996)"]}, top_k=5)        # ids or titles, oldest first
    recommend({"history": [50, 100], "candidates": [1, 2, 3, 181]})              # rank given candidates

Each answer is a list of ``{"item_id", "title", "score"}``, best first. The method of a folder (its config's
``model_type``) is looked up in ``hfrec.registry``, whose ``recommender`` builds what scores a history:

* SR models (SASRec, GRU4Rec, Caser) score the whole catalogue (history masked) or the given candidates.
* LLM methods rank candidates by the likelihood of their text (``hfrec.methods.common.ranking``); without
  candidates they rerank the top ``num_candidates`` unseen items of the SR teacher saved with them.

Item titles come from the dataset the folder was trained on (``hfrec_recommender.json``, or the dataset named in
its ``eval_results.json``); pass ``dataset=`` / ``data_dir=`` to override.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoModel, AutoModelForCausalLM, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .evaluation import left_pad
from .methods.common.backbones import cpu_has_fast_bf16
from .methods.common.prompts import ItemCatalog
from .methods.common.ranking import read_recommender_info

TASK = "next-item-recommendation"

logger = logging.getLogger(__name__)


def _is_item(value) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def model_folder(model) -> Path:
    """The local folder a loaded model came from (downloading the rest of a Hub repo: teacher, run info)."""
    name = str(getattr(model, "name_or_path", "") or "")
    if name and os.path.isdir(name):
        return Path(name)
    if not name:
        raise ValueError("The model has no name_or_path: load it with from_pretrained(folder or Hub id)")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name))


def run_info(folder: Path) -> dict:
    """``hfrec_recommender.json``, or what an SR run's ``eval_results.json`` says (its dataset and seed)."""
    info = read_recommender_info(folder)
    if info is not None:
        return info
    results = folder / "eval_results.json"
    if results.is_file():
        records = json.loads(results.read_text(encoding="utf-8"))
        if records:
            return {"dataset": records[0].get("dataset"), "split_seed": records[0].get("seed")}
    return {}


def load_catalog(info: dict, dataset: str | None = None, data_dir: str | None = None) -> ItemCatalog:
    from .data import load_items

    name = dataset or info.get("dataset")
    if not name:
        raise ValueError("Cannot tell which dataset this model's items come from (no hfrec_recommender.json or "
                         "eval_results.json in its folder): pass dataset='ml-100k' (and data_dir=...) to the pipeline")
    return ItemCatalog.from_items(load_items(name, data_dir=data_dir or info.get("data_dir")))


@dataclass
class SRRecommender:
    """Scores of an hfrec SR model: the whole catalogue (``candidates=None``) or the given candidates."""

    model: object
    catalog: ItemCatalog | None
    can_rank_catalogue: bool = True

    @torch.no_grad()
    def score(self, histories: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]] | None) -> torch.Tensor:
        self.model.eval()
        device = next(self.model.parameters()).device
        ids = left_pad(histories, self.model.config.max_seq_length).to(device)
        if candidates is None:
            return self.model.predict_scores(ids).float().cpu()
        return self.model.score_candidates(ids, torch.as_tensor(candidates, device=device)).float().cpu()


def sr_recommender(model, folder: Path, info: dict, dataset=None, data_dir=None) -> SRRecommender:
    try:
        catalog = load_catalog(info, dataset, data_dir)
    except ValueError:
        catalog = None  # ids in, ids out: titles need the dataset
    return SRRecommender(model, catalog)


class NextItemRecommendationPipeline(Pipeline):
    """``pipeline("next-item-recommendation", model=DIR_OR_REPO)``: ranked next items for a history.

    Call with ``{"history": [...], "candidates": [...]}``, or a bare history (a list of item ids or titles: one
    history, as a text pipeline takes a string as one input); a list of such dicts or of such lists is a batch.
    ``top_k`` (default 10) answers per history. Histories and candidates are item ids or exact titles; a candidate
    given twice is ranked once.
    """

    _load_tokenizer = False
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False

    def __init__(self, model, dataset: str | None = None, data_dir: str | None = None, **kwargs):
        super().__init__(model=model, **kwargs)
        from .registry import METHODS, get_method, method_for_model_type

        folder = model_folder(self.model)
        info = run_info(folder)
        if self.model.dtype == torch.bfloat16 and self.device.type == "cpu" and not cpu_has_fast_bf16():
            self.model.float()  # emulated bf16 is several times slower than float32 on such CPUs
        # the run info names the method (a method may save an ordinary model type: LLM-TRSR's LoRA'd causal LM,
        # P2Rec's enhanced SASRec); without it, the config's model type says
        spec = get_method(info["method"]) if info.get("method") in METHODS else \
            method_for_model_type(self.model.config.model_type)
        self.recommender = spec.load_recommender()(self.model, folder, info, dataset=dataset, data_dir=data_dir)

    def __call__(self, inputs, **kwargs):
        # a flat list of items is one history, not a batch of one-item histories (or of a title's characters)
        if isinstance(inputs, (list, tuple)) and inputs and all(_is_item(x) for x in inputs):
            inputs = {"history": list(inputs)}
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, top_k=None, **kwargs):
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive whole number of answers, got {top_k!r}")
        return {}, {}, ({"top_k": top_k} if top_k is not None else {})

    def _item_ids(self, items, what: str) -> list[int]:
        catalog = self.recommender.catalog
        out = []
        for item in items:
            if isinstance(item, str) and not item.strip().isdigit():
                if catalog is None:
                    raise ValueError(f"{what} given as titles, but this model's dataset is unknown: pass item ids or "
                                     "dataset= to the pipeline")
                out.append(catalog.item_id(item))
            else:
                out.append(int(item))
        if catalog is not None:
            catalog.check_ids(out, what)
        return out

    def preprocess(self, inputs):
        if not isinstance(inputs, dict):
            inputs = {"history": inputs}
        if isinstance(inputs["history"] if "history" in inputs else None, str):
            raise ValueError("'history' is one string; give a list of item ids or titles, oldest first "
                             f"(e.g. [{inputs['history']!r}])")
        if "history" not in inputs:
            raise ValueError(f"Each input needs a 'history' (item ids or titles, oldest first); got keys {list(inputs)}")
        history = self._item_ids(inputs["history"], "history item")
        if not history:
            raise ValueError("Empty history: recommending needs at least one past item")
        candidates = inputs.get("candidates")
        if candidates is not None:
            candidates = self._item_ids(candidates, "candidate")
            if not candidates:
                raise ValueError("Empty candidate list: give candidates or leave the key out")
            unique = list(dict.fromkeys(candidates))
            if len(unique) < len(candidates):  # one item, one score: a repeated candidate would be answered twice
                logger.warning("%d repeated candidate(s) ranked once: %s", len(candidates) - len(unique),
                               sorted({c for c in candidates if candidates.count(c) > 1}))
                candidates = unique
        elif not self.recommender.can_rank_catalogue:  # an LLM reranks what its SR teacher retrieves
            candidates = self.recommender.default_candidates([history])[0]
        return {"history": history, "candidates": candidates}

    def _forward(self, model_inputs):
        candidates = model_inputs["candidates"]
        scores = self.recommender.score([model_inputs["history"]], None if candidates is None else [candidates])[0]
        if candidates is None:  # whole catalogue: mask the padding id and the history
            scores = scores.clone()
            scores[0] = float("-inf")
            scores[torch.as_tensor(model_inputs["history"])] = float("-inf")
            candidates = list(range(scores.shape[0]))
        return {"scores": scores, "candidates": candidates}

    def postprocess(self, model_outputs, top_k: int = 10):
        scores, candidates = model_outputs["scores"], model_outputs["candidates"]
        order = torch.sort(scores, descending=True, stable=True).indices[:top_k].tolist()
        catalog = self.recommender.catalog
        out = []
        for i in order:
            if not torch.isfinite(scores[i]):
                break
            item = int(candidates[i])
            title = catalog.titles[item] if catalog is not None and item < len(catalog.titles) else None
            out.append({"item_id": item, "title": title, "score": float(scores[i])})
        return out


PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=NextItemRecommendationPipeline,
                                    pt_model=(AutoModelForCausalLM, AutoModel), type="multimodal")

__all__ = ["NextItemRecommendationPipeline", "SRRecommender", "TASK", "load_catalog", "model_folder", "run_info",
           "sr_recommender"]
