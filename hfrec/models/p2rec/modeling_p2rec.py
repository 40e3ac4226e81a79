"""P2Rec's preference parser: an LLM that reads a user's item sequence and predicts the user's prior preference
distribution over K latent item categories (the paper's information-reconstruction task).

* :class:`PreferenceParserLM` - the decoder of any causal LM (``language_model``) + ``score``, a linear head from one
  pooled hidden state to K logits. ``forward(..., labels=(B, K) target distributions)`` returns the KL divergence
  KL(target || softmax(logits)) as the loss (the same gradient as the cross-entropy against the soft target; KL is 0
  at a perfect reconstruction, so the logged loss reads directly).
* The same pooled hidden state of a one-item prompt is P2Rec's LLM-enhanced item embedding
  (``hfrec.methods.p2rec.embeddings``): the space the head reads, so an item's latent category is linear in it.

The head is named ``score`` (PEFT's sequence-classification head name), so a ``SEQ_CLS`` LoRA config trains and saves
it with the adapter and leaves it out of ``all-linear``.

This file is self-contained (single-dot relative imports only): ``save_pretrained`` copies it next to the weights and
``AutoModel.from_pretrained(..., trust_remote_code=True)`` works without hfrec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_p2rec import P2RecConfig


@dataclass
class PreferenceParserOutput(ModelOutput):
    r"""
    Output of [`PreferenceParserLM`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            KL(labels || softmax(logits)), averaged over the batch.
        logits (`torch.FloatTensor` of shape `(batch_size, num_categories)`):
            Unnormalised scores of the latent categories (float32).
        pooled_hidden_states (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            The pooled hidden state the head reads (P2Rec's item embedding for a one-item prompt).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    pooled_hidden_states: torch.FloatTensor | None = None


class P2RecPreTrainedModel(PreTrainedModel):
    config: P2RecConfig
    config_class = P2RecConfig
    base_model_prefix = "language_model"
    supports_gradient_checkpointing = True
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _keep_in_fp32_modules_strict = ["score"]  # K x hidden numbers: keep the head exact in bf16 runs

    def _init_weights(self, module):
        if module is getattr(self, "score", None):
            _zero_head(module)
            return
        super()._init_weights(module)


def _zero_head(head: nn.Linear) -> None:
    """A zero head predicts the uniform distribution whatever the backbone's scale: a neutral start."""
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()


class PreferenceParserLM(P2RecPreTrainedModel):
    """A causal LM's decoder + a linear head over one pooled hidden state -> K category logits."""

    def __init__(self, config: P2RecConfig):
        super().__init__(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.score = nn.Linear(config.text_config.hidden_size, config.num_categories)
        self._no_split_modules = list(getattr(self.language_model, "_no_split_modules", None) or [])
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def pool(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, H) states + (B, L) mask -> (B, H) by ``config.pooling``. Works with left or right padding."""
        mask = attention_mask.to(torch.bool)
        if self.config.pooling == "mean":
            weights = mask.to(hidden_states.dtype)[..., None]
            return (hidden_states * weights).sum(1) / weights.sum(1).clamp(min=1)
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (positions * mask).argmax(-1)  # index of the last real token of each row
        return hidden_states[torch.arange(hidden_states.shape[0], device=last.device), last]

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> PreferenceParserOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): the prompt tokens (padded either side).
            attention_mask (`torch.Tensor` of shape `(batch_size, seq_len)`, *optional*): 1 on real tokens.
            labels (`torch.FloatTensor` of shape `(batch_size, num_categories)`, *optional*): target distributions
                (non-negative rows summing to 1).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Specify exactly one of input_ids or inputs_embeds")
        reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
        if attention_mask is None:
            attention_mask = torch.ones_like(reference, dtype=torch.long)
        # wrappers (PEFT) pass output_attentions=None, return_dict=...: this model always returns its own output
        passed = {k: v for k, v in kwargs.items() if v is not None and k not in ("return_dict", "use_cache")}
        outputs = self.language_model(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                      use_cache=False, **passed)
        pooled = self.pool(outputs.last_hidden_state, attention_mask)
        logits = self.score(pooled.to(self.score.weight.dtype)).float()
        loss = None if labels is None else self.distribution_loss(logits, labels)
        return PreferenceParserOutput(loss=loss, logits=logits, pooled_hidden_states=pooled)

    def distribution_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """KL(labels || softmax(logits)), batch mean; a ValueError names a target that is not a distribution."""
        labels = labels.to(device=logits.device, dtype=torch.float32)
        if labels.shape != logits.shape:
            raise ValueError(f"labels must be (batch, num_categories={self.config.num_categories}) target "
                             f"distributions, got shape {tuple(labels.shape)}")
        sums = labels.sum(-1)
        if bool((labels < 0).any()) or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
            raise ValueError(f"labels must be distributions (non-negative rows summing to 1); row sums "
                             f"{sums[:5].tolist()}: normalise the category counts first")
        return F.kl_div(F.log_softmax(logits, dim=-1), labels, reduction="batchmean")

    @classmethod
    def from_backbone(cls, backbone=None, tokenizer=None, num_categories: int = 20, pooling: str = "last",
                      dtype: torch.dtype | str = "auto", **config_kwargs):
        """Build a parser on a causal LM: an instance (with its ``tokenizer``), a Hub id / folder, or ``None`` (the
        offline default SmolLM2-135M-Instruct). Returns ``(model, tokenizer)``; the backbone's decoder is moved in,
        not copied, and its LM head is dropped. The head starts at zero (uniform predictions)."""
        if backbone is None or isinstance(backbone, (str, os.PathLike)):
            try:  # a try block keeps transformers' remote-code import check from demanding hfrec
                from hfrec.methods.common.backbones import load_backbone  # noqa: PLC0415 - only needed here
            except ImportError as err:
                raise ImportError("PreferenceParserLM.from_backbone(name) needs the hfrec package (pip install hfrec), "
                                  "or pass a loaded causal LM and its tokenizer") from err
            config_kwargs.setdefault("backbone_name_or_path", str(backbone or "SmolLM2-135M-Instruct"))
            backbone, loaded_tokenizer = load_backbone(backbone, dtype=dtype)
            tokenizer = loaded_tokenizer if tokenizer is None else tokenizer
        if tokenizer is None:
            raise ValueError("from_backbone needs the backbone's tokenizer when the backbone is given as a model")
        decoder = backbone.get_decoder() if hasattr(backbone, "get_decoder") else backbone.base_model
        if decoder is None or not hasattr(decoder, "get_input_embeddings"):
            raise ValueError(f"{type(backbone).__name__} has no decoder to read: pass a causal LM "
                             "(AutoModelForCausalLM)")
        config_kwargs.setdefault("backbone_name_or_path", getattr(backbone.config, "_name_or_path", None) or None)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        config = P2RecConfig(text_config=backbone.config, num_categories=num_categories, pooling=pooling,
                             **config_kwargs)
        config._attn_implementation = backbone.config._attn_implementation
        with torch.device("meta"):
            model = cls(config)
        model.language_model = decoder
        device = decoder.get_input_embeddings().weight.device
        model.score = nn.Linear(config.text_config.hidden_size, num_categories, device=device)  # float32
        _zero_head(model.score)
        left = [name for name, p in model.named_parameters() if p.device.type == "meta"]
        if left:
            raise RuntimeError(f"from_backbone left parameters on the meta device: {left[:5]}")
        return model, tokenizer


__all__ = ["P2RecPreTrainedModel", "PreferenceParserLM", "PreferenceParserOutput"]
