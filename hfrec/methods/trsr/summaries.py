"""LLM-TRSR's preference summaries: a history cut into blocks, summarised by an instruction LLM.

* hierarchical: every block is summarised on its own, then the block summaries are merged into one;
* recurrent: the first block is summarised (the same prompt as a hierarchical block, so the two modes share it),
  then the running summary is updated with each next block.

A history of one block needs no merge or update: its block summary is the user's summary in both modes. A summary
that the length budget cut mid-sentence loses that last sentence (:func:`complete_sentences`).

Generation goes through :class:`~hfrec.methods.common.generation.CachedGenerator`: batched across users (the
hierarchical mode sends every block prompt of every user in one call, then every merge; the recurrent mode sends
step k of every user that has a k-th block), seeded, greedy unless told otherwise, and cached on disk as a
``datasets`` table keyed by the model, :data:`~hfrec.methods.trsr.prompts.PROMPT_VERSION`, the generation settings
and the prompt's ids (which hold the block's items). A rerun, a new epoch or an evaluation never regenerates a
summary, an interrupted run resumes after the last batch it saved, and the cache can be pushed to / pulled from the
Hub as a dataset.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence

from ..common.generation import CachedGenerator
from ..common.prompts import ItemCatalog
from .config import SummaryMode, TRSRSummaryConfig
from .prompts import PROMPT_VERSION, SummaryPrompter

logger = logging.getLogger(__name__)


def split_blocks(history: Sequence[int], block_size: int = 5, max_blocks: int = 5) -> list[list[int]]:
    """The last ``block_size * max_blocks`` items of ``history`` (oldest first; padding ids 0 dropped), cut into
    blocks of ``block_size`` from the oldest kept item, as the released code cuts them: only the last block may be
    shorter, and a history shorter than a block is one block."""
    if block_size < 1 or max_blocks < 1:
        raise ValueError(f"block_size and max_blocks must be >= 1, got {block_size} and {max_blocks}")
    items = [int(i) for i in history if int(i) != 0]
    if not items:
        raise ValueError("Empty history: a summary needs at least one past item")
    kept = items[-block_size * max_blocks:]
    return [kept[s : s + block_size] for s in range(0, len(kept), block_size)]


def complete_sentences(text: str) -> str:
    """``text`` stripped, without a last sentence the length budget cut off (kept when it is the only one): what the
    next prompt reads should not end mid-word."""
    text = text.strip()
    end = max(text.rfind(". "), text.rfind(".\n"), text.rfind("! "), text.rfind("? "))
    if text.endswith((".", "!", "?")) or end < 0:
        return text
    return text[: end + 1]


@dataclass
class UserSummary:
    """One user's summary and the steps that led to it."""

    blocks: list[list[int]]  # item ids, oldest block first
    steps: list[str]  # hierarchical: each block's summary; recurrent: the running summary after each block
    summary: str  # the final summary (hierarchical: the merge; recurrent: the last running summary)


