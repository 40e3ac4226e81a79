"""The main job: every method on one benchmark, ranked on the same test candidate lists, in one table.

`hfrec benchmark` (README's first command) runs it on the embedded default, ML-100K: popularity and the
SASRec teacher on every test user, then DELRec (`hfrec.methods.delrec.script`) with that teacher, which ranks
popularity, the teacher, the zero-shot LLM, DELRec with an untrained soft prompt and DELRec on the same users
and candidate lists (the CPU preset uses the first 200 test users; the GPU preset all of them). Each row is a
function of a shared context; a model already in the output folder (with its `eval_results.json`) is reused,
so an interrupted run picks up where it stopped.
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


def _delrec_rows(ctx: BenchmarkContext) -> dict:
    """DELRec's own run: its table rows, all on the same users, keyed by their labels."""
    from .methods.delrec.script import main as delrec_main

    teacher_dir = ctx.output_dir / "sasrec"
    if "sasrec" not in ctx.results:
        ctx.results["sasrec"] = _sr_row("sasrec")(ctx)
    rows = delrec_main(["--preset", ctx.preset, "--dataset", ctx.dataset.name, "--teacher_dir", str(teacher_dir),
                        "--output_dir", str(ctx.output_dir / "delrec"), "--split_seed", str(ctx.seed),
                        "--seed", str(ctx.seed)])
    records = json.loads((ctx.output_dir / "delrec" / "eval_results.json").read_text())
    users = records[0]["num_users"] if records else None
    return {label: {"candidates": metrics, "users": users} for label, metrics in rows.items()
            if label not in ("timings", "final") and isinstance(metrics, dict)}


# Row name -> (label in the table, function). A function returns {"candidates": metrics, "full": metrics}
# for one row, or, for a method that ranks several rows itself (DELRec), {label: {"candidates": ..}}.
BENCHMARK_ROWS: dict[str, tuple[str, Callable[[BenchmarkContext], dict]]] = {
    "popularity": ("Popularity", _popularity_row),
    "sasrec": ("SASRec", _sr_row("sasrec")),
    "delrec": ("DELRec", _delrec_rows),
}
MULTI_ROW = {"delrec"}
DEFAULT_ROWS = {"cpu": ["popularity", "sasrec", "delrec"], "gpu": ["popularity", "sasrec", "delrec"]}


def _table_rows(ctx: BenchmarkContext):
    n = len(ctx.dataset["test"])
    for name, result in ctx.results.items():
        if name in MULTI_ROW:
            for label, row in result.items():
                yield f"{label} ({BENCHMARK_ROWS[name][0]} run)", row.get("users"), row
        else:
            yield BENCHMARK_ROWS[name][0], n, result


def format_table(ctx: BenchmarkContext) -> str:
    k = ctx.dataset.protocol["num_candidates"]
    lines = [
        f"{ctx.dataset.name} test set, {k} stored candidates per user (seed {ctx.seed}); rows with the same number "
        "of users rank the same users; full = every item ranked, history masked",
        "",
        "| model | users | " + " | ".join(TABLE_COLUMNS) + " | full NDCG@10 |",
        "|---" * (len(TABLE_COLUMNS) + 3) + "|",
    ]
    for label, users, result in _table_rows(ctx):
        cand = result.get("candidates", {})
        full = result.get("full") or {}
        cells = [f"{cand[c]:.4f}" if c in cand else "-" for c in TABLE_COLUMNS]
        full_cell = f"{full['NDCG@10']:.4f}" if "NDCG@10" in full else "-"
        lines.append(f"| {label} | {users} | " + " | ".join(cells) + f" | {full_cell} |")
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
