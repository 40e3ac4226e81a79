"""P2Rec's information augmentation: every item through the tuned parser, its pooled hidden state as the item's
LLM-enhanced embedding, cached on disk, and loaded into any hfrec SR model.

* :func:`item_embedding_table` - (N, H) float32, row k-1 = item k: each item's one-item prompt
  (``PreferencePrompter.item_prompt_ids``) through the parser (adapter active), pooled as the head reads it; batched
  with a progress bar. With last-token pooling the prompts' shared prefix is read once per batch
  (:func:`packed_last_token_states`; the one-item prompts are mostly template, so this halves the work or better);
  otherwise right-padded batches, longest first (:func:`pooled_states`).
* The cache: a ``datasets`` table (``item_id``, ``embedding``) saved under
  ``cache_dir/item-embeddings-<key>/``, written in a temporary folder and renamed into place (a table is complete or
  absent). The key hashes the model's weights (every tensor of the state dict: base, adapter and head), its pooling,
  and every item's prompt tokens (so the template, the item texts, the token budget and the tokenizer are covered).
* :func:`load_enhanced_embeddings` - the SR contract's ``load_item_embeddings`` with P2Rec's two defaults: the mode
  ``"auto"`` ("init", by PCA when the table is wider than the SR model's item size; "fuse" when narrower, since PCA
  cannot widen) and ``scale="match_init"`` (one factor on the whole table so the item rows the SR model receives have
  the spread of its own random initialisation: an LLM's hidden states are tens of times larger, which would swamp the
  SR model's logits at the start of training).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ...models.p2rec import PreferenceParserLM
from ..common.generation import fsync_tree, quiet_datasets
from ..common.scoring import eval_mode, length_batches, pack_batch, right_pad
from ..common.sft import unwrap_to
from .prompts import PROMPT_VERSION, PreferencePrompter

TABLE_PREFIX = "item-embeddings-"
TABLE_INFO_NAME = "p2rec_item_embeddings.json"
EMBEDDING_MODES = ("auto", "init", "frozen", "fuse")
EMBEDDING_SCALES = ("match_init", "none")


def weights_fingerprint(model) -> str:
    """sha256 of every tensor of ``model.state_dict()`` (names, dtypes, shapes, bytes): the trained state itself."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def table_key(model, prompts: list[list[int]]) -> str:
    digest = hashlib.sha256()
    ident = {"weights": weights_fingerprint(model), "pooling": _parser(model).config.pooling,
             "prompt_version": PROMPT_VERSION, "items": len(prompts)}
    digest.update(json.dumps(ident, sort_keys=True).encode())
    for ids in prompts:
        digest.update(np.asarray(ids, dtype=np.int64).tobytes() + b"|")
    return digest.hexdigest()


def _parser(model) -> PreferenceParserLM:
    return unwrap_to(model, PreferenceParserLM)


@torch.no_grad()
def pooled_states(model, prompts: list[list[int]], pad_token_id: int, batch_size: int = 32, progress: bool = True,
                  desc: str = "item embeddings") -> np.ndarray:
    """(len(prompts), H) float32: the parser's pooled hidden state of each prompt (one forward per batch, longest
    first, right-padded), in the given order."""
    device = next(model.parameters()).device
    out: np.ndarray | None = None
    with eval_mode(model):
        for rows in length_batches([len(p) for p in prompts], batch_size, progress, desc):
            ids, mask = right_pad([prompts[i] for i in rows], pad_token_id)
            pooled = model(input_ids=ids.to(device), attention_mask=mask.to(device)).pooled_hidden_states
            if out is None:
                out = np.zeros((len(prompts), pooled.shape[-1]), dtype=np.float32)
            out[rows] = pooled.float().cpu().numpy()
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def shared_prefix_length(prompts: list[list[int]]) -> int:
    """Tokens every prompt starts with, leaving each at least one token of its own."""
    shortest = min(len(p) for p in prompts)
    n = 0
    while n < shortest - 1 and all(p[n] == prompts[0][n] for p in prompts):
        n += 1
    return n


