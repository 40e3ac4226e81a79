"""Reading RecBole atomic files and turning interactions into the shared protocol (docs/METHODS.md):
stable chronological sort, k-core filtering, leave-one-out, training prefixes, seeded candidates.

Pure functions over plain Python / NumPy, so every method and baseline sees exactly the same split.
"""

from __future__ import annotations

import codecs
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


TIME_ORDERS = ("timestamp", "file")  # what defines "before": the timestamp column, or the file's row order

# RecBole field types whose values are text a prompt can use; float fields count only when they are a year.
_TEXT_TYPES = ("token", "token_seq")
# Item-table columns filled from the header's chosen fields; other text fields keep their own names.
BASE_ITEM_COLUMNS = ("item_id", "title", "genres", "original_id")

# Magic numbers of archives people hand over instead of the extracted files.
_ARCHIVE_MAGIC = {b"PK\x03\x04": "a zip archive", b"\x1f\x8b": "a gzip file", b"BZh": "a bzip2 file",
                  b"\xfd7zXZ": "an xz file", b"7z\xbc\xaf": "a 7z archive"}


class CorruptDataError(ValueError):
    """A raw data file does not parse; the message names the file, the line and the fix."""


def _fix_hint(path: Path) -> str:
    return (f"Fix: delete {path} so hfrec fetches a fresh copy, or repair the file "
            "(RecBole atomic format: UTF-8 text, tab-separated, header `field:type`).")


def _check_text_file(path: Path) -> None:
    """Fail early, with a useful name for it, on an empty or binary file."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if not head.removeprefix(codecs.BOM_UTF8).strip():
        raise CorruptDataError(f"{path}: the file is empty (no header line). {_fix_hint(path)}")
    for magic, kind in _ARCHIVE_MAGIC.items():
        if head.startswith(magic):
            raise CorruptDataError(f"{path}: this is {kind}, not a text file. Fix: extract the archive and point "
                                   f"hfrec at the extracted `.inter` / `.item` files, or delete {path}.")
    if b"\x00" in head:  # UTF-16 exports and binary blobs both hold NUL bytes; UTF-8 text never does
        raise CorruptDataError(f"{path}: holds NUL bytes, so it is binary or UTF-16, not UTF-8 text. Fix: re-save "
                               f"it as UTF-8, or delete it so hfrec fetches a fresh copy.")


def _parse_header(path: Path, line: str) -> list[str]:
    """Field names of an atomic-file header line; whitespace around names and types is dropped."""
    header = line.rstrip("\r\n").split("\t")
    if not all(":" in h for h in header):
        raise CorruptDataError(f"{path}: line 1 is not an atomic-file header "
                               f"(expected 'name:type' fields, got {header[:4]}). {_fix_hint(path)}")
    fields = [tuple(part.strip() for part in h.split(":", 1)) for h in header]
    names = [name for name, _ in fields]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated or not all(names):
        problem = f"repeats the field(s) {duplicated}" if duplicated else "has a field with no name"
        raise CorruptDataError(f"{path}: the header {problem} ({names}), so a column cannot be told apart. "
                               f"Fix: give every column its own name, or drop the extra one. {_fix_hint(path)}")
    return [f"{name}:{kind}" for name, kind in fields]


def _open_text(path: Path):
    # utf-8-sig drops a byte-order mark that Excel / Windows exports put before the first header name.
    return open(path, encoding="utf-8-sig")


def read_header(path: Path) -> list[str]:
    """The `name:type` fields of an atomic file's header, cleaned (no BOM, no surrounding whitespace)."""
    path = Path(path)
    _check_text_file(path)
    try:
        with _open_text(path) as handle:
            return _parse_header(path, handle.readline())
    except UnicodeDecodeError as err:
        raise CorruptDataError(f"{path}: not UTF-8 text ({err}). {_fix_hint(path)}") from err


def _read_atomic(path: Path, with_types: bool = False):
    """Read a RecBole atomic file: a header of `name:type` fields, then tab-separated rows.

    Accepts what real exports look like: a UTF-8 byte-order mark, CRLF line ends, columns in any order,
    extra columns, blanks around header names. Returns (names, rows), or (names, types, rows).
    """
    path = Path(path)
    _check_text_file(path)
    try:
        with _open_text(path) as handle:
            fields = _parse_header(path, handle.readline())
            names = [f.split(":", 1)[0] for f in fields]
            rows = []
            for line_no, line in enumerate(handle, start=2):
                line = line.rstrip("\n").rstrip("\r")
                if not line:
                    continue
                parts = line.split("\t")
                if len(parts) != len(names):
                    raise CorruptDataError(f"{path}: line {line_no} has {len(parts)} fields, the header "
                                           f"has {len(names)} ({line[:80]!r}). {_fix_hint(path)}")
                rows.append(parts)
    except UnicodeDecodeError as err:
        raise CorruptDataError(f"{path}: not UTF-8 text ({err}). {_fix_hint(path)}") from err
    if with_types:
        return names, [f.split(":", 1)[1] for f in fields], rows
    return names, rows


def _pick(names: list[str], candidates: tuple[str, ...]) -> int | None:
    for wanted in candidates:
        if wanted in names:
            return names.index(wanted)
    return None


