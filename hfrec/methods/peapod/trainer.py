"""PeaPOD's trainer: TRL's ``SFTTrainer`` through hfrec's shared base, with LoRA on the backbone and the
personalized-prompt modules (pool, attention, task prompts) trained together at their own learning rate.

Each batch carries ``user_index`` and ``task`` (collated with the tokens); TRL's fused-LM-head training path calls
``model.base_model`` (``PersonalizedPromptModel``) with them, where the prompts are composed and injected. An
encoder-decoder backbone has no such path: its loss is the model's own (``model(**inputs).loss``).
"""

from __future__ import annotations

import torch
from transformers import Trainer

from ...models.peapod import PersonalizedPromptLM
from ..common.sft import HfrecSFTTrainer, unwrap_to
from .config import PeaPODSFTConfig

def _peapod_of(model) -> PersonalizedPromptLM:
    return unwrap_to(model, PersonalizedPromptLM)


class PeaPODTrainer(HfrecSFTTrainer):
    """Trains a :class:`PersonalizedPromptLM` on rows with ``input_ids``, ``labels``, ``user_index`` and ``task``."""

    _tag_names = ["trl", "sft", "hfrec", "peapod", "personalized-prompt"]
    collator_columns = ("user_index", "task")

    def __init__(self, model, args: PeaPODSFTConfig, train_dataset=None, eval_dataset=None, processing_class=None,
                 **kwargs):
        if not isinstance(args, PeaPODSFTConfig):
            raise TypeError(f"args must be a PeaPODSFTConfig, got {type(args).__name__}")
        _peapod_of(model)  # a clear TypeError for anything else
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=processing_class, **kwargs)
        # PEFT froze everything but LoRA: the prompt modules train too (the interest table stays frozen)
        _peapod_of(self.model).set_trainable_prompts(args.train_prompts)

    def prompt_parameters(self) -> list[torch.nn.Parameter]:
        inner = _peapod_of(self.model).model
        return [p for p in (*inner.prompt_pool.parameters(), inner.task_prompts) if p.requires_grad]

    def create_optimizer(self, model=None):
        """AdamW with two groups: LoRA at ``learning_rate``, the prompt modules at ``prompt_learning_rate``."""
        if self.optimizer is None:
            prompt = {id(p) for p in self.prompt_parameters()}
            lora = [p for p in self.model.parameters() if p.requires_grad and id(p) not in prompt]
            prompts = [p for p in self.model.parameters() if p.requires_grad and id(p) in prompt]
            groups = [{"params": lora, "lr": self.args.learning_rate, "weight_decay": self.args.weight_decay}]
            if prompts:
                groups.append({"params": prompts, "lr": self.args.prompt_learning_rate, "weight_decay": 0.0})
            _, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, self.model)
            optimizer_kwargs.pop("lr", None)
            self.optimizer = torch.optim.AdamW(groups, **{k: v for k, v in optimizer_kwargs.items()
                                                          if k in ("betas", "eps", "fused", "foreach")})
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if _peapod_of(model).config.is_encoder_decoder:
            outputs = model(**inputs)
            if model.training:  # TRL counts tokens on its causal path only: encoder tokens + decoder targets
                seen = inputs["attention_mask"].sum() + (inputs["labels"] != -100).sum()
                self._total_train_tokens += int(self.accelerator.gather_for_metrics(seen).sum().item())
            return (outputs.loss, outputs) if return_outputs else outputs.loss
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)


__all__ = ["PeaPODTrainer"]