@torch.no_grad()
def packed_last_token_states(model, prompts: list[list[int]], pad_token_id: int, batch_size: int = 32,
                             progress: bool = True, desc: str = "item embeddings") -> np.ndarray:
    """What :func:`pooled_states` gives with last-token pooling, at a fraction of the cost for prompts that share a
    long prefix (P2Rec's one-item prompts differ only in the item and the turn's closing tokens): each forward reads
    the shared prefix once followed by ``batch_size`` prompts' own tokens, packed with the block attention mask and
    restarting position ids of the shared scoring layer (``hfrec.methods.common.scoring``), so every prompt's tokens
    see the prefix and themselves only, exactly as in a forward of its own. The adapter (LoRA) acts as in the
    parser's own forward: it lives inside ``language_model``."""
    parser = _parser(model)
    prefix = shared_prefix_length(prompts)
    own = [p[prefix:] for p in prompts]
    decoder = parser.language_model
    dtype = decoder.get_input_embeddings().weight.dtype
    device = decoder.get_input_embeddings().weight.device
    out = np.zeros((len(prompts), parser.config.text_config.hidden_size), dtype=np.float32)
    with eval_mode(model):
        for start in tqdm(range(0, len(prompts), batch_size), desc=desc, unit="batch", disable=not progress):
            chunk = list(range(start, min(start + batch_size, len(prompts))))
            packed = pack_batch([prompts[0][:prefix]], [[own[i] for i in chunk]], pad_token_id, dtype, device,
                                 len(chunk))
            hidden = decoder(input_ids=packed.input_ids, attention_mask=packed.mask, position_ids=packed.position_ids,
                             use_cache=False).last_hidden_state
            out[chunk] = hidden[0, packed.last[0]].float().cpu().numpy()
    return out


def item_embedding_table(model, prompter: PreferencePrompter, num_items: int, cache_dir=None, batch_size: int = 32,
                         progress: bool = True) -> np.ndarray:
    """(num_items, H) float32 LLM-enhanced item embeddings, row k-1 = item k; read from / written to the cache in
    ``cache_dir`` (None: no cache)."""
    prompts = [prompter.item_prompt_ids(item) for item in range(1, num_items + 1)]
    path = None
    if cache_dir is not None:
        key = table_key(model, prompts)
        path = Path(cache_dir) / f"{TABLE_PREFIX}{key[:24]}"
        if path.is_dir():
            return read_table(path, num_items)
    tokenizer = prompter.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    attention = getattr(_parser(model).config, "_attn_implementation", None) or ""
    # the packed forward needs last-token pooling and a 4-D attention mask, which flash attention does not take
    packed = _parser(model).config.pooling == "last" and "flash" not in attention and shared_prefix_length(prompts) > 0
    table = (packed_last_token_states if packed else pooled_states)(model, prompts, pad, batch_size=batch_size,
                                                                    progress=progress)
    if path is not None and int(os.environ.get("RANK", "0")) == 0:
        write_table(path, table, {"key": key, "prompt_version": PROMPT_VERSION, "num_items": num_items,
                                  "width": int(table.shape[1]),
                                  "backbone": _parser(model).config.backbone_name_or_path})
    return table


