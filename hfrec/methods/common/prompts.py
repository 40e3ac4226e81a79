"""What every LLM method needs to turn items and users into tokens.

* :class:`ItemCatalog` - item id -> title and the other text fields the dataset has (MovieLens: genres, year;
  Amazon: brand, categories, description), rendered as one line per item and cut to a per-item token budget;
  opt-in ``title_style="article_first"`` turns MovieLens's "Usual Suspects, The (1995)" into "The Usual Suspects
  (1995)" (:func:`article_first_title`).
* :func:`encode_chat` - a system + user turn through the tokenizer's chat template (instruction-tuned backbones
  answer far better that way), plain text otherwise.
* :func:`completion_example` - prompt + completion token ids with ``labels`` -100 on the prompt.
* :func:`sample_negatives` - the one negative sampler of hfrec's LLM methods.
* :data:`DOMAIN_WORDS` - the nouns and verbs of each catalogue kind, so templates read naturally.

Bad inputs raise ``ValueError`` naming the problem: an item id outside the catalogue, an item without title.
"""

from __future__ import annotations

import random
import re
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

# columns of an items table that are not text to show (the title is rendered first, on its own)
_NON_TEXT_COLUMNS = {"item_id", "title", "original_id", "item_token"}


# articles MovieLens moves behind the title ("Usual Suspects, The"; "Misérables, Les"; "Uomo delle stelle, L'")
_TRAILING_ARTICLE = re.compile(
    r"(?P<body>.+), (?P<article>The|A|An|Les|La|Le|L'|Il|Lo|Gli|Das|Der|Die|Det|Den|El|Los|Las|O|Os|Un|Une)")
_PARENTHESISED_TAIL = re.compile(r"(?P<main>.*?)(?P<tail>(?: \([^()]*\))*)")
TITLE_STYLES = ("as_is", "article_first")


def article_first_title(title: str) -> str:
    """``"Usual Suspects, The (1995)"`` -> ``"The Usual Suspects (1995)"``: a trailing article moves to the front, in
    the title and in each parenthesised alternative title (``"Star Maker, The (Uomo delle stelle, L') (1995)"`` ->
    ``"The Star Maker (L'Uomo delle stelle) (1995)"``), as the official DELRec code writes ML-100K titles. A title
    without a trailing article comes back unchanged."""

    def front(part: str) -> str:
        m = _TRAILING_ARTICLE.fullmatch(part)
        if m is None:
            return part
        article = m["article"]
        return f"{article}{'' if article.endswith(chr(39)) else ' '}{m['body']}"

    m = _PARENTHESISED_TAIL.fullmatch(title)
    groups = re.findall(r" \(([^()]*)\)", m["tail"])
    return front(m["main"]) + "".join(f" ({front(g)})" for g in groups)


def check_domain(domain: str) -> str:
    if domain not in DOMAIN_WORDS:
        raise ValueError(f"Unknown domain {domain!r} for prompts; choose one of {sorted(DOMAIN_WORDS)}")
    return domain