def check_time_order(time_order: str) -> str:
    if time_order not in TIME_ORDERS:
        raise ValueError(f"time_order={time_order!r} is not one of {TIME_ORDERS}: use 'timestamp' to order each "
                         "user's interactions by the timestamp column, or 'file' to keep the file's row order.")
    return time_order


@dataclass
class Interactions:
    users: list[str]
    items: list[str]
    timestamps: np.ndarray | None
    source: str


def read_interactions(path: Path, time_order: str = "timestamp") -> Interactions:
    """Users, items and timestamps of an `.inter` file.

    `time_order="timestamp"` (the default) needs a timestamp field and fails without one, so a renamed or
    mangled column never silently turns into a different split; `"file"` keeps the file's row order.
    """
    check_time_order(time_order)
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
    if time_order == "file":
        logger.info("%s: time_order='file', so each user's interactions keep the file's row order%s.", path,
                    f" (the {names[time_col]!r} column is not used)" if time_col is not None else "")
    elif time_col is None:
        raise CorruptDataError(
            f"{path}: no timestamp field {_TIME_FIELDS} in the header {names}, so interactions cannot be put in "
            "time order. Fix: name the timestamp column `timestamp:float`, or, if the rows are already in time "
            "order, ask for that explicitly with time_order='file'.")
    else:
        try:
            timestamps = np.array([float(r[time_col]) for r in rows], dtype=np.float64)
        except ValueError as err:
            raise CorruptDataError(f"{path}: a {names[time_col]!r} value is not a number ({err}). Fix: "
                                   "delete the file so hfrec fetches a fresh copy, or repair it.") from err
    return Interactions([r[user_col] for r in rows], [r[item_col] for r in rows], timestamps, str(path))


def _item_layout(names: list[str], types: list[str], path: Path) -> dict[str, int | None]:
    """Which source column fills each item-table column: title, genres, year, then every other text field.

    Text fields are `token` / `token_seq` ones and float year fields; the item id and non-year floats
    (prices, ranks) are left out. A field whose name clashes with a table column gets a `_text` suffix.
    """
    item_col = _pick(names, _ITEM_FIELDS)
    if item_col is None:
        raise CorruptDataError(f"{path}: no item id field {_ITEM_FIELDS} in header {names}.")
    title_col, genre_col, year_col = (_pick(names, f) for f in (_TITLE_FIELDS, _GENRE_FIELDS, _YEAR_FIELDS))
    layout: dict[str, int | None] = {"title": title_col, "genres": genre_col}
    if year_col is not None:
        layout["year"] = year_col
    used = {item_col, title_col, genre_col, year_col}
    for index, (name, kind) in enumerate(zip(names, types)):
        if index in used or not (kind in _TEXT_TYPES or (kind == "float" and name in _YEAR_FIELDS)):
            continue
        column = name
        while column in layout or column in BASE_ITEM_COLUMNS:
            column = f"{column}_text"
        layout[column] = index
    return layout


def item_text_columns(path: Path | None) -> list[str]:
    """Columns `read_item_text` gives every item besides title and genres (e.g. `year`, `brand`).

    Reads only the header, so the items table's schema (and its cache key) is known before processing.
    """
    if path is None or not Path(path).is_file():
        return []
    fields = read_header(Path(path))
    names, types = [f.split(":", 1)[0] for f in fields], [f.split(":", 1)[1] for f in fields]
    return [c for c in _item_layout(names, types, Path(path)) if c not in ("title", "genres")]


def _year_text(value: str) -> str:
    value = value.strip()
    return value[:-2] if value.endswith(".0") else value  # float years arrive as "1995.0"


def read_item_text(path: Path | None) -> dict[str, dict[str, str]]:
    """Map original item id -> {"title", "genres", ...every other text field}; empty without an item file.

    MovieLens gives title ("Toy Story (1995)"), genres and year; Amazon adds brand, categories, ... as
    they come in the file, so LLM prompts can use whatever text the dataset has.
    """
    if path is None or not Path(path).is_file():
        return {}
    path = Path(path)
    names, types, rows = _read_atomic(path, with_types=True)
    layout = _item_layout(names, types, path)
    item_col = _pick(names, _ITEM_FIELDS)
    table = {}
    for row in rows:
        text = {column: (row[index].strip() if index is not None else "") for column, index in layout.items()}
        if "year" in text:
            text["year"] = _year_text(text["year"])
        year = text.get("year", "")
        if text["title"] and year and f"({year})" not in text["title"]:
            text["title"] = f"{text['title']} ({year})"  # "Toy Story (1995)": disambiguates remakes in prompts
        table[row[item_col]] = text
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
    columns = list(dict.fromkeys(["title", "genres"] + [c for text in item_text.values() for c in text]))
    empty = dict.fromkeys(columns, "")
    texts = [{**empty, **item_text.get(t, {})} for t in kept_item_tokens]  # items missing from .item: blanks
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
    "BASE_ITEM_COLUMNS", "TIME_ORDERS", "CorruptDataError", "Interactions", "check_protocol", "check_time_order",
    "ProcessedBenchmark", "item_text_columns", "k_core_filter", "process_interactions", "read_header",
    "read_interactions", "read_item_text", "sample_candidates", "split_rows",
]
