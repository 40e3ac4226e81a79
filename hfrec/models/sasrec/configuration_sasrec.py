# Copyright 2026 The hfrec authors. Licensed under the Apache License, Version 2.0.
"""SASRec model configuration (RecBole's defaults)."""

from enum import Enum

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig


class PretrainedItemEmbeddingMode(str, Enum):
    """How an external item table (e.g. P2Rec's LLM-enhanced item embeddings) enters an SR model."""

    INIT = "init"  # copied (or PCA-reduced) into `item_embedding` once; the model then trains as usual
    FROZEN = "frozen"  # kept frozen; a trained nn.Linear(D, d) maps it to the item embeddings
    FUSE = "fuse"  # trainable `item_embedding` + the projected frozen table, summed


def check_pretrained_item_embedding(config) -> None:
    """Validate (and normalise to a plain string) the `pretrained_item_embedding_*` fields.

    Kept verbatim in the SASRec, GRU4Rec and Caser configuration files (each model folder must stay self-contained
    for `trust_remote_code`); a test checks that the three copies are identical.
    """
    name = type(config).__name__
    if config.pretrained_item_embedding_dim < 0:
        raise ValueError(
            f"{name}.pretrained_item_embedding_dim must be >= 0 (0 = no pretrained item table, else the table's "
            f"width D), got pretrained_item_embedding_dim={config.pretrained_item_embedding_dim}."
        )
    modes = [mode.value for mode in PretrainedItemEmbeddingMode]
    if config.pretrained_item_embedding_mode not in modes:
        raise ValueError(
            f"{name}.pretrained_item_embedding_mode={config.pretrained_item_embedding_mode!r} is unknown; use one "
            f"of {modes}."
        )
    if type(config.pretrained_item_embedding_mode) is not str:  # an enum member: save the plain value to JSON
        config.pretrained_item_embedding_mode = PretrainedItemEmbeddingMode(config.pretrained_item_embedding_mode).value


@strict
class SASRecConfig(PreTrainedConfig):
    r"""
    Configuration of a [`SASRecModel`]: a causal self-attention next-item recommender (Kang & McAuley,
    ICDM 2018) with the defaults of RecBole's `SASRec.yaml` (2 blocks, 2 heads, hidden 64, inner 256,
    dropout 0.5, GELU, layer-norm eps 1e-12, normal(0, 0.02) init, cross-entropy over all items).

    Args:
        num_items (`int`):
            Number of real items N. Item ids are `1..N`; `0` is padding, so the item vocabulary has N + 1 rows.
        max_seq_length (`int`, *optional*, defaults to 50):
            Longest history the model reads (size of the learned positional table). Longer inputs to the
            `predict_*` / `top_k` methods keep their last `max_seq_length` items.
        hidden_size (`int`, *optional*, defaults to 64):
            Item embedding and hidden size (RecBole: `hidden_size`).
        num_hidden_layers (`int`, *optional*, defaults to 2):
            Number of self-attention blocks (RecBole: `n_layers`).
        num_attention_heads (`int`, *optional*, defaults to 2):
            Attention heads per block (RecBole: `n_heads`); must divide `hidden_size`.
        intermediate_size (`int`, *optional*, defaults to 256):
            Inner size of the point-wise feed-forward layer (RecBole: `inner_size`).
        hidden_dropout_prob (`float`, *optional*, defaults to 0.5):
            Dropout on the embeddings and on the output of every sub-layer.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.5):
            Dropout on the attention probabilities (RecBole: `attn_dropout_prob`).
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the feed-forward layer (any key of `transformers.activations.ACT2FN`).
        layer_norm_eps (`float`, *optional*, defaults to 1e-12):
            Epsilon of the layer norms.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of embeddings and linear layers.
        loss_chunk_size (`int`, *optional*):
            If set, the cross-entropy over all items is computed in chunks of this many labelled positions,
            each chunk recomputed in backward (activation checkpointing), so the full
            (positions x items) logit matrix never lives in memory. Same loss, less memory.
        pretrained_item_embedding_dim (`int`, *optional*, defaults to 0):
            Width D of an external item embedding table (one row per item, e.g. P2Rec's LLM-enhanced one) that
            `load_item_embeddings` put into the model; 0 = none. Written by `load_item_embeddings`, so that
            `from_pretrained` rebuilds the same modules (a model built from a config with D > 0 in mode
            `"frozen"`/`"fuse"` holds a zero table until `load_item_embeddings` fills it).
        pretrained_item_embedding_mode (`str`, *optional*, defaults to `"init"`):
            How that table is used: `"init"` (copied into `item_embedding` once, then trained as usual; no extra
            modules), `"frozen"` (a frozen buffer projected by a trained `nn.Linear(D, hidden_size)` is the item
            embedding), `"fuse"` (trainable `item_embedding` + the projected frozen table).

    ```python
    >>> from hfrec.models import SASRecConfig, SASRecModel
    >>> model = SASRecModel(SASRecConfig(num_items=1682))
    ```"""

    model_type = "sasrec"

    num_items: int = 0  # 0 = not set yet; transformers builds a default config when saving
    max_seq_length: int = 50
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 256
    hidden_dropout_prob: float | int = 0.5
    attention_probs_dropout_prob: float | int = 0.5
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    loss_chunk_size: int | None = None
    pretrained_item_embedding_dim: int = 0
    pretrained_item_embedding_mode: str = "init"

    def __post_init__(self, **kwargs):
        self._check_sizes()
        super().__post_init__(**kwargs)

    def _check_sizes(self):
        """Raise a `ValueError` naming the offending field, its value and how to fix it."""
        if self.num_items < 0:
            raise ValueError(f"SASRecConfig.num_items must be >= 1 (the dataset's item count), got num_items={self.num_items}.")
        for name in ("max_seq_length", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"SASRecConfig.{name} must be >= 1, got {name}={value}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"SASRecConfig.hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}; choose hidden_size as a multiple of num_attention_heads "
                f"(e.g. hidden_size={self.num_attention_heads * max(1, self.hidden_size // self.num_attention_heads)})."
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"SASRecConfig.{name} must be in [0, 1), got {name}={value}.")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"SASRecConfig.layer_norm_eps must be > 0, got layer_norm_eps={self.layer_norm_eps}.")
        if self.initializer_range < 0:
            raise ValueError(
                f"SASRecConfig.initializer_range must be >= 0, got initializer_range={self.initializer_range}."
            )
        if self.loss_chunk_size is not None and self.loss_chunk_size < 1:
            raise ValueError(
                f"SASRecConfig.loss_chunk_size must be None or >= 1, got loss_chunk_size={self.loss_chunk_size}."
            )
        from transformers.activations import ACT2FN

        if self.hidden_act not in ACT2FN:
            raise ValueError(
                f"SASRecConfig.hidden_act={self.hidden_act!r} is unknown; use one of {sorted(ACT2FN)}."
            )
        check_pretrained_item_embedding(self)

    def validate_sizes(self):
        """Part of `@strict`-powered validation (also run by `save_pretrained`)."""
        self._check_sizes()


__all__ = ["SASRecConfig", "PretrainedItemEmbeddingMode"]
