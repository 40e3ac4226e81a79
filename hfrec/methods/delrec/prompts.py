"""Prompt templates of the LLM methods (DELRec: temporal analysis, pattern simulating, recommendation).

Templates have domain variants (movie, game, product, music, and a generic item): the nouns and verbs change,
the structure does not.
A soft prompt appears as ``num_virtual_tokens`` copies of a placeholder token that the model overwrites with the
learned vectors (see ``hfrec.models.delrec``); with ``num_virtual_tokens=0`` the soft-prompt sentence is left out
(the zero-shot LLM baseline sees the same prompt otherwise).

Every prompt is a user turn rendered with the tokenizer's chat template when it has one (instruction-tuned
backbones answer far better that way) and the target is the item title followed by EOS. Bad inputs raise
``ValueError`` naming the problem: an empty history, an item id outside the catalogue, a candidate without title.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Mapping, Sequence

DOMAIN_WORDS: dict[str, dict[str, str]] = {
    "movie": {"item": "movie", "items": "movies", "past": "watched", "present": "watch", "who": "movie"},
    "game": {"item": "game", "items": "games", "past": "played", "present": "play", "who": "video game"},
    "product": {"item": "product", "items": "products", "past": "purchased", "present": "buy", "who": "product"},
    "music": {"item": "track", "items": "tracks", "past": "listened to", "present": "listen to", "who": "music"},
    # any other catalogue (the `atomic` benchmark of user-supplied RecBole files)
    "item": {"item": "item", "items": "items", "past": "interacted with", "present": "choose", "who": "general"},
}

SYSTEM_TEMPLATE = "You are a {who} recommender. Answer with one title from the candidates, and nothing else."

SOFT_PROMPT_SENTENCE = "What {teacher} has learned about sequential patterns: {soft_prompt}\n"

RECOMMENDATION_TEMPLATE = (
    "{soft_sentence}"
    "The user has {past} these {items}, oldest first: {history}.\n"
    "The sequential recommender {teacher} suggests: {topk}.\n"
    "{candidate_sentence}"
    "Which {item} will the user {present} next?"
)

CANDIDATE_SENTENCE = "Candidate {items}: {candidates}.\n"

TEMPORAL_ANALYSIS_TEMPLATE = (
    "{soft_sentence}"
    "The user has {past} these {items}, oldest first; one of them is hidden as [MASK]: {history}.\n"
    "Candidate {items}: {candidates}.\n"
    "Which {item} is [MASK]?"
)

PATTERN_SIMULATING_TEMPLATE = (
    "{soft_sentence}"
    "The user has {past} these {items}, oldest first: {history}.\n"
    "Candidate {items}: {candidates}.\n"
    "Which candidate would the sequential recommender {teacher} rank first?"
)

MASK = "[MASK]"


@dataclass
class ItemCatalog:
    """Item id -> title. Ids are ``1..num_items``; 0 is padding and never an item."""

    titles: list[str | None]  # index = item id; titles[0] is unused

    @classmethod
    def from_items(cls, items) -> "ItemCatalog":
        """From ``ds.items`` (a ``datasets.Dataset`` or any mapping of columns with ``item_id`` and ``title``), or a
        ``{item_id: title}`` dict."""
        if isinstance(items, Mapping) and "item_id" not in items:
            n = max(int(k) for k in items) if items else 0
            titles: list[str | None] = [None] * (n + 1)
            for k, v in items.items():
                titles[int(k)] = v
            return cls(titles)
        ids, tts = list(items["item_id"]), list(items["title"])
        n = max(ids) if ids else 0
        titles = [None] * (n + 1)
        for i, t in zip(ids, tts):
            titles[int(i)] = t
        return cls(titles)

    @property
    def num_items(self) -> int:
        return len(self.titles) - 1

    def check_ids(self, ids: Sequence[int], what: str = "item") -> None:
        bad = [int(i) for i in ids if not (1 <= int(i) <= self.num_items)]
        if bad:
            raise ValueError(f"Unknown {what} id(s) {bad[:10]}: the catalogue has item ids 1..{self.num_items}")

    def title(self, item_id: int) -> str:
        self.check_ids([item_id])
        t = self.titles[int(item_id)]
        if t is None or not str(t).strip():
            raise ValueError(f"Item {int(item_id)} has no title; LLM prompts need a title for every item shown")
        return str(t).strip()

    def titles_of(self, ids: Sequence[int], what: str = "item") -> list[str]:
        self.check_ids(ids, what)
        missing = [int(i) for i in ids if self.titles[int(i)] is None or not str(self.titles[int(i)]).strip()]
        if missing:
            raise ValueError(
                f"{what.capitalize()}(s) {missing[:10]} have no title: every {what} of an LLM prompt needs one "
                "(fill the `title` column of ds.items)"
            )
        return [str(self.titles[int(i)]).strip() for i in ids]


@dataclass
class DELRecPrompter:
    """Builds DELRec prompts (text and token ids) and their targets.

    Args:
        tokenizer: the backbone tokenizer (with the placeholder token added when ``num_virtual_tokens > 0``).
        catalog: item titles.
        domain: movie, game, product, music or item (generic wording for any other catalogue).
        teacher_name: the SR model named in the prompts.
        num_virtual_tokens: soft-prompt length (0: no soft prompt sentence).
        soft_prompt_token: the placeholder token string.
        max_history: most recent items shown.
        use_chat_template: render as a user turn of the tokenizer's chat template, when it has one.
        show_candidates: list the candidates in the recommendation prompt (the paper's prompt; off only to
            shorten prompts: ranking scores the candidate titles either way).
    """

    tokenizer: object
    catalog: ItemCatalog
    domain: str = "movie"
    teacher_name: str = "SASRec"
    num_virtual_tokens: int = 0
    soft_prompt_token: str = "<|soft_prompt|>"
    max_history: int = 10
    use_chat_template: bool = True
    show_candidates: bool = True
    _completion_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.domain not in DOMAIN_WORDS:
            raise ValueError(f"Unknown domain {self.domain!r}; choose one of {sorted(DOMAIN_WORDS)}")
        if self.num_virtual_tokens > 0:
            tid = self.tokenizer.convert_tokens_to_ids(self.soft_prompt_token)
            if tid is None or tid == self.tokenizer.unk_token_id:
                raise ValueError(
                    f"The tokenizer does not know the soft-prompt token {self.soft_prompt_token!r}: use the tokenizer "
                    "returned by DELRecForCausalLM.from_backbone / saved with the model"
                )

    # ------------------------------------------------------------------ text
    @property
    def words(self) -> dict[str, str]:
        return DOMAIN_WORDS[self.domain]

    def _soft_sentence(self) -> str:
        if self.num_virtual_tokens <= 0:
            return ""
        return SOFT_PROMPT_SENTENCE.format(
            teacher=self.teacher_name, soft_prompt=self.soft_prompt_token * self.num_virtual_tokens
        )

    def _history(self, history: Sequence[int]) -> list[int]:
        history = [int(i) for i in history if int(i) != 0]
        if not history:
            raise ValueError("Empty history: a DELRec prompt needs at least one past item")
        return history[-self.max_history :] if self.max_history else history

    @staticmethod
    def _join(titles: Sequence[str]) -> str:
        return "; ".join(titles)

    def recommendation_text(self, history: Sequence[int], candidates: Sequence[int], teacher_topk: Sequence[int] = ()) -> str:
        hist = self._history(history)
        if len(candidates) == 0:
            raise ValueError("Empty candidate list")
        cand_titles = self.catalog.titles_of(list(candidates), "candidate")
        return RECOMMENDATION_TEMPLATE.format(
            soft_sentence=self._soft_sentence(),
            history=self._join(self.catalog.titles_of(hist)),
            topk=self._join(self.catalog.titles_of(list(teacher_topk), "recommended item")) if len(teacher_topk) else "nothing",
            candidate_sentence=CANDIDATE_SENTENCE.format(candidates=self._join(cand_titles), **self.words)
            if self.show_candidates else "",
            teacher=self.teacher_name,
            **self.words,
        )

    def temporal_analysis_text(self, history: Sequence[int], mask_position: int, candidates: Sequence[int]) -> str:
        hist = self._history(history)
        if not -len(hist) <= mask_position < len(hist):
            raise ValueError(f"mask_position {mask_position} outside a history of {len(hist)} items")
        titles = self.catalog.titles_of(hist)
        titles[mask_position] = MASK
        return TEMPORAL_ANALYSIS_TEMPLATE.format(
            soft_sentence=self._soft_sentence(),
            history=self._join(titles),
            candidates=self._join(self.catalog.titles_of(list(candidates), "candidate")),
            teacher=self.teacher_name,
            **self.words,
        )

    def pattern_simulating_text(self, history: Sequence[int], candidates: Sequence[int]) -> str:
        hist = self._history(history)
        return PATTERN_SIMULATING_TEMPLATE.format(
            soft_sentence=self._soft_sentence(),
            history=self._join(self.catalog.titles_of(hist)),
            candidates=self._join(self.catalog.titles_of(list(candidates), "candidate")),
            teacher=self.teacher_name,
            **self.words,
        )

    # ------------------------------------------------------------------ tokens
    def encode(self, text: str) -> list[int]:
        """Prompt token ids (chat-template user turn + generation prompt when available)."""
        tok = self.tokenizer
        if self.use_chat_template and getattr(tok, "chat_template", None):
            messages = [
                {"role": "system", "content": SYSTEM_TEMPLATE.format(**self.words)},
                {"role": "user", "content": text},
            ]
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if not isinstance(ids, list):  # BatchEncoding in transformers 5
                ids = ids["input_ids"]
            return list(ids)
        return tok(SYSTEM_TEMPLATE.format(**self.words) + "\n" + text + "\nAnswer: ", add_special_tokens=False)["input_ids"]

    def completion_ids(self, item_id: int) -> list[int]:
        """Target token ids: the item's title followed by EOS (what the ranking scores)."""
        ids = self._completion_cache.get(item_id)
        if ids is None:
            ids = self.tokenizer(self.catalog.title(item_id), add_special_tokens=False)["input_ids"]
            ids = ids + [self.tokenizer.eos_token_id]
            self._completion_cache[item_id] = ids
        return ids

    def example(self, prompt_text: str, target_item: int) -> dict:
        """A tokenized training example: ``input_ids`` and ``labels`` (-100 on the prompt)."""
        p = self.encode(prompt_text)
        c = self.completion_ids(target_item)
        return {"input_ids": p + c, "labels": [-100] * len(p) + c}


def sample_negatives(
    rng: random.Random, num_items: int, exclude: set[int], n: int, max_tries: int = 100_000
) -> list[int]:
    """``n`` distinct item ids in 1..num_items outside ``exclude`` (uniform)."""
    if num_items - len(exclude & set(range(1, num_items + 1))) < n:
        raise ValueError(f"Cannot draw {n} negatives: too few items outside the exclusion set")
    out: list[int] = []
    seen = set(exclude)
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > max_tries:
            raise RuntimeError("sample_negatives: too many rejections")
        i = rng.randint(1, num_items)
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


__all__ = [
    "DOMAIN_WORDS",
    "DELRecPrompter",
    "ItemCatalog",
    "PATTERN_SIMULATING_TEMPLATE",
    "RECOMMENDATION_TEMPLATE",
    "TEMPORAL_ANALYSIS_TEMPLATE",
    "sample_negatives",
]
