"""The shared protocol on real ML-100K (from the recbole wheel, fetched with pip) and on tiny folders."""

import codecs
import io
import json
import zipfile
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
    assert ml100k.item_table[0] == {"item_id": 1, "title": "Toy Story (1995)", "genres": "Animation Children's Comedy",
                                    "original_id": "1", "year": "1995"}
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
    "unknown time order": (lambda tmp: dict(name="atomic", data_dir=str(_write_atomic(tmp / "t", "t", _tiny_rows())),
                                            time_order="newest"), ValueError, "time_order='newest' is not one of"),
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


# -- files as real exports arrive ------------------------------------------------------------------------------
_CLEAN = ("user_id:token", "item_id:token", "timestamp:float")


def _export(rows, header=_CLEAN, bom=False, newline="\n") -> bytes:
    """`rows` of (user, item, time) as another tool might save them: any column order, extra columns, a
    byte-order mark, CRLF; header fields may carry blanks around them."""
    def value(field, row):
        name = field.split(":")[0].strip()
        return {"user_id": row[0], "item_id": row[1], "timestamp": row[2], "rating": "4.0",
                "comment": "great stuff"}[name]

    lines = ["\t".join(header)] + ["\t".join(str(value(f, r)) for f in header) for r in rows]
    return (codecs.BOM_UTF8 if bom else b"") + (newline.join(lines) + newline).encode()


def _zip_of(rows) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.inter", _export(rows))
    return buffer.getvalue()


SAME = "same split as the clean file"
FILE_ORDER = "the clean file's split with time_order='file'"
MALFORMED = {
    # case: (bytes of the .inter file from the rows, extra load_benchmark kwargs, SAME or (error, message))
    "bom": (lambda rows: _export(rows, bom=True), {}, SAME),
    "bom, timestamp first": (lambda rows: _export(rows, ("timestamp:float", "user_id:token", "item_id:token"),
                                                  bom=True), {}, SAME),
    "crlf": (lambda rows: _export(rows, newline="\r\n"), {}, SAME),
    "reordered columns": (lambda rows: _export(rows, ("item_id:token", "timestamp:float", "user_id:token")), {}, SAME),
    "extra columns": (lambda rows: _export(rows, ("user_id:token", "rating:float", "item_id:token",
                                                  "comment:token_seq", "timestamp:float")), {}, SAME),
    "blanks around header names": (lambda rows: _export(rows, (" user_id:token", "item_id : token",
                                                               "timestamp:float ")), {}, SAME),
    "bom, crlf, reordered": (lambda rows: _export(rows, ("timestamp:float", "item_id:token", "user_id:token"),
                                                  bom=True, newline="\r\n"), {}, SAME),
    "missing timestamp": (lambda rows: _export(rows, _CLEAN[:2]), {},
                          (CorruptDataError, r"no timestamp field .* header \['user_id', 'item_id'\]"
                                             r".*time_order='file'")),
    "missing timestamp, file order asked for": (lambda rows: _export(rows, _CLEAN[:2]), {"time_order": "file"},
                                                FILE_ORDER),
    "empty": (lambda rows: b"", {}, (CorruptDataError, "the file is empty")),
    "only a byte-order mark": (lambda rows: codecs.BOM_UTF8 + b"\r\n", {}, (CorruptDataError, "the file is empty")),
    "binary, not UTF-8": (lambda rows: bytes(range(128, 256)) * 8, {}, (CorruptDataError, "not UTF-8 text")),
    "utf-16": (lambda rows: _export(rows).decode().encode("utf-16"), {}, (CorruptDataError, "NUL bytes")),
    "zip archive": (_zip_of, {}, (CorruptDataError, "a zip archive, not a text file")),
    "duplicated header": (lambda rows: _export(rows, _CLEAN + ("item_id:token",)), {},
                          (CorruptDataError, r"repeats the field\(s\) \['item_id'\]")),
    "wrong field count": (lambda rows: _export(rows) + b"u1\ti1\n", {}, (CorruptDataError, "has 2 fields")),
}


def _split_signature(ds) -> dict:
    """Everything a method sees of a split, in original item ids (so two loads compare across caches)."""
    original = list(ds.item_table["original_id"])

    def items(ids):
        return [original[i - 1] for i in ids]

    return {split: [(r["user_id"], items(r["history"]), original[r["target"] - 1], items(r.get("candidates", [])))
                    for r in ds[split]] for split in ("train", "validation", "test")}


def _shuffled_rows():
    """Tiny rows in an order that is not the time order, so falling back to file order changes the split."""
    rows = _tiny_rows()
    return [rows[i] for i in np.random.default_rng(1).permutation(len(rows))]