class TRSRSummarizer:
    """Summarises users' histories with an instruction LLM, in LLM-TRSR's hierarchical or recurrent mode.

    Args:
        model: the summarising LLM (any causal LM; the backbone itself by default in the script).
        tokenizer: its tokenizer.
        catalog: item titles and text fields (``ItemCatalog.from_items(ds.item_table)``).
        cache_dir: folder of the on-disk summary cache (shared by both modes: rows are keyed by their prompts).
        config: :class:`~hfrec.methods.trsr.config.TRSRSummaryConfig` (mode, blocks, item budget, generation).
        generator: an existing :class:`CachedGenerator` to use (:meth:`from_hub` builds one); by default one is made
            from the model, ``cache_dir`` and the config.
    """

    def __init__(self, model, tokenizer, catalog: ItemCatalog, cache_dir: str | os.PathLike,
                 config: TRSRSummaryConfig | None = None, generator: CachedGenerator | None = None):
        self.config = config if config is not None else TRSRSummaryConfig()
        self.prompter = SummaryPrompter(tokenizer, catalog, domain=self.config.domain,
                                        item_text_tokens=self.config.item_text_tokens,
                                        use_chat_template=self.config.use_chat_template)
        self.generator = generator if generator is not None else CachedGenerator(
            model, tokenizer, cache_dir, self.config.generation(), PROMPT_VERSION, batch_size=self.config.batch_size,
            seed=self.config.seed)

    @classmethod
    def from_hub(cls, repo_id: str, model, tokenizer, catalog: ItemCatalog, cache_dir: str | os.PathLike,
                 config: TRSRSummaryConfig | None = None, *, revision: str | None = None,
                 token: str | bool | None = None) -> "TRSRSummarizer":
        """A summariser whose cache also holds the summaries of the Hub dataset ``repo_id`` (see :meth:`push_cache`)."""
        config = config if config is not None else TRSRSummaryConfig()
        generator = CachedGenerator.from_hub(repo_id, model, tokenizer, cache_dir, config.generation(), PROMPT_VERSION,
                                             revision=revision, token=token, batch_size=config.batch_size,
                                             seed=config.seed)
        return cls(model, tokenizer, catalog, cache_dir, config, generator=generator)

    def push_cache(self, repo_id: str, **push_kwargs):
        """Publish the summary cache as a Hub dataset (``datasets.Dataset.push_to_hub`` arguments)."""
        return self.generator.push_to_hub(repo_id, **push_kwargs)

    @property
    def mode(self) -> SummaryMode:
        return self.config.mode

    def blocks(self, history: Sequence[int]) -> list[list[int]]:
        return split_blocks(history, self.config.block_size, self.config.max_blocks)

    def summarize(self, histories: Sequence[Sequence[int]], user_ids: Sequence | None = None,
                  progress: bool = True) -> list[str]:
        """One final summary per history (item ids, oldest first)."""
        return [s.summary for s in self.summarize_detailed(histories, user_ids, progress)]

    def summarize_detailed(self, histories: Sequence[Sequence[int]], user_ids: Sequence | None = None,
                           progress: bool = True) -> list[UserSummary]:
        """Per history: its blocks, the summary of each step and the final summary. ``user_ids`` (optional) label
        the cache rows, for reading a pushed cache."""
        if user_ids is not None and len(user_ids) != len(histories):
            raise ValueError(f"{len(histories)} histories but {len(user_ids)} user ids")
        blocks = []
        for i, history in enumerate(histories):
            try:
                blocks.append(self.blocks(history))
            except ValueError as err:
                who = f"History {i}" + ("" if user_ids is None else f" (user {user_ids[i]})")
                raise ValueError(f"{who}: {err}") from None
        if self.mode == SummaryMode.HIERARCHICAL:
            steps, finals = self._hierarchical(blocks, user_ids, progress)
        else:
            steps = self._recurrent(blocks, user_ids, progress)
            finals = [s[-1] for s in steps]
        return [UserSummary(b, s, f) for b, s, f in zip(blocks, steps, finals)]

    def _generate(self, prompts, labels: list[tuple[int, str]], user_ids, progress) -> list[str]:
        keys = None if user_ids is None else [f"user {user_ids[u]}: {what}" for u, what in labels]
        return [complete_sentences(t) for t in self.generator.generate(prompts, keys=keys, progress=progress)]

    def _hierarchical(self, blocks, user_ids, progress) -> tuple[list[list[str]], list[str]]:
        pairs = [(u, k) for u, user_blocks in enumerate(blocks) for k in range(len(user_blocks))]
        logger.info("hierarchical summaries of %d users: %d block prompts", len(blocks), len(pairs))
        texts = self._generate([self.prompter.block_prompt(blocks[u][k]) for u, k in pairs],
                               [(u, f"block {k + 1}") for u, k in pairs], user_ids, progress)
        steps: list[list[str]] = [[] for _ in blocks]
        for (u, _), text in zip(pairs, texts):
            steps[u].append(text)
        finals = [s[0] for s in steps]  # one block: its summary is the user's
        merging = [u for u in range(len(blocks)) if len(blocks[u]) > 1]
        logger.info("merging the block summaries of %d users", len(merging))
        merged = self._generate([self.prompter.merge_prompt(steps[u]) for u in merging],
                                [(u, "merge") for u in merging], user_ids, progress)
        for u, text in zip(merging, merged):
            finals[u] = text
        return steps, finals

    def _recurrent(self, blocks, user_ids, progress) -> list[list[str]]:
        steps: list[list[str]] = [[] for _ in blocks]
        for k in range(max((len(b) for b in blocks), default=0)):  # step k of every user together
            users = [u for u in range(len(blocks)) if len(blocks[u]) > k]
            logger.info("recurrent summaries, block %d: %d users", k + 1, len(users))
            prompts = [self.prompter.block_prompt(blocks[u][0]) if k == 0 else
                       self.prompter.update_prompt(steps[u][-1], blocks[u][k]) for u in users]
            labels = [(u, "block 1" if k == 0 else f"update with block {k + 1}") for u in users]
            for u, text in zip(users, self._generate(prompts, labels, user_ids, progress)):
                steps[u].append(text)
        return steps


__all__ = ["TRSRSummarizer", "UserSummary", "complete_sentences", "split_blocks"]