def write_table(path: Path, table: np.ndarray, info: dict) -> Path:
    """Save the (N, H) table as a ``datasets`` table (item_id 1..N, embedding) at ``path``, atomically."""
    import datasets

    features = datasets.Features({"item_id": datasets.Value("int64"),
                                  "embedding": datasets.List(datasets.Value("float32"), length=table.shape[1])})
    dataset = datasets.Dataset.from_dict({"item_id": np.arange(1, table.shape[0] + 1), "embedding": list(table)},
                                         features=features)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-table-", dir=path.parent))
    try:
        with quiet_datasets():
            dataset.save_to_disk(str(tmp / "table"))
        (tmp / "table" / TABLE_INFO_NAME).write_text(json.dumps(info, indent=2) + "\n")
        fsync_tree(tmp / "table")
        if not path.exists():  # another process may have written the same table meanwhile: keep theirs
            os.replace(tmp / "table", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def read_table(path, num_items: int | None = None) -> np.ndarray:
    """The (N, H) float32 table saved by :func:`write_table`; a ValueError names a damaged or foreign table."""
    import datasets

    try:
        dataset = datasets.load_from_disk(str(path)).with_format("numpy")
    except Exception as err:
        raise ValueError(f"Item-embedding table {path} cannot be read ({err}): delete that folder to recompute it") \
            from err
    ids = np.asarray(dataset["item_id"])
    if not np.array_equal(ids, np.arange(1, len(ids) + 1)) or (num_items is not None and len(ids) != num_items):
        raise ValueError(f"Item-embedding table {path} holds item ids {ids[:3].tolist()}... ({len(ids)} rows), not "
                         f"1..{num_items if num_items is not None else len(ids)} in order: delete it to recompute it")
    return np.asarray(dataset["embedding"], dtype=np.float32)


def resolve_embedding_mode(mode: str, table_width: int, item_size: int) -> tuple[str, bool]:
    """``(mode, project)`` for ``load_item_embeddings``; ``"auto"`` -> "init" (with PCA when the table is wider than the
    SR model's item size) or "fuse" when it is narrower."""
    if mode not in EMBEDDING_MODES:
        raise ValueError(f"embedding mode {mode!r} is unknown; use one of {EMBEDDING_MODES}")
    if mode == "auto":
        mode = "init" if table_width >= item_size else "fuse"
    return mode, mode == "init" and table_width != item_size


def spread(rows: torch.Tensor) -> float:
    """Root mean square of the column-centred rows: how far items lie apart (a projection's bias, the same for every
    item, does not count)."""
    return float((rows - rows.mean(dim=0)).pow(2).mean().sqrt())


@torch.no_grad()
def load_enhanced_embeddings(model, table, mode: str = "auto", scale: str = "match_init"):
    """Put P2Rec's (N, D) item table into an hfrec SR model (before its optimizer is built); returns
    ``(model, {"mode", "project", "scale_factor"})``.

    ``scale="match_init"``: the table is multiplied by one factor chosen so that the part of the item rows it
    contributes (``item_representations()``; in "fuse" minus the model's own ``item_embedding`` part) has the spread
    the model's freshly initialised item rows had (:func:`spread`; PCA and the projection are affine, so one trial
    load measures it). ``"none"``: the table as it is."""
    if scale not in EMBEDDING_SCALES:
        raise ValueError(f"embedding scale {scale!r} is unknown; use one of {EMBEDDING_SCALES}")
    table = torch.as_tensor(np.asarray(table), dtype=torch.float64)
    own = model.item_representations()[1:].detach().double().clone()
    mode, project = resolve_embedding_mode(mode, table.shape[-1], own.shape[-1])
    model.load_item_embeddings(table, mode=mode, project=project)
    factor = 1.0
    if scale == "match_init":
        contributed = spread(model.item_representations()[1:].double() - (own if mode == "fuse" else 0.0))
        if not contributed > 0:
            raise ValueError("The item-embedding table contributes constant item rows (zero spread): every item would "
                             "look the same; check that the parser produced distinct embeddings")
        factor = spread(own) / contributed
        model.load_item_embeddings(table * factor, mode=mode, project=project)  # same width and mode: table only
    return model, {"mode": mode, "project": project, "scale_factor": factor}


__all__ = ["EMBEDDING_MODES", "EMBEDDING_SCALES", "item_embedding_table", "load_enhanced_embeddings",
           "packed_last_token_states", "pooled_states", "shared_prefix_length",
           "read_table", "resolve_embedding_mode", "table_key", "weights_fingerprint", "write_table"]