@dataclass
class ItemCatalog:
    """Item id -> title (and optional text fields). Ids are ``1..num_items``; 0 is padding and never an item.

    Args:
        titles: index = item id; ``titles[0]`` is unused.
        fields: other text columns, each a list indexed like ``titles`` (e.g. ``{"genres": [...]}``).
    """

    titles: list[str | None]
    fields: dict[str, list[str | None]] = field(default_factory=dict)

    @classmethod
    def from_items(cls, items, title_style: str = "as_is") -> "ItemCatalog":
        """From ``ds.item_table`` (a ``datasets.Dataset`` or any mapping of columns with ``item_id`` and ``title``;
        every other string column becomes a text field), or a ``{item_id: title}`` dict; ``title_style`` as in
        :meth:`with_title_style`."""
        return cls._from_items(items).with_title_style(title_style)

    def with_title_style(self, title_style: str) -> "ItemCatalog":
        """``as_is``: this catalogue; ``article_first``: a copy with every title through :func:`article_first_title`."""
        if title_style not in TITLE_STYLES:
            raise ValueError(f"Unknown title_style {title_style!r}: use one of {list(TITLE_STYLES)}")
        if title_style == "as_is":
            return self
        titles = [article_first_title(t) if isinstance(t, str) else t for t in self.titles]
        return type(self)(titles, {name: list(values) for name, values in self.fields.items()})

    @classmethod
    def _from_items(cls, items) -> "ItemCatalog":
        if isinstance(items, Mapping) and "item_id" not in items:
            n = max((int(k) for k in items), default=0)
            titles: list[str | None] = [None] * (n + 1)
            for k, v in items.items():
                titles[int(k)] = v
            return cls(titles)
        columns = items.column_names if hasattr(items, "column_names") else list(items)
        ids = [int(i) for i in items["item_id"]]
        n = max(ids, default=0)

        def indexed(values) -> list:
            out: list = [None] * (n + 1)
            for i, v in zip(ids, values):
                out[i] = v
            return out

        fields = {}
        for name in columns:
            if name in _NON_TEXT_COLUMNS:
                continue
            values = list(items[name])
            if all(v is None or isinstance(v, str) for v in values):
                fields[name] = indexed(values)
        return cls(indexed(list(items["title"])), fields)

    @property
    def num_items(self) -> int:
        return len(self.titles) - 1

    def check_ids(self, ids: Sequence[int], what: str = "item") -> None:
        bad = [int(i) for i in ids if not (1 <= int(i) <= self.num_items)]
        if bad:
            raise ValueError(f"Unknown {what} id(s) {bad[:10]}: the catalogue has item ids 1..{self.num_items}")

    def title(self, item_id: int) -> str:
        return self.titles_of([item_id])[0]

    def titles_of(self, ids: Sequence[int], what: str = "item") -> list[str]:
        self.check_ids(ids, what)
        missing = [int(i) for i in ids if self.titles[int(i)] is None or not str(self.titles[int(i)]).strip()]
        if missing:
            raise ValueError(
                f"{what.capitalize()}(s) {missing[:10]} have no title: every {what} of an LLM prompt needs one "
                "(fill the `title` column of ds.item_table)"
            )
        return [str(self.titles[int(i)]).strip() for i in ids]

    def item_id(self, title: str) -> int:
        """The id of the item with this title (exact, then case-insensitive match); a ValueError names it if none."""
        index = self.__dict__.get("_by_title")
        if index is None:
            index = {}
            for i, t in enumerate(self.titles):
                if i and t:
                    index.setdefault(str(t).strip(), i)
                    index.setdefault(str(t).strip().lower(), i)
            self.__dict__["_by_title"] = index
        key = str(title).strip()
        found = index.get(key, index.get(key.lower()))
        if found is None:
            raise ValueError(f"No item titled {title!r} in the catalogue ({self.num_items} items); give item ids or "
                             "exact titles")
        return found

    def text(self, item_id: int, fields: Sequence[str] | None = None, tokenizer=None,
             max_tokens: int | None = None) -> str:
        """``"Title (genres: ...; brand: ...)"``: the title and the non-empty ``fields`` (default: every text field the
        title does not already show),
        cut to ``max_tokens`` tokens of ``tokenizer`` when both are given (the title is never cut by less than the
        whole budget: a long description goes first)."""
        title = self.title(item_id)
        names = list(self.fields) if fields is None else list(fields)
        unknown = [n for n in names if n not in self.fields]
        if unknown:
            raise ValueError(f"Unknown item text field(s) {unknown}: this catalogue has {sorted(self.fields)}")
        parts = []
        for name in names:
            value = str(self.fields[name][int(item_id)] or "").strip()
            # by default a field the title already shows as a whole word (MovieLens's year) would only spend budget
            if value and not (fields is None and re.search(rf"(?<!\w){re.escape(value)}(?!\w)", title)):
                parts.append(f"{name}: {value}")
        text = f"{title} ({'; '.join(parts)})" if parts else title
        if tokenizer is not None and max_tokens:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) > max_tokens:
                text = tokenizer.decode(ids[:max_tokens]).rstrip() + "..."
        return text


def check_placeholder_token(tokenizer, token: str, what: str, built_by: str) -> int:
    """The id of a soft-prompt placeholder ``token``; a ValueError when the tokenizer does not know it (a tokenizer
    other than the one the model's ``from_backbone`` returned)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise ValueError(f"The tokenizer does not know the {what} token {token!r}: use the tokenizer returned by "
                         f"{built_by}.from_backbone / saved with the model")
    return token_id


def encode_chat(tokenizer, system: str, user: str, use_chat_template: bool = True) -> list[int]:
    """Token ids of a system + user turn followed by the assistant's generation prompt (chat template when the
    tokenizer has one), else ``system\\nuser\\nAnswer: `` as plain text."""
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if not isinstance(ids, list):  # BatchEncoding in transformers 5
            ids = ids["input_ids"]
        return list(ids)
    return tokenizer(system + "\n" + user + "\nAnswer: ", add_special_tokens=False)["input_ids"]


def text_completion_ids(tokenizer, text: str, add_eos: bool = True) -> list[int]:
    """Token ids of a completion (an item title, "Yes", ...) followed by EOS: what training targets and ranking score."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids + [tokenizer.eos_token_id] if add_eos else ids


def completion_example(prompt_ids: Sequence[int], completion_ids: Sequence[int]) -> dict:
    """A tokenized SFT example: ``input_ids`` = prompt + completion, ``labels`` = -100 on the prompt."""
    return {"input_ids": list(prompt_ids) + list(completion_ids),
            "labels": [-100] * len(prompt_ids) + list(completion_ids)}


def sample_negatives(rng: random.Random, num_items: int, exclude: set[int], n: int,
                     max_tries: int = 100_000) -> list[int]:
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
    "ItemCatalog",
    "TITLE_STYLES",
    "article_first_title",
    "check_domain",
    "check_placeholder_token",
    "completion_example",
    "encode_chat",
    "sample_negatives",
    "text_completion_ids",
]
