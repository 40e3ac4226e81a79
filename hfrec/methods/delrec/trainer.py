"""TRL trainers of the two DELRec stages.

Both stand on hfrec's shared trainer base (``hfrec.methods.common.sft.HfrecSFTTrainer``: padding collator, LoRA
from the config, adapter dtype, regional compilation).

* :class:`SoftPromptSRDistiller` (stage 1): ``SFTTrainer`` with the LLM frozen and only the soft prompt trainable,
  on a mix of temporal-analysis (TA) and recommendation-pattern-simulating (RPS) examples. ``compute_loss`` is
  overridden to weight the two task losses dynamically (GradNorm): each task's weight grows with its relative
  loss ratio and shrinks with the norm of its gradient on the soft prompt. The per-task gradient norms come from
  one backward pass: the trainer injects one *view* of the soft prompt per task as per-row soft prompts, so each
  view's ``.grad`` is that task's gradient. Checkpoints hold only the soft prompt (and optimizer state).
* :class:`DELRecSFTTrainer` (stage 2): ``SFTTrainer`` + PEFT LoRA; the soft prompt stays frozen. TRL's fused-LM-head
  training path calls ``model.base_model`` (``DELRecModel``), where the soft prompt is injected, so it is used.

Both train through TRL's own loop (progress bars, ``accelerate launch``, ``resume_from_checkpoint``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from ...models.delrec import DELRecForCausalLM
from ...models.delrec.modeling_delrec import SOFT_PROMPT_CONFIG_NAME, SOFT_PROMPT_WEIGHTS_NAME
from ...utils import atomic_write_json
from ..common.sft import HfrecSFTTrainer, unwrap_to
from .config import DELRecDistillConfig, DELRecSFTConfig
from .data import TASK_RPS, TASK_TA

TASK_WEIGHTS_NAME = "delrec_task_weights.json"

logger = logging.getLogger(__name__)

TASK_NAMES = {TASK_TA: "ta", TASK_RPS: "rps"}


def _delrec_of(model) -> DELRecForCausalLM:
    return unwrap_to(model, DELRecForCausalLM)


class SoftPromptSRDistiller(HfrecSFTTrainer):
    """Stage 1 of DELRec: distil an SR teacher's patterns into the soft prompt of a frozen LLM.

    Args:
        model: a :class:`DELRecForCausalLM` (``DELRecForCausalLM.from_backbone(...)``).
        args: :class:`DELRecDistillConfig`.
        train_dataset: rows with ``input_ids``, ``labels`` (-100 on the prompt) and ``task`` (0 = TA, 1 = RPS),
            e.g. from :func:`hfrec.methods.delrec.data.build_stage1_examples`.
        processing_class: the tokenizer returned by ``from_backbone`` (it knows the placeholder token).
    """

    _tag_names = ["trl", "sft", "hfrec", "delrec", "soft-prompt"]
    collator_columns = ("task",)
    loss_is_scaled_for_ga = False  # compute_loss returns a per-micro-batch mean: let Trainer divide by GA steps

    def __init__(self, model, args: DELRecDistillConfig | None = None, train_dataset=None, eval_dataset=None,
                 processing_class=None, data_collator=None, **kwargs):
        if args is None:
            args = DELRecDistillConfig(output_dir="delrec-stage1")
        if not isinstance(args, DELRecDistillConfig):
            raise TypeError(f"args must be a DELRecDistillConfig, got {type(args).__name__}")
        if kwargs.get("peft_config") is not None:
            raise ValueError("Stage 1 trains only the soft prompt: do not pass a peft_config")
        _delrec_of(model).freeze_for_stage(1)
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=processing_class, data_collator=data_collator, **kwargs)
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
        track = mode == "train" and self.args.dynamic_loss_weighting
        views = None
        if track:
            # One view of the soft prompt per task, injected as per-row prompts: after backward, `view.grad` is the
            # gradient of that task's loss alone, from a single backward pass (GradNorm needs both norms).
            weight = _delrec_of(model).model.soft_prompt()
            if hasattr(weight, "full_tensor"):  # FSDP2 shards it outside forward: gather it (differentiably)
                weight = weight.full_tensor()
            views = [weight * 1.0 for _ in TASK_NAMES]
            if torch.is_grad_enabled() and weight.requires_grad:
                for view in views:
                    view.retain_grad()
            inputs["soft_prompts"] = torch.stack(views)[task.to(weight.device)]  # (B, n, H)
        outputs = model(**inputs, use_cache=False, fused_lm_head=True)

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


class DELRecSFTTrainer(HfrecSFTTrainer):
    """Stage 2 of DELRec: LoRA fine-tuning on the recommendation prompt with the distilled soft prompt frozen.

    Args:
        model: a :class:`DELRecForCausalLM` after stage 1.
        args: :class:`DELRecSFTConfig` (its ``lora_*`` fields build the PEFT config unless ``peft_config`` is given).
        train_dataset: rows with ``input_ids`` and ``labels``
            (:func:`hfrec.methods.delrec.data.build_recommendation_examples`).
    """

    _tag_names = ["trl", "sft", "hfrec", "delrec", "lora"]

    def __init__(self, model, args: DELRecSFTConfig | None = None, train_dataset=None, eval_dataset=None,
                 processing_class=None, data_collator=None, peft_config=None, **kwargs):
        if args is None:
            args = DELRecSFTConfig(output_dir="delrec-stage2")
        _delrec_of(model).freeze_for_stage(2)
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=processing_class, data_collator=data_collator, peft_config=peft_config,
                         **kwargs)
        trainable = [n for n, p in self.model.named_parameters() if p.requires_grad and "soft_prompt" in n]
        if trainable:
            raise RuntimeError(f"Stage 2 must keep the soft prompt frozen; trainable: {trainable}")


__all__ = ["DELRecSFTTrainer", "SoftPromptSRDistiller"]
