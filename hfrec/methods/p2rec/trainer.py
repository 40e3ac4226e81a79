"""``PreferenceParserTrainer``: P2Rec's information-reconstruction SFT on hfrec's shared trainer base.

TRL's ``SFTTrainer.compute_loss`` trains a language-model loss from the backbone's hidden states; the parser's loss is
a distribution loss of its head, so ``compute_loss`` calls the (PEFT-wrapped) ``PreferenceParserLM`` with the target
distributions as ``labels`` and returns its KL loss. The LoRA adapter is a ``SEQ_CLS`` one: PEFT then trains and saves
the head (``score``) in full next to the LoRA weights and keeps it out of ``all-linear``. Training runs through TRL's
loop (progress bars, ``accelerate launch``, ``resume_from_checkpoint``); the ``num_tokens`` log counts the prompt
tokens trained on, the measure of P2Rec's cost claim.
"""

from __future__ import annotations

from ...models.p2rec import PreferenceParserLM
from ..common.sft import HfrecSFTTrainer, unwrap_to
from .config import PreferenceParserSFTConfig
from .data import DistributionCollator


class PreferenceParserTrainer(HfrecSFTTrainer):
    """Trains a :class:`PreferenceParserLM` to reconstruct users' preference distributions.

    Args:
        model: a :class:`PreferenceParserLM` (``PreferenceParserLM.from_backbone(...)``).
        args: :class:`PreferenceParserSFTConfig`; with ``lora_r=0`` no adapter is built and only the head trains.
        train_dataset: rows with ``input_ids`` and ``target`` (K floats summing to 1), e.g. from
            :func:`hfrec.methods.p2rec.data.build_parser_examples`.
        processing_class: the backbone's tokenizer (pads the batches, saved with the model).
    """

    _tag_names = ["trl", "sft", "hfrec", "p2rec", "lora"]
    loss_is_scaled_for_ga = False  # compute_loss returns a per-micro-batch mean: let Trainer divide by GA steps

    def __init__(self, model, args: PreferenceParserSFTConfig | None = None, train_dataset=None, eval_dataset=None,
                 processing_class=None, data_collator=None, peft_config=None, **kwargs):
        if args is None:
            args = PreferenceParserSFTConfig(output_dir="p2rec-parser")
        parser = unwrap_to(model, PreferenceParserLM)
        if peft_config is None and args.lora_r:
            peft_config = args.peft_config(parser.config.text_config.num_hidden_layers, task_type="SEQ_CLS")
        elif peft_config is None:  # no adapter: a linear probe of the frozen backbone
            for param in parser.language_model.parameters():
                param.requires_grad_(False)
        if data_collator is None and processing_class is not None:
            pad = processing_class.pad_token_id
            data_collator = DistributionCollator(pad if pad is not None else processing_class.eos_token_id)
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=processing_class, data_collator=data_collator, peft_config=peft_config,
                         **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=inputs["labels"])
        mode = "train" if self.model.training else "eval"
        if mode == "train":
            self._total_train_tokens += int(self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum())
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    @property
    def tokens_trained(self) -> int:
        """Prompt tokens (padding excluded) seen by training so far, over all processes."""
        return self._total_train_tokens


__all__ = ["PreferenceParserTrainer"]
