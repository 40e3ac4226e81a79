"""LLM-TRSR's settings: how histories are summarised (:class:`TRSRSummaryConfig`) and how the yes/no recommender
trains (:class:`TRSRSFTConfig`, on hfrec's shared SFT config: ``hfrec.methods.common.sft`` lists every default that
differs from TRL's ``SFTConfig``). What differs here from :class:`~hfrec.methods.common.sft.LoRASFTConfig`:

===========================  =========================  ===================================================
field                        LoRASFTConfig              TRSRSFTConfig
===========================  =========================  ===================================================
lora_target_modules          ["all-linear"]             q_proj, k_proj, v_proj, o_proj (the released code)
learning_rate                2e-4                       1e-4 (the released code)
ranking_loss (new)           -                          "pointwise": the paper's yes/no cross-entropy, one
                                                        example per candidate; "listwise": one example per
                                                        training row, softmax over its candidates'
                                                        yes-minus-no logits, cross-entropy on the target
===========================  =========================  ===================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

from ..common.sft import LoRASFTConfig


class SummaryMode(str, Enum):
    HIERARCHICAL = "hierarchical"  # summarise each block, then merge the block summaries
    RECURRENT = "recurrent"  # a running summary, updated with each next block
    NONE = "none"  # no summary: the recommender sees the recent items only (the paper's ablation)


@dataclass
class TRSRSummaryConfig:
    """How :class:`~hfrec.methods.trsr.summaries.TRSRSummarizer` cuts and summarises a history.

    Every field but ``batch_size`` decides the texts; those that change a prompt or the generation are part of the
    summary cache's key, so changing them never reuses old summaries."""

    mode: SummaryMode = field(default=SummaryMode.HIERARCHICAL, metadata={"help": "hierarchical | recurrent"})
    block_size: int = field(default=5, metadata={"help": "Items per block (paper: 5)."})
    max_blocks: int = field(default=5, metadata={"help": "Most recent blocks summarised (paper: 5); older items "
                                                         "are dropped."})
    item_text_tokens: int = field(default=32, metadata={"help": "Token budget of one item's text (title + fields)."})
    max_new_tokens: int = field(default=96, metadata={"help": "Length budget of one summary."})
    generation_kwargs: dict = field(default_factory=dict, metadata={"help": "Other model.generate arguments "
                                                                            "(default greedy)."})
    domain: str = field(default="movie", metadata={"help": "Wording of the prompts (movie, game, product, ...)."})
    use_chat_template: bool = field(default=True, metadata={"help": "Prompts as a chat turn when the tokenizer "
                                                                    "has a template."})
    batch_size: int = field(default=16, metadata={"help": "Prompts per generate call."})
    seed: int = field(default=0, metadata={"help": "Seed of the per-batch RNG (matters only when sampling)."})

    def __post_init__(self):
        try:
            self.mode = SummaryMode(self.mode)
        except ValueError:
            raise ValueError(f"Unknown summary mode {self.mode!r}: use 'hierarchical' or 'recurrent'") from None
        if self.mode == SummaryMode.NONE:
            raise ValueError("Summary mode 'none' means no summariser: build the recommender's prompts without one")
        for name in ("block_size", "max_blocks", "item_text_tokens", "max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def generation(self) -> dict:
        """``model.generate`` arguments: greedy with ``max_new_tokens`` unless ``generation_kwargs`` says otherwise."""
        return {"max_new_tokens": self.max_new_tokens, "do_sample": False, **self.generation_kwargs}

    def to_dict(self) -> dict:
        return {**asdict(self), "mode": self.mode.value}


class RankingLoss(str, Enum):
    POINTWISE = "pointwise"  # the paper's: cross-entropy of the Yes / No answer of each candidate on its own
    LISTWISE = "listwise"  # softmax over one row's candidates of their yes-minus-no logits, target = the positive


@dataclass
class TRSRSFTConfig(LoRASFTConfig):
    """The yes/no recommender: LoRA on the attention projections (the released code's r 8, alpha 16 on q/k/v/o),
    trained on "summary + recent items + one candidate -> Yes / No" examples (pointwise) or on one row's target and
    negatives together (listwise), both built by :func:`hfrec.methods.trsr.data.build_training_examples`."""

    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate of the LoRA weights."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        metadata={"help": "Modules that get LoRA (['all-linear'] = every linear layer but the LM head)."},
    )
    ranking_loss: RankingLoss = field(
        default=RankingLoss.POINTWISE,
        metadata={"help": "pointwise (yes/no cross-entropy per candidate, the paper's) | listwise (softmax over a "
                          "row's candidates of the yes-minus-no logits, one packed forward per row)."},
    )

    def __post_init__(self):
        try:
            self.ranking_loss = RankingLoss(self.ranking_loss)
        except ValueError:
            raise ValueError(f"Unknown ranking_loss {self.ranking_loss!r}: use 'pointwise' or 'listwise'") from None
        super().__post_init__()


__all__ = ["RankingLoss", "SummaryMode", "TRSRSFTConfig", "TRSRSummaryConfig"]
