"""The main job: every method on one benchmark, ranked on the same test candidate lists, in one table.

`hfrec benchmark` (README's first command) runs it on the embedded default, ML-100K. Each row is a
function of a shared context; rows whose model already sits in the output folder (with its
`eval_results.json`) are reused, so an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .data import RecDatasetDict, load_benchmark
from .evaluation import evaluate_scorer, popularity_scorer
from .utils import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

TABLE_COLUMNS = ("HR@1", "HR@5", "NDCG@5", "HR@10", "NDCG@10")


@dataclass
class BenchmarkContext:
    dataset: RecDatasetDict
    output_dir: Path
    seed: int
    preset: str
    results: dict[str, dict] = field(default_factory=dict)  # row name -> {"candidates": .., "full": ..}


def _popularity_row(ctx: BenchmarkContext) -> dict:
    scorer = popularity_scorer(ctx.dataset["train"], ctx.dataset.num_items)
    return {protocol: evaluate_scorer(scorer, ctx.dataset["test"], protocol, desc="popularity")
            for protocol in ("candidates", "full")}


def _sr_row(model_type: str) -> Callable[[BenchmarkContext], dict]:
    def run(ctx: BenchmarkContext) -> dict:
        run_dir = ctx.output_dir / model_type
        results_path = run_dir / "eval_results.json"
        if not results_path.is_file():
            from .trainers.train_sr import main as train_sr

            train_sr(["--model", model_type, "--dataset", ctx.dataset.name, "--output_dir", str(run_dir),
                      "--seed", str(ctx.seed), "--split_seed", str(ctx.seed), "--disable_tqdm", "false"])
        records = json.loads(results_path.read_text())
        return {r["protocol"]: r["metrics"] for r in records}

    return run


# Row name -> (label in the table, function). Methods register further rows here (see hfrec.models.delrec).
BENCHMARK_ROWS: dict[str, tuple[str, Callable[[BenchmarkContext], dict]]] = {
    "popularity": ("Popularity", _popularity_row),
    "sasrec": ("SASRec", _sr_row("sasrec")),
}
DEFAULT_ROWS = {"cpu": ["popularity", "sasrec"], "gpu": ["popularity", "sasrec"]}


def format_table(ctx: BenchmarkContext) -> str:
    n = len(ctx.dataset["test"])
    k = ctx.dataset.protocol["num_candidates"]
    lines = [
        f"{ctx.dataset.name} test set: {n} users, {k} candidates each (seed {ctx.seed}); "
        "full = all items, history masked",
        "",
        "| model | " + " | ".join(TABLE_COLUMNS) + " | full NDCG@10 |",
        "|---" * (len(TABLE_COLUMNS) + 2) + "|",
    ]
    for name, result in ctx.results.items():
        label = BENCHMARK_ROWS[name][0]
        cand = result.get("candidates", {})
        full = result.get("full") or {}
        cells = [f"{cand[c]:.4f}" if c in cand else "-" for c in TABLE_COLUMNS]
        full_cell = f"{full['NDCG@10']:.4f}" if "NDCG@10" in full else "-"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {full_cell} |")
    return "\n".join(lines)


def run_benchmark(output_dir: str = "runs/benchmark", dataset: str = "ml-100k", seed: int = 42,
                  preset: str = "cpu", methods: str | list[str] | None = None) -> BenchmarkContext:
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    methods = methods or DEFAULT_ROWS[preset]
    unknown = [m for m in methods if m not in BENCHMARK_ROWS]
    if unknown:
        raise ValueError(f"Unknown benchmark rows {unknown}; available: {sorted(BENCHMARK_ROWS)}.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ctx = BenchmarkContext(load_benchmark(dataset, seed=seed), Path(output_dir), seed, preset)
    for name in methods:
        logger.info("benchmark row: %s", name)
        ctx.results[name] = BENCHMARK_ROWS[name][1](ctx)
    table = format_table(ctx)
    atomic_write_json(ctx.output_dir / "results.json", {"dataset": dataset, "seed": seed, "preset": preset,
                                                         "results": ctx.results})
    atomic_write_text(ctx.output_dir / "results.md", table + "\n")
    print("\n" + table)
    return ctx


__all__ = ["BENCHMARK_ROWS", "BenchmarkContext", "DEFAULT_ROWS", "format_table", "run_benchmark"]
