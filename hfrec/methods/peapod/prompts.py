"""PeaPOD's prompts for its three tasks, each opening with the user's personalized soft prompt.

The placeholder block (``num_virtual_tokens`` placeholder tokens: the personalized prompt, then the task prompt) sits
where P5 writes "user_23": the soft prompt *is* the user. What follows differs per task:

* sequential recommendation: the last ``max_history`` items, "which {item} next?" -> the next item's identifier;
* top-n recommendation: no history (P5's direct recommendation): "which {item} would this user like?" -> an item the
  user interacted with; ranked over 1 positive + 99 negatives;
* explanation generation: "why would this user like {title}?" -> the user's review of it.

Item identifiers are titles by default, or hfrec's numeric item ids ("item_id" option, P5 style), which generation
decodes under a prefix-trie constraint (``hfrec.methods.peapod.generation``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..common.prompts import (DOMAIN_WORDS, ItemCatalog, check_domain, check_placeholder_token, encode_chat,
                              text_completion_ids)

TASK_SEQUENTIAL, TASK_TOPN, TASK_EXPLANATION = 0, 1, 2  # the model's task-prompt rows (TASKS order)

SYSTEM = ("You are a {who} recommender. The user is described by the personalized tokens at the start of the "
          "request. Answer with one {item} name only.")
SYSTEM_EXPLAIN = ("You are a {who} recommender. The user is described by the personalized tokens at the start of "
                  "the request. Answer in one or two sentences, in the user's own words.")


@dataclass
class PeaPODPrompter:
    """Prompt and target token ids of PeaPOD's tasks.

    Args:
        tokenizer: the backbone tokenizer returned by ``PersonalizedPromptLM.from_backbone`` (knows the placeholder).
        catalog: item titles.
        num_virtual_tokens: placeholder tokens per prompt (the model config's; 0 = no soft prompt, the ablation).
        prompt_token: the placeholder token.
        domain: wording (movie, game, product, music, item).
        max_history: items of the sequential task's history.
        item_identifier: "title" (default) or "id" (hfrec's numeric item id, P5 style).
        explanation_tokens: budget of an explanation target (longer reviews are cut).
        use_chat_template: render as a chat turn when the tokenizer has a template (decoder-only backbones).
    """

    tokenizer: object
    catalog: ItemCatalog
    num_virtual_tokens: int = 6
    prompt_token: str = "<|user_prompt|>"
    domain: str = "movie"
    max_history: int = 10
    item_identifier: str = "title"
    explanation_tokens: int = 48
    use_chat_template: bool = True
    _completions: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        check_domain(self.domain)
        if self.item_identifier not in ("title", "id"):
            raise ValueError(f"item_identifier must be 'title' or 'id', got {self.item_identifier!r}")
        if self.num_virtual_tokens > 0:
            check_placeholder_token(self.tokenizer, self.prompt_token, "placeholder", "PersonalizedPromptLM")

    @property
    def words(self) -> dict[str, str]:
        return DOMAIN_WORDS[self.domain]

    def item_text(self, item_id: int) -> str:
        """What identifies an item in prompts and targets: its title, or "item 123"."""
        if self.item_identifier == "id":
            self.catalog.check_ids([int(item_id)])
            return f"item {int(item_id)}"
        return self.catalog.title(int(item_id))

    def _encode(self, system: str, request: str) -> list[int]:
        block = self.prompt_token * self.num_virtual_tokens
        user = f"{block} {request}" if block else request
        return encode_chat(self.tokenizer, system.format(**self.words), user, self.use_chat_template)

    def sequential_prompt(self, history: Sequence[int]) -> list[int]:
        history = [int(i) for i in history if int(i) != 0]
        if not history:
            raise ValueError("Empty history: the sequential task needs at least one past item")
        shown = "; ".join(self.item_text(i) for i in history[-self.max_history:])
        w = self.words
        return self._encode(SYSTEM, f"This user {w['past']} these {w['items']} in order: {shown}. Which {w['item']} "
                                    f"will the user {w['present']} next?")

    def topn_prompt(self) -> list[int]:
        w = self.words
        return self._encode(SYSTEM, f"Which {w['item']} would this user like to {w['present']}?")

    def explanation_prompt(self, item_id: int) -> list[int]:
        w = self.words
        return self._encode(SYSTEM_EXPLAIN, f"Explain why this user would like the {w['item']} "
                                            f"\"{self.catalog.title(int(item_id))}\".")

    def prompt(self, task: int, history: Sequence[int] = (), item_id: int | None = None) -> list[int]:
        if task == TASK_SEQUENTIAL:
            return self.sequential_prompt(history)
        if task == TASK_TOPN:
            return self.topn_prompt()
        if task == TASK_EXPLANATION:
            if item_id is None:
                raise ValueError("The explanation task needs the item to explain")
            return self.explanation_prompt(item_id)
        raise ValueError(f"Unknown task {task!r}: 0 sequential, 1 top-n, 2 explanation")

    def item_completion(self, item_id: int) -> list[int]:
        """The item's identifier + EOS (cached: every task and ranking reuse it)."""
        item_id = int(item_id)
        if item_id not in self._completions:
            self._completions[item_id] = text_completion_ids(self.tokenizer, self.item_text(item_id))
        return self._completions[item_id]

    def explanation_completion(self, text: str) -> list[int]:
        text = " ".join(str(text).split())
        if not text:
            raise ValueError("Empty review text: an explanation target needs words")
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: self.explanation_tokens]
        return ids + [self.tokenizer.eos_token_id]


__all__ = ["PeaPODPrompter", "TASK_EXPLANATION", "TASK_SEQUENTIAL", "TASK_TOPN"]
