# Copyright 2026 The hfrec authors. Licensed under the Apache License, Version 2.0.
"""PyTorch Caser (Tang & Wang, "Personalized Top-N Sequential Recommendation via Convolutional Sequence
Embedding", WSDM 2018) as implemented by RecBole, without the user embedding.

Layers, names and initialisation follow RecBole's `Caser`: over the embeddings of the last L items, a
vertical conv (n_v filters of shape (L, 1)) and horizontal convs (n_h filters of each height 1..L, ReLU,
max-pooled over time) are concatenated -> dropout -> fc1 + ReLU -> fc2 + ReLU; scores = output @
item_embedding^T; loss = cross-entropy + reg_weight * (sum of weight norms). Item embeddings are initialised
normal(0, 1/d), linear layers xavier-normal, convolutions with PyTorch's default.

Differences from RecBole, on purpose:
- no user embedding (the hfrec contract has no user ids; unseen users could not be scored): RecBole's
  `fc2([z; user_emb])` (2d -> d) is `fc2(z)` (d -> d);
- every position is trained in one pass: the window of the last L items ending at each position is
  unfolded (left-padded with 0 inside the window), instead of one window per training example;
- the horizontal conv weights are part of the L2 term (RecBole intends this, but its `reg_loss_conv_h`
  always adds 0).

This file is self-contained (only single-dot relative imports) so that `save_pretrained` can copy it
next to the weights and `AutoModel.from_pretrained(..., trust_remote_code=True)` works without hfrec.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, logging

from .configuration_caser import CaserConfig, PretrainedItemEmbeddingMode


logger = logging.get_logger(__name__)


@dataclass
class SequentialRecommenderOutput(ModelOutput):
    r"""
    Output of the hfrec sequential recommenders (SASRec, GRU4Rec, Caser).

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Mean cross-entropy over all N items at every labelled position.
        logits (`torch.FloatTensor` of shape `(batch_size, seq_len, num_items + 1)`, *optional*):
            Next-item scores at every position (column 0, padding, is `-inf`). Returned when `labels` is
            absent or `return_logits=True`.
        hidden_states (`torch.FloatTensor` of shape `(batch_size, seq_len, hidden)`):
            The sequence representation at every position (what is dotted with the item embeddings).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: torch.FloatTensor | None = None


