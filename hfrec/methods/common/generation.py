"""Text generation: batched generation with an on-disk cache (e.g. LLM-TRSR's per-user summaries), and the
decode-and-match baseline of earlier LLM recommenders (:func:`generate_then_match`).

:class:`CachedGenerator` runs left-padded batched ``model.generate`` and remembers every result in a ``datasets``
table on disk, keyed by a hash of (backbone ``name_or_path`` + config, ``prompt_version``, generation kwargs,
prompt token ids). Already-cached prompts are never generated again, so a long summarisation run that is
interrupted resumes where it stopped.

On disk the cache is a folder of Arrow shards, one ``Dataset.save_to_disk`` folder per flush::

    cache_dir/shard-<time>-<rand>/   columns: id (the hash), key (the caller's label or None), prompt_version, text

A shard is written to a temporary folder next to its final place and renamed into place once complete, so a
killed run never leaves a half-written shard under a ``shard-*`` name; loading concatenates every ``shard-*``
folder. Temporary folders of a killed run (``.tmp-*``) are ignored and may be deleted.

Determinism: prompts are generated longest first (ties broken by hash), and each batch seeds the RNG from
``(seed, the hashes of its prompts)`` inside ``torch.random.fork_rng``. A sampled text thus depends on the seed
and on the batch its prompt lands in, never on the caller's global RNG or on earlier calls; and a resumed run
forms exactly the batches the uninterrupted run would have formed for the remaining prompts (shards end on batch
boundaries), so it ends with the same texts even when sampling.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ...evaluation import left_pad
from .scoring import base_model_of, batch_row_inputs, eval_mode, is_encoder_decoder, pad_token_id, tokenize_prompt

__all__ = ["CachedGenerator", "ConstrainedGeneration", "GenerationMatchResult", "ItemTrie", "fsync_tree",
           "generate_items", "generate_then_match", "generate_token_ids", "match_title", "quiet_datasets"]

_COLUMNS = ("id", "key", "prompt_version", "text")
_SHARD_PREFIX = "shard-"


def _features():
    import datasets

    return datasets.Features({name: datasets.Value("string") for name in _COLUMNS})


@contextlib.contextmanager
def quiet_datasets():
    """No "Saving the dataset" bars from datasets in the middle of the generation bar."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _model_fingerprint(model) -> str:
    """Hash of what decides the outputs besides the prompt: backbone name, config, generation config, adapters.
    Weights are not hashed (too slow for a cache key): save fine-tuned weights under their own path, or bump
    ``prompt_version``."""
    inner = base_model_of(model)
    config = inner.config.to_dict()
    config.pop("transformers_version", None)  # a library upgrade alone should not throw away a cache
    ident = {"name_or_path": getattr(inner.config, "name_or_path", "") or "", "config": config}
    gen_config = getattr(inner, "generation_config", None)
    if gen_config is not None:  # model-side defaults (do_sample, temperature, ...) shape the outputs too
        ident["generation_config"] = {k: v for k, v in gen_config.to_diff_dict().items()
                                      if k != "transformers_version"}
    adapters = getattr(model, "peft_config", None)
    if adapters:
        ident["adapters"] = {name: cfg.to_dict() for name, cfg in adapters.items()}
    blob = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _check_generation_kwargs(generation_kwargs) -> dict:
    if not isinstance(generation_kwargs, Mapping):
        raise ValueError(f"generation_kwargs must be a dict of model.generate arguments, e.g. "
                         f"{{'max_new_tokens': 128}}; got {type(generation_kwargs).__name__}")
    for name, value in generation_kwargs.items():
        try:
            json.dumps(value)
        except TypeError:
            raise ValueError(f"generation_kwargs[{name!r}] = {value!r} is not JSON-serialisable, so it cannot be "
                             "part of the cache key; pass plain numbers, strings, lists or dicts") from None
    if "max_new_tokens" not in generation_kwargs and "max_length" not in generation_kwargs:
        raise ValueError(f"generation_kwargs {dict(generation_kwargs)!r} set no length budget; add max_new_tokens "
                         "(e.g. {'max_new_tokens': 128})")
    return dict(generation_kwargs)


