"""LLM-TRSR's recommender trainer: TRL's ``SFTTrainer`` through hfrec's shared base (padding collator, the LoRA
adapter built from the config, adapter dtype, regional compilation), with one of two losses
(:class:`~hfrec.methods.trsr.config.RankingLoss`):

* pointwise (the paper's): yes/no examples whose only label is the answer token
  (:func:`hfrec.methods.trsr.data.build_training_examples`), so the loss is the cross-entropy of the answer's first
  token, the same logit pair the ranking's P(yes) reads;
* listwise: each example is one training row's prompt and its candidates (the target first). They are packed as the
  ranking packs them (``hfrec.methods.common.scoring.pack_batch``: the prompt once, each candidate + suffix a segment
  that sees the prompt and itself), the margin ``logit(Yes) - logit(No)`` is read at each segment's last position
  (what P(yes) = sigmoid(margin) ranks by), and the loss is the cross-entropy of the target under a softmax over
  the row's margins: the model learns to put the target above the row's other items, not to answer by the prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..common.scoring import (_softcap, _unwrap, answer_logits_at_segment_ends, answer_token_ids, pack_batch,
                              pad_token_id)
from ..common.sft import HfrecSFTTrainer
from .config import RankingLoss, TRSRSFTConfig
from .prompts import ANSWERS


@dataclass
class ListwiseCollator:
    """Listwise examples (``prompt_ids``, ``candidate_ids``, ``positive``) as lists for
    :meth:`TRSRSFTTrainer.compute_loss`, which packs them on the model's device and dtype."""

    def __call__(self, examples: list[dict]) -> dict:
        for e in examples:
            if not {"prompt_ids", "candidate_ids", "positive"} <= set(e):
                raise ValueError("ranking_loss='listwise' needs listwise examples (prompt_ids, candidate_ids, "
                                 "positive): build them with build_training_examples(..., listwise=True)")
        return {"prompt_ids": [list(e["prompt_ids"]) for e in examples],
                "candidate_ids": [[list(c) for c in e["candidate_ids"]] for e in examples],
                "positive": torch.as_tensor([int(e["positive"]) for e in examples], dtype=torch.long)}


def packed_answer_margins(model, prompt_ids: list[list[int]], candidate_ids: list[list[list[int]]],
                          answer_ids: list[int], pad_id: int) -> tuple[torch.Tensor, int]:
    """``(margins, tokens)``: the ``(B, C_max)`` float32 ``logit(answer 0) - logit(answer 1)`` at the last token of
    each candidate segment (``-inf`` where a row has fewer candidates), with gradients, and the tokens forwarded
    (padding excluded). The same packed forward and answer rows as the ranking's
    ``candidate_answer_probabilities``, whose P(yes) is ``sigmoid(margin)``."""
    inner, backbone, head = _unwrap(model)
    device = head.weight.device
    dtype = head.weight.dtype if head.weight.dtype.is_floating_point else torch.float32
    max_c = max(len(c) for c in candidate_ids)
    packed = pack_batch(prompt_ids, candidate_ids, pad_id, dtype, device, max_c)
    hidden = backbone(input_ids=packed.input_ids, attention_mask=packed.mask, position_ids=packed.position_ids,
                      use_cache=False)
    hidden = hidden.last_hidden_state if hasattr(hidden, "last_hidden_state") else hidden[0]
    logits = answer_logits_at_segment_ends(hidden, packed, head, answer_ids[:2], _softcap(inner))
    margins = (logits[..., 0] - logits[..., 1]).masked_fill(packed.last < 0, float("-inf"))
    tokens = sum(len(p) + sum(map(len, c)) for p, c in zip(prompt_ids, candidate_ids))
    return margins, tokens


class TRSRSFTTrainer(HfrecSFTTrainer):
    """LoRA fine-tuning of a causal LM on "summary + recent items + candidate(s) -> Yes / No".

    Args:
        model: the backbone (any causal LM; the adapter is added from ``args``' ``lora_*`` fields).
        args: :class:`~hfrec.methods.trsr.config.TRSRSFTConfig` (``ranking_loss`` picks the loss).
        train_dataset: pointwise rows with ``input_ids`` and ``labels``, or listwise rows with ``prompt_ids``,
            ``candidate_ids`` and ``positive``.
        processing_class: the backbone's tokenizer.
        answers: the positive and negative answers of the listwise margin (those of the prompter).
    """

    _tag_names = ["trl", "sft", "hfrec", "trsr", "lora"]

    def __init__(self, model, args: TRSRSFTConfig | None = None, answers: tuple[str, str] = ANSWERS, **kwargs):
        args = args if args is not None else TRSRSFTConfig(output_dir="trsr-recommender")
        if not isinstance(args, TRSRSFTConfig):
            raise TypeError(f"args must be a TRSRSFTConfig (LoRA settings of the recommender), got "
                            f"{type(args).__name__}")
        self.listwise = args.ranking_loss == RankingLoss.LISTWISE
        if self.listwise:
            kwargs.setdefault("data_collator", ListwiseCollator())
            if kwargs.get("processing_class") is not None:
                self.answer_ids = answer_token_ids(kwargs["processing_class"], answers)
        super().__init__(model=model, args=args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.listwise:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        margins, tokens = packed_answer_margins(model, inputs["prompt_ids"], inputs["candidate_ids"],
                                                self.answer_ids, pad_token_id(self.processing_class))
        positive = inputs["positive"].to(margins.device)
        loss = torch.nn.functional.cross_entropy(margins, positive)
        mode = "train" if model.training else "eval"
        with torch.no_grad():  # the row accuracy: the target has the highest margin of its row
            self._metrics[mode]["mean_token_accuracy"].append((margins.argmax(-1) == positive).float().mean().item())
        if mode == "train":
            self._total_train_tokens += tokens
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, {"margins": margins}) if return_outputs else loss


__all__ = ["ListwiseCollator", "TRSRSFTTrainer", "packed_answer_margins"]
