"""Reading RecBole atomic files and turning interactions into the shared protocol (METHODS.md):
stable chronological sort, k-core filtering, leave-one-out, training prefixes, seeded candidates.

Pure functions over plain Python / NumPy, so every method and baseline sees exactly the same split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Field names seen in RecBole's atomic files, in order of preference.
_USER_FIELDS = ("user_id",)
_ITEM_FIELDS = ("item_id", "artist_id", "product_id", "app_id", "track_id", "business_id")
_TIME_FIELDS = ("timestamp", "time", "ts")
_TITLE_FIELDS = ("movie_title", "title", "app_name", "name", "artist_name", "track_name", "item_name")
_GENRE_FIELDS = ("class", "genre", "genres", "categories", "category", "tags", "sales_type")
_YEAR_FIELDS = ("release_year", "year")


class CorruptDataError(ValueError):
    """A raw data file does not parse; the message names the file, the line and the fix."""


def _read_atomic(path: Path) -> tuple[list[str], list[list[str]]]:
    """Read a RecBole atomic file: a header of `name:type` fields, then tab-separated rows."""
    fix = (f"Fix: delete {path} so hfrec fetches a fresh copy, or repair the file "
           "(RecBole atomic format: tab-separated, header `field:type`).")
    try:
        with open(path, encoding="utf-8") as handle:
            header = handle.readline().rstrip("\n").rstrip("\r").split("\t")
            names = [h.split(":", 1)[0] for h in header]
            if not header or not all(":" in h for h in header):
                raise CorruptDataError(f"{path}: line 1 is not an atomic-file header "
                                       f"(expected 'name:type' fields, got {header[:4]}). {fix}")
            rows = []
            for line_no, line in enumerate(handle, start=2):
                line = line.rstrip("\n").rstrip("\r")
                if not line:
                    continue
                parts = line.split("\t")
                if len(parts) != len(names):
                    raise CorruptDataError(f"{path}: line {line_no} has {len(parts)} fields, the header "
                                           f"has {len(names)} ({line[:80]!r}). {fix}")
                rows.append(parts)
    except UnicodeDecodeError as err:
        raise CorruptDataError(f"{path}: not UTF-8 text ({err}). {fix}") from err
    return names, rows


def _pick(names: list[str], candidates: tuple[str, ...]) -> int | None:
    for wanted in candidates:
        if wanted in names:
            return names.index(wanted)
    return None


@dataclass
class Interactions:
    users: list[str]
    items: list[str]
    timestamps: np.ndarray | None
    source: str


def read_interactions(path: Path) -> Interactions:
    names, rows = _read_atomic(path)
    if not rows:
        raise CorruptDataError(f"{path}: no interactions after the header. Fix: delete the file so hfrec "
                               "fetches a fresh copy, or point data_dir at a complete copy.")
    user_col, item_col = _pick(names, _USER_FIELDS), _pick(names, _ITEM_FIELDS)
    if user_col is None or item_col is None:
        raise CorruptDataError(f"{path}: needs a user field {_USER_FIELDS} and an item field "
                               f"{_ITEM_FIELDS}; its header has {names}.")
    time_col = _pick(names, _TIME_FIELDS)
    timestamps = None
    if time_col is None:
        logger.warning("%s has no timestamp field: keeping the file's order as the time order.", path)
    else:
        try:
            timestamps = np.array([float(r[time_col]) for r in rows], dtype=np.float64)
        except ValueError as err:
            raise CorruptDataError(f"{path}: a {names[time_col]!r} value is not a number ({err}). Fix: "
                                   "delete the file so hfrec fetches a fresh copy, or repair it.") from err
    return Interactions([r[user_col] for r in rows], [r[item_col] for r in rows], timestamps, str(path))


def read_item_text(path: Path | None) -> dict[str, dict[str, str]]:
    """Map original item id -> {"title", "genres"}; empty when the source has no item file."""
    if path is None or not path.is_file():
        return {}
    names, rows = _read_atomic(path)
    item_col = _pick(names, _ITEM_FIELDS)
    if item_col is None:
        raise CorruptDataError(f"{path}: no item id field {_ITEM_FIELDS} in header {names}.")
    title_col, genre_col, year_col = (_pick(names, f) for f in (_TITLE_FIELDS, _GENRE_FIELDS, _YEAR_FIELDS))
    table = {}
    for row in rows:
        title = row[title_col].strip() if title_col is not None else ""
        year = row[year_col].strip() if year_col is not None else ""
        if year.endswith(".0"):
            year = year[:-2]
        if title and year and f"({year})" not in title:
            title = f"{title} ({year})"  # "Toy Story (1995)": disambiguates remakes in prompts
        genres = row[genre_col].strip() if genre_col is not None else ""
        table[row[item_col]] = {"title": title, "genres": genres}
    return table


@dataclass
class ProcessedBenchmark:
    """The shared protocol's split of one benchmark; rows are plain dicts ready for Arrow."""

    name: str
    item_ids: list[str]  # original id of item i+1 (0 is padding)
    item_text: list[dict[str, str]]
    sequences: list[list[int]]  # per user, contiguous item ids, oldest first
    user_ids: list[str]
    stats: dict = field(default_factory=dict)


