"""The main job: every method on one benchmark, ranked on the same test candidate lists, in one table.

`hfrec benchmark` (README's first command) runs it on the embedded default, ML-100K: popularity and the
SASRec teacher on every test user, then each registered LLM method (``hfrec.registry``; today DELRec) with that
teacher, which ranks popularity, the teacher, its baselines and itself on the same users and candidate lists (the
CPU preset uses the first 100 test users; the GPU preset all of them). Each row is a
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
from .methods.common.ranking import format_rows
from .utils import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)


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


def _llm_rows(name: str) -> Callable[[BenchmarkContext], dict]:
    """A registered LLM method's own run with the SASRec teacher: its table rows, all on the same users."""

    def run(ctx: BenchmarkContext) -> dict:
        from .registry import get_method

        if "sasrec" not in ctx.results:
            ctx.results["sasrec"] = _sr_row("sasrec")(ctx)
        out = ctx.output_dir / name
        get_method(name).run(["--preset", ctx.preset, "--dataset", ctx.dataset.name,
                              "--teacher_dir", str(ctx.output_dir / "sasrec"), "--output_dir", str(out),
                              "--split_seed", str(ctx.seed), "--seed", str(ctx.seed)])
        rows: dict[str, dict] = {}
        for record in json.loads((out / "eval_results.json").read_text()):
            row = rows.setdefault(record["method"], {"users": record["num_users"]})
            row[record["protocol"]] = record["metrics"]  # "candidates" (every row) and maybe "full"
        return rows

    return run


def _benchmark_rows() -> dict[str, tuple[str, Callable[[BenchmarkContext], dict]]]:
    """Row name -> (label, function): popularity, the SR models, and every registered LLM method (hfrec.registry).
    A function returns {"candidates": metrics, "full": metrics} for one row, or, for a method that ranks several
    rows itself (the LLM methods), {label: {"candidates": .., "users": ..}}."""
    from .registry import METHODS

    rows = {"popularity": ("Popularity", _popularity_row)}
    for name, spec in METHODS.items():
        rows[name] = (spec.display_name, _llm_rows(name) if spec.llm else _sr_row(name))
    return rows


BENCHMARK_ROWS = _benchmark_rows()
DEFAULT_ROWS = {"cpu": ["popularity", "sasrec", "delrec"], "gpu": ["popularity", "sasrec", "delrec"]}


def _is_multi_row(name: str) -> bool:
    from .registry import METHODS

    return name in METHODS and METHODS[name].llm


def format_table(ctx: BenchmarkContext) -> str:
    """Two tables: the LLM runs' rows (each run ranks popularity, its teacher and its LLM rows on the same first N
    test users), then popularity and the SR models on every test user with both protocols."""
    k = ctx.dataset.protocol["num_candidates"]
    lines = [f"{ctx.dataset.name} test set, {k} stored candidates per user (seed {ctx.seed}); HR@1 95% CI = Wilson "
             "interval over the users ranked"]
    for name, result in ctx.results.items():
        if _is_multi_row(name):
            users = {row.get("users") for row in result.values()}
            full = any("full" in row for row in result.values())
            lines += ["", f"{BENCHMARK_ROWS[name][0]} run: every row ranks the same first {min(users)} test users",
                      "", *format_rows([(label, row.get("users"),
                                         {**row.get("candidates", {}),
                                          **{f"full {k}": v for k, v in row.get("full", {}).items()}})
                                        for label, row in result.items()],
                                       extra=("full NDCG@10",) if full else ())]
    single = [(BENCHMARK_ROWS[name][0], len(ctx.dataset["test"]),
               {**result.get("candidates", {}), **{f"full {key}": v for key, v in (result.get("full") or {}).items()}})
              for name, result in ctx.results.items() if not _is_multi_row(name)]
    if single:
        lines += ["", "Every test user; full = every item ranked, history masked", "",
                  *format_rows(single, extra=("full NDCG@10",))]
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
