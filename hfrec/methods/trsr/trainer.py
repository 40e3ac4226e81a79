"""LLM-TRSR's recommender trainer: TRL's ``SFTTrainer`` through hfrec's shared base (padding collator, the LoRA
adapter built from the config, adapter dtype, regional compilation), on yes/no examples whose only label is the
answer token (:func:`hfrec.methods.trsr.data.build_training_examples`). The loss is thus the cross-entropy of the
answer's first token, the same logit pair the ranking's P(yes) reads."""

from __future__ import annotations

from ..common.sft import HfrecSFTTrainer
from .config import TRSRSFTConfig


class TRSRSFTTrainer(HfrecSFTTrainer):
    """LoRA fine-tuning of a causal LM on "summary + recent items + one candidate -> Yes / No".

    Args:
        model: the backbone (any causal LM; the adapter is added from ``args``' ``lora_*`` fields).
        args: :class:`~hfrec.methods.trsr.config.TRSRSFTConfig`.
        train_dataset: rows with ``input_ids`` and ``labels``.
        processing_class: the backbone's tokenizer.
    """

    _tag_names = ["trl", "sft", "hfrec", "trsr", "lora"]

    def __init__(self, model, args: TRSRSFTConfig | None = None, **kwargs):
        args = args if args is not None else TRSRSFTConfig(output_dir="trsr-recommender")
        if not isinstance(args, TRSRSFTConfig):
            raise TypeError(f"args must be a TRSRSFTConfig (LoRA settings of the recommender), got "
                            f"{type(args).__name__}")
        super().__init__(model=model, args=args, **kwargs)


__all__ = ["TRSRSFTTrainer"]
