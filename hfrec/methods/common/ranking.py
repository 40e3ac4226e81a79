"""LLM rows of a comparison table, through the same evaluation path as the SR rows.

:class:`LikelihoodScorer` is a scorer of the ``hfrec.evaluation`` contract (``scorer(rows, protocol) -> scores``),
so :func:`hfrec.evaluation.evaluate_scorer` ranks an LLM exactly as it ranks SASRec or popularity: same rows,
same candidate lists, same metrics code. It ranks each row's stored candidates by the likelihood of their text
under the LLM (``hfrec.methods.common.scoring``); a method supplies only how a row becomes a prompt.

:func:`choose_length_normalization` picks the title-score normalisation (mean, sum / sqrt(n), sum) on validation
rows from one scoring pass. :class:`RankingTable` collects the rows of one run: ``eval_results.json`` records,
a printed table with the number of users and a 95% interval of HR@1.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ...evaluation import evaluate_scorer, evaluation_record, peak_memory_mb
from ...utils import atomic_write_json, atomic_write_text
from .generation import generate_then_match
from .scoring import candidate_log_likelihoods, normalize_by_length

LENGTH_NORMALIZE_GRID = (1.0, 0.5, 0.0)  # mean, sum / sqrt(n), sum

# rows (dict of lists, as `Dataset[a:b]` returns) -> one prompt (token ids) per row
PromptBuilder = Callable[[dict], list[list[int]]]


@dataclass
class LikelihoodScorer:
    """Scores every stored candidate of a row by ``log p(candidate text + EOS | prompt)`` / ``n ** length_normalize``.

    Args:
        model, tokenizer: the LLM (any causal LM, a soft-prompted hfrec model, or a PEFT model around one).
        build_prompts: rows -> prompt token ids (the method's prompt).
        candidate_text: item id -> the text that is scored (e.g. ``catalog.title``).
        batch_size: users per packed forward.
        length_normalize: 1 = mean token log-prob, 0 = sum, a = sum / n**a.
        row_inputs: rows -> per-prompt model inputs besides the tokens (PeaPOD's ``user_index`` / ``task``).
    """

    model: object
    tokenizer: object
    build_prompts: PromptBuilder
    candidate_text: Callable[[int], str]
    batch_size: int = 8
    length_normalize: float = 1.0
    progress: bool = False
    seconds: float = 0.0
    recorded: list | None = field(default=None, repr=False)  # (sums, counts) per call while recording
    row_inputs: Callable[[dict], dict] | None = None

    def log_likelihoods(self, rows: dict) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = self.build_prompts(rows)
        texts = [[self.candidate_text(int(c)) for c in cands] for cands in rows["candidates"]]
        start = time.perf_counter()
        sums, counts = candidate_log_likelihoods(self.model, self.tokenizer, prompts, texts,
                                                 batch_size=self.batch_size, progress=self.progress,
                                                 row_inputs=self.row_inputs(rows) if self.row_inputs else None)
        self.seconds += time.perf_counter() - start
        if self.recorded is not None:
            self.recorded.append((sums, counts))
        return sums, counts

    def __call__(self, rows: dict, protocol: str) -> torch.Tensor:
        if protocol != "candidates":
            raise ValueError(f"An LLM ranks the stored candidate lists (protocol 'candidates'), not {protocol!r}: "
                             "scoring every item of the catalogue by likelihood is not offered")
        return normalize_by_length(*self.log_likelihoods(rows), self.length_normalize)


@dataclass
class GenerateThenMatchScorer:
    """The baseline of earlier LLM recommenders as a scorer: greedy-decode an answer, match it to a candidate title
    (1.0 there, 0 elsewhere). An output naming no candidate is a miss; ``valid_ratio`` says how many named one."""

    model: object
    tokenizer: object
    build_prompts: PromptBuilder
    candidate_text: Callable[[int], str]
    batch_size: int = 8
    valid: int = 0
    total: int = 0

    @property
    def valid_ratio(self) -> float:
        return self.valid / self.total if self.total else 0.0

    def __call__(self, rows: dict, protocol: str) -> torch.Tensor:
        texts = [[self.candidate_text(int(c)) for c in cands] for cands in rows["candidates"]]
        result = generate_then_match(self.model, self.tokenizer, self.build_prompts(rows), texts,
                                     batch_size=self.batch_size)
        self.valid += int((result.predictions >= 0).sum())
        self.total += len(texts)
        # an unmatched row scores 0 everywhere: every candidate ties, and ties count against the target (a miss)
        return result.scores


@dataclass
class LLMRecommender:
    """What the ``next-item-recommendation`` pipeline scores with for an LLM method: the method's prompt, candidates
    ranked by title likelihood; without candidates, the top ``num_candidates`` unseen items of its SR teacher."""

    model: object
    tokenizer: object
    build_prompts: PromptBuilder
    catalog: object
    teacher: object = None
    num_candidates: int = 20
    length_normalize: float = 1.0
    batch_size: int = 8
    can_rank_catalogue: bool = False
    row_inputs: Callable[[dict], dict] | None = None  # rows -> per-prompt model inputs (LikelihoodScorer's)
    candidate_text: Callable[[int], str] | None = None  # item id -> scored text (default: the title)

    def default_candidates(self, histories) -> list[list[int]]:
        if self.teacher is None:
            raise ValueError("This model ranks candidate lists only: pass 'candidates'")
        from .teachers import teacher_top_k

        return teacher_top_k(self.teacher, histories, self.num_candidates).tolist()

    def score(self, histories, candidates) -> torch.Tensor:
        scorer = LikelihoodScorer(self.model, self.tokenizer, self.build_prompts,
                                  self.candidate_text or self.catalog.title,
                                  batch_size=self.batch_size, length_normalize=self.length_normalize,
                                  row_inputs=self.row_inputs)
        rows = {"history": [list(h) for h in histories], "full_history": [list(h) for h in histories],
                "candidates": [list(c) for c in candidates], "target": [c[0] for c in candidates]}
        return scorer(rows, "candidates")


def choose_length_normalization(scorer: LikelihoodScorer, rows, grid: Sequence[float] = LENGTH_NORMALIZE_GRID,
                                batch_size: int = 256) -> tuple[float, dict]:
    """The normalisation in ``grid`` with the best HR@1 (then NDCG@5) on ``rows`` (validation users), from one
    scoring pass: each grid value is evaluated on the recorded sums through ``evaluate_scorer``. Ties keep the grid
    order. Sets ``scorer.length_normalize`` and returns it with the selection record."""
    scorer.recorded = []
    try:
        evaluate_scorer(scorer, rows, "candidates", batch_size=batch_size, progress=False)
        recorded = scorer.recorded
    finally:
        scorer.recorded = None
    per_alpha = {}
    for alpha in grid:
        replay = iter(recorded)
        per_alpha[alpha] = evaluate_scorer(lambda batch, protocol, a=alpha: normalize_by_length(*next(replay), a),
                                           rows, "candidates", batch_size=batch_size, progress=False)
    best = max(grid, key=lambda a: (round(per_alpha[a]["HR@1"], 6), round(per_alpha[a]["NDCG@5"], 6)))
    scorer.length_normalize = best
    return best, {"split": "validation", "users": len(rows), "criterion": "HR@1, then NDCG@5",
                  "validation_metrics": {str(a): m for a, m in per_alpha.items()}}


RECOMMENDER_INFO_NAME = "hfrec_recommender.json"


def write_recommender_info(folder, method: str, **info) -> None:
    """Write what recommending with a trained folder needs besides its weights (``hfrec_recommender.json``): the
    method, the dataset its items come from, its prompt settings; read by the ``next-item-recommendation`` pipeline."""
    atomic_write_json(os.path.join(folder, RECOMMENDER_INFO_NAME), {"method": method, **info})


def read_recommender_info(folder) -> dict | None:
    path = os.path.join(folder, RECOMMENDER_INFO_NAME)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def rank_saved_runs(table: RankingTable, folders: Sequence[str] | None, eval_rows, ks=None,
                    data_dir: str | None = None) -> list[dict]:
    """Rank already trained hfrec runs (any registered method: a DELRec run next to LLM-TRSR's) on ``eval_rows``,
    as rows of ``table``: each folder loads as the ``next-item-recommendation`` pipeline loads it (its model, run
    info and SR teacher), and its recommender scores the same stored candidate lists. A run trained on another
    dataset, candidate seed or list length is refused: its scores would not rank these rows."""
    from pathlib import Path

    from transformers import AutoModel, AutoModelForCausalLM

    from ...metrics import DEFAULT_KS
    from ...registry import get_method
    from .backbones import cpu_has_fast_bf16

    out = []
    for folder in folders or []:
        folder = Path(folder)
        info = read_recommender_info(folder)
        if info is None or "method" not in info:
            raise ValueError(f"--compare_with {folder}: no {RECOMMENDER_INFO_NAME} there; pass the output folder of "
                             "an hfrec method's script (e.g. trainers/sft_delrec.py --output_dir)")
        ours = {"dataset": table.dataset, "split_seed": table.seed, "num_candidates": table.num_candidates}
        theirs = {k: info.get(k) for k in ours}
        if any(v is not None and v != ours[k] for k, v in theirs.items()):
            raise ValueError(f"--compare_with {folder} was trained with {theirs}, this run ranks {ours}: rerun one "
                             "of them with the same --dataset, --split_seed and --num_candidates")
        spec = get_method(info["method"])
        # no Hub kernels: transformers fetches them at .eval() on a GPU when `kernels` is installed (offline: fails)
        model = (AutoModelForCausalLM if spec.llm else AutoModel).from_pretrained(str(folder), use_kernels=False)
        if torch.cuda.is_available():
            model = model.cuda()
        elif model.dtype == torch.bfloat16 and not cpu_has_fast_bf16():
            model = model.float()  # emulated bf16 is several times slower than float32
        recommender = spec.load_recommender()(model.eval(), folder, info, dataset=table.dataset, data_dir=data_dir)

        def scorer(rows, protocol, recommender=recommender):
            return recommender.score([list(h) for h in rows["history"]], [list(c) for c in rows["candidates"]])

        metrics = evaluate_scorer(scorer, eval_rows, "candidates", ks=ks or DEFAULT_KS, progress=False)
        out.append(table.add(f"{spec.display_name} ({folder.name})", spec.name, metrics, len(eval_rows),
                             compared_run=str(folder)))
        del model, recommender
    return out


def hit_rate_interval(hit_rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson 95% interval of a hit rate measured on ``n`` users (honest at rates near 0 or 1 and small n)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    denom = 1 + z * z / n
    centre = (hit_rate + z * z / (2 * n)) / denom
    half = z * math.sqrt(hit_rate * (1 - hit_rate) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


TABLE_COLUMNS = ("HR@1", "HR@5", "NDCG@5", "HR@10", "NDCG@10")
# LLM-TRSR's paper reports Recall and MRR at 3, 5, 10; with one target per row Recall@k is HR@k
RECALL_MRR_COLUMNS = ("HR@1", "HR@5", "NDCG@5", ("Recall@3", "HR@3"), ("Recall@5", "HR@5"), ("Recall@10", "HR@10"),
                      "MRR@3", "MRR@5", "MRR@10")

Column = str | tuple[str, str]  # a metric key, or (header, metric key)


def format_rows(rows: Sequence[tuple[str, int | None, dict]], columns: Sequence[Column] = TABLE_COLUMNS,
                extra: Sequence[str] = ()) -> list[str]:
    """Markdown table lines: label, users, the metric columns, the 95% interval of HR@1, and ``extra`` keys."""
    pairs = [(c, c) if isinstance(c, str) else tuple(c) for c in columns]
    lines = ["| model | users | " + " | ".join(h for h, _ in pairs) + " | HR@1 95% CI |" +
             "".join(f" {e} |" for e in extra),
             "|---" * (len(columns) + 3 + len(extra)) + "|"]
    for label, users, metrics in rows:
        cells = [f"{metrics[c]:.4f}" if c in metrics else "-" for _, c in pairs]
        ci = "-"
        if users and "HR@1" in metrics:
            low, high = hit_rate_interval(metrics["HR@1"], users)
            ci = f"{low:.3f}-{high:.3f}"
        tail = "".join(f" {metrics[e]:.4f} |" if isinstance(metrics.get(e), float) else " - |" for e in extra)
        lines.append(f"| {label} | {users if users is not None else '-'} | " + " | ".join(cells) + f" | {ci} |" + tail)
    return lines


def ranking_fields(metrics) -> dict:
    """The per-user part of an evaluation (``hfrec.evaluation.RankedMetrics``) as record fields, with the peak memory
    of the process so far; empty for a plain metrics dict (e.g. a mean over seeds)."""
    if getattr(metrics, "ranks", None) is None:
        return {"peak_memory_mb": peak_memory_mb()}
    return {"user_ids": metrics.user_ids, "ranks": metrics.ranks, "rows_fingerprint": metrics.fingerprint,
            "eval_s": metrics.seconds, "peak_memory_mb": peak_memory_mb()}


@dataclass
class RankingTable:
    """The rows one run ranks on the same users and candidate lists, and their ``eval_results.json`` records."""

    dataset: str
    split: str
    num_candidates: int
    seed: int
    command: str | None = None
    columns: Sequence[Column] = TABLE_COLUMNS
    rows: list[tuple[str, int, dict]] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)

    def add(self, label: str, model_type: str, metrics: dict, num_users: int, **extra) -> dict:
        """One row. ``metrics`` from ``evaluate_scorer`` also brings its per-user ranks, users, rows' fingerprint and
        ranking seconds into the record (what ``hfrec benchmark``'s one table pairs and checks); ``extra`` adds
        fields such as the row's cost (``train_s``, ``train_tokens``: :func:`hfrec.methods.common.sft.training_cost`)."""
        self.rows.append((label, num_users, metrics))
        self.records.append(evaluation_record(
            dict(metrics), dataset=self.dataset, split=self.split, protocol="candidates",
            num_candidates=self.num_candidates, seed=self.seed, model_type=model_type, num_users=num_users,
            command=self.command, method=label, num_processes=int(os.environ.get("WORLD_SIZE", "1")),
            **ranking_fields(metrics), **extra))
        return metrics

    def text(self, header: str) -> str:
        return "\n".join([header, "", *format_rows(self.rows, self.columns),
                          "", f"(every row ranks the same users and the same {self.num_candidates} stored candidates)"])

    def save(self, output_dir, header: str) -> str:
        """Write ``eval_results.json`` and ``results_table.txt`` (rank 0 only) and print the table once per run."""
        text = self.text(header)
        if int(os.environ.get("RANK", "0")) == 0:
            atomic_write_json(os.path.join(output_dir, "eval_results.json"), self.records)
            atomic_write_text(os.path.join(output_dir, "results_table.txt"), text + "\n")
            print(text, flush=True)
        return text


__all__ = ["GenerateThenMatchScorer", "LENGTH_NORMALIZE_GRID", "LLMRecommender", "LikelihoodScorer",
           "RECALL_MRR_COLUMNS", "RECOMMENDER_INFO_NAME", "RankingTable", "TABLE_COLUMNS", "choose_length_normalization",
           "format_rows", "hit_rate_interval", "ranking_fields", "rank_saved_runs", "read_recommender_info", "write_recommender_info"]
