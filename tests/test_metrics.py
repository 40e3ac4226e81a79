import math

import pytest
import torch

from hfrec.metrics import (candidate_target_index, load_ranking_metric, metrics_from_ranks, ranking_metrics,
                           target_ranks)

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
