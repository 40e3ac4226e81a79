"""The shared protocol on real ML-100K (from the recbole wheel, fetched with pip) and on tiny folders."""

import json
from pathlib import Path

import numpy as np
import pytest

from hfrec.data import (
    CorruptDataError,
    DataSourceError,
    hfrec_cache_dir,
    load_benchmark,
    training_sequences,
)
from hfrec.data import builder as builder_module


@pytest.fixture(scope="module")
def ml100k():
    return load_benchmark("ml-100k")


def _raw_sequences_by_time():
    """Independent re-derivation from the raw file: Python's sorted() is stable."""
    path = hfrec_cache_dir() / "raw" / "ml-100k" / "ml-100k.inter"
    lines = path.read_text().splitlines()[1:]
    by_user: dict[str, list[tuple[float, int, str]]] = {}
    for order, line in enumerate(lines):
        user, item, _, ts = line.split("\t")
        by_user.setdefault(user, []).append((float(ts), order, item))
    return {u: [item for _, _, item in sorted(rows)] for u, rows in by_user.items()}


def test_ml100k_stats(ml100k):
    assert ml100k.stats["raw_users"] == 943
    assert ml100k.stats["raw_items"] == 1682
    assert ml100k.stats["raw_interactions"] == 100000
    assert (ml100k.num_users, ml100k.num_items) == (943, 1682)
    assert ml100k.item_titles[1] == "Toy Story (1995)"
    assert len(ml100k["validation"]) == len(ml100k["test"]) == 943


def test_ml100k_split_invariants(ml100k):
    original = list(ml100k.item_table["original_id"])
    raw = _raw_sequences_by_time()
    raw_by_first_items = {tuple(seq[:5]): seq for seq in raw.values()}
    for split, offset in (("test", 1), ("validation", 2)):
        for row in ml100k[split]:
            full = row["full_history"]
            seq = raw_by_first_items[tuple(original[i - 1] for i in full[:5])]
            assert original[row["target"] - 1] == seq[len(seq) - offset]  # last / second-to-last in time
            assert len(full) == len(seq) - offset
            assert row["history"] == full[-50:]
            assert row["target"] not in full
            candidates = row["candidates"]
            assert len(candidates) == 20 and len(set(candidates)) == 20
            assert candidates.count(row["target"]) == 1
            seen = {original.index(i) + 1 for i in seq}
            assert not (set(candidates) - {row["target"]}) & seen
    positions = [row["candidates"].index(row["target"]) for row in ml100k["test"]]
    assert len(set(positions)) > 10, "the target must not sit at a fixed position"


def test_training_prefixes(ml100k):
    sequences = training_sequences(ml100k["train"])
    for seq, valid in zip(sequences[:50], ml100k["validation"]):
        assert seq == valid["full_history"]
    first = ml100k["train"][0]
    assert len(first["history"]) == 1


def test_same_seed_same_candidates_other_seed_differs(ml100k, tmp_path):
    again = load_benchmark("ml-100k", seed=42, cache_dir=str(tmp_path))
    other = load_benchmark("ml-100k", seed=7, cache_dir=str(tmp_path))
    assert again["test"]["candidates"] == ml100k["test"]["candidates"]
    assert other["test"]["candidates"] != ml100k["test"]["candidates"]
    assert other["test"]["target"] == ml100k["test"]["target"]


def test_second_load_does_not_reprocess(tmp_path, monkeypatch):
    load_benchmark("ml-100k", num_candidates=10, cache_dir=str(tmp_path))
    builder_module._processed.cache_clear()

    def fail(*args, **kwargs):
        raise AssertionError("reprocessed although the Arrow cache exists")

    monkeypatch.setattr(builder_module, "process_interactions", fail)
    ds = load_benchmark("ml-100k", num_candidates=10, cache_dir=str(tmp_path))
    assert len(ds["test"][0]["candidates"]) == 10


def _write_atomic(folder: Path, name: str, rows, item_rows=None):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"] + ["\t".join(map(str, r)) for r in rows]
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    if item_rows is not None:
        lines = ["item_id:token\ttitle:token_seq\tcategories:token_seq"] + ["\t".join(r) for r in item_rows]
        (folder / f"{name}.item").write_text("\n".join(lines) + "\n")
    return folder


def _tiny_rows(num_users=6, length=8, num_items=40, tie=True):
    rng = np.random.default_rng(0)
    rows = []
    for user in range(num_users):
        items = rng.choice(np.arange(1, num_items + 1), size=length, replace=False)
        for t, item in enumerate(items):
            rows.append((f"u{user}", f"i{item}", 100 if tie and t < 3 else 100 + t))
    return rows


def test_generic_atomic_folder_keeps_tied_timestamps_in_file_order(tmp_path):
    rows = _tiny_rows()
    items = [(f"i{i}", f"Item {i}", "Cat") for i in range(1, 41)]
    folder = _write_atomic(tmp_path / "tiny", "tiny", rows, items)
    ds = load_benchmark("atomic", data_dir=str(folder), num_candidates=5, cache_dir=str(tmp_path / "c"))
    original = list(ds.item_table["original_id"])
    first_user = [item for user, item, _ in rows if user == "u0"]
    row = ds["test"][0]
    assert [original[i - 1] for i in row["full_history"]] == first_user[:-1]
    assert ds.item_titles[row["target"]] == "Item " + first_user[-1][1:]


BAD_INPUTS = {
    "unknown dataset": (lambda tmp: dict(name="ml-2k"), ValueError, "Unknown dataset 'ml-2k'"),
    "missing data dir": (lambda tmp: dict(name="ml-100k", data_dir=str(tmp / "nope")), DataSourceError,
                         "does not exist"),
    "missing data file": (lambda tmp: dict(name="ml-100k", data_dir=str(_write_atomic(tmp / "d", "other", []))),
                          DataSourceError, "has no ml-100k.inter"),
    "corrupt field count": (lambda tmp: dict(name="atomic", data_dir=str(_corrupt(tmp, "u1\ti1\n"))),
                            CorruptDataError, "line 2 has 2 fields"),
    "corrupt timestamp": (lambda tmp: dict(name="atomic", data_dir=str(_corrupt(tmp, "u1\ti1\tyesterday\n"))),
                          CorruptDataError, "is not a number"),
    "no users after filtering": (lambda tmp: dict(name="atomic", data_dir=str(_write_atomic(tmp / "f", "f", _tiny_rows())),
                                                  min_user_interactions=50), ValueError, "No users left"),
    "too few negatives": (lambda tmp: dict(name="atomic", data_dir=str(_write_atomic(tmp / "n", "n", _tiny_rows(num_items=9))),
                                           num_candidates=9), ValueError, "lower num_candidates"),
}


def _corrupt(tmp: Path, bad_line: str) -> Path:
    folder = tmp / "corrupt"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrupt.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + bad_line)
    return folder


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_a_clear_error(case, tmp_path):
    make_kwargs, error, message = BAD_INPUTS[case]
    with pytest.raises(error, match=message):
        load_benchmark(cache_dir=str(tmp_path / "cache"), **make_kwargs(tmp_path))


def test_stats_are_json_serialisable(ml100k):
    assert json.loads(json.dumps(ml100k.stats))["num_interactions"] == 100000
