"""P2Rec's latent categories and the preference distributions the parser learns to reconstruct.

* :func:`latent_categories` - k-means (scikit-learn) over an SR model's item embeddings: one category per item.
* :func:`category_frequencies` / :func:`preference_targets` - a user's prior preference distribution: the normalised
  frequency of each category among the items the parser reads, optionally mixed with the SR teacher's predicted
  next-item distribution aggregated per category (:func:`teacher_category_distributions`).
* :func:`next_item_targets` - instance-level SFT's targets (one per interaction prefix): the next item's category.

Category arrays are indexed by item id: ``categories[k]`` is item k's category in ``0..K-1``; ``categories[0]`` is
``-1`` (padding is never an item).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...evaluation import left_pad


def latent_categories(item_embeddings, num_categories: int, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """(N+1,) category of every item: k-means with ``num_categories`` clusters over the (N, d) item embeddings
    (row k-1 = item k), ``n_init`` seeded restarts (``random_state=seed``: the same seed gives the same categories).

    Clusters are renumbered by size (largest first, ties by their smallest item id), so the numbering does not
    depend on k-means' arbitrary labels."""
    from sklearn.cluster import KMeans

    points = np.asarray(torch.as_tensor(item_embeddings).detach().float().cpu(), dtype=np.float64)
    if points.ndim != 2 or points.shape[0] == 0:
        raise ValueError(f"item_embeddings must be a 2-D (num_items, dim) table, one row per item; got shape "
                         f"{points.shape}")
    if not np.isfinite(points).all():
        row = int(np.argwhere(~np.isfinite(points).all(axis=1))[0, 0])
        raise ValueError(f"item_embeddings row {row} (item {row + 1}) is not finite: check the SR model's weights")
    if not 2 <= num_categories <= points.shape[0]:
        raise ValueError(f"num_categories={num_categories} must be between 2 and the number of items "
                         f"({points.shape[0]}): choose fewer latent categories")
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1 (k-means restarts), got {n_init}")
    labels = KMeans(n_clusters=num_categories, n_init=n_init, random_state=seed).fit_predict(points)
    sizes = np.bincount(labels, minlength=num_categories)
    first_item = np.full(num_categories, points.shape[0])
    np.minimum.at(first_item, labels, np.arange(points.shape[0]))
    order = sorted(range(num_categories), key=lambda c: (-sizes[c], first_item[c]))
    renumber = np.empty(num_categories, dtype=np.int64)
    renumber[order] = np.arange(num_categories)
    return np.concatenate([[-1], renumber[labels]]).astype(np.int64)


