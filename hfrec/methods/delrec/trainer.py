"""TRL trainers of the two DELRec stages.

* :class:`SoftPromptSRDistiller` (stage 1): ``SFTTrainer`` with the LLM frozen and only the soft prompt trainable,
  on a mix of temporal-analysis (TA) and recommendation-pattern-simulating (RPS) examples. ``compute_loss`` is
  overridden to weight the two task losses dynamically (GradNorm): each task's weight grows with its relative
  loss ratio and shrinks with the norm of its gradient on the soft prompt. The per-task gradient norms come from
  one backward pass: the model injects one *view* of the soft prompt per task (``DELRecModel`` groups), so each
  view's ``.grad`` is that task's gradient. Checkpoints hold only the soft prompt (and optimizer state).
* :class:`DELRecSFTTrainer` (stage 2): ``SFTTrainer`` + PEFT LoRA; the soft prompt stays frozen. TRL's fused-LM-head
  training path calls ``model.base_model`` (``DELRecModel``), where the soft prompt is injected, so it is used.

Both train through TRL's own loop (progress bars, ``accelerate launch``, ``resume_from_checkpoint``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from trl import SFTTrainer

from ..models.delrec import DELRecForCausalLM
from ..models.delrec.modeling_delrec import SOFT_PROMPT_CONFIG_NAME, SOFT_PROMPT_WEIGHTS_NAME
from ..utils import atomic_write_json
from .delrec_config import DELRecDistillConfig, DELRecSFTConfig
from .delrec_data import TASK_RPS, TASK_TA

TASK_WEIGHTS_NAME = "delrec_task_weights.json"

logger = logging.getLogger(__name__)

TASK_NAMES = {TASK_TA: "ta", TASK_RPS: "rps"}


def _delrec_of(model) -> DELRecForCausalLM:
    m = model
    while True:
        if isinstance(m, DELRecForCausalLM):
            return m
        if hasattr(m, "get_base_model"):
            m = m.get_base_model()
        elif hasattr(m, "module"):
            m = m.module
        else:
            raise TypeError(f"Expected a DELRecForCausalLM (possibly wrapped), got {type(model).__name__}")


@dataclass
class DELRecCollator:
    """Right-pads ``input_ids`` / ``labels`` and stacks the stage-1 ``task`` column."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        # numpy rows, one tensor per field at the end: per-row torch ops took 11 ms per batch of 64 prompts of
        # ~550 tokens on the 2-core dev CPU (now 1 ms), host time that a compiled, host-bound step waits for
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
        if "task" in examples[0]:
            batch["task"] = torch.as_tensor([int(e["task"]) for e in examples], dtype=torch.long)
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
    # One compiled function serves every layer, and a run shows it several global states (stage-1 training,
    # stage 2 with LoRA, ranking under no_grad, static then dynamic shapes): past dynamo's default limit of 8
    # variants it silently runs eager (seen on the H100), so allow more.
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

    The DELRec script does this before ranking: on the H100 the packed ranking forward ran as fast eagerly as
    compiled (~295 users/s either way), and a no-grad graph would cost another compilation."""
    n = 0
    for module in model.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None
            n += 1
    return n


def _default_collator(processing_class, data_collator):
    """Both stages need the DELRec tokenizer; without a collator they pad with its pad (or eos) token."""
    if processing_class is None:
        raise ValueError("Pass the DELRec tokenizer as processing_class (it holds the soft-prompt token)")
    if data_collator is not None:
        return data_collator
    pad = processing_class.pad_token_id if processing_class.pad_token_id is not None else processing_class.eos_token_id
    return DELRecCollator(pad_token_id=pad)


class SoftPromptSRDistiller(SFTTrainer):
    """Stage 1 of DELRec: distil an SR teacher's patterns into the soft prompt of a frozen LLM.

    Args:
        model: a :class:`DELRecForCausalLM` (``DELRecForCausalLM.from_backbone(...)``).
        args: :class:`DELRecDistillConfig`.
        train_dataset: rows with ``input_ids``, ``labels`` (-100 on the prompt) and ``task`` (0 = TA, 1 = RPS),
            e.g. from :func:`hfrec.trainers.delrec_data.build_stage1_examples`.
        processing_class: the tokenizer returned by ``from_backbone`` (it knows the placeholder token).
    """

    _tag_names = ["trl", "sft", "hfrec", "delrec", "soft-prompt"]
    loss_is_scaled_for_ga = False  # compute_loss returns a per-micro-batch mean: let Trainer divide by GA steps

    def __init__(self, model, args: DELRecDistillConfig | None = None, train_dataset=None, eval_dataset=None,
                 processing_class=None, data_collator=None, **kwargs):
        if args is None:
            args = DELRecDistillConfig(output_dir="delrec-stage1")
        if not isinstance(args, DELRecDistillConfig):
            raise TypeError(f"args must be a DELRecDistillConfig, got {type(args).__name__}")
        if kwargs.get("peft_config") is not None:
            raise ValueError("Stage 1 trains only the soft prompt: do not pass a peft_config")
        delrec = _delrec_of(model)
        delrec.freeze_for_stage(1)
        data_collator = _default_collator(processing_class, data_collator)
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=processing_class, data_collator=data_collator, **kwargs)
        if args.compile_layers:
            compile_decoder_layers(self.model, args.torch_compile_mode, args.compile_layers_backend)
        self.task_weights = torch.tensor(list(args.task_weights), dtype=torch.float32)
        self._initial_task_losses: torch.Tensor | None = None
        self._pending: dict | None = None

    # ------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        inputs = dict(inputs)
        task = inputs.pop("task", None)
        labels = inputs["labels"]
        if task is None:
            task = torch.full((labels.shape[0],), TASK_RPS, dtype=torch.long, device=labels.device)
        core = _delrec_of(model).model
        track = mode == "train" and self.args.dynamic_loss_weighting
        core._soft_prompt_groups = task if track else None
        try:
            outputs = model(**inputs, use_cache=False, fused_lm_head=True)
        finally:
            core._soft_prompt_groups = None
        views, core._soft_prompt_views = core._soft_prompt_views, None

        log_probs = outputs.log_probs  # (B, L-1), zero where the label is ignored
        mask = outputs.label_mask
        row_nll = -log_probs.sum(-1)
        row_tok = mask.sum(-1).to(row_nll.dtype)
        w = self.task_weights.to(row_nll.device)
        task_losses, present = [], []
        loss = row_nll.new_zeros(())
        for t in (TASK_TA, TASK_RPS):
            sel = task == t
            ntok = row_tok[sel].sum()
            has = bool(sel.any()) and bool(ntok > 0)
            lt = row_nll[sel].sum() / ntok.clamp(min=1)
            task_losses.append(lt.detach())
            present.append(has)
            if has:
                loss = loss + w[t] * lt
        # Normalised by the weights of the present tasks: the weights only redistribute, never rescale, the loss
        wsum = sum(float(w[t]) for t in (TASK_TA, TASK_RPS) if present[t])
        loss = loss / max(wsum, 1e-8)
        if track and views is not None:
            self._pending = {"views": views, "losses": torch.stack(task_losses), "present": torch.tensor(present)}
        for t, name in TASK_NAMES.items():
            if present[t]:
                self._metrics[mode][f"loss_{name}"].append(float(task_losses[t]))
            self._metrics[mode][f"weight_{name}"].append(float(self.task_weights[t]))
        if mode == "train":
            self._total_train_tokens += int(inputs["attention_mask"].sum())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self._pending is not None:
            self._update_task_weights(**self._pending)
            self._pending = None
        return loss

    @torch.no_grad()
    def _update_task_weights(self, views, losses, present):
        """One GradNorm step on the task weights (Chen et al. 2018, with the target norm held constant)."""
        args = self.args
        dev = losses.device
        T = len(self.task_weights)
        w = self.task_weights.to(dev)
        G = torch.stack([v.grad.float().norm() if v.grad is not None else torch.zeros((), device=dev) for v in views])
        if G.numel() < T:
            G = torch.cat([G, G.new_zeros(T - G.numel())])
        present = present.to(dev).float()
        # Average over processes (DDP/FSDP): every rank must keep the same weights
        stats = torch.cat([G * present, losses.float() * present, present])
        stats = self.accelerator.reduce(stats, reduction="sum")
        cnt = stats[2 * T :].clamp(min=1)
        G, L, here = stats[:T] / cnt, stats[T : 2 * T] / cnt, stats[2 * T :] > 0
        if not bool(here.all()):
            return  # a task absent from this step: keep the weights
        if self._initial_task_losses is None:
            self._initial_task_losses = L.clamp(min=1e-8).cpu()
        ratio = L / self._initial_task_losses.to(dev)
        r = ratio / ratio.mean()
        target = G.mean() * r.pow(args.gradnorm_alpha)
        raw = G / w.clamp(min=1e-8)  # ||grad of the unweighted task loss||
        step = torch.sign(G - target) * raw / raw.mean().clamp(min=1e-12)
        w = (w - args.gradnorm_lr * step).clamp(min=args.min_task_weight)
        self.task_weights = (w * T / w.sum()).cpu()

    # ------------------------------------------------------------------ checkpoints: the soft prompt only
    def _save(self, output_dir: str | None = None, state_dict=None):
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        delrec = _delrec_of(self.accelerator.unwrap_model(self.model))
        if state_dict:  # FSDP / DeepSpeed: save_model gathered the full weights on every rank; ours may be a shard
            key = next((k for k in state_dict if k.endswith("soft_prompt.embedding.weight")), None)
            if key is None:
                raise KeyError("The gathered state dict holds no soft prompt (soft_prompt.embedding.weight)")
            delrec.save_soft_prompt(output_dir, weight=state_dict[key])
        else:
            delrec.save_soft_prompt(output_dir)
        delrec.config.save_pretrained(output_dir)
        # JSON, not torch.save: checkpoints hold no pickles (floats round-trip exactly through repr)
        initial = None if self._initial_task_losses is None else self._initial_task_losses.tolist()
        atomic_write_json(Path(output_dir) / TASK_WEIGHTS_NAME,
                          {"task_weights": self.task_weights.tolist(), "initial": initial})
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if not (Path(resume_from_checkpoint) / SOFT_PROMPT_WEIGHTS_NAME).exists():
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        delrec = _delrec_of(self.accelerator.unwrap_model(model if model is not None else self.model))
        delrec.load_soft_prompt(resume_from_checkpoint)
        state = Path(resume_from_checkpoint) / TASK_WEIGHTS_NAME
        if state.exists():
            saved = json.loads(state.read_text())
            self.task_weights = torch.tensor(saved["task_weights"], dtype=torch.float32)
            initial = saved["initial"]
            self._initial_task_losses = None if initial is None else torch.tensor(initial, dtype=torch.float32)
        logger.info("Resumed the soft prompt from %s", resume_from_checkpoint)

    def _load_best_model(self):
        best = self.state.best_model_checkpoint
        if best and (Path(best) / SOFT_PROMPT_CONFIG_NAME).exists():
            _delrec_of(self.accelerator.unwrap_model(self.model)).load_soft_prompt(best)
        else:
            super()._load_best_model()


class DELRecSFTTrainer(SFTTrainer):
    """Stage 2 of DELRec: LoRA fine-tuning on the recommendation prompt with the distilled soft prompt frozen.

    Args:
        model: a :class:`DELRecForCausalLM` after stage 1.
        args: :class:`DELRecSFTConfig` (its ``lora_*`` fields build the PEFT config unless ``peft_config`` is given).
        train_dataset: rows with ``input_ids`` and ``labels``
            (:func:`hfrec.trainers.delrec_data.build_recommendation_examples`).
    """

    _tag_names = ["trl", "sft", "hfrec", "delrec", "lora"]

    def __init__(self, model, args: DELRecSFTConfig | None = None, train_dataset=None, eval_dataset=None,
                 processing_class=None, data_collator=None, peft_config=None, **kwargs):
        if args is None:
            args = DELRecSFTConfig(output_dir="delrec-stage2")
        delrec = _delrec_of(model)
        delrec.freeze_for_stage(2)
        if peft_config is None and isinstance(args, DELRecSFTConfig) and args.lora_r > 0:
            peft_config = args.peft_config()
        data_collator = _default_collator(processing_class, data_collator)
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=processing_class, data_collator=data_collator, peft_config=peft_config,
                         **kwargs)
        trainable = [n for n, p in self.model.named_parameters() if p.requires_grad and "soft_prompt" in n]
        if trainable:
            raise RuntimeError(f"Stage 2 must keep the soft prompt frozen; trainable: {trainable}")
        adapter_dtype = getattr(args, "adapter_dtype", "float32")
        if adapter_dtype == "auto":
            adapter_dtype = "model" if self.args.device.type == "cuda" else "float32"
        if adapter_dtype == "model":
            frozen = {p.dtype for n, p in self.model.named_parameters()
                      if not p.requires_grad and p.is_floating_point() and "soft_prompt" not in n}
            if len(frozen) == 1 and (dtype := frozen.pop()) in (torch.bfloat16, torch.float16):
                for p in self.model.parameters():
                    if p.requires_grad and p.dtype != dtype:
                        p.data = p.data.to(dtype)
        if getattr(args, "compile_layers", False):
            # after PEFT, so LoRA is compiled in
            compile_decoder_layers(self.model, args.torch_compile_mode, args.compile_layers_backend)


__all__ = ["DELRecCollator", "DELRecSFTTrainer", "SoftPromptSRDistiller", "compile_decoder_layers",
           "decompile_decoder_layers"]
