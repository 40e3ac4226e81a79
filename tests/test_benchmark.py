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
