"""The main job's one table: rows checked, paired and recomputed from ranks; the benchmark's rows, files and resume."""

import json
import math
import os
import shlex
import stat

import pytest
import torch

from hfrec.benchmark import (TEACHER, add_method_records, default_methods, method_argv, parse_methods, row_label,
                             run_benchmark)
from hfrec.benchmark_table import BenchmarkRow, BenchmarkTable, mcnemar_exact, metrics_of_ranks
from hfrec.data import load_benchmark
from hfrec.evaluation import evaluate_scorer, popularity_scorer
from hfrec.methods.common.ranking import RankingTable

TINY_SR = {  # the tiny models of tests/test_sr_training.py, two epochs each
    "sasrec": '{"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1}',
    "gru4rec": '{"embedding_size": 16, "hidden_size": 16}',
    "caser": '{"embedding_size": 16, "num_horizontal_filters": 4, "num_vertical_filters": 2}',
}
SR_ARGS = {name: ["--max_seq_length", "8", "--model_kwargs", kwargs, "--num_train_epochs", "2",
                  "--per_device_train_batch_size", "16", "--early_stopping_patience", "0"]
           for name, kwargs in TINY_SR.items()}


@pytest.fixture(scope="module")
def tiny(tiny_folder):
    return load_benchmark("atomic", data_dir=str(tiny_folder), num_candidates=10, seed=42)


def seeded_scorer(seed: int, nan_rows: int = 0):
    """Random scores (the first ``nan_rows`` rows of each batch NaN: invalid rows, misses)."""

    def score(batch, protocol):
        scores = torch.rand(len(batch["target"]), len(batch["candidates"][0]),
                            generator=torch.Generator().manual_seed(seed))
        scores[:nan_rows] = float("nan")
        return scores

    return score


def candidates_row(label, rows, scorer, **kwargs):
    return BenchmarkRow.from_metrics(label, label.lower(), evaluate_scorer(scorer, rows, "candidates", progress=False),
                                     **kwargs)


@pytest.mark.parametrize("reference, row, expected", [
    ([1] * 6 + [0] * 7, [0] * 6 + [1, 0, 0, 0, 0, 0, 0], None),  # b=6 (teacher only), c=1: below by hand
    ([1, 1, 0, 0], [1, 1, 0, 0], (0, 0, 1.0)),  # never disagree
    ([1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], (3, 3, 1.0)),
    ([0] * 5, [1] * 5, (0, 5, 2 / 2 ** 5)),
])
def test_mcnemar_exact_on_hand_computed_cases(reference, row, expected):
    if expected is None:  # b=6, c=1: p = 2 * (C(7,0) + C(7,1)) / 2**7 = 0.125
        expected = (6, 1, 2 * (math.comb(7, 0) + math.comb(7, 1)) / 2 ** 7)
    b, c, p = mcnemar_exact([bool(x) for x in reference], [bool(x) for x in row])
    assert (b, c) == expected[:2]
    assert p == pytest.approx(expected[2], abs=1e-12)
    assert mcnemar_exact(row, reference)[2] == pytest.approx(p)  # symmetric


@pytest.mark.parametrize("protocol, scorer", [
    ("candidates", seeded_scorer(0)),
    ("candidates", seeded_scorer(1, nan_rows=3)),  # invalid rows: None ranks, misses
    ("full", None),
])
def test_metrics_recomputed_from_ranks_equal_evaluate_scorers(tiny, protocol, scorer):
    rows = tiny["test"]
    scorer = scorer or popularity_scorer(tiny["train"], tiny.num_items)
    measured = evaluate_scorer(scorer, rows, protocol, progress=False)
    recomputed = metrics_of_ranks(measured.ranks)
    assert recomputed == pytest.approx({k: v for k, v in measured.items() if k != "invalid_score_rows"}, abs=1e-12)
    if "invalid_score_rows" in measured:
        assert measured.ranks.count(None) == measured["invalid_score_rows"] > 0