class SequentialRecommenderMixin:
    """The hfrec sequential-recommender contract on top of `encode` (B, L) -> (B, L, H) and the item embeddings.

    A model class sets `item_embedding_size_field` (the config field holding the item embedding size d) and calls
    `self._set_item_embeddings(...)` in `__init__`; everything else reads items through `item_representations()`
    (the effective (N+1, d) table, tied between input and output) and `embed_items(ids)`.

    Kept verbatim in `modeling_sasrec.py`, `modeling_gru4rec.py` and `modeling_caser.py` (each model folder
    must stay self-contained for `trust_remote_code`); a test checks that the three copies are identical.
    """

    item_embedding_size_field: str  # set by each model class: the config field that holds d

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, then CPU weights are copied out of the safetensors file mapping.

        Mapped tensors sit at unaligned addresses, for which CPU kernels take other SIMD paths and the scores
        differ in the last bit; aligned copies make a loaded model score exactly like the one that was saved.
        """
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                if tensor.device.type == "cpu" and tensor.data_ptr() % 64:
                    tensor.data = tensor.data.clone()
        return loaded

    def _check_ids(self, ids: torch.Tensor, what: str):
        num_items = self.config.num_items
        if ids.numel() == 0:
            return
        low, high = int(ids.min()), int(ids.max())
        bad = high if high > num_items else (low if low < 0 else None)
        if bad is not None:
            raise ValueError(
                f"{what}: item id {bad} out of range for num_items={num_items} (valid ids are 1..{num_items}, "
                f"0 = padding); the saved model was trained on a dataset with {num_items} items, so ids must come "
                f"from that dataset's item table."
            )

    def _prepare_inputs(self, input_ids, attention_mask=None, truncate=False):
        if not isinstance(input_ids, torch.Tensor):
            input_ids = torch.as_tensor(input_ids)
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, seq_len), got {tuple(input_ids.shape)}.")
        input_ids = input_ids.to(device=self.device, dtype=torch.long)
        self._check_ids(input_ids, "input_ids")
        mask = input_ids != 0
        if attention_mask is not None:
            mask = mask & attention_mask.to(device=input_ids.device).bool()
            input_ids = input_ids.masked_fill(~mask, 0)
        if input_ids.shape[1] > 1 and bool((mask[:, 1:] < mask[:, :-1]).any()):
            raise ValueError(
                "input_ids must be LEFT-padded with 0 (oldest item first, most recent item last, padding only "
                "before the first item); found padding after an item."
            )
        if truncate and input_ids.shape[1] > self.config.max_seq_length:
            input_ids = input_ids[:, -self.config.max_seq_length:]
            mask = mask[:, -self.config.max_seq_length:]
        return input_ids, mask

    # ------------------------------------------------------------------------------------------ item embeddings

    def _set_item_embeddings(self, table_dim: int, mode: str, like: torch.Tensor | None = None) -> list[nn.Module]:
        """Make the item-embedding modules match `(table_dim, mode)` and record both in the config.

        Keeps the modules that still fit and returns the new ones (not yet initialised); `like` gives the device and
        dtype of new tensors (None inside `__init__`, where `post_init` initialises and places everything).
        - no table, or mode "init": only `item_embedding` (N+1, d), RecBole's layout;
        - "frozen": the table as the buffer `pretrained_item_embedding` (N+1, D) + `pretrained_item_projection`
          (nn.Linear(D, d)); no `item_embedding`, which would get no gradient (DDP rejects unused parameters);
        - "fuse": `item_embedding` + both of the above.
        The table is a buffer, not a parameter: it is saved like a weight, but no optimizer, `requires_grad_(True)`
        or DDP gradient sync can ever change it.
        """
        config = self.config
        size = getattr(config, self.item_embedding_size_field)
        mode = PretrainedItemEmbeddingMode(mode)
        uses_table = table_dim > 0 and mode is not PretrainedItemEmbeddingMode.INIT
        factory = {} if like is None else {"device": like.device, "dtype": like.dtype}
        created = []
        if uses_table and mode is PretrainedItemEmbeddingMode.FROZEN:
            self.item_embedding = None
        elif getattr(self, "item_embedding", None) is None:
            self.item_embedding = nn.Embedding(config.num_items + 1, size, padding_idx=0, **factory)
            created.append(self.item_embedding)
        table = getattr(self, "pretrained_item_embedding", None)
        if not uses_table:
            table = projection = None
        else:
            if table is None or table.shape[1] != table_dim:
                table = torch.zeros(config.num_items + 1, table_dim, **factory)
            projection = getattr(self, "pretrained_item_projection", None)
            if projection is None or projection.in_features != table_dim:
                projection = nn.Linear(table_dim, size, **factory)
                created.append(projection)
        self.register_buffer("pretrained_item_embedding", table)
        self.pretrained_item_projection = projection
        config.pretrained_item_embedding_dim = table_dim
        config.pretrained_item_embedding_mode = mode.value
        return created

    def item_representations(self) -> torch.Tensor:
        """(N+1, d) effective item table: what embeds the input items and what the sequence representation is
        dotted with to score every item (input and output item embeddings are tied). Row 0 is padding."""
        if self.pretrained_item_embedding is None:
            return self.item_embedding.weight
        projected = self.pretrained_item_projection(self.pretrained_item_embedding[1:])
        # row 0 stays zero: the projection's bias must not make padding look like an item
        projected = torch.cat([projected.new_zeros(1, projected.shape[1]), projected])
        return projected if self.item_embedding is None else self.item_embedding.weight + projected

    def embed_items(self, item_ids: torch.LongTensor) -> torch.Tensor:
        """(...) item ids -> (..., d) rows of `item_representations()`; the padding row gets no gradient.

        With a pretrained table this projects all N+1 rows, which costs less than the loss's (positions x N)
        score matrix whenever a batch has more positions than the table has columns."""
        return F.embedding(item_ids, self.item_representations(), padding_idx=0)

    @torch.no_grad()
    def load_item_embeddings(self, table, mode: str | None = None, project: bool = False):
        """Put an external item embedding table (e.g. P2Rec's LLM-enhanced one) into the model; returns the model.

        Args:
            table (`torch.Tensor` or `numpy.ndarray` of shape `(num_items, D)` or `(num_items + 1, D)`): one row per
                item in id order: with N rows, row k - 1 is item k (a zero padding row is prepended); with N + 1
                rows, row k is item k and row 0 (padding) is set to zero. The caller's array is never modified.
            mode (`str`, *optional*): "init", "frozen" or "fuse" (see `PretrainedItemEmbeddingMode`); defaults to
                `config.pretrained_item_embedding_mode`. "init" copies the table into `item_embedding` (D must equal
                the item embedding size d); "frozen" keeps it as a buffer mapped by a trained nn.Linear(D, d);
                "fuse" adds that to a trainable `item_embedding`.
            project (`bool`, *optional*, defaults to `False`): "init" only: reduce a wider table (D > d) to d dims by
                PCA: the item rows are centred and projected on their top-d principal directions (no rescaling).

        The config records D and the mode, so `save_pretrained` / `from_pretrained` rebuild the same modules.
        "frozen" and "fuse" may add or remove parameters: call this before creating the optimizer.
        """
        config = self.config
        num_items, size_field = config.num_items, self.item_embedding_size_field
        size = getattr(config, size_field)
        modes = [choice.value for choice in PretrainedItemEmbeddingMode]
        mode = config.pretrained_item_embedding_mode if mode is None else mode
        if mode not in modes:
            raise ValueError(f"load_item_embeddings: mode={mode!r} is unknown; use one of {modes}.")
        mode = PretrainedItemEmbeddingMode(mode)
        # float64 so that the PCA below is accurate; the model only ever keeps copies of the caller's rows
        table = torch.as_tensor(table).detach().to(dtype=torch.float64)
        if table.dim() != 2 or table.shape[1] == 0:
            raise ValueError(
                f"load_item_embeddings: the item embedding table must be 2-D (items, D) with D >= 1, got shape "
                f"{tuple(table.shape)}."
            )
        rows, width = table.shape
        if rows not in (num_items, num_items + 1):
            raise ValueError(
                f"load_item_embeddings: the table has {rows} rows but the model has num_items={num_items}; pass one "
                f"row per item in id order: {num_items} rows (row k-1 = item k) or {num_items + 1} rows (row 0 = "
                f"padding, row k = item k), e.g. the table built from this dataset's item table."
            )
        first = rows - num_items  # the table row of item 1
        finite = torch.isfinite(table[first:]).all(dim=1)
        if not bool(finite.all()):
            item = int((~finite).nonzero()[0, 0]) + 1
            raise ValueError(
                f"load_item_embeddings: row {item - 1 + first} (item {item}) of the table is not finite (NaN or inf)."
            )
        table = torch.cat([table.new_zeros(1, width), table[first:]])  # row 0 = padding, zero
        if mode is PretrainedItemEmbeddingMode.INIT:
            if width != size and not project:
                raise ValueError(
                    f"load_item_embeddings: mode='init' copies the table into item_embedding, so its width must "
                    f"equal {type(config).__name__}.{size_field}={size}, got width {width}; pass project=True to "
                    f"reduce it to {size} dims by PCA, use mode='frozen' or 'fuse' (a learned nn.Linear({width}, "
                    f"{size})), or build the model with {size_field}={width}."
                )
            if width < size:
                raise ValueError(
                    f"load_item_embeddings: project=True reduces the table by PCA and cannot widen it: width {width} "
                    f"< {size_field}={size}; use mode='frozen' or 'fuse' (a learned nn.Linear({width}, {size})) or a "
                    f"model with {size_field} <= {width}."
                )
            if width != size:
                table = self._principal_components(table, size)
        elif project:
            raise ValueError(
                f"load_item_embeddings: project=True applies to mode='init' only; mode={mode.value!r} always maps "
                f"the table with a learned nn.Linear({width}, {size}), so drop project=True."
            )
        like = next(self.parameters())
        for module in self._set_item_embeddings(width, mode, like=like):
            self._init_weights(module)
        if mode is PretrainedItemEmbeddingMode.INIT:
            self.item_embedding.weight.copy_(table)
        else:
            self.pretrained_item_embedding.copy_(table)
        return self

    @staticmethod
    def _principal_components(table: torch.Tensor, size: int) -> torch.Tensor:
        """(N+1, D) table -> (N+1, size): item rows centred and projected on their top-`size` principal directions;
        row 0 stays zero. Each direction's sign is fixed (largest loading positive, like scikit-learn's
        `svd_flip`), so the result does not depend on the SVD backend's sign choice."""
        items = table[1:] - table[1:].mean(dim=0)
        _, _, directions = torch.linalg.svd(items, full_matrices=False)
        directions = directions[:size]
        largest = directions.gather(1, directions.abs().argmax(dim=1, keepdim=True))
        projected = items @ (directions * torch.sign(largest)).t()
        # fewer items than dims: the missing directions carry no variance, so their coordinates are 0
        projected = F.pad(projected, (0, size - projected.shape[1]))
        return torch.cat([projected.new_zeros(1, size), projected])

    # ------------------------------------------------------------------------------------------ scoring

    def _all_item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        scores = hidden @ self.item_representations().t()
        scores[..., 0] = float("-inf")
        return scores

    def _loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.to(device=hidden.device, dtype=torch.long)
        if labels.shape != hidden.shape[:2]:
            raise ValueError(f"labels must have shape {tuple(hidden.shape[:2])} like input_ids, got {tuple(labels.shape)}.")
        valid = labels > 0
        if bool(((labels < 0) & (labels != -100)).any()):
            raise ValueError("labels must be item ids 1..N, or -100 / 0 for positions without a target.")
        self._check_ids(labels[valid], "labels")
        states = hidden[valid]
        targets = labels[valid] - 1  # column j of the item matrix below is item j + 1
        if targets.numel() == 0:
            return hidden.sum() * 0.0
        weight = self.item_representations()[1:]
        chunk = self.config.loss_chunk_size
        if chunk is None or targets.numel() <= chunk:
            return F.cross_entropy((states @ weight.t()).float(), targets)
        total = states.new_zeros((), dtype=torch.float32)
        for start in range(0, targets.numel(), chunk):
            total = total + checkpoint(
                self._cross_entropy_sum, states[start:start + chunk], weight, targets[start:start + chunk],
                use_reentrant=False,
            )
        return total / targets.numel()

    @staticmethod
    def _cross_entropy_sum(states: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy((states @ weight.t()).float(), targets, reduction="sum")

    def _last_hidden(self, input_ids: torch.LongTensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encode(input_ids, mask)[:, -1]

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        return_logits: bool | None = None,
    ) -> SequentialRecommenderOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): left-padded item ids (0 = padding).
            attention_mask (`torch.Tensor` of shape `(batch_size, seq_len)`, *optional*): derived from
                `input_ids != 0` when absent.
            labels (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): the next item after each
                position; `-100` and `0` are ignored.
            return_logits (`bool`, *optional*): return the (B, L, N+1) logits; defaults to `labels is None`.
        """
        input_ids, mask = self._prepare_inputs(input_ids, attention_mask)
        hidden = self.encode(input_ids, mask)
        loss = self._loss(hidden, labels) if labels is not None else None
        if return_logits is None:
            return_logits = labels is None
        logits = self._all_item_scores(hidden) if return_logits else None
        return SequentialRecommenderOutput(loss=loss, logits=logits, hidden_states=hidden)

    def _warn_if_training(self):
        if self.training:
            logger.warning_once(
                f"{type(self).__name__} is in training mode: dropout is active, so scores are random. "
                "Call model.eval() before predicting."
            )

    def predict_scores(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N+1) next-item scores from the last `max_seq_length` items; column 0 (padding) is `-inf`."""
        self._warn_if_training()
        input_ids, mask = self._prepare_inputs(input_ids, attention_mask, truncate=True)
        return self._all_item_scores(self._last_hidden(input_ids, mask))

    def score_candidates(
        self, input_ids: torch.LongTensor, candidates: torch.LongTensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, C) scores of the given candidate ids (equal to gathering `predict_scores`; id 0 scores `-inf`)."""
        self._warn_if_training()
        input_ids, mask = self._prepare_inputs(input_ids, attention_mask, truncate=True)
        candidates = torch.as_tensor(candidates).to(device=input_ids.device, dtype=torch.long)
        if candidates.dim() != 2 or candidates.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"candidates must have shape (batch={input_ids.shape[0]}, num_candidates), got {tuple(candidates.shape)}."
            )
        self._check_ids(candidates, "candidates")
        last = self._last_hidden(input_ids, mask)
        scores = torch.einsum("bh,bch->bc", last, self.embed_items(candidates))
        return scores.masked_fill(candidates == 0, float("-inf"))

    @torch.no_grad()
    def top_k(
        self,
        input_ids: torch.LongTensor,
        k: int,
        exclude: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.LongTensor:
        """(B, k) ids of the k best next items, best first; `exclude` (B, M), 0-padded, lists ids never to
        return (e.g. the user's history for full ranking)."""
        if not 1 <= k <= self.config.num_items:
            raise ValueError(f"k must be in 1..num_items={self.config.num_items}, got k={k}.")
        scores = self.predict_scores(input_ids, attention_mask)
        if exclude is not None:
            exclude = torch.as_tensor(exclude).to(device=scores.device, dtype=torch.long)
            if exclude.dim() != 2 or exclude.shape[0] != scores.shape[0]:
                raise ValueError(f"exclude must have shape (batch={scores.shape[0]}, M), got {tuple(exclude.shape)}.")
            self._check_ids(exclude, "exclude")
            scores = scores.scatter(1, exclude, float("-inf"))
        return scores.topk(k, dim=1).indices


class CaserPreTrainedModel(PreTrainedModel):
    config: CaserConfig
    config_class = CaserConfig
    base_model_prefix = "caser"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    accepts_loss_kwargs = False
    item_embedding_size_field = "embedding_size"

    def _init_weights(self, module):
        """RecBole's init: item embedding normal(0, 1/d) (padding row zeroed), linear xavier-normal with zero
        bias, convolutions PyTorch's default (kaiming-uniform)."""
        if isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0 / module.embedding_dim)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.Linear):
            init.xavier_normal_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                init.uniform_(module.bias, -bound, bound)


