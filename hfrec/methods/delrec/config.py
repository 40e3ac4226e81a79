"""TRL configs of the two DELRec stages.

Defaults that differ from TRL's ``SFTConfig`` (all in one place: `_DELRecSFTBase`, and :data:`DELREC_SFT_DEFAULTS` lists them):

================================  ==================  ==========================================================
field                             SFTConfig           DELRec
================================  ==================  ==========================================================
gradient_checkpointing            True                False (small backbones; it costs ~30% time; the
                                                      transformers-5 name is activation_checkpointing)
bf16                              True                True only on a CUDA device with bf16, else False (CPU)
remove_unused_columns             True                False (the stage-1 ``task`` column must reach the trainer)
dataset_kwargs                    None                ``{"skip_prepare_dataset": True}``: examples arrive tokenized
                                                      with ``labels`` (-100 on the prompt) from hfrec.prompts
max_length                        1024                None (prompts are bounded by construction; no truncation
                                                      that could cut the soft-prompt placeholder block)
report_to                         "all"               "none"
save_strategy / save_steps        "steps" / 500       "steps" / 200 (resumable runs)
save_total_limit                  None                2
learning_rate                     2e-5                stage 1: 1e-3 (soft prompt only); stage 2: 2e-4 (LoRA)
lr_scheduler_type                 "linear"            "cosine"
(stage 2) LoRA weights dtype      float32 (PEFT)      on CUDA the frozen weights' dtype (``adapter_dtype="auto"``)
(stage 2) LoRA r / alpha / drop.  -                   8 / 16 / 0.0 on every linear layer but the LM head
logging_steps                     10                  5
compile_layers (new)              -                   False (the gpu preset turns it on: each decoder layer is
                                                      compiled in place with dynamic shapes, see below)
================================  ==================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import SFTConfig

DELREC_SFT_DEFAULTS: dict = {
    "activation_checkpointing": False,  # alias gradient_checkpointing (TRL default True)
    "bf16": None,  # resolved in __post_init__: CUDA with bf16 support -> True, else False
    "remove_unused_columns": False,
    "dataset_kwargs": {"skip_prepare_dataset": True},
    "max_length": None,
    "report_to": "none",
    "save_strategy": "steps",
    "save_steps": 200,
    "save_total_limit": 2,
    "lr_scheduler_type": "cosine",
    "logging_steps": 5,
}


def _bf16_available(use_cpu: bool) -> bool:
    return (not use_cpu) and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass
class _DELRecSFTBase(SFTConfig):
    """The defaults both DELRec stages share (the table in the module docstring)."""

    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Deprecated alias of activation_checkpointing (default off here)."}
    )
    bf16: bool | None = field(default=None, metadata={"help": "bf16 mixed precision (default: on CUDA with bf16 only)."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep the prepared columns (stage 1: the `task` column)."})
    dataset_kwargs: dict | str | None = field(
        default_factory=lambda: {"skip_prepare_dataset": True},
        metadata={"help": "Examples arrive tokenized, with labels."},
    )
    max_length: int | None = field(default=None, metadata={"help": "No truncation (would cut the soft prompt)."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Experiment trackers."})
    save_strategy: str = field(default="steps", metadata={"help": "Checkpoint strategy (resumable runs)."})
    save_steps: float = field(default=200, metadata={"help": "Steps between checkpoints."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    logging_steps: float = field(default=5, metadata={"help": "Steps between logs."})
    compile_layers: bool = field(
        default=False,
        metadata={
            "help": "torch.compile every decoder layer of the backbone in place, with dynamic shapes (regional "
            "compilation: one compiled graph serves all layers and every padded length). Unlike `torch_compile`, "
            "which compiles the whole PEFT-wrapped model and recompiled at each new padded length in our H100 runs, "
            "this fuses the elementwise work (norms, RoPE, SiLU, LoRA scaling) that dominates a small backbone's step."
        },
    )
    compile_layers_backend: str = field(
        default="inductor",
        metadata={"help": "torch.compile backend of compile_layers ('aot_eager' traces without generating kernels, "
                  "so it needs no C++ compiler on CPU)."},
    )

    def __post_init__(self):
        if self.compile_layers and self.torch_compile:
            raise ValueError("Use either compile_layers (each decoder layer) or torch_compile (the whole model), not both")
        if self.activation_checkpointing is None and self.gradient_checkpointing is None:
            self.activation_checkpointing = False
        if self.bf16 is None:
            self.bf16 = False if self.fp16 else _bf16_available(getattr(self, "use_cpu", False))
        if self.dataset_kwargs is None:
            self.dataset_kwargs = {"skip_prepare_dataset": True}
        super().__post_init__()


@dataclass
class DELRecDistillConfig(_DELRecSFTBase):
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
class DELRecSFTConfig(_DELRecSFTBase):
    """Stage 2 (LLM-based sequential recommendation): soft prompt frozen, LoRA on the backbone."""

    learning_rate: float = field(default=2e-4, metadata={"help": "AdamW learning rate of the LoRA weights."})

    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (PEFT's default 0: a dropout mask on every adapted "
                                                                    "layer's input is extra elementwise work each step)."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules that get LoRA (['all-linear'] = every linear layer but the LM head)."},
    )
    use_adalora: bool = field(default=False, metadata={"help": "AdaLoRA instead of LoRA (paper: (Ada)LoRA)."})
    adapter_dtype: str = field(
        default="auto",
        metadata={
            "help": "dtype of the LoRA weights: 'model' = the frozen weights' dtype (bf16 backbone -> bf16 adapters, no "
            "per-layer casts; the H100 profile showed fp32 adapters spend ~25% of GPU time in dtype copies), "
            "'float32' (PEFT's default; faster on CPU, where small bf16 matmuls are slow), 'auto' = 'model' on CUDA, "
            "else 'float32'.",
            "choices": ["auto", "model", "float32"],
        },
    )

    def peft_config(self):
        """The PEFT config these fields describe (LoRA, or AdaLoRA with ``use_adalora``)."""
        from peft import AdaLoraConfig, LoraConfig, TaskType

        targets = self.lora_target_modules
        targets = "all-linear" if list(targets) == ["all-linear"] else list(targets)
        if self.use_adalora:
            return AdaLoraConfig(
                task_type=TaskType.CAUSAL_LM, init_r=self.lora_r * 2, target_r=self.lora_r, lora_alpha=self.lora_alpha,
                lora_dropout=self.lora_dropout, target_modules=targets, total_step=max(int(self.max_steps), 1),
            )
        return LoraConfig(
            task_type=TaskType.CAUSAL_LM, r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
            target_modules=targets,
        )


__all__ = ["DELREC_SFT_DEFAULTS", "DELRecDistillConfig", "DELRecSFTConfig"]
