"""SFT scaffolding every LLM method of hfrec trains with: one config base and one trainer base on TRL's
``SFTTrainer``, the padding collator, LoRA settings and regional compilation.

Defaults that differ from TRL's ``SFTConfig`` (all in one place: :class:`HfrecSFTConfig`; :data:`HFREC_SFT_DEFAULTS`
lists them):

================================  ==================  ==========================================================
field                             SFTConfig           hfrec
================================  ==================  ==========================================================
gradient_checkpointing            True                False (small backbones: recomputing activations costs time; the
                                                      transformers-5 name is activation_checkpointing)
bf16                              True                True only where the hardware runs bf16 natively (a CUDA
                                                      device with bf16), else False: emulated bf16 on an
                                                      AVX2-only CPU is several times slower than float32
remove_unused_columns             True                False (method columns such as DELRec's ``task`` must reach
                                                      the trainer)
dataset_kwargs                    None                ``{"skip_prepare_dataset": True}``: examples arrive tokenized
                                                      with ``labels`` (-100 on the prompt)
max_length                        1024                None (prompts are bounded by construction; no truncation
                                                      that could cut a soft-prompt placeholder block)
report_to                         "all"               "none"
save_strategy / save_steps        "steps" / 500       "steps" / 200 (resumable runs)
save_total_limit                  None                2
lr_scheduler_type                 "linear"            "cosine"
logging_steps                     10                  5
dataloader_pin_memory             True                only with a CUDA device (pinning on a CPU only warns)
compile_layers (new)              -                   False (each decoder layer compiled in place, dynamic shapes)
(LoRA configs) r / alpha / drop.  -                   8 / 16 / 0.0 on every linear layer but the LM head
(LoRA configs) adapter dtype      float32 (PEFT)      on CUDA the frozen weights' dtype (``adapter_dtype="auto"``)
================================  ==================  ==========================================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import torch
from trl import SFTConfig, SFTTrainer

logger = logging.getLogger(__name__)

HFREC_SFT_DEFAULTS: dict = {
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
    "dataloader_pin_memory": None,  # resolved in __post_init__: True only with a CUDA device
}


def _bf16_available(use_cpu: bool) -> bool:
    return (not use_cpu) and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass
class HfrecSFTConfig(SFTConfig):
    """``SFTConfig`` with the defaults every hfrec LLM method shares (the table in the module docstring)."""

    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Deprecated alias of activation_checkpointing (default off here)."}
    )
    bf16: bool | None = field(default=None, metadata={"help": "bf16 mixed precision (default: on CUDA with bf16 only)."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep the method's prepared columns."})
    dataset_kwargs: dict | str | None = field(
        default_factory=lambda: {"skip_prepare_dataset": True},
        metadata={"help": "Examples arrive tokenized, with labels."},
    )
    max_length: int | None = field(default=None, metadata={"help": "No truncation (would cut a soft prompt)."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Experiment trackers."})
    save_strategy: str = field(default="steps", metadata={"help": "Checkpoint strategy (resumable runs)."})
    save_steps: float = field(default=200, metadata={"help": "Steps between checkpoints."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    logging_steps: float = field(default=5, metadata={"help": "Steps between logs."})
    dataloader_pin_memory: bool | None = field(
        default=None, metadata={"help": "Pin batches in host memory (default: only with a CUDA device to copy to)."})
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
        if self.dataloader_pin_memory is None:  # pinning without a GPU only warns
            self.dataloader_pin_memory = torch.cuda.is_available() and not getattr(self, "use_cpu", False)
        super().__post_init__()


class AdapterDType(str, Enum):
    AUTO = "auto"  # MODEL on CUDA, FLOAT32 elsewhere
    MODEL = "model"  # the frozen weights' dtype
    FLOAT32 = "float32"  # PEFT's default


@dataclass
class LoRASFTConfig(HfrecSFTConfig):
    """:class:`HfrecSFTConfig` + the LoRA adapter the trainer builds (:meth:`peft_config`)."""

    learning_rate: float = field(default=2e-4, metadata={"help": "AdamW learning rate of the LoRA weights."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (0: no adapter)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (PEFT's default 0: a dropout mask on every "
                                                                "adapted layer's input is extra elementwise work each step)."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules that get LoRA (['all-linear'] = every linear layer but the LM head)."},
    )
    lora_top_layers: int = field(
        default=0,
        metadata={"help": "Adapt only the last N decoder layers (0, or N >= the backbone's layers: every layer). With a "
                  "frozen input side the backward "
                  "pass then stops at the lowest adapted layer: cheaper steps where compute is scarce (CPU presets)."},
    )
    use_adalora: bool = field(default=False, metadata={"help": "AdaLoRA instead of LoRA."})
    adapter_dtype: AdapterDType = field(
        default=AdapterDType.AUTO,
        metadata={
            "help": "dtype of the LoRA weights: 'model' = the frozen weights' dtype (bf16 backbone -> bf16 adapters, no "
            "per-layer casts, which an H100 profile showed to be a large share of GPU time), "
            "'float32' (PEFT's default; faster on CPU, where small bf16 matmuls are slow), 'auto' = 'model' on CUDA, "
            "else 'float32'.",
        },
    )

    def __post_init__(self):
        self.adapter_dtype = AdapterDType(self.adapter_dtype)
        if self.lora_r < 0:
            raise ValueError(f"lora_r must be >= 0 (0: no adapter), got {self.lora_r}")
        super().__post_init__()

    def peft_config(self, num_layers: int | None = None, task_type: str = "CAUSAL_LM"):
        """The PEFT config these fields describe (LoRA, or AdaLoRA with ``use_adalora``); None when ``lora_r == 0``.
        ``num_layers`` (the backbone's decoder layers) is needed with ``lora_top_layers``."""
        from peft import AdaLoraConfig, LoraConfig, TaskType

        if self.lora_r == 0:
            return None
        targets = self.lora_target_modules
        targets = "all-linear" if list(targets) == ["all-linear"] else list(targets)
        common = dict(task_type=TaskType[task_type], lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                      target_modules=targets)
        if self.lora_top_layers and num_layers is None:
            raise ValueError("lora_top_layers needs the backbone's number of decoder layers (num_layers)")
        if self.lora_top_layers and isinstance(targets, str):  # PEFT takes layers_to_transform with a module list only
            raise ValueError(f"lora_top_layers needs named lora_target_modules (e.g. q_proj,v_proj), not {targets!r}")
        if self.lora_top_layers and self.lora_top_layers < num_layers:  # a backbone with fewer layers adapts all
            common["layers_to_transform"] = list(range(num_layers - self.lora_top_layers, num_layers))
        if self.use_adalora:
            if self.max_steps <= 0:  # its rank budget is scheduled over the run: a wrong total silently mis-prunes
                raise ValueError("use_adalora needs max_steps > 0 (AdaLoRA schedules its rank pruning over the total "
                                 f"number of steps; got max_steps={self.max_steps}): set max_steps")
            return AdaLoraConfig(init_r=self.lora_r * 2, target_r=self.lora_r, total_step=max(int(self.max_steps), 1),
                                 **common)
        return LoraConfig(r=self.lora_r, **common)


@dataclass
class PaddingCollator:
    """Right-pads ``input_ids`` / ``labels`` (and builds ``attention_mask``); integer columns named in
    ``extra_columns`` (e.g. DELRec's ``task``, PeaPOD's ``user_index``) are stacked as they are."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    extra_columns: tuple[str, ...] = ()

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        # numpy rows, one tensor per field at the end: per-row torch ops cost host time that a compiled,
        # host-bound training step waits for
        lengths = [len(e["input_ids"]) for e in examples]
        L = max(lengths)
        if self.pad_to_multiple_of:
            L = -(-L // self.pad_to_multiple_of) * self.pad_to_multiple_of
        B = len(examples)
        input_ids = np.full((B, L), self.pad_token_id, dtype=np.int64)
        labels = np.full((B, L), -100, dtype=np.int64)
        for i, (e, n) in enumerate(zip(examples, lengths)):
            input_ids[i, :n] = e["input_ids"]
            labels[i, :n] = e["labels"]
        attention_mask = (np.arange(L)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask),
                 "labels": torch.from_numpy(labels)}
        for name in self.extra_columns:
            if name in examples[0]:
                batch[name] = torch.as_tensor([e[name] for e in examples], dtype=torch.long)
        return batch


def compile_decoder_layers(model, mode: str | None = None, backend: str = "inductor") -> int:
    """Regional compilation: ``torch.compile`` each repeated block (decoder layer) of ``model`` in place, with
    dynamic shapes, and return how many were compiled.

    In place (``nn.Module.compile``), so parameter names, PEFT adapters, saving and DDP wrapping are unchanged; the
    layers share one compiled graph (dynamo inlines the module, the weights are graph inputs), and ``dynamic=True``
    keeps a new padded length or batch size from triggering a recompile. Already compiled layers are skipped.
    """
    blocks = None
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1 and all(
            type(m) is type(module[0]) for m in module
        ):
            blocks = module
            break
    if blocks is None:
        raise ValueError(f"compile_layers: found no repeated decoder layers in {type(model).__name__}")
    # One compiled function serves every layer, and a run shows it several global states (training, LoRA,
    # ranking under no_grad, static then dynamic shapes): past dynamo's default limit of 8 variants it silently
    # runs eager (seen on the H100), so allow more.
    from torch._dynamo import config as dynamo_config

    limit_name = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"
    setattr(dynamo_config, limit_name, max(getattr(dynamo_config, limit_name), 64))
    n = 0
    for layer in blocks:
        if getattr(layer, "_compiled_call_impl", None) is None:
            layer.compile(dynamic=True, mode=mode, backend=backend)
            n += 1
    return n


def decompile_decoder_layers(model) -> int:
    """Undo :func:`compile_decoder_layers` (layers run eagerly again); returns how many layers it reverted.

    Ranking runs eagerly: on the H100 the packed ranking forward ran as fast eagerly as compiled, and a no-grad
    graph would cost another compilation."""
    n = 0
    for module in model.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None
            n += 1
    return n


def cast_adapters_to_model_dtype(model) -> None:
    """Give trainable (adapter) weights the dtype of the frozen bf16/fp16 weights, so no layer casts per step.
    The frozen dtype is the one holding most frozen numbers (a small float32 soft prompt does not count)."""
    numel: dict[torch.dtype, int] = {}
    for p in model.parameters():
        if not p.requires_grad and p.is_floating_point():
            numel[p.dtype] = numel.get(p.dtype, 0) + p.numel()
    if numel and (dtype := max(numel, key=numel.get)) in (torch.bfloat16, torch.float16):
        for p in model.parameters():
            if p.requires_grad and p.dtype != dtype:
                p.data = p.data.to(dtype)


def unwrap_to(model, cls):
    """The ``cls`` instance inside PEFT / DDP / compile wrappers of ``model``; a TypeError names what was found."""
    m = model
    while True:
        if isinstance(m, cls):
            return m
        if hasattr(m, "get_base_model"):
            m = m.get_base_model()
        elif hasattr(m, "module"):
            m = m.module
        elif hasattr(m, "_orig_mod"):
            m = m._orig_mod
        else:
            raise TypeError(f"Expected a {cls.__name__} (possibly wrapped), got {type(model).__name__}")


class HfrecSFTTrainer(SFTTrainer):
    """``SFTTrainer`` for pre-tokenized hfrec examples: the padding collator by default, the LoRA adapter from a
    :class:`LoRASFTConfig` (its dtype per ``adapter_dtype``), and regional compilation (``compile_layers``).

    Subclasses set :attr:`collator_columns` to the extra integer columns their examples carry."""

    collator_columns: tuple[str, ...] = ()

    def __init__(self, model, args: HfrecSFTConfig, train_dataset=None, eval_dataset=None, processing_class=None,
                 data_collator=None, peft_config=None, **kwargs):
        if processing_class is None:
            raise ValueError("Pass the backbone's tokenizer as processing_class (it pads the batches and is saved "
                             "with the model)")
        if data_collator is None:
            pad = processing_class.pad_token_id
            data_collator = PaddingCollator(pad if pad is not None else processing_class.eos_token_id,
                                            extra_columns=self.collator_columns)
        if peft_config is None and isinstance(args, LoRASFTConfig):
            text_config = model.config.get_text_config()
            peft_config = args.peft_config(getattr(text_config, "num_hidden_layers", None))
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=processing_class, data_collator=data_collator, peft_config=peft_config,
                         **kwargs)
        adapter_dtype = getattr(args, "adapter_dtype", AdapterDType.FLOAT32)
        if adapter_dtype == AdapterDType.AUTO:
            adapter_dtype = AdapterDType.MODEL if self.args.device.type == "cuda" else AdapterDType.FLOAT32
        if peft_config is not None and adapter_dtype == AdapterDType.MODEL:
            cast_adapters_to_model_dtype(self.model)
        if args.compile_layers:  # after PEFT, so LoRA is compiled in
            compile_decoder_layers(self.model, args.torch_compile_mode, args.compile_layers_backend)


def training_cost(trainer, seconds: float | None = None) -> dict:
    """A trained row's cost for the benchmark table: ``train_s`` (``seconds`` if given, else the trainer's
    ``train_runtime``) and ``train_tokens``, the tokens TRL counted through the model (its ``num_tokens`` log:
    padding excluded, every epoch counted)."""
    history = trainer.state.log_history
    tokens = max((entry["num_tokens"] for entry in history if "num_tokens" in entry), default=None)
    if tokens is None:
        tokens = getattr(trainer, "_total_train_tokens", None)
    runtime = next((entry["train_runtime"] for entry in reversed(history) if "train_runtime" in entry), None)
    return {"train_s": round(seconds if seconds is not None else (runtime or 0.0), 1),
            "train_tokens": int(tokens) if tokens is not None else None}


__all__ = [
    "AdapterDType",
    "HFREC_SFT_DEFAULTS",
    "HfrecSFTConfig",
    "HfrecSFTTrainer",
    "LoRASFTConfig",
    "PaddingCollator",
    "cast_adapters_to_model_dtype",
    "compile_decoder_layers",
    "decompile_decoder_layers",
    "training_cost",
    "unwrap_to",
]