def k_core_filter(users: np.ndarray, items: np.ndarray, min_user: int, min_item: int) -> np.ndarray:
    """Boolean mask of kept interactions; repeats until every kept user/item meets its minimum."""
    keep = np.ones(len(users), dtype=bool)
    while True:
        user_counts = np.bincount(users[keep], minlength=users.max() + 1)
        item_counts = np.bincount(items[keep], minlength=items.max() + 1)
        new_keep = keep & (user_counts[users] >= min_user) & (item_counts[items] >= max(min_item, 1))
        if new_keep.sum() == keep.sum():
            return new_keep
        keep = new_keep


def _numeric_aware_key(token: str):
    return (0, int(token), "") if token.isdigit() else (1, 0, token)


def process_interactions(
    name: str,
    interactions: Interactions,
    item_text: dict[str, dict[str, str]],
    min_user_interactions: int = 5,
    min_item_interactions: int = 0,
    drop_repeats: bool = True,
) -> ProcessedBenchmark:
    if min_user_interactions < 3:
        raise ValueError(f"min_user_interactions={min_user_interactions} is too small: leave-one-out needs "
                         "at least 3 interactions per user (train, validation, test). Use 3 or more.")
    user_vocab = {u: i for i, u in enumerate(dict.fromkeys(interactions.users))}
    item_vocab = {t: i for i, t in enumerate(dict.fromkeys(interactions.items))}
    users = np.fromiter((user_vocab[u] for u in interactions.users), dtype=np.int64, count=len(interactions.users))
    items = np.fromiter((item_vocab[t] for t in interactions.items), dtype=np.int64, count=len(interactions.items))
    times = interactions.timestamps if interactions.timestamps is not None else np.zeros(len(users))
    stats = {"raw_users": len(user_vocab), "raw_items": len(item_vocab), "raw_interactions": int(len(users))}

    # Stable sort by (user, time): ties keep the file's order, so the split is reproducible.
    order = np.lexsort((np.arange(len(users)), times, users))
    users, items = users[order], items[order]

    repeats = 0
    if drop_repeats:  # keep each (user, item) pair's first interaction; counted in the stats
        pair = users * (items.max() + 1) + items
        _, first = np.unique(pair, return_index=True)
        keep = np.zeros(len(pair), dtype=bool)
        keep[first] = True
        repeats = int(len(pair) - keep.sum())
        users, items = users[keep], items[keep]

    keep = k_core_filter(users, items, min_user_interactions, min_item_interactions)
    users, items = users[keep], items[keep]
    if len(users) == 0:
        raise ValueError(
            f"No users left in {name!r} after filtering (min_user_interactions={min_user_interactions}, "
            f"min_item_interactions={min_item_interactions}; the raw data has {stats['raw_users']} users and "
            f"{stats['raw_interactions']} interactions). Fix: lower the minimums.")

    # Contiguous ids 1..N in the original ids' natural order (numeric ids sort as numbers).
    inverse_items = {i: t for t, i in item_vocab.items()}
    kept_item_tokens = sorted({inverse_items[i] for i in np.unique(items)}, key=_numeric_aware_key)
    new_id = {item_vocab[t]: k + 1 for k, t in enumerate(kept_item_tokens)}
    inverse_users = {i: u for u, i in user_vocab.items()}

    sequences, user_ids = [], []
    boundaries = np.flatnonzero(np.diff(users)) + 1
    for chunk_users, chunk_items in zip(np.split(users, boundaries), np.split(items, boundaries)):
        user_ids.append(inverse_users[int(chunk_users[0])])
        sequences.append([new_id[int(i)] for i in chunk_items])

    missing_titles = sum(1 for t in kept_item_tokens if not item_text.get(t, {}).get("title"))
    texts = [item_text.get(t) or {"title": "", "genres": ""} for t in kept_item_tokens]
    lengths = np.array([len(s) for s in sequences])
    stats.update({
        "num_users": len(sequences), "num_items": len(kept_item_tokens), "num_interactions": int(lengths.sum()),
        "repeat_interactions_dropped": repeats,
        "interactions_dropped_by_filter": int(stats["raw_interactions"] - repeats - lengths.sum()),
        "items_without_title": missing_titles,
        "avg_sequence_length": round(float(lengths.mean()), 3),
        "max_sequence_length": int(lengths.max()),
        "density": round(float(lengths.sum()) / (len(sequences) * len(kept_item_tokens)), 6),
    })
    return ProcessedBenchmark(name, kept_item_tokens, texts, sequences, user_ids, stats)