def test_table_refuses_rows_on_other_users_or_candidate_lists(tiny, tiny_folder):
    rows = tiny["test"].select(range(20))
    table = BenchmarkTable.for_rows(rows, tiny.name, 10, 42)
    table.add(candidates_row("Popularity", rows, popularity_scorer(tiny["train"], tiny.num_items)))
    other_lists = load_benchmark("atomic", data_dir=str(tiny_folder), num_candidates=10, seed=7)["test"]
    cases = {  # what differs -> what the error says
        "other users \\(20 users, 2 not shared\\)": tiny["test"].select(range(1, 21)),
        "other users \\(19 users, 1 not shared\\)": tiny["test"].select(range(19)),
        "the same users in another order": rows.select(range(19, -1, -1)),
        "other candidate lists or targets \\(rows fingerprint [0-9a-f]+\\)": other_lists.select(range(20)),
    }
    for what, bad_rows in cases.items():
        with pytest.raises(ValueError, match=f"row 'Bad' \\(from benchmark\\) was ranked on {what} than the first "
                                             "row, 'Popularity', and every row of this table.*Fix: rank"):
            table.add(candidates_row("Bad", bad_rows, seeded_scorer(0)))
    with pytest.raises(ValueError, match="already in the table"):
        table.add(candidates_row("Popularity", rows, seeded_scorer(0)))
    table.add(candidates_row("Random", rows, seeded_scorer(0)))
    assert [r.label for r in table.rows] == ["Popularity", "Random"]


def test_method_records_become_rows_and_a_record_without_ranks_is_refused(tiny):
    """Records as the LLM scripts write them (RankingTable.add of evaluate_scorer's results): baselines and compared
    runs skipped, labels prefixed with the method's name, a full-ranking record attached to its row."""
    rows = tiny["test"].select(range(12))
    ranked = RankingTable(tiny.name, "test", 10, 42)
    pop = popularity_scorer(tiny["train"], tiny.num_items)
    ranked.add("popularity", "popularity", evaluate_scorer(pop, rows, "candidates", progress=False), 12,
               baseline=True)
    ranked.add("zero-shot LLM", "llm-zero-shot", evaluate_scorer(seeded_scorer(1), rows, "candidates",
                                                                 progress=False), 12)
    ranked.add("P2Rec (a run)", "p2rec", evaluate_scorer(seeded_scorer(2), rows, "candidates", progress=False), 12,
               compared_run="/elsewhere")
    ranked.add("SASRec + P2Rec embeddings", "p2rec", evaluate_scorer(pop, rows, "candidates", progress=False), 12,
               train_s=3.5, train_tokens=1200)
    ranked.add("SASRec + P2Rec embeddings", "p2rec", evaluate_scorer(pop, rows, "full", progress=False), 12)
    ranked.records[-1].update(protocol="full", num_candidates=None)
    table = BenchmarkTable.for_rows(rows, tiny.name, 10, 42)
    added = add_method_records(table, "p2rec", ranked.records)
    assert [r.label for r in added] == ["P2Rec: zero-shot LLM", "P2Rec: SASRec + P2Rec embeddings"]
    enhanced = table.rows[1]
    assert (enhanced.train_s, enhanced.train_tokens) == (3.5, 1200)
    assert enhanced.full_metrics() == pytest.approx(
        {k: v for k, v in evaluate_scorer(pop, rows, "full", progress=False).items()})
    assert row_label("DELRec", "DELRec, generate-then-match") == "DELRec, generate-then-match"

    copied = [{**r, "metrics": dict(r["metrics"])} for r in ranked.records]
    for record in copied:  # what a script that passed a {**metrics} copy to table.add wrote
        for key in ("ranks", "user_ids", "rows_fingerprint"):
            record.pop(key)
    with pytest.raises(ValueError, match="DELRec .*'zero-shot LLM' carries no per-user ranks.*evaluate_scorer"):
        add_method_records(BenchmarkTable.for_rows(rows, tiny.name, 10, 42), "delrec", copied)


def test_table_files_chart_and_paired_test(tiny, tmp_path):
    rows = tiny["test"]
    table = BenchmarkTable.for_rows(rows, tiny.name, 10, 42, teacher="Teacher")
    pop = popularity_scorer(tiny["train"], tiny.num_items)
    table.add(BenchmarkRow.from_metrics("Teacher", "popularity", evaluate_scorer(pop, rows, "candidates"),
                                        evaluate_scorer(pop, rows, "full"), train_s=12.0))
    table.add(candidates_row("Random", rows, seeded_scorer(3), train_s=None, train_tokens=500))
    text = table.save(tmp_path)
    png = (tmp_path / "results.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert not list(tmp_path.glob(".results*"))  # no temp file left behind
    umask = os.umask(0)
    os.umask(umask)
    for name in ("results.md", "results.json", "results.png"):  # as open() would make them, not mkstemp's 0600
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["label"] for r in saved["rows"]] == ["Teacher", "Random"]
    teacher, rand = saved["rows"]
    assert "vs_teacher" not in teacher and teacher["full_metrics"]["NDCG@10"] > 0
    t_hits = [r == 0 for r in table.rows[0].ranks]
    r_hits = [r == 0 for r in table.rows[1].ranks]
    b = sum(t and not r for t, r in zip(t_hits, r_hits))
    c = sum(r and not t for t, r in zip(t_hits, r_hits))
    assert (rand["vs_teacher"]["b_teacher_only"], rand["vs_teacher"]["c_row_only"]) == (b, c)
    assert rand["metrics"]["HR@1"] == pytest.approx(sum(r_hits) / len(rows))
    assert (tmp_path / "results.md").read_text().strip() == text
    assert f"| Random | {len(rows)} | {rand['metrics']['HR@1']:.4f} |" in text
    assert f"({b}/{c}) | - |" in text and "| 500 |" in text


