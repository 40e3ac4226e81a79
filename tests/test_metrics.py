import logging
import math

import datasets
import pytest
import torch

from hfrec.evaluation import evaluate_scorer, ranks_of
from hfrec.metrics import (candidate_target_index, invalid_score_rows, load_ranking_metric, metrics_from_ranks,
                           ranking_metrics, target_ranks)

NAN, INF = float("nan"), float("inf")

CASES = [
    # scores, target column, exclude, expected 0-based rank
    ([[0.1, 0.9, 0.3]], 1, None, 0),
    ([[0.1, 0.9, 0.3]], 0, None, 2),
    ([[0.5, 0.5, 0.5, 0.5]], 2, None, 3),  # ties count against the target
    ([[0.9, 0.8, 0.1, 0.7]], 3, [[0, 1]], 0),  # excluded columns drop out
    ([[0.9, 0.8, 0.1, 0.7]], 3, [[1, 1]], 1),  # repeated exclusions are harmless
]


@pytest.mark.parametrize("scores,target,exclude,rank", CASES)
def test_target_ranks(scores, target, exclude, rank):
    exclude = None if exclude is None else torch.tensor(exclude)
    assert target_ranks(torch.tensor(scores), torch.tensor([target]), exclude).item() == rank


def test_metric_values_match_their_definitions():
    scores = torch.tensor([[3.0, 2.0, 1.0]] * 3)
    metrics = ranking_metrics(scores, torch.tensor([0, 1, 2]), ks=(1, 2))
    assert metrics["HR@1"] == pytest.approx(1 / 3)
    assert metrics["HR@2"] == pytest.approx(2 / 3)
    assert metrics["NDCG@2"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert metrics["MRR@2"] == pytest.approx((1 + 0.5) / 3)


def test_batches_concatenate_to_the_whole():
    torch.manual_seed(0)
    scores, targets = torch.randn(50, 30), torch.randint(0, 30, (50,))
    whole = ranking_metrics(scores, targets)
    ranks = torch.cat([target_ranks(scores[i:i + 7], targets[i:i + 7]) for i in range(0, 50, 7)])
    assert ranks.tolist() == target_ranks(scores, targets).tolist()
    assert metrics_from_ranks(ranks) == pytest.approx(whole)


@pytest.mark.parametrize("bad,message", [
    (dict(scores=torch.zeros(3)), "must be \\(batch, columns\\)"),
    (dict(targets=torch.tensor([5])), "out of range"),
    (dict(exclude=torch.tensor([[1]])), "among its own excluded"),
])
def test_bad_metric_input(bad, message):
    kwargs = dict(scores=torch.zeros(1, 3), targets=torch.tensor([1]), exclude=None) | bad
    with pytest.raises(ValueError, match=message):
        target_ranks(**kwargs)


def test_candidate_target_index():
    assert candidate_target_index(torch.tensor([[4, 9, 2], [7, 1, 3]]), torch.tensor([2, 7])).tolist() == [2, 0]
    with pytest.raises(ValueError, match="exactly once"):
        candidate_target_index(torch.tensor([[4, 9, 2]]), torch.tensor([5]))


def test_evaluate_wrapper_agrees():
    metric = load_ranking_metric()
    metric.add_batch(predictions=[[0.1, 0.9, 0.3]], references=[1])
    metric.add_batch(predictions=[[0.5, 0.2, 0.1]], references=[2])
    expected = ranking_metrics(torch.tensor([[0.1, 0.9, 0.3], [0.5, 0.2, 0.1]]), torch.tensor([1, 2]))
    assert metric.compute() == pytest.approx(expected)


INVALID_CASES = {
    # name: (scores of one row, target column, exclude, invalid?, expected 0-based rank)
    "all fine": ([0.1, 0.9, 0.3], 1, None, False, 0),
    "nan target": ([NAN, 0.1, 0.2], 0, None, True, 3),
    "nan elsewhere in the row": ([0.9, NAN, 0.2], 0, None, True, 3),
    "nan in an excluded column": ([0.9, NAN, 0.2], 0, [[1]], True, 3),  # the scorer is broken all the same
    "+inf target": ([INF, 0.1, 0.2], 0, None, True, 3),
    "+inf elsewhere": ([0.5, INF, 0.2], 0, None, True, 3),
    "-inf target": ([-INF, 0.1, 0.2], 0, None, True, 3),
    "-inf elsewhere is masking, not an error": ([0.5, -INF, 0.2], 0, None, False, 0),
    "every other column -inf": ([-INF, 0.3, -INF], 1, None, False, 0),
}


@pytest.mark.parametrize("case", sorted(INVALID_CASES))
def test_invalid_scores_rank_last_and_are_counted(case, caplog):
    row, target, exclude, invalid, rank = INVALID_CASES[case]
    scores, targets = torch.tensor([row]), torch.tensor([target])
    exclude = None if exclude is None else torch.tensor(exclude)
    assert invalid_score_rows(scores, targets).tolist() == [invalid]
    ranks, mask = target_ranks(scores, targets, exclude, return_invalid=True)
    assert (ranks.tolist(), mask.tolist()) == ([rank], [invalid])
    assert target_ranks(scores, targets, exclude).tolist() == [rank]  # default return is unchanged
    with caplog.at_level(logging.WARNING, logger="hfrec.metrics"):
        metrics = ranking_metrics(scores, targets, ks=(1, 5, 10), exclude=exclude)  # K > 3 columns too
    assert all(math.isfinite(v) for v in metrics.values())
    if invalid:
        assert metrics.pop("invalid_score_rows") == 1
        assert set(metrics.values()) == {0.0}, "an invalid row is a miss at every K"
        assert "1 of 1 rows have invalid scores" in caplog.text
    else:
        assert "invalid_score_rows" not in metrics
        assert metrics["HR@1"] == metrics["NDCG@1"] == metrics["MRR@1"] == 1.0
        assert caplog.text == ""


def test_invalid_rows_do_not_touch_the_others():
    scores = torch.tensor([[0.9, 0.1, 0.2], [NAN, 0.1, 0.2], [0.1, 0.9, INF], [0.3, 0.2, 0.1]])
    metrics = ranking_metrics(scores, torch.tensor([0, 0, 1, 0]), ks=(1,))
    assert metrics == {"HR@1": 0.5, "NDCG@1": 0.5, "MRR@1": 0.5, "invalid_score_rows": 2}


@pytest.mark.parametrize("ranks,invalid,expected_hr", [
    ([0, 1, 2], None, 1 / 3),
    ([0, 1, 2], [True, False, False], 0.0),  # flagged rows miss even at their stored rank
    ([0, -1, float("nan")], None, 1 / 3),  # not ranks at all: misses, never inf / NaN
])
def test_metrics_from_ranks_stays_finite(ranks, invalid, expected_hr):
    invalid = None if invalid is None else torch.tensor(invalid)
    metrics = metrics_from_ranks(torch.tensor(ranks), ks=(1, 3), invalid=invalid)
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["HR@1"] == pytest.approx(expected_hr)


def _rows(num_rows=6, num_items=8):
    """Evaluation rows as `load_benchmark` stores them: item ids 1..num_items, 0 is padding."""
    return datasets.Dataset.from_dict({
        "target": [1 + row % num_items for row in range(num_rows)],
        "full_history": [[1 + (row + 1) % num_items] for row in range(num_rows)],
        "candidates": [[1 + row % num_items, 1 + (row + 3) % num_items] for row in range(num_rows)],
    })


def _scorer(broken_targets: set[int], num_items=8):
    """Scores the target highest; rows whose target is in `broken_targets` get NaN scores (a broken model)."""
    def score(batch, protocol):
        out = []
        for target, candidates in zip(batch["target"], batch["candidates"]):
            full = torch.zeros(num_items + 1)
            full[0] = -INF  # padding column, as SR models write it
            full[target] = NAN if target in broken_targets else 1.0
            out.append(full if protocol == "full" else full[torch.tensor(candidates)])
        return torch.stack(out)
    return score


@pytest.mark.parametrize("protocol", ["full", "candidates"])
@pytest.mark.parametrize("broken", [set(), {2, 5}])
def test_evaluate_scorer_counts_invalid_rows(protocol, broken, caplog):
    rows = _rows()
    with caplog.at_level(logging.WARNING, logger="hfrec.evaluation"):
        metrics = evaluate_scorer(_scorer(broken), rows, protocol, ks=(1, 10), batch_size=4, progress=False)
    ranks, invalid = ranks_of(_scorer(broken), rows, protocol, batch_size=4, progress=False, return_invalid=True)
    bad = sum(t in broken for t in rows["target"])
    assert int(invalid.sum()) == bad
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["HR@10"] == pytest.approx(1 - bad / len(rows))
    if bad:
        assert metrics["invalid_score_rows"] == bad
        assert f"{bad} of {len(rows)} rows had invalid scores" in caplog.text
    else:
        assert "invalid_score_rows" not in metrics  # existing tables keep their keys
        assert "invalid scores" not in caplog.text
