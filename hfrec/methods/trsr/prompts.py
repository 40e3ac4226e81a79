"""LLM-TRSR's prompts: three summary prompts (a block, a merge of block summaries, an update of a running summary)
and the yes/no recommendation prompt, in the spirit of the released code's instructions, with the domain's words.

The recommendation prompt is cut in three token runs so training and ranking see the same ids:

    prompt_ids (system, summary, recent items, the question)  +  candidate_ids  +  suffix_ids  +  answer

``prompt_ids`` is shared by every candidate of a user (encoded once per user by
``hfrec.methods.common.scoring.candidate_answer_probabilities``); ``candidate_ids`` is the candidate's text tokenized
alone (as the scorer tokenizes it); ``suffix_ids`` closes the user turn and opens the assistant's (chat template) or
is ``"\\nAnswer: "`` (plain text). The answer is the first token of "Yes" or "No": the score is the softmax over those
two logits, so a multi-token answer is represented by its first token, in training as in scoring.

Bump :data:`PROMPT_VERSION` whenever a summary template changes: it is part of the summary cache's key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..common.prompts import DOMAIN_WORDS, ItemCatalog, check_domain, completion_example, encode_chat
from ..common.scoring import answer_token_ids

PROMPT_VERSION = "trsr-summary-v1"

SUMMARY_SYSTEM = "You summarize what a user likes, from the {items} they have {past}. Be concise and specific."

BLOCK_TEMPLATE = (
    "Here are {items} a user has {past}, oldest first, with their details:\n{block}\n"
    "Write a concise summary of the user's {who} preferences."
)

MERGE_TEMPLATE = (
    "Here are summaries of a user's {who} preferences over consecutive periods, oldest first:\n{summaries}\n"
    "Write one concise summary of the user's overall {who} preferences, in the same style."
)

UPDATE_TEMPLATE = (
    "Here is a summary of a user's {who} preferences:\n{summary}\n"
    "Since then the user has {past} these {items}, oldest first:\n{block}\n"
    "Taking into account whether the user's tastes have changed, write an updated concise summary of the user's "
    "{who} preferences. It must describe the user as a whole, in the same style as the previous summary."
)

RECOMMEND_SYSTEM = (
    "You are a {who} recommender. The preference summary captures the user's long-term interests, the recent "
    "{items} the short-term ones: consider both. Answer Yes or No."
)

SUMMARY_SECTION = "Preference summary:\n{summary}\n"

RECOMMEND_TEMPLATE = (
    "{summary_section}"
    "The {items} the user {past} most recently, oldest first:\n{recent}\n"
    "Will the user {present} this {item} next?\n"
)

ANSWERS = ("Yes", "No")

_SLOT = "[[TRSR candidate slot]]"  # where the candidate goes in the rendered chat; split off before tokenizing


@dataclass
class ItemTexts:
    """What every LLM-TRSR prompt shares: the tokenizer, the items' text within a token budget, the domain's words."""

    tokenizer: object
    catalog: ItemCatalog
    domain: str = "movie"
    item_text_tokens: int = 32
    use_chat_template: bool = True
    _texts: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        check_domain(self.domain)
        self.words = DOMAIN_WORDS[self.domain]

    def item_text(self, item_id: int) -> str:
        """The item's title and fields within the token budget (cached: items repeat across users)."""
        text = self._texts.get(int(item_id))
        if text is None:
            text = self._texts[int(item_id)] = self.catalog.text(int(item_id), tokenizer=self.tokenizer,
                                                                 max_tokens=self.item_text_tokens)
        return text

    def items_text(self, items: Sequence[int]) -> str:
        if len(items) == 0:
            raise ValueError("No items to show: a prompt needs at least one item")
        self.catalog.titles_of(list(items))  # one error naming every item without a title
        return "\n".join(f"- {self.item_text(i)}" for i in items)


@dataclass
class SummaryPrompter(ItemTexts):
    """The three summary prompts, as chat turns (``encode_chat``)."""

    def _chat(self, user: str) -> list[int]:
        return encode_chat(self.tokenizer, SUMMARY_SYSTEM.format(**self.words), user, self.use_chat_template)

    def block_prompt(self, block: Sequence[int]) -> list[int]:
        """Summarise one block (hierarchical mode; also the recurrent mode's first step, so both share it)."""
        return self._chat(BLOCK_TEMPLATE.format(block=self.items_text(block), **self.words))

    def merge_prompt(self, summaries: Sequence[str]) -> list[int]:
        """Merge block summaries, oldest first, into one (hierarchical mode)."""
        periods = "\n".join(f"Period {k}: {s.strip()}" for k, s in enumerate(summaries, 1))
        return self._chat(MERGE_TEMPLATE.format(summaries=periods, **self.words))

    def update_prompt(self, summary: str, block: Sequence[int]) -> list[int]:
        """Update a running summary with the next block (recurrent mode)."""
        return self._chat(UPDATE_TEMPLATE.format(summary=summary.strip(), block=self.items_text(block),
                                                 **self.words))


