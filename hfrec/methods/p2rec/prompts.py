"""The one prompt of P2Rec: a user's items, oldest first, and the question of which kinds of items the user prefers.

The parser reads it for a user's training sequence (information reconstruction) and for a single item (information
augmentation: the item's embedding is the parser's pooled state of a one-item history, the space its head reads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..common.prompts import DOMAIN_WORDS, ItemCatalog, check_domain, encode_chat

# part of the item-embedding cache key (through the prompt tokens) and of the run records: bump on template changes
PROMPT_VERSION = "p2rec-v1"


@dataclass
class PreferencePrompter:
    """Token ids of P2Rec's prompt.

    Args:
        tokenizer: the backbone's tokenizer (its chat template is used when it has one).
        catalog: item id -> text (``ItemCatalog.from_items(ds.item_table)``).
        domain: wording of the template (movie, game, product, music, item).
        max_history: the most recent items shown (None: all).
        item_max_tokens: token budget of each item's text (title + fields, ``ItemCatalog.text``); None: no cut.
        item_fields: item text fields shown after the title (None: every field the catalogue has).
    """

    tokenizer: object
    catalog: ItemCatalog
    domain: str = "movie"
    max_history: int | None = 20
    item_max_tokens: int | None = 24
    item_fields: Sequence[str] | None = None
    _texts: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        check_domain(self.domain)
        if self.max_history is not None and self.max_history < 1:
            raise ValueError(f"max_history must be >= 1 or None (all items), got {self.max_history}")

    def item_text(self, item_id: int) -> str:
        item_id = int(item_id)
        if item_id not in self._texts:
            self._texts[item_id] = self.catalog.text(item_id, self.item_fields, self.tokenizer, self.item_max_tokens)
        return self._texts[item_id]

    def shown(self, sequence: Sequence[int]) -> list[int]:
        """The items the prompt shows: the last ``max_history`` of ``sequence``."""
        return list(sequence)[-self.max_history:] if self.max_history else list(sequence)

    def prompt_ids(self, sequence: Sequence[int]) -> list[int]:
        items = self.shown(sequence)
        if not items:
            raise ValueError("P2Rec's prompt needs at least one item")
        words = DOMAIN_WORDS[self.domain]
        lines = "\n".join(f"{n}. {self.item_text(i)}" for n, i in enumerate(items, 1))
        system = (f"You tell which kinds of {words['items']} a user prefers from the {words['items']} the user "
                  f"{words['past']}.")
        # the question comes first: a one-item prompt then differs from another only in the item and the few
        # tokens that close the turn, so the item table shares the rest (embeddings.py)
        user = (f"Which kinds of {words['items']} does this user prefer? The user {words['past']} these "
                f"{words['items']}, oldest first:\n{lines}")
        return encode_chat(self.tokenizer, system, user)

    def item_prompt_ids(self, item_id: int) -> list[int]:
        """The prompt of a user who has one item: what the parser turns into that item's enhanced embedding."""
        return self.prompt_ids([item_id])


__all__ = ["PROMPT_VERSION", "PreferencePrompter"]