@pytest.fixture(scope="module")
def clean_splits(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    folder = tmp / "clean"
    folder.mkdir()
    (folder / "x.inter").write_bytes(_export(_shuffled_rows()))
    splits = {order: _split_signature(load_benchmark("atomic", data_dir=str(folder), num_candidates=5,
                                                     cache_dir=str(tmp / "c"), time_order=order))
              for order in ("timestamp", "file")}
    assert splits["timestamp"] != splits["file"], "the fixture must tell the two orders apart"
    return {SAME: splits["timestamp"], FILE_ORDER: splits["file"]}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_inter_files(case, clean_splits, tmp_path):
    make_bytes, kwargs, expected = MALFORMED[case]
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "x.inter").write_bytes(make_bytes(_shuffled_rows()))
    load = dict(name="atomic", data_dir=str(folder), num_candidates=5, cache_dir=str(tmp_path / "c"), **kwargs)
    if expected in clean_splits:
        assert _split_signature(load_benchmark(**load)) == clean_splits[expected]
    else:
        error, message = expected
        with pytest.raises(error, match=message) as caught:
            load_benchmark(**load)
        assert str(folder / "x.inter") in str(caught.value)  # the message names the file


def test_time_order_changes_the_split_and_the_cache_key(tmp_path):
    # Each user's rows are written newest first: the timestamp order and the file's order disagree.
    rows = [(f"u{u}", f"i{(u * 7 + t) % 40 + 1}", 100 + t) for u in range(6) for t in reversed(range(8))]
    folder = _write_atomic(tmp_path / "d", "d", rows)
    load = dict(name="atomic", data_dir=str(folder), num_candidates=5, cache_dir=str(tmp_path / "cache"))
    by_time = load_benchmark(**load)
    by_file = load_benchmark(**load, time_order="file")
    by_time_again = load_benchmark(**load, time_order="timestamp")  # same cache dir: must not get file order
    newest = [f"i{(u * 7 + 7) % 40 + 1}" for u in range(6)]
    last_in_file = [f"i{(u * 7) % 40 + 1}" for u in range(6)]
    for ds, expected in ((by_time, newest), (by_file, last_in_file), (by_time_again, newest)):
        original = list(ds.item_table["original_id"])
        assert [original[t - 1] for t in ds["test"]["target"]] == expected
    assert (by_time.protocol["time_order"], by_file.protocol["time_order"]) == ("timestamp", "file")


def test_item_table_keeps_every_text_field(tmp_path):
    rows = _tiny_rows()
    folder = _write_atomic(tmp_path / "shop", "shop", rows)
    missing = rows[0][1]  # an item with interactions but no line in the .item file
    header = ["item_id:token", "title:token_seq", "brand:token", "categories:token_seq", "description:token_seq",
              "price:float", "release_year:float", "original_id:token"]
    lines = ["\t".join(header)] + [
        f"i{i}\tItem {i}\tBrand{i % 3}\tBeauty Skin\tA fine thing, number {i}\t9.99\t{2000 + i}.0\tASIN{i}"
        for i in range(1, 41) if f"i{i}" != missing]
    (folder / "shop.item").write_text("\n".join(lines) + "\n", encoding="utf-8-sig")  # with a BOM, too
    ds = load_benchmark("atomic", data_dir=str(folder), num_candidates=5, cache_dir=str(tmp_path / "c"))
    table = ds.item_table
    # the existing columns first, unchanged; then year and every other text field (not price: a number)
    assert table.column_names == ["item_id", "title", "genres", "original_id", "year", "brand", "description",
                                  "original_id_text"]
    assert all(table.features[c].dtype == "string" for c in table.column_names[1:])
    by_id = {row["original_id"]: row for row in table}
    five = by_id.get("i5") or next(r for k, r in by_id.items() if k != missing)
    number = five["original_id"][1:]
    assert five == {"item_id": five["item_id"], "title": f"Item {number} ({2000 + int(number)})",
                    "genres": "Beauty Skin", "original_id": f"i{number}", "year": str(2000 + int(number)),
                    "brand": f"Brand{int(number) % 3}", "description": f"A fine thing, number {number}",
                    "original_id_text": f"ASIN{number}"}
    assert {k: v for k, v in by_id[missing].items() if k not in ("item_id", "original_id")} == dict.fromkeys(
        ["title", "genres", "year", "brand", "description", "original_id_text"], "")
    assert ds.stats["items_without_title"] == 1


@pytest.mark.parametrize("columns", [(), ("brand",), ("brand", "description")])
def test_item_schema_is_part_of_the_cache_key(columns, tmp_path):
    folder = _write_atomic(tmp_path / "k", "k", _tiny_rows())
    plain = builder_module._builder("atomic", "items", str(folder), tmp_path, num_candidates=5)
    other = builder_module._builder("atomic", "items", str(folder), tmp_path, item_columns=columns, num_candidates=5)
    assert (plain.cache_dir == other.cache_dir) == (columns == ())
    assert list(other.info.features) == ["item_id", "title", "genres", "original_id", *columns]