def test_default_rows_are_popularity_and_every_registered_method():
    from hfrec.registry import METHODS

    assert default_methods() == ["popularity", *METHODS]
    assert parse_methods(None) == default_methods()
    assert parse_methods("popularity,p2rec") == ["popularity", TEACHER, "p2rec"]  # the teacher row comes along
    with pytest.raises(ValueError, match="Unknown benchmark rows \\['bert4rec'\\]"):
        parse_methods("popularity,bert4rec")


def test_popularity_row_on_the_first_100_ml100k_test_users(tmp_path, capsys):
    table = run_benchmark(output_dir=str(tmp_path), methods="popularity")
    assert table.num_users == 100 and table.user_ids == load_benchmark("ml-100k")["test"]["user_id"][:100]
    hr1 = table.rows[0].metrics()["HR@1"]
    assert hr1 > 0.15  # 20 candidates: popularity beats random (1/20) on MovieLens by far
    assert f"| Popularity | 100 | {hr1:.4f} |" in capsys.readouterr().out
    assert json.loads((tmp_path / "results.json").read_text())["num_users"] == 100


def test_resumed_benchmark_reuses_sr_models_and_method_results(tiny_folder, tmp_path, monkeypatch):
    """Tiny SR models trained once; a second run trains nothing and reads a method's results back; other rows
    (another --eval-users) rerun the method."""
    common = dict(output_dir=str(tmp_path), dataset="atomic", data_dir=str(tiny_folder), num_candidates=10,
                  eval_users=30, sr_args=SR_ARGS)
    first = run_benchmark(methods="popularity,sasrec,gru4rec,caser", **common)
    assert [r.label for r in first.rows] == ["Popularity", "SASRec", "GRU4Rec", "Caser"]
    assert all(r.train_s and r.train_s > 0 and r.full_ranks for r in first.rows[1:])
    # a method's results as its script writes them, by that command on these rows
    from hfrec.benchmark import BenchmarkRun

    ds = load_benchmark("atomic", data_dir=str(tiny_folder), num_candidates=10, seed=42)
    rows = ds["test"].select(range(30))
    run = BenchmarkRun(ds, rows, tmp_path, 42, "cpu", first, data_dir=str(tiny_folder))
    written = RankingTable(ds.name, "test", 10, 42, "python trainers/sft_delrec.py " + shlex.join(method_argv(run, "delrec")))
    written.add("zero-shot LLM", "llm-zero-shot",
                evaluate_scorer(seeded_scorer(5), rows, "candidates", progress=False), 30)
    written.save(tmp_path / "delrec", "DELRec")

    from hfrec.registry import MethodSpec
    from hfrec.trainers.sr_trainer import SRTrainer

    monkeypatch.setattr(SRTrainer, "train", lambda *a, **k: pytest.fail("retrained an SR model"))
    monkeypatch.setattr(MethodSpec, "run", lambda self, argv: pytest.fail(f"reran {self.name}"))
    again = run_benchmark(methods="popularity,sasrec,gru4rec,caser,delrec", **common)
    assert [r.label for r in again.rows] == ["Popularity", "SASRec", "GRU4Rec", "Caser", "DELRec: zero-shot LLM"]
    for before, after in zip(first.summary(), again.summary()):
        assert after["metrics"] == before["metrics"] and after["full_metrics"] == before["full_metrics"]
        assert after["train_s"] == before["train_s"]  # the SR run's own training time, read back

    class Rerun(Exception):
        pass

    def rerun(self, argv):
        raise Rerun(argv)

    monkeypatch.setattr(MethodSpec, "run", rerun)
    with pytest.raises(Rerun, match="'--eval_users', '20'"):
        run_benchmark(methods="delrec", **{**common, "eval_users": 20})
