"""The main job's table machinery on real ML-100K (the popularity row only: training rows are slow)."""

import json

import pytest

from hfrec.benchmark import run_benchmark


def test_popularity_row_table_and_files(tmp_path, capsys):
    ctx = run_benchmark(output_dir=str(tmp_path), methods="popularity")
    printed = capsys.readouterr().out
    assert "| Popularity | 943 |" in printed
    saved = json.loads((tmp_path / "results.json").read_text())
    candidates = saved["results"]["popularity"]["candidates"]
    assert candidates == ctx.results["popularity"]["candidates"]
    # 20 candidates, popularity beats a random ranking (HR@1 of 1/20) on MovieLens by a wide margin
    assert candidates["HR@1"] > 0.15
    assert (tmp_path / "results.md").read_text().startswith("ml-100k test set")


def test_unknown_row_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Unknown benchmark rows \\['bert4rec'\\]"):
        run_benchmark(output_dir=str(tmp_path), methods="popularity,bert4rec")


def test_table_keeps_llm_runs_on_their_own_users(tiny_folder, tmp_path):
    from hfrec.benchmark import BenchmarkContext, format_table
    from hfrec.data import load_benchmark

    ds = load_benchmark("atomic", data_dir=str(tiny_folder), num_candidates=10, seed=42)
    metrics = {"HR@1": 0.5, "HR@5": 0.75, "NDCG@5": 0.6, "HR@10": 1.0, "NDCG@10": 0.7}
    ctx = BenchmarkContext(ds, tmp_path, 42, "cpu", results={
        "popularity": {"candidates": metrics, "full": {"NDCG@10": 0.1}},
        "delrec": {"popularity": {"users": 8, "candidates": metrics},
                   "DELRec": {"users": 8, "candidates": {**metrics, "HR@1": 0.25}}},
    })
    table = format_table(ctx)
    llm_part, sr_part = table.split("Every test user")
    assert "DELRec run: every row ranks the same first 8 test users" in llm_part
    assert "| DELRec | 8 | 0.2500 |" in llm_part and "| 0.071-0.591 |" in llm_part  # Wilson 95% of 2/8
    assert f"| Popularity | {len(ds['test'])} | 0.5000 |" in sr_part and "| 0.1000 |" in sr_part