class CaserModel(SequentialRecommenderMixin, CaserPreTrainedModel):
    r"""
    Caser with the hfrec sequential-recommender contract:

    - `input_ids` (B, L): item ids, LEFT-padded with 0 (most recent item last);
    - `forward(input_ids, attention_mask=None, labels=None)`: `labels` (B, L) are next-item ids per position
      (`-100` and `0` ignored); the loss is the cross-entropy over all N items at every labelled position
      (plus `reg_weight` times the L2 term), computed in one pass;
    - `predict_scores`, `score_candidates`, `top_k` for inference (call `model.eval()` first);
    - `load_item_embeddings(table, mode)` puts an external item table in ("init", "frozen" or "fuse"); every
      item lookup and score goes through `item_representations()`.
    """

    def __init__(self, config: CaserConfig):
        super().__init__(config)
        if config.num_items < 1:
            raise ValueError(f"CaserConfig.num_items must be >= 1 (the dataset's item count), got "
                             f"num_items={config.num_items}; build the config with num_items=dataset.num_items.")
        window, dim = config.window_size, config.embedding_size
        self._set_item_embeddings(config.pretrained_item_embedding_dim, config.pretrained_item_embedding_mode)
        self.conv_v = (
            nn.Conv2d(in_channels=1, out_channels=config.num_vertical_filters, kernel_size=(window, 1))
            if config.num_vertical_filters
            else None
        )
        self.conv_h = nn.ModuleList(
            [
                nn.Conv2d(in_channels=1, out_channels=config.num_horizontal_filters, kernel_size=(height, dim))
                for height in range(1, window + 1)
            ]
            if config.num_horizontal_filters
            else []
        )
        fc1_dim_in = config.num_vertical_filters * dim + config.num_horizontal_filters * window
        self.fc1 = nn.Linear(fc1_dim_in, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(config.dropout_prob)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.item_embedding

    def set_input_embeddings(self, value: nn.Embedding):
        self.item_embedding = value

    def encode_windows(self, windows: torch.LongTensor) -> torch.Tensor:
        """(..., L) windows of item ids (oldest first, 0-padded) -> (..., embedding_size)."""
        lead = windows.shape[:-1]
        windows = windows.reshape(-1, windows.shape[-1])
        embedded = self.embed_items(windows).unsqueeze(1)  # (N, 1, L, d)
        features = []
        if self.conv_v is not None:
            features.append(self.conv_v(embedded).flatten(1))  # (N, n_v * d)
        for conv in self.conv_h:
            features.append(F.relu(conv(embedded).squeeze(3)).amax(dim=2))  # (N, n_h)
        out = self.dropout(torch.cat(features, dim=1))
        out = F.relu(self.fc2(F.relu(self.fc1(out))))
        return out.reshape(*lead, out.shape[-1])

    def encode(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) checked left-padded ids + bool mask -> (B, T, embedding_size): position t reads the window
        of the last L items ending at t."""
        window = self.config.window_size
        windows = F.pad(input_ids, (window - 1, 0), value=0).unfold(1, window, 1)  # (B, T, L)
        return self.encode_windows(windows)

    def _last_hidden(self, input_ids: torch.LongTensor, mask: torch.Tensor) -> torch.Tensor:
        window = self.config.window_size
        last = F.pad(input_ids, (max(0, window - input_ids.shape[1]), 0), value=0)[:, -window:]
        return self.encode_windows(last)

    def regularization_loss(self) -> torch.Tensor:
        """RecBole's RegLoss: the sum of the L2 (Frobenius) norms of the embedding, conv and fc weights.

        With a pretrained item table the trained item weights are `item_embedding` (absent in "frozen" mode) and
        the table's projection; the frozen table itself does not train, so it is not penalised."""
        weights = [self.fc1.weight, self.fc2.weight]
        if self.item_embedding is not None:
            weights.insert(0, self.item_embedding.weight)
        if self.pretrained_item_projection is not None:
            weights.append(self.pretrained_item_projection.weight)
        if self.conv_v is not None:
            weights.append(self.conv_v.weight)
        weights.extend(conv.weight for conv in self.conv_h)
        return sum(weight.norm(2) for weight in weights)

    def _loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = super()._loss(hidden, labels)
        if self.config.reg_weight:
            loss = loss + self.config.reg_weight * self.regularization_loss()
        return loss


__all__ = ["CaserModel", "CaserPreTrainedModel", "SequentialRecommenderOutput"]
