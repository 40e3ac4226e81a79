"""TRL configs of the two DELRec stages, on hfrec's shared SFT config (``hfrec.methods.common.sft``, whose module
docstring lists every default that differs from TRL's ``SFTConfig``). What differs here:

===========================  =========================  ===================================================
field                        HfrecSFTConfig / LoRA      DELRec
===========================  =========================  ===================================================
learning_rate                2e-5 / 2e-4                stage 1: 1e-3 (soft prompt only); stage 2: 2e-4 (LoRA)
dynamic task weights (new)   -                          stage 1: GradNorm-style weights of the TA and RPS losses
===========================  =========================  ===================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..common.sft import HfrecSFTConfig, LoRASFTConfig


@dataclass
class DELRecDistillConfig(HfrecSFTConfig):
    """Stage 1 (SR-pattern distilling): the LLM is frozen, only the soft prompt trains, on temporal-analysis (TA)
    and recommendation-pattern-simulating (RPS) examples, with GradNorm-style dynamic task weights."""

    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate of the soft prompt."})

    dynamic_loss_weighting: bool = field(
        default=True,
        metadata={"help": "GradNorm-style weights for the TA and RPS losses (False: fixed `task_weights`)."},
    )
    task_weights: list[float] = field(
        default_factory=lambda: [1.0, 1.0], metadata={"help": "Initial (or fixed) weights of [TA, RPS]."}
    )
    gradnorm_alpha: float = field(
        default=1.5, metadata={"help": "GradNorm asymmetry: how strongly a lagging task's weight grows."}
    )
    gradnorm_lr: float = field(default=0.025, metadata={"help": "Step size of the task-weight update."})
    min_task_weight: float = field(default=0.05, metadata={"help": "Floor of each task weight."})

    def __post_init__(self):
        super().__post_init__()
        if len(self.task_weights) != 2 or min(self.task_weights) <= 0:
            raise ValueError(f"task_weights must be two positive numbers [TA, RPS], got {self.task_weights}")


@dataclass
class DELRecSFTConfig(LoRASFTConfig):
    """Stage 2 (LLM-based sequential recommendation): soft prompt frozen, (Ada)LoRA on the backbone (the paper's
    setting; ``use_adalora`` switches)."""


__all__ = ["DELRecDistillConfig", "DELRecSFTConfig"]