def fsync_tree(folder: Path) -> None:
    """The rename must never expose a shard whose bytes are not on disk (as hfrec.utils.atomic_write_text)."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


class CachedGenerator:
    """Generate texts for prompts, remembering every result on disk.

    Args:
        model: a model with ``generate`` (a causal LM, possibly PEFT-wrapped; encoder-decoder models work too).
        tokenizer: its tokenizer; string prompts are tokenized without special tokens (pass token ids, e.g. from
            a chat template, to control them).
        cache_dir: folder of the cache (created if missing); several generators (other models, prompt versions)
            may share one folder, since every row is keyed by all of them.
        generation_kwargs: ``model.generate`` arguments, JSON-serialisable and part of the cache key; must set
            ``max_new_tokens`` (or ``max_length``). ``{"max_new_tokens": 128}`` is greedy unless the model's
            generation config samples; ``{"do_sample": True, "top_p": 0.9, ...}`` samples under ``seed``.
        prompt_version: a name for the prompt template (e.g. ``"trsr-summary-v2"``), part of the key: bump it
            when the template changes so old texts are not reused.
        batch_size: prompts per ``generate`` call.
        seed: base seed of the per-batch RNG (see the module docstring).
        save_every: batches generated between two shards written to disk (and at the end, or on an error).
    """

    def __init__(self, model, tokenizer, cache_dir: str | os.PathLike, generation_kwargs: Mapping,
                 prompt_version: str, batch_size: int = 8, seed: int = 0, save_every: int = 16):
        if not isinstance(prompt_version, str) or not prompt_version:
            raise ValueError(f"prompt_version must be a non-empty string naming the prompt template, "
                             f"got {prompt_version!r}")
        for name, value in (("batch_size", batch_size), ("save_every", save_every)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.cache_dir = Path(cache_dir)
        self.generation_kwargs = _check_generation_kwargs(generation_kwargs)
        self.prompt_version = prompt_version
        self.batch_size = batch_size
        self.seed = int(seed)
        self.save_every = save_every
        scope = {"model": _model_fingerprint(model), "prompt_version": prompt_version,
                 "generation_kwargs": self.generation_kwargs}
        self._scope = hashlib.sha256(json.dumps(scope, sort_keys=True).encode()).digest()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._texts: dict[str, str] = {}
        dataset = self._load_local()
        if dataset is not None:
            self._texts.update(zip(dataset["id"], dataset["text"]))

    def __len__(self) -> int:
        """Number of texts in the cache (all models and prompt versions sharing the folder)."""
        return len(self._texts)

    def _key_of_ids(self, ids: Sequence[int]) -> str:
        return hashlib.sha256(self._scope + np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()

    def cache_key(self, prompt: str | Sequence[int]) -> str:
        """The cache key (``id`` column) of a prompt under this generator's model, kwargs and prompt version."""
        return self._key_of_ids(tokenize_prompt(self.tokenizer, prompt))

    def generate(self, prompts: Sequence[str | Sequence[int]], keys: Sequence[str] | None = None,
                 progress: bool = True) -> list[str]:
        """The generated text (new tokens only, special tokens skipped) of every prompt, in order.

        Cached prompts are read from the cache; the others are generated in length-sorted batches and appended
        to the cache every ``save_every`` batches. ``keys``: optional labels (e.g. user ids) stored next to the
        texts, for reading the cache elsewhere (e.g. on the Hub); they are not part of the cache key."""
        if keys is not None and len(keys) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(keys)} keys; pass one key per prompt or keys=None")
        prompt_ids = [tokenize_prompt(self.tokenizer, p) for p in prompts]
        for i, ids in enumerate(prompt_ids):
            if not ids:
                raise ValueError(f"Prompt {i} is empty: every prompt needs at least one token")
        ids_of = [self._key_of_ids(ids) for ids in prompt_ids]
        pending: dict[str, tuple[list[int], str | None]] = {}
        for i, key in enumerate(ids_of):
            if key not in self._texts and key not in pending:
                pending[key] = (prompt_ids[i], None if keys is None else str(keys[i]))
        order = sorted(pending, key=lambda k: (-len(pending[k][0]), k))  # longest first: less padding, and the
        # same batches for the remaining prompts when a run resumes
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        unique = len(set(ids_of))
        from tqdm.auto import tqdm

        bar = tqdm(total=unique, initial=unique - len(pending), desc="generating", unit="prompt",
                   disable=not progress)
        unsaved: list[tuple[str, str | None, str]] = []
        try:
            with eval_mode(self.model):
                for n, batch in enumerate(batches, 1):
                    texts = self._generate_batch(batch, [pending[k][0] for k in batch])
                    for key, text in zip(batch, texts):
                        self._texts[key] = text
                        unsaved.append((key, pending[key][1], text))
                    bar.update(len(batch))
                    if n % self.save_every == 0:
                        self._write_shard(unsaved)
                        unsaved = []
        finally:  # on an error (or Ctrl-C) keep what was generated: the next run starts after it
            bar.close()
            if unsaved:
                self._write_shard(unsaved)
        return [self._texts[k] for k in ids_of]

    def _generate_batch(self, batch_keys: list[str], batch_ids: list[list[int]]) -> list[str]:
        digest = hashlib.sha256(f"{self.seed}:{','.join(batch_keys)}".encode()).digest()
        device = base_model_of(self.model).get_input_embeddings().weight.device
        accel = device.type != "cpu"  # the CPU generator is always forked
        with torch.random.fork_rng(devices=[device] if accel else [], device_type=device.type if accel else None):
            # leaves the caller's RNG untouched
            torch.manual_seed(int.from_bytes(digest[:8], "little") >> 1)
            return _generate_texts(self.model, self.tokenizer, batch_ids, **self.generation_kwargs)

    # ---------------------------------------------------------------------------------------------- storage
    def _shard_dirs(self) -> list[Path]:
        return sorted(p for p in self.cache_dir.glob(f"{_SHARD_PREFIX}*") if p.is_dir())

    def _load_local(self):
        """All shards as one ``datasets.Dataset``, or None when the cache is empty."""
        import datasets

        parts = []
        for shard in self._shard_dirs():
            try:
                parts.append(datasets.load_from_disk(str(shard)))
            except Exception as err:
                raise ValueError(f"Cache shard {shard} cannot be read ({err}); it was not written by "
                                 "CachedGenerator or was damaged afterwards: delete that folder") from err
        return datasets.concatenate_datasets(parts) if parts else None

    def _write_shard(self, rows: Sequence[tuple[str, str | None, str]]) -> Path:
        import datasets

        data = {"id": [r[0] for r in rows], "key": [r[1] for r in rows],
                "prompt_version": [self.prompt_version] * len(rows), "text": [r[2] for r in rows]}
        return self._save_shard(datasets.Dataset.from_dict(data, features=_features()))

    def _save_shard(self, dataset) -> Path:
        """save_to_disk into a temporary folder beside the cache, then rename: a shard is complete or absent."""
        final = self.cache_dir / f"{_SHARD_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-shard-", dir=self.cache_dir))
        try:
            with quiet_datasets():
                dataset.save_to_disk(str(tmp / "data"))
            fsync_tree(tmp / "data")
            os.replace(tmp / "data", final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    # ---------------------------------------------------------------------------------------------- Hub
    def push_to_hub(self, repo_id: str, **push_kwargs):
        """Push the whole cache (every shard, one table) as a Hub dataset; ``push_kwargs`` go to
        ``datasets.Dataset.push_to_hub`` (``private``, ``token``, ``revision``, ``commit_message``, ...)."""
        dataset = self._load_local()
        if dataset is None:
            raise ValueError(f"The cache in {self.cache_dir} is empty: generate something before pushing it")
        return dataset.push_to_hub(repo_id, **push_kwargs)

    @classmethod
    def from_hub(cls, repo_id: str, model, tokenizer, cache_dir: str | os.PathLike, generation_kwargs: Mapping,
                 prompt_version: str, *, revision: str | None = None, token: str | bool | None = None,
                 **kwargs) -> "CachedGenerator":
        """A generator whose local cache also holds the rows of the Hub dataset ``repo_id`` (pushed by
        :meth:`push_to_hub`); rows already cached locally are kept. Other arguments as in the constructor."""
        import datasets

        gen = cls(model, tokenizer, cache_dir, generation_kwargs, prompt_version, **kwargs)
        with tempfile.TemporaryDirectory(prefix=".tmp-hub-", dir=gen.cache_dir) as download_cache:
            remote = datasets.load_dataset(repo_id, split="train", revision=revision, token=token,
                                           cache_dir=download_cache)
            if set(remote.column_names) != set(_COLUMNS):
                raise ValueError(f"{repo_id} has columns {remote.column_names}, not a CachedGenerator cache "
                                 f"(expected {list(_COLUMNS)})")
            new = [i for i, key in enumerate(remote["id"]) if key not in gen._texts]
            if new:
                fresh = remote.select(new).cast(_features())
                gen._save_shard(fresh.flatten_indices())
                gen._texts.update(zip(fresh["id"], fresh["text"]))
        return gen


_NORM_RE = re.compile(r"[\s\"'`.,;:!?]+")


def _norm(text: str) -> str:
    return _NORM_RE.sub(" ", text.lower()).strip()


def match_title(text: str, titles: Sequence[str]) -> int:
    """Index of the candidate title a generated text names, or -1: exact (normalised) match first, then the
    longest title contained in the text."""
    t = _norm(text)
    normed = [_norm(x) for x in titles]
    for i, n in enumerate(normed):
        if n and t == n:
            return i
    best, best_len = -1, 0
    for i, n in enumerate(normed):
        if n and n in t and len(n) > best_len:
            best, best_len = i, len(n)
    return best


def generate_token_ids(model, tokenizer, prompt_ids: Sequence[Sequence[int]], row_inputs=None,
                       **generate_kwargs) -> list[list[int]]:
    """One ``model.generate`` over a batch of token-id prompts (left-padded: decoder-only generation continues from
    the right end); returns the new tokens of each returned sequence (``num_return_sequences`` per prompt, in
    order). ``row_inputs`` are per-prompt model inputs (PeaPOD's ``user_index``), expanded with the beams."""
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError("Empty prompt: every prompt needs at least one token")
    pad_id = pad_token_id(tokenizer)
    device = base_model_of(model).get_input_embeddings().weight.device
    ids = left_pad(prompt_ids, pad=pad_id)
    att = left_pad([[1] * len(p) for p in prompt_ids], pad=0)
    kwargs = {"pad_token_id": pad_id, **batch_row_inputs(row_inputs, range(len(prompt_ids)), device),
              **generate_kwargs}
    out = model.generate(input_ids=ids.to(device), attention_mask=att.to(device), **kwargs)
    new = out if is_encoder_decoder(model) else out[:, ids.shape[1] :]  # seq2seq outputs hold no prompt
    return new.tolist()


def _generate_texts(model, tokenizer, prompt_ids: Sequence[Sequence[int]], **generate_kwargs) -> list[str]:
    """The decoded new tokens (special tokens skipped) of :func:`generate_token_ids`. Shared by
    :func:`generate_then_match` and :class:`CachedGenerator`."""
    return tokenizer.batch_decode(generate_token_ids(model, tokenizer, prompt_ids, **generate_kwargs),
                                  skip_special_tokens=True)


@dataclass
class GenerationMatchResult:
    predictions: torch.Tensor  # (B,) index of the matched candidate, -1 when invalid
    texts: list[str]  # the decoded generations
    valid_ratio: float  # share of generations that named a candidate
    scores: torch.Tensor  # (B, C) 1.0 at the matched candidate, 0 elsewhere (for the shared metrics)


@torch.no_grad()
def generate_then_match(
    model,
    tokenizer,
    prompts: Sequence[str | Sequence[int]],
    candidate_texts: Sequence[Sequence[str]],
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    progress: bool = False,
    generate_kwargs: dict | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> GenerationMatchResult:
    """Greedy-decode an answer for every prompt and match it to one of the prompt's candidate titles."""
    if len(prompts) != len(candidate_texts):
        raise ValueError(f"{len(prompts)} prompts but {len(candidate_texts)} candidate lists")
    if max_new_tokens is None:
        longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for c in candidate_texts for t in c)
        max_new_tokens = longest + 2
    p_ids = [tokenize_prompt(tokenizer, p) for p in prompts]
    C = max(len(c) for c in candidate_texts)
    preds = torch.full((len(prompts),), -1, dtype=torch.long)
    scores = torch.zeros(len(prompts), C)
    texts: list[str] = [""] * len(prompts)
    starts = range(0, len(prompts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="generate-then-match", unit="batch")
    kwargs = dict(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens)
    kwargs.update(generate_kwargs or {})
    with eval_mode(model):
        for s in starts:
            for j, text in enumerate(_generate_texts(model, tokenizer, p_ids[s : s + batch_size], **kwargs), s):
                texts[j] = text.strip()
                k = match_title(texts[j], candidate_texts[j])
                preds[j] = k
                if k >= 0:
                    scores[j, k] = 1.0
            if on_batch is not None:
                on_batch(s)
    valid = float((preds >= 0).float().mean()) if len(prompts) else 0.0
    return GenerationMatchResult(predictions=preds, texts=texts, valid_ratio=valid, scores=scores)


class ItemTrie:
    """A prefix tree over the token ids of every item's identifier (+ EOS): decoding under it can only spell an item
    that exists (P5-style constrained generation). ``allowed(prefix)`` lists the tokens that continue a valid
    prefix; ``item_of(tokens)`` maps a finished sequence back to its item id (-1 for anything else).

    Items spelled alike (MovieLens has a few titles twice) cannot be told apart by generation: they share one
    entry, answered by the smallest id, and :meth:`canonical` maps each of them to it, so a generated title counts
    as the target when it is the target's title."""

    def __init__(self, item_tokens: Mapping[int, Sequence[int]]):
        if not item_tokens:
            raise ValueError("An item trie needs at least one item")
        self.root: dict = {}
        self.items: dict[tuple[int, ...], int] = {}
        self._canonical: dict[int, int] = {}
        for item, tokens in sorted(item_tokens.items()):
            tokens = tuple(int(t) for t in tokens)
            if not tokens:
                raise ValueError(f"Item {item} has an empty identifier: every item needs at least one token")
            first = self.items.setdefault(tokens, int(item))
            self._canonical[int(item)] = first
            node = self.root
            for t in tokens:
                node = node.setdefault(t, {})
        self.max_length = max(len(t) for t in self.items)
        self.num_shared = len(self._canonical) - len(self.items)  # items that share another's identifier

    def canonical(self, item: int) -> int:
        """The id generation answers for ``item`` (itself unless an item with a smaller id is spelled alike)."""
        return self._canonical.get(int(item), int(item))

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        node = self.root
        for t in prefix:
            node = node.get(int(t))
            if node is None:
                return []
        return list(node)

    def item_of(self, tokens: Sequence[int], stop_ids: Sequence[int] = ()) -> int:
        """The item ``tokens`` spell, reading up to and including the first token that ends an item."""
        tokens = [int(t) for t in tokens]
        for end in range(1, len(tokens) + 1):
            if tuple(tokens[:end]) in self.items:
                return self.items[tuple(tokens[:end])]
            if tokens[end - 1] in stop_ids:
                break
        return -1


@dataclass
class ConstrainedGeneration:
    """What :func:`generate_items` returns: per prompt, the generated items best first (-1 = an output that names no
    item; never produced under the trie, still counted), and the share of outputs that named an item."""

    items: list[list[int]]
    valid_ratio: float


@torch.no_grad()
def generate_items(model, tokenizer, prompts: Sequence[str | Sequence[int]], trie: ItemTrie, num_beams: int = 10,
                   num_return: int | None = None, batch_size: int = 8, row_inputs=None,
                   progress: bool = False) -> ConstrainedGeneration:
    """Beam search under ``trie`` (``prefix_allowed_tokens_fn``): the top ``num_return`` (default ``num_beams``)
    items of each prompt, best first, duplicates dropped. A ranking over the whole catalogue by generation."""
    num_return = num_return or num_beams
    if num_return > num_beams:
        raise ValueError(f"num_return={num_return} > num_beams={num_beams}: beam search returns at most num_beams")
    p_ids = [tokenize_prompt(tokenizer, p) for p in prompts]
    seq2seq = is_encoder_decoder(model)
    stop = [t for t in (tokenizer.eos_token_id, pad_token_id(tokenizer)) if t is not None]
    out, valid, total = [], 0, 0
    starts = range(0, len(p_ids), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="constrained generation", unit="batch")
    with eval_mode(model):
        for s in starts:
            batch = p_ids[s : s + batch_size]
            width = max(len(p) for p in batch)

            def allowed(_, sent: torch.Tensor) -> list[int]:
                prefix = sent.tolist()[1:] if seq2seq else sent.tolist()[width:]  # seq2seq: after the start token
                return trie.allowed(prefix) or stop[:1]  # a finished item only pads on

            rows = {k: torch.as_tensor(v)[s : s + batch_size] for k, v in (row_inputs or {}).items()}
            generated = generate_token_ids(model, tokenizer, batch, row_inputs=rows, num_beams=num_beams,
                                           num_return_sequences=num_return, do_sample=False,
                                           max_new_tokens=trie.max_length, prefix_allowed_tokens_fn=allowed,
                                           early_stopping=True)
            for i in range(len(batch)):
                seqs = generated[i * num_return : (i + 1) * num_return]
                seqs = [q[1:] if seq2seq else q for q in seqs]
                items = [trie.item_of(q, stop) for q in seqs]
                valid += sum(x >= 0 for x in items)
                total += len(items)
                out.append(list(dict.fromkeys(items)))
    return ConstrainedGeneration(out, valid / total if total else 0.0)
