"""The one table of ``hfrec benchmark``: every row ranked on the same users and the same stored candidate lists.

A :class:`BenchmarkTable` is built for one set of evaluation rows (its users and its rows' fingerprint,
``hfrec.evaluation.rows_fingerprint``) and holds :class:`BenchmarkRow` objects made from per-user ranks, either
straight from :func:`hfrec.evaluation.evaluate_scorer` (popularity, the SR models) or from the ``eval_results.json``
records an LLM method's script wrote through ``RankingTable.add`` (they carry ``ranks``, ``user_ids``,
``rows_fingerprint``). A row ranked on other users or other candidate lists is refused, so every number in the table
compares like with like. Every metric is recomputed here from the ranks (``metrics_from_ranks``; a ``None`` rank, a
row whose scores were invalid, is a miss), and rows are paired user by user with the SASRec teacher: an exact
McNemar test on HR@1.

Outputs: ``results.md`` (markdown), ``results.json`` (every row with its metrics) and ``results.png`` (HR@1 with its
95% interval per row; train and eval seconds per row), each written atomically.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from .evaluation import rows_fingerprint
from .methods.common.ranking import hit_rate_interval
from .metrics import DEFAULT_KS, metrics_from_ranks
from .utils import atomic_write_bytes, atomic_write_json, atomic_write_text

METRIC_COLUMNS = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR@10")
FULL_COLUMNS = ("HR@10", "NDCG@10")


def mcnemar_exact(reference_hits: Sequence[bool], row_hits: Sequence[bool]) -> tuple[int, int, float]:
    """Exact (binomial) McNemar test of two paired hit lists on the same users.

    Returns ``(b, c, p)``: b = users the reference hits and the row misses, c = users the row hits and the reference
    misses, p = the two-sided p-value of ``min(b, c)`` successes in ``b + c`` fair coin flips (1.0 when ``b + c = 0``:
    the two rows never disagree)."""
    if len(reference_hits) != len(row_hits):
        raise ValueError(f"McNemar needs paired users: {len(reference_hits)} reference hits, {len(row_hits)} row hits")
    b = sum(1 for ref, row in zip(reference_hits, row_hits) if ref and not row)
    c = sum(1 for ref, row in zip(reference_hits, row_hits) if row and not ref)
    if b + c == 0:
        return b, c, 1.0
    from scipy.stats import binomtest

    return b, c, float(binomtest(min(b, c), b + c, 0.5).pvalue)


def metrics_of_ranks(ranks: Sequence[int | None], ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """HR/NDCG/MRR@ks of 0-based ranks, a ``None`` rank (invalid scores) counting as a miss at every k."""
    invalid = torch.tensor([r is None for r in ranks], dtype=torch.bool)
    values = torch.tensor([0 if r is None else int(r) for r in ranks], dtype=torch.long)
    return metrics_from_ranks(values, ks, invalid=invalid)


@dataclass
class BenchmarkRow:
    """One row: who ranked what (per-user ranks, in the table's user order) and what it cost."""

    label: str
    model_type: str
    ranks: list[int | None]
    user_ids: list
    fingerprint: str | None
    source: str = "benchmark"  # what produced it: the benchmark itself or a method's run (its registry name)
    train_s: float | None = None
    eval_s: float | None = None
    peak_memory_mb: float | None = None
    train_tokens: int | None = None
    full_ranks: list[int | None] | None = None  # the same users ranked over the whole catalogue, history masked
    info: dict = field(default_factory=dict)  # record fields worth keeping (variant, length_normalize, ...)

    @classmethod
    def from_metrics(cls, label: str, model_type: str, metrics, full=None, **kwargs) -> "BenchmarkRow":
        """From ``evaluate_scorer`` results (``RankedMetrics``): the candidates ranking and, optionally, the full one."""
        for name, result in (("candidates", metrics), ("full", full)):
            if result is not None and getattr(result, "ranks", None) is None:
                raise ValueError(f"row {label!r}: its {name} metrics carry no per-user ranks; pass the object "
                                 "hfrec.evaluation.evaluate_scorer returned, not a copy of its dict")
        if full is not None and list(full.user_ids) != list(metrics.user_ids):
            raise ValueError(f"row {label!r}: its full ranking covers other users than its candidates ranking")
        kwargs.setdefault("eval_s", metrics.seconds + (full.seconds if full is not None else 0.0))
        return cls(label, model_type, list(metrics.ranks), list(metrics.user_ids), metrics.fingerprint,
                   full_ranks=list(full.ranks) if full is not None else None, **kwargs)

    def metrics(self) -> dict[str, float]:
        return metrics_of_ranks(self.ranks)

    def full_metrics(self) -> dict[str, float] | None:
        return metrics_of_ranks(self.full_ranks) if self.full_ranks is not None else None

    def hits_at_1(self) -> list[bool]:
        return [r is not None and r < 1 for r in self.ranks]


class BenchmarkTable:
    """Rows ranked on exactly ``user_ids`` with candidate lists of fingerprint ``fingerprint`` (and, for the
    full-catalogue columns, ``full_fingerprint``); ``teacher`` labels the row every other row is paired with."""

    def __init__(self, dataset: str, num_candidates: int, split_seed: int, user_ids: Sequence, fingerprint: str,
                 full_fingerprint: str | None = None, teacher: str = "SASRec", description: str = ""):
        self.dataset, self.num_candidates, self.split_seed = dataset, num_candidates, split_seed
        self.user_ids, self.fingerprint, self.full_fingerprint = list(user_ids), fingerprint, full_fingerprint
        self.teacher, self.description = teacher, description
        self.rows: list[BenchmarkRow] = []

    @classmethod
    def for_rows(cls, rows, dataset: str, num_candidates: int, split_seed: int, **kwargs) -> "BenchmarkTable":
        """The table of one ``datasets.Dataset`` of evaluation rows (e.g. ``ds["test"].select(range(100))``)."""
        return cls(dataset, num_candidates, split_seed, list(rows["user_id"]), rows_fingerprint(rows, "candidates"),
                   rows_fingerprint(rows, "full"), **kwargs)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    def _refuse(self, row: BenchmarkRow, what: str) -> None:
        first = f"the first row, {self.rows[0].label!r}, and " if self.rows else ""
        raise ValueError(
            f"row {row.label!r} (from {row.source}) was ranked on {what} than {first}every row of this table "
            f"({self.num_users} {self.dataset} users, {self.num_candidates} stored candidates, split seed "
            f"{self.split_seed}, rows fingerprint {self.fingerprint}). Fix: rank it through "
            "hfrec.evaluation.evaluate_scorer on exactly the benchmark's rows (the first N test users: --eval_users N, "
            "the same --split_seed and --num_candidates) and pass the result to RankingTable.add, or rerun it.")

    def add(self, row: BenchmarkRow) -> BenchmarkRow:
        """Add ``row``, refusing it when its users, their order or its candidate lists differ from the table's, or
        when its label is taken."""
        if any(r.label == row.label for r in self.rows):
            raise ValueError(f"row {row.label!r} (from {row.source}) is already in the table; labels must be unique")
        if list(row.user_ids) != self.user_ids:
            differ = set(row.user_ids) ^ set(self.user_ids)
            self._refuse(row, f"other users ({len(row.user_ids)} users, {len(differ)} not shared)" if differ
                         else "the same users in another order")
        if len(row.ranks) != self.num_users:
            self._refuse(row, f"{len(row.ranks)} ranks for {self.num_users} users")
        if row.fingerprint != self.fingerprint:
            self._refuse(row, f"other candidate lists or targets (rows fingerprint {row.fingerprint})")
        if row.full_ranks is not None and len(row.full_ranks) != self.num_users:
            self._refuse(row, f"a full ranking of {len(row.full_ranks)} users")
        self.rows.append(row)
        return row

    def add_full_ranking(self, label: str, record: dict) -> None:
        """Attach a full-catalogue ranking (an ``eval_results.json`` record of protocol ``full``) to row ``label``."""
        row = next((r for r in self.rows if r.label == label), None)
        if row is None:
            raise ValueError(f"a full-ranking record names row {label!r}, which has no candidates row in the table")
        if record.get("user_ids") != self.user_ids or (
                self.full_fingerprint is not None and record.get("rows_fingerprint") != self.full_fingerprint):
            self._refuse(row, "other users or targets in its full ranking "
                              f"(fingerprint {record.get('rows_fingerprint')})")
        row.full_ranks = list(record["ranks"])

    def teacher_row(self) -> BenchmarkRow | None:
        return next((r for r in self.rows if r.label == self.teacher), None)

    def summary(self) -> list[dict]:
        """Every row as a dict: metrics recomputed from the ranks, HR@1's Wilson 95% interval, the McNemar test
        against the teacher (absent without a teacher row, and for the teacher itself), costs, full-catalogue
        metrics."""
        teacher = self.teacher_row()
        out = []
        for row in self.rows:
            metrics = row.metrics()
            entry = {"label": row.label, "model_type": row.model_type, "source": row.source, "users": len(row.ranks),
                     "metrics": metrics, "hr1_ci95": list(hit_rate_interval(metrics["HR@1"], len(row.ranks)))}
            if teacher is not None and row is not teacher:
                b, c, p = mcnemar_exact(teacher.hits_at_1(), row.hits_at_1())
                entry["vs_teacher"] = {"teacher": teacher.label, "b_teacher_only": b, "c_row_only": c, "p": p}
            entry.update(train_s=row.train_s, eval_s=row.eval_s, peak_memory_mb=row.peak_memory_mb,
                         train_tokens=row.train_tokens, full_metrics=row.full_metrics())
            if row.info:
                entry["info"] = row.info
            out.append(entry)
        return out

    def markdown(self) -> str:
        teacher = self.teacher_row()
        head = ["model", "users", *METRIC_COLUMNS, "HR@1 95% CI",
                f"p vs {self.teacher} (b/c)", "train s", "eval s", "peak MB", "tokens trained",
                *(f"full {c}" for c in FULL_COLUMNS)]
        lines = [f"{self.dataset} test set: every row ranks the same {self.num_users} users on the same "
                 f"{self.num_candidates} stored candidates (split seed {self.split_seed}, rows fingerprint "
                 f"{self.fingerprint}). {self.description}".rstrip(), "",
                 "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for entry in self.summary():
            m, full = entry["metrics"], entry["full_metrics"] or {}
            low, high = entry["hr1_ci95"]
            test = entry.get("vs_teacher")
            cells = [entry["label"], str(entry["users"]), *(f"{m[c]:.4f}" for c in METRIC_COLUMNS),
                     f"{low:.3f}-{high:.3f}",
                     f"{_p(test['p'])} ({test['b_teacher_only']}/{test['c_row_only']})" if test else "-",
                     _num(entry["train_s"], "{:.1f}"), _num(entry["eval_s"], "{:.1f}"),
                     _num(entry["peak_memory_mb"], "{:.0f}"), _num(entry["train_tokens"], "{:d}"),
                     *(f"{full[c]:.4f}" if c in full else "-" for c in FULL_COLUMNS)]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "HR@1 95% CI: Wilson interval over the users. "
                  + (f"p: exact McNemar test on HR@1 against {teacher.label} on the same users; b = users only "
                     f"{teacher.label} hits at 1, c = users only this row hits. " if teacher else "")
                  + "train s: the training that produced the row's model (SR: its Trainer run); eval s: ranking "
                  "wall seconds; peak MB: the process's peak resident memory (GPU: the allocator's peak) when the "
                  "row was ranked; full: every item of the catalogue ranked for the same users, history masked."]
        return "\n".join(lines)

    def to_json(self, **context) -> dict:
        return {"dataset": self.dataset, "split": "test", "num_candidates": self.num_candidates,
                "split_seed": self.split_seed, "num_users": self.num_users, "rows_fingerprint": self.fingerprint,
                "teacher": self.teacher, **context, "rows": self.summary()}

    def save_chart(self, path) -> Path:
        """``path`` (PNG): HR@1 with its 95% interval per row; train and eval seconds per row (log scale)."""
        import matplotlib

        matplotlib.use("Agg")  # no display: render to a file only
        import matplotlib.pyplot as plt

        summary = self.summary()
        if not summary:
            raise ValueError("the table has no rows to chart")
        labels = [e["label"] for e in summary]
        y = list(range(len(labels)))[::-1]  # first row on top
        hr1 = [e["metrics"]["HR@1"] for e in summary]
        err = [[h - e["hr1_ci95"][0] for h, e in zip(hr1, summary)], [e["hr1_ci95"][1] - h for h, e in zip(hr1, summary)]]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, max(3.0, 0.38 * len(labels) + 1.4)), sharey=True,
                                       gridspec_kw={"width_ratios": [3, 2]})
        ax1.errorbar(hr1, y, xerr=err, fmt="o", capsize=3)
        teacher = self.teacher_row()
        if teacher is not None:
            ax1.axvline(teacher.metrics()["HR@1"], color="grey", linestyle=":", label=teacher.label)
            ax1.legend(loc="lower right", fontsize=8)
        ax1.set_yticks(y, labels, fontsize=8)
        ax1.set_xlabel(f"HR@1 with 95% interval ({self.num_users} users, {self.num_candidates} candidates)")
        ax1.set_xlim(0, 1)
        ax1.grid(axis="x", alpha=0.3)
        height = 0.38
        for offset, key, name in ((height / 2, "train_s", "train s"), (-height / 2, "eval_s", "eval s")):
            values = [e[key] or 0.0 for e in summary]
            ax2.barh([v + offset for v in y], values, height=height, label=name)
        ax2.set_xscale("symlog", linthresh=1.0)  # SR training takes minutes, popularity's ranking milliseconds
        ax2.set_xlabel("seconds (symlog)")
        ax2.legend(loc="lower right", fontsize=8)
        ax2.grid(axis="x", alpha=0.3)
        fig.suptitle(f"{self.dataset}: every row on the same {self.num_users} test users", fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        try:
            fig.savefig(buffer, format="png", dpi=110)
        finally:
            plt.close(fig)
        return atomic_write_bytes(path, buffer.getvalue())

    def save(self, output_dir, **context) -> str:
        """Write ``results.md``, ``results.json`` and ``results.png`` into ``output_dir``; returns the markdown."""
        output_dir = Path(output_dir)
        text = self.markdown()
        atomic_write_text(output_dir / "results.md", text + "\n")
        atomic_write_json(output_dir / "results.json", self.to_json(**context))
        self.save_chart(output_dir / "results.png")
        return text


def _num(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(int(value) if fmt == "{:d}" else value)


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


__all__ = ["BenchmarkRow", "BenchmarkTable", "FULL_COLUMNS", "METRIC_COLUMNS", "mcnemar_exact", "metrics_of_ranks"]
