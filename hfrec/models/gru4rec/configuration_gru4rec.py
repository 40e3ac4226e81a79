# Copyright 2026 The hfrec authors. Licensed under the Apache License, Version 2.0.
"""GRU4Rec model configuration (RecBole's defaults)."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig


@strict
class GRU4RecConfig(PreTrainedConfig):
    r"""
    Configuration of a [`GRU4RecModel`] (Hidasi et al. 2016; Tan et al. 2016) with the defaults of RecBole's
    `GRU4Rec.yaml`: item embedding 64, GRU hidden 128, 1 layer, embedding dropout 0.3, a dense layer back to
    the embedding size, scores tied to the item embedding, cross-entropy over all items.

    Args:
        num_items (`int`):
            Number of real items N. Item ids are `1..N`; `0` is padding, so the item vocabulary has N + 1 rows.
        max_seq_length (`int`, *optional*, defaults to 50):
            Longest history the `predict_*` / `top_k` methods read (they keep the last `max_seq_length` items).
        embedding_size (`int`, *optional*, defaults to 64):
            Item embedding size (also the size of the sequence representation after `dense`).
        hidden_size (`int`, *optional*, defaults to 128):
            GRU hidden size.
        num_hidden_layers (`int`, *optional*, defaults to 1):
            Number of stacked GRU layers (RecBole: `num_layers`).
        dropout_prob (`float`, *optional*, defaults to 0.3):
            Dropout on the item embeddings (RecBole: `dropout`).
        loss_chunk_size (`int`, *optional*):
            If set, the cross-entropy over all items is computed in checkpointed chunks of this many labelled
            positions (same loss, less memory).
    """

    model_type = "gru4rec"

    num_items: int = 0  # 0 = not set yet; transformers builds a default config when saving
    max_seq_length: int = 50
    embedding_size: int = 64
    hidden_size: int = 128
    num_hidden_layers: int = 1
    dropout_prob: float | int = 0.3
    loss_chunk_size: int | None = None

    def __post_init__(self, **kwargs):
        self._check_sizes()
        super().__post_init__(**kwargs)

    def _check_sizes(self):
        """Raise a `ValueError` naming the offending field, its value and how to fix it."""
        if self.num_items < 0:
            raise ValueError(f"GRU4RecConfig.num_items must be >= 1 (the dataset's item count), got num_items={self.num_items}.")
        for name in ("max_seq_length", "embedding_size", "hidden_size", "num_hidden_layers"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"GRU4RecConfig.{name} must be >= 1, got {name}={value}.")
        if not 0.0 <= self.dropout_prob < 1.0:
            raise ValueError(f"GRU4RecConfig.dropout_prob must be in [0, 1), got dropout_prob={self.dropout_prob}.")
        if self.loss_chunk_size is not None and self.loss_chunk_size < 1:
            raise ValueError(
                f"GRU4RecConfig.loss_chunk_size must be None or >= 1, got loss_chunk_size={self.loss_chunk_size}."
            )

    def validate_sizes(self):
        """Part of `@strict`-powered validation (also run by `save_pretrained`)."""
        self._check_sizes()


__all__ = ["GRU4RecConfig"]
