# Copyright 2026 The hfrec authors. Licensed under the Apache License, Version 2.0.
"""Caser model configuration (RecBole's defaults, without the user embedding)."""

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
class CaserConfig(PreTrainedConfig):
    r"""
    Configuration of a [`CaserModel`] (Tang & Wang, WSDM 2018) with the defaults of RecBole's `Caser.yaml`
    (embedding 64, 8 vertical and 16 horizontal filters, dropout 0.4, L2 weight 1e-4) over a window of the
    last `window_size` = L = 5 items (the paper's L; RecBole takes L from `MAX_ITEM_LIST_LENGTH`).

    hfrec's Caser has no user embedding: the sequential-recommender contract carries no user ids, and a
    per-user table cannot score users unseen in training. RecBole's `fc2([z; user])` becomes `fc2(z)`.

    Args:
        num_items (`int`):
            Number of real items N. Item ids are `1..N`; `0` is padding, so the item vocabulary has N + 1 rows.
        max_seq_length (`int`, *optional*, defaults to 50):
            Longest input the `predict_*` / `top_k` methods accept before keeping the last items (only the last
            `window_size` items matter to Caser).
        window_size (`int`, *optional*, defaults to 5):
            L, the number of most recent items the convolutions read at each position (left-padded with 0).
        embedding_size (`int`, *optional*, defaults to 64):
            Item embedding size d.
        num_vertical_filters (`int`, *optional*, defaults to 8):
            n_v, vertical filters of shape (L, 1) (RecBole: `nv`; the paper and caser_pytorch use 4). May be 0.
        num_horizontal_filters (`int`, *optional*, defaults to 16):
            n_h, horizontal filters of each height 1..L (RecBole: `nh`). May be 0 (not both).
        dropout_prob (`float`, *optional*, defaults to 0.4):
            Dropout on the concatenated convolution features.
        reg_weight (`float`, *optional*, defaults to 1e-4):
            Weight of RecBole's L2 term (sum of the Frobenius norms of the item embedding, conv and fc weights)
            added to the training loss; 0 disables it.
        loss_chunk_size (`int`, *optional*):
            If set, the cross-entropy over all items is computed in checkpointed chunks of this many labelled
            positions (same loss, less memory).
        pretrained_item_embedding_dim (`int`, *optional*, defaults to 0):
            Width D of an external item embedding table (one row per item, e.g. P2Rec's LLM-enhanced one) that
            `load_item_embeddings` put into the model; 0 = none. Written by `load_item_embeddings`, so that
            `from_pretrained` rebuilds the same modules (a model built from a config with D > 0 in mode
            `"frozen"`/`"fuse"` holds a zero table until `load_item_embeddings` fills it).
        pretrained_item_embedding_mode (`str`, *optional*, defaults to `"init"`):
            How that table is used: `"init"` (copied into `item_embedding` once, then trained as usual; no extra
            modules), `"frozen"` (a frozen buffer projected by a trained `nn.Linear(D, embedding_size)` is the item
            embedding), `"fuse"` (trainable `item_embedding` + the projected frozen table).
    """

    model_type = "caser"

    num_items: int = 0  # 0 = not set yet; transformers builds a default config when saving
    max_seq_length: int = 50
    window_size: int = 5
    embedding_size: int = 64
    num_vertical_filters: int = 8
    num_horizontal_filters: int = 16
    dropout_prob: float | int = 0.4
    reg_weight: float | int = 1e-4
    loss_chunk_size: int | None = None
    pretrained_item_embedding_dim: int = 0
    pretrained_item_embedding_mode: str = "init"

    def __post_init__(self, **kwargs):
        self._check_sizes()
        super().__post_init__(**kwargs)

    def _check_sizes(self):
        """Raise a `ValueError` naming the offending field, its value and how to fix it."""
        if self.num_items < 0:
            raise ValueError(f"CaserConfig.num_items must be >= 1 (the dataset's item count), got num_items={self.num_items}.")
        for name in ("max_seq_length", "window_size", "embedding_size"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"CaserConfig.{name} must be >= 1, got {name}={value}.")
        for name in ("num_vertical_filters", "num_horizontal_filters"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"CaserConfig.{name} must be >= 0, got {name}={value}.")
        if self.num_vertical_filters == 0 and self.num_horizontal_filters == 0:
            raise ValueError(
                "CaserConfig.num_vertical_filters and num_horizontal_filters are both 0; set at least one > 0."
            )
        if not 0.0 <= self.dropout_prob < 1.0:
            raise ValueError(f"CaserConfig.dropout_prob must be in [0, 1), got dropout_prob={self.dropout_prob}.")
        if self.reg_weight < 0:
            raise ValueError(f"CaserConfig.reg_weight must be >= 0, got reg_weight={self.reg_weight}.")
        if self.loss_chunk_size is not None and self.loss_chunk_size < 1:
            raise ValueError(
                f"CaserConfig.loss_chunk_size must be None or >= 1, got loss_chunk_size={self.loss_chunk_size}."
            )
        check_pretrained_item_embedding(self)

    def validate_sizes(self):
        """Part of `@strict`-powered validation (also run by `save_pretrained`)."""
        self._check_sizes()


__all__ = ["CaserConfig", "PretrainedItemEmbeddingMode"]