@dataclass
class TRSRPrompter(ItemTexts):
    """The yes/no recommendation prompt, cut as the module docstring shows.

    Args (besides :class:`ItemTexts`'):
        recent_items: items shown after the summary (the released code: 5).
        answers: the positive and negative answers; their first tokens must differ.
    """

    recent_items: int = 5
    answers: tuple[str, str] = ANSWERS

    def __post_init__(self):
        super().__post_init__()
        if self.recent_items < 1:
            raise ValueError(f"recent_items must be >= 1 (the prompt shows the user's latest items), got "
                             f"{self.recent_items}")
        if len(self.answers) != 2:
            raise ValueError(f"answers must be (positive, negative), e.g. ('Yes', 'No'); got {self.answers!r}")
        self.answer_ids = answer_token_ids(self.tokenizer, self.answers)  # refuses answers sharing a first token
        self.suffix_ids = self._ids(self._render(_SLOT)[1])

    def _render(self, user: str) -> tuple[str, str]:
        """The chat (or plain) rendering of ``user``, split at the candidate slot."""
        system = RECOMMEND_SYSTEM.format(**self.words)
        if self.use_chat_template and getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                [{"role": "system", "content": system}, {"role": "user", "content": user}],
                add_generation_prompt=True, tokenize=False)
        else:  # the plain layout of encode_chat
            text = system + "\n" + user + "\nAnswer: "
        head, slot, tail = text.partition(_SLOT)
        if not slot:
            raise ValueError("The chat template dropped the candidate slot from the user turn: pass "
                             "use_chat_template=False")
        return head, tail

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, summary: str | None, history: Sequence[int]) -> list[int]:
        """The per-user part: system, the summary (left out when None: the no-summary ablation), the last
        ``recent_items`` items of ``history`` and the question; the candidate's text follows it."""
        history = [int(i) for i in history if int(i) != 0]
        if not history:
            raise ValueError("Empty history: an LLM-TRSR prompt needs at least one past item")
        section = "" if summary is None else SUMMARY_SECTION.format(summary=summary.strip() or "(none)")
        user = RECOMMEND_TEMPLATE.format(summary_section=section,
                                         recent=self.items_text(history[-self.recent_items:]), **self.words)
        return self._ids(self._render(user + _SLOT)[0])

    def candidate_ids(self, item_id: int) -> list[int]:
        """The candidate's text tokenized alone, as the scorer tokenizes it."""
        return self._ids(self.item_text(item_id))

    def examples(self, summary: str | None, history: Sequence[int], candidates: Sequence[int],
                 positive: Sequence[bool]) -> list[dict]:
        """Training examples of one user prompt: ``prompt_ids + candidate_ids + suffix_ids + [answer]`` per
        candidate, the label on the answer's first token only (what the score reads)."""
        prompt = self.prompt_ids(summary, history)
        return [completion_example(prompt + self.candidate_ids(c) + self.suffix_ids, [self.answer_ids[0 if p else 1]])
                for c, p in zip(candidates, positive, strict=True)]

    def listwise_example(self, summary: str | None, history: Sequence[int], candidates: Sequence[int]) -> dict:
        """One listwise training example: ``prompt_ids``, ``candidate_ids`` (each candidate's text + the suffix, the
        segments the ranking packs after the prompt) and ``positive``, the index of the target (0: the first)."""
        if len(candidates) < 2:
            raise ValueError(f"A listwise example needs the target and at least one negative, got {len(candidates)} "
                             "candidate(s)")
        return {"prompt_ids": self.prompt_ids(summary, history),
                "candidate_ids": [self.candidate_ids(c) + self.suffix_ids for c in candidates], "positive": 0}


__all__ = ["ANSWERS", "BLOCK_TEMPLATE", "ItemTexts", "MERGE_TEMPLATE", "PROMPT_VERSION", "RECOMMEND_TEMPLATE",
           "SummaryPrompter", "TRSRPrompter", "UPDATE_TEMPLATE"]