def sample_candidates(sequence: list[int], target: int, num_items: int, num_candidates: int,
                      rng: np.random.Generator) -> list[int]:
    """`num_candidates` distinct items: the target at a random position + negatives the user never saw."""
    seen = set(sequence)
    if num_items - len(seen) < num_candidates - 1:
        raise ValueError(f"only {num_items - len(seen)} unseen items for num_candidates={num_candidates}")
    negatives: list[int] = []
    chosen: set[int] = set()
    while len(negatives) < num_candidates - 1:
        for item in rng.integers(1, num_items + 1, size=2 * num_candidates).tolist():
            if item not in seen and item not in chosen:
                chosen.add(item)
                negatives.append(item)
                if len(negatives) == num_candidates - 1:
                    break
    position = int(rng.integers(0, num_candidates))
    return negatives[:position] + [target] + negatives[position:]


_SPLIT_SEED = {"validation": 1, "test": 2}


def check_protocol(bench: ProcessedBenchmark, num_candidates: int, max_history: int) -> None:
    """Fail before any row is written when a parameter cannot work for this data."""
    if max_history < 1:
        raise ValueError(f"max_history={max_history} must be at least 1.")
    if num_candidates < 2:
        raise ValueError(f"num_candidates={num_candidates} must be at least 2 (the target and one negative).")
    num_items = len(bench.item_ids)
    most_seen = max(len(set(seq)) for seq in bench.sequences)
    if num_items - most_seen < num_candidates - 1:
        raise ValueError(f"A user has interacted with {most_seen} of {num_items} items, leaving "
                         f"{num_items - most_seen} negatives for num_candidates={num_candidates}. Fix: lower "
                         "num_candidates or filter users so nobody sees nearly the whole catalogue.")


def split_rows(bench: ProcessedBenchmark, split: str, num_candidates: int, seed: int, max_history: int):
    """Yield the rows of one split (leave-one-out); see docs/CONTRACTS.md for the columns."""
    check_protocol(bench, num_candidates, max_history)
    num_items = len(bench.item_ids)
    for user, seq in enumerate(bench.sequences):
        if split == "train":
            for t in range(1, len(seq) - 2):
                yield {"user_id": user, "history": seq[max(0, t - max_history):t], "target": seq[t]}
            continue
        cut = len(seq) - (2 if split == "validation" else 1)
        # One generator per (seed, user, split): adding users or splits never changes other lists.
        rng = np.random.default_rng([seed, user, _SPLIT_SEED[split]])
        yield {
            "user_id": user,
            "history": seq[max(0, cut - max_history):cut],
            "target": seq[cut],
            "candidates": sample_candidates(seq, seq[cut], num_items, num_candidates, rng),
            "full_history": seq[:cut],
        }


__all__ = [
    "CorruptDataError", "Interactions", "check_protocol", "ProcessedBenchmark", "k_core_filter", "process_interactions",
    "read_interactions", "read_item_text", "sample_candidates", "split_rows",
]
