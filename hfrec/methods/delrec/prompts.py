"""DELRec's prompt templates: temporal analysis, pattern simulating, recommendation.

Templates have domain variants (movie, game, product, music, and a generic item): the nouns and verbs change,
the structure does not.
A soft prompt appears as ``num_virtual_tokens`` copies of a placeholder token that the model overwrites with the
learned vectors (see ``hfrec.models.delrec``); with ``num_virtual_tokens=0`` the soft-prompt sentence is left out
(the zero-shot LLM baseline sees the same prompt otherwise). ``teacher_hints=False`` leaves the teacher's top-k out
of the recommendation prompt (the official stage-2 prompt).

Every prompt is a user turn rendered with the tokenizer's chat template when it has one (instruction-tuned
backbones answer far better that way) and the target is the item title followed by EOS. Bad inputs raise
``ValueError`` naming the problem: an empty history, an item id outside the catalogue, a candidate without title.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..common.prompts import (DOMAIN_WORDS, ItemCatalog, check_domain, check_placeholder_token, completion_example,
                              encode_chat, text_completion_ids)

SYSTEM_TEMPLATE = "You are a {who} recommender. Answer with one title from the candidates, and nothing else."

SOFT_PROMPT_SENTENCE = "What {teacher} has learned about sequential patterns: {soft_prompt}\n"

RECOMMENDATION_TEMPLATE = (
    "{soft_sentence}"
    "The user has {past} these {items}, oldest first: {history}.\n"
    "{hint_sentence}"
    "{candidate_sentence}"
    "Which {item} will the user {present} next?"
)

# the teacher's top-k in the stage-2 prompt (hfrec's default); the official stage-2 prompt (LSR) has no teacher
# predictions, which `teacher_hints=False` gives
HINT_SENTENCE = "The sequential recommender {teacher} suggests: {topk}.\n"

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
        teacher_hints: show the teacher's top-k in the recommendation prompt (off: the official stage-2 prompt,
            which has no teacher predictions; the TA / RPS prompts of stage 1 are the same either way).
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
    teacher_hints: bool = True
    _completion_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        check_domain(self.domain)
        if self.num_virtual_tokens > 0:
            check_placeholder_token(self.tokenizer, self.soft_prompt_token, "soft-prompt", "DELRecForCausalLM")

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
            hint_sentence=HINT_SENTENCE.format(
                teacher=self.teacher_name,
                topk=self._join(self.catalog.titles_of(list(teacher_topk), "recommended item"))
                if len(teacher_topk) else "nothing") if self.teacher_hints else "",
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
        return encode_chat(self.tokenizer, SYSTEM_TEMPLATE.format(**self.words), text, self.use_chat_template)

    def completion_ids(self, item_id: int) -> list[int]:
        """Target token ids: the item's title followed by EOS (what the ranking scores)."""
        ids = self._completion_cache.get(item_id)
        if ids is None:
            ids = self._completion_cache[item_id] = text_completion_ids(self.tokenizer, self.catalog.title(item_id))
        return ids

    def example(self, prompt_text: str, target_item: int) -> dict:
        """A tokenized training example: ``input_ids`` and ``labels`` (-100 on the prompt)."""
        return completion_example(self.encode(prompt_text), self.completion_ids(target_item))


__all__ = [
    "DELRecPrompter",
    "HINT_SENTENCE",
    "PATTERN_SIMULATING_TEMPLATE",
    "RECOMMENDATION_TEMPLATE",
    "TEMPORAL_ANALYSIS_TEMPLATE",
]