@torch.no_grad()
def teacher_item_categories(teacher, num_categories: int, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """:func:`latent_categories` of an hfrec SR model's effective item table (``item_representations()`` rows 1..N,
    the SR contract: what its inputs embed and its scores dot with)."""
    return latent_categories(teacher.item_representations()[1:], num_categories, seed=seed, n_init=n_init)


def _check_categories(categories: np.ndarray, num_categories: int) -> np.ndarray:
    categories = np.asarray(categories, dtype=np.int64)
    if categories.ndim != 1 or categories.shape[0] < 2:
        raise ValueError("categories must be a 1-D array indexed by item id (entry 0 = padding), as "
                         f"latent_categories returns; got shape {categories.shape}")
    items = categories[1:]
    if items.min() < 0 or items.max() >= num_categories:
        raise ValueError(f"categories hold values {int(items.min())}..{int(items.max())} outside "
                         f"0..{num_categories - 1}: num_categories must match the k-means run that produced them")
    return categories


def item_categories(ids: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """The categories of item ids; a ValueError names ids outside the catalogue."""
    if ids.size and (ids.min() < 1 or ids.max() >= len(categories)):
        raise ValueError(f"item ids {ids.min()}..{ids.max()} outside the catalogue 1..{len(categories) - 1}")
    return categories[ids]


def category_frequencies(items: Sequence[int], categories: np.ndarray, num_categories: int) -> np.ndarray:
    """(K,) normalised frequency of each category among ``items`` (item ids, repeats counted)."""
    ids = np.asarray(list(items), dtype=np.int64)
    if ids.size == 0:
        raise ValueError("A preference distribution needs at least one item: got an empty sequence")
    counts = np.bincount(item_categories(ids, categories), minlength=num_categories).astype(np.float64)
    return counts / counts.sum()


@torch.no_grad()
def teacher_category_distributions(teacher, sequences: Sequence[Sequence[int]], categories: np.ndarray,
                                   num_categories: int, batch_size: int = 512) -> np.ndarray:
    """(U, K): for each sequence, the teacher's next-item distribution (softmax over its scores of every item, the
    history not masked: it describes the user's taste, not only what is still to be recommended) summed per
    category. The teacher reads the last ``max_seq_length`` items of each sequence."""
    categories = _check_categories(categories, num_categories)
    device = next(teacher.parameters()).device
    index = torch.as_tensor(categories[1:], device=device)
    max_length = getattr(teacher.config, "max_seq_length", None)
    was_training = teacher.training
    teacher.eval()
    out = []
    try:
        for start in range(0, len(sequences), batch_size):
            ids = left_pad(sequences[start:start + batch_size], max_length).to(device)
            probs = torch.softmax(teacher.predict_scores(ids).float(), dim=-1)[:, 1:]  # column 0 (padding) is 0
            out.append(probs.new_zeros(probs.shape[0], num_categories).index_add_(1, index, probs).cpu())
    finally:
        teacher.train(was_training)
    return torch.cat(out).double().numpy() if out else np.zeros((0, num_categories))


def _mix_teacher(targets: np.ndarray, sequences: Sequence[Sequence[int]], categories: np.ndarray,
                 num_categories: int, teacher, teacher_mix: float) -> np.ndarray:
    """``(1 - teacher_mix) * targets + teacher_mix *`` the teacher's distribution after each sequence."""
    if not 0.0 <= teacher_mix <= 1.0:
        raise ValueError(f"teacher_mix must be in [0, 1] (0: category frequencies only), got {teacher_mix}")
    if teacher_mix > 0 and teacher is None:
        raise ValueError(f"teacher_mix={teacher_mix} mixes in the SR teacher's predicted distribution: pass the "
                         "teacher")
    if teacher_mix == 0:
        return targets
    return (1 - teacher_mix) * targets + teacher_mix * teacher_category_distributions(
        teacher, sequences, categories, num_categories)


def preference_targets(sequences: Sequence[Sequence[int]], categories: np.ndarray, num_categories: int,
                       max_history: int | None = None, teacher=None, teacher_mix: float = 0.0) -> np.ndarray:
    """(U, K) target distributions: the category frequencies of each sequence's last ``max_history`` items (the
    items the parser's prompt shows; None: all), mixed as ``(1 - teacher_mix) * frequencies + teacher_mix *``
    the teacher's distribution (:func:`teacher_category_distributions`) when ``teacher_mix > 0``."""
    categories = _check_categories(categories, num_categories)
    shown = [list(s)[-max_history:] if max_history else list(s) for s in sequences]
    targets = np.stack([category_frequencies(s, categories, num_categories) for s in shown]) if shown else \
        np.zeros((0, num_categories))
    return _mix_teacher(targets, sequences, categories, num_categories, teacher, teacher_mix)


def next_item_targets(prefixes: Sequence[Sequence[int]], next_items: Sequence[int], categories: np.ndarray,
                      num_categories: int, teacher=None, teacher_mix: float = 0.0) -> np.ndarray:
    """(P, K) targets of instance-level SFT: the one-hot category of the item that followed each prefix (the
    next-item task instance-level SFT trains, in the parser's K-way head), mixed with the teacher's distribution
    after the prefix as in :func:`preference_targets`."""
    categories = _check_categories(categories, num_categories)
    if len(prefixes) != len(next_items):
        raise ValueError(f"{len(prefixes)} prefixes but {len(next_items)} next items: one next item per prefix")
    targets = np.zeros((len(next_items), num_categories))
    targets[np.arange(len(next_items)), item_categories(np.asarray(next_items, dtype=np.int64), categories)] = 1.0
    return _mix_teacher(targets, prefixes, categories, num_categories, teacher, teacher_mix)


__all__ = ["category_frequencies", "item_categories", "latent_categories", "next_item_targets", "preference_targets",
           "teacher_category_distributions", "teacher_item_categories"]
