"""The main job: every method on one benchmark, every row ranked on the same test users and candidate lists, in one
table (``hfrec.benchmark_table``).

`hfrec benchmark` (README's first command) runs popularity and every registered method (``hfrec.registry``: the SR
models SASRec, GRU4Rec, Caser, then each LLM method with the SASRec teacher) on the embedded default, ML-100K. The
CPU preset ranks the first 100 test users in every row, the GPU preset every test user. The benchmark ranks
popularity and the SR models itself, on the stored candidate lists and on the full catalogue of the same users; each
LLM method's script runs with ``--eval_users N`` and its ``eval_results.json`` records (per-user ranks through
``RankingTable.add``) become rows, except its ``baseline`` rows (popularity and the teacher, ranked here once) and
``compared_run`` rows. The table refuses any row ranked on other users or lists.

Resumable: an SR folder that holds a model is reused, and a method whose ``eval_results.json`` was written by the
same command on the same rows is read back instead of rerun, so an interrupted run (or a GPU run driven across
several calls) picks up where it stopped. Outputs in the output folder: ``results.md``, ``results.json``,
``results.png`` and each row's run folder.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from .benchmark_table import BenchmarkRow, BenchmarkTable
from .data import RecDatasetDict, load_benchmark
from .evaluation import evaluate_scorer, peak_memory_mb, popularity_scorer, sr_model_scorer

logger = logging.getLogger(__name__)

TEACHER = "sasrec"  # every LLM method's teacher, and the row the table's paired test compares with


@dataclass(frozen=True)
class BenchmarkPreset:
    """What a preset changes in the benchmark itself (each method's script has its own ``--preset``)."""

    eval_users: int | None  # first N test users in every row; None: every test user
    sr_args: dict[str, tuple[str, ...]] = field(default_factory=dict)  # extra train_sr flags per SR model
    resume_llm_training: bool = False  # pass --resume_from_checkpoint true to the LLM scripts


PRESETS = {
    # GRU4Rec and Caser early-stop after 54-64 epochs on ML-100K; 20 keeps the CPU job inside its 30 minutes
    "cpu": BenchmarkPreset(eval_users=100, sr_args={"gru4rec": ("--num_train_epochs", "20"),
                                                     "caser": ("--num_train_epochs", "20")}),
    # a GPU run may be driven across several calls: an interrupted LLM training continues from its checkpoint
    "gpu": BenchmarkPreset(eval_users=None, resume_llm_training=True),
}


def default_methods() -> list[str]:
    """The rows of `hfrec benchmark` without ``--methods``: popularity and every registered method."""
    from .registry import METHODS

    return ["popularity", *METHODS]


@dataclass
class BenchmarkRun:
    dataset: RecDatasetDict
    eval_rows: object  # datasets.Dataset: the test rows every row ranks
    output_dir: Path
    seed: int
    preset: str
    table: BenchmarkTable
    data_dir: str | None = None
    sr_args: dict[str, tuple[str, ...]] = field(default_factory=dict)  # extra train_sr flags per SR model
    sr_models: dict = field(default_factory=dict)  # name -> (model, train record) of this run

    @property
    def num_candidates(self) -> int:
        return self.table.num_candidates

    def log_row(self, row: BenchmarkRow) -> None:
        metrics = row.metrics()
        logger.info("row %d %s: HR@1 %.4f NDCG@10 %.4f on %d users (train %s s, eval %s s)",
                    self.table.rows.index(row) + 1, row.label, metrics["HR@1"], metrics["NDCG@10"], len(row.ranks),
                    "-" if row.train_s is None else f"{row.train_s:.1f}",
                    "-" if row.eval_s is None else f"{row.eval_s:.1f}")


def _rank_both(run: BenchmarkRun, scorer, desc: str):
    return [evaluate_scorer(scorer, run.eval_rows, protocol, progress=False, desc=desc)
            for protocol in ("candidates", "full")]


def _popularity_row(run: BenchmarkRun) -> None:
    scorer = popularity_scorer(run.dataset["train"], run.dataset.num_items)
    candidates, full = _rank_both(run, scorer, "popularity")
    row = run.table.add(BenchmarkRow.from_metrics("Popularity", "popularity", candidates, full,
                                                  peak_memory_mb=peak_memory_mb()))
    run.log_row(row)


def _has_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("model*.safetensors"))


def sr_model(run: BenchmarkRun, name: str):
    """The SR model ``name`` of this benchmark: ``OUT/<name>``, trained by the SR trainer unless the folder already
    holds a model, which is reused. Returns ``(model, record)``; ``record`` is the SR run's own test record (its
    ``train_seconds``, ``epochs``) or ``{}``."""
    if name in run.sr_models:
        return run.sr_models[name]
    import torch
    from transformers import AutoModel

    from . import models  # noqa: F401  registers the hfrec model types with the Auto classes
    from .registry import get_method

    folder = run.output_dir / name
    if _has_model(folder):
        logger.info("%s: reusing the model in %s", name, folder)
    else:
        argv = ["--dataset", run.dataset.name, "--output_dir", str(folder), "--seed", str(run.seed),
                "--split_seed", str(run.seed), "--num_candidates", str(run.num_candidates), "--disable_tqdm", "true",
                *(["--data_dir", run.data_dir] if run.data_dir else []),
                *PRESETS[run.preset].sr_args.get(name, ()), *run.sr_args.get(name, ())]
        logger.info("%s: training (hfrec train sr %s)", name, shlex.join([*get_method(name).script_args, *argv]))
        get_method(name).run(argv)
    model = AutoModel.from_pretrained(str(folder))
    if getattr(model.config, "num_items", None) != run.dataset.num_items:
        raise ValueError(f"{folder} holds a {model.config.model_type} model of {getattr(model.config, 'num_items', '?')} "
                         f"items, but {run.dataset.name} has {run.dataset.num_items}: it was trained on another "
                         "dataset. Fix: pass another --output-dir, or delete that folder to retrain it.")
    if torch.cuda.is_available():
        model = model.cuda()
    results = folder / "eval_results.json"
    records = json.loads(results.read_text()) if results.is_file() else []
    run.sr_models[name] = (model.eval(), records[0] if records else {})
    return run.sr_models[name]


def _sr_row(run: BenchmarkRun, name: str) -> None:
    from .registry import get_method

    model, record = sr_model(run, name)
    candidates, full = _rank_both(run, sr_model_scorer(model), name)
    row = run.table.add(BenchmarkRow.from_metrics(
        get_method(name).display_name, model.config.model_type, candidates, full, train_s=record.get("train_seconds"),
        peak_memory_mb=peak_memory_mb(), info={k: record[k] for k in ("epochs", "best_validation") if k in record}))
    run.log_row(row)


def method_argv(run: BenchmarkRun, name: str) -> list[str]:
    """The command line the benchmark runs method ``name``'s script with (what its records' ``command`` ends with)."""
    argv = ["--preset", run.preset, "--dataset", run.dataset.name, "--teacher_dir", str(run.output_dir / TEACHER),
            "--output_dir", str(run.output_dir / name), "--split_seed", str(run.seed), "--seed", str(run.seed),
            "--num_candidates", str(run.num_candidates), "--eval_users", str(len(run.eval_rows))]
    if run.data_dir:
        argv += ["--data_dir", run.data_dir]
    if PRESETS[run.preset].resume_llm_training:
        argv += ["--resume_from_checkpoint", "true"]
    return argv


def _table_records(records: list[dict]) -> list[dict]:
    """The records of a method's run that are rows of this table: test-split sequential rankings (candidates or
    full), without the baselines the benchmark ranks itself and without other runs ranked for comparison."""
    return [r for r in records if not r.get("baseline") and not r.get("compared_run")
            and r.get("task", "sequential") == "sequential" and r.get("split", "test") == "test"
            and r.get("protocol") in ("candidates", "full")]


def _reusable(run: BenchmarkRun, name: str, argv: list[str]) -> list[dict] | None:
    """The method's records when its run folder holds results of exactly this command on exactly these rows."""
    path = run.output_dir / name / "eval_results.json"
    if not path.is_file():
        return None
    records = json.loads(path.read_text())
    wanted = shlex.join(argv)
    rows = [r for r in _table_records(records) if r["protocol"] == "candidates"]
    if rows and all(str(r.get("command") or "").endswith(wanted) and r.get("rows_fingerprint") == run.table.fingerprint
                    for r in rows):
        return records
    logger.info("%s: the results in %s are of another command or other rows; rerunning", name, path)
    return None


INFO_KEYS = ("variant", "length_normalize", "sr_model", "train_seed", "valid_ratio", "epochs")


def row_label(display_name: str, label: str) -> str:
    """How the table names a method's row: ``"<display name>: <label>"`` unless the label starts with the name."""
    return label if label.startswith(display_name) else f"{display_name}: {label}"


def add_method_records(table: BenchmarkTable, name: str, records: list[dict], where: str = "") -> list[BenchmarkRow]:
    """The rows of method ``name``'s ``eval_results.json`` ``records`` added to ``table`` (its full-catalogue records
    attached to the row of the same label). A record without per-user ranks is an error, except a mean over seeds
    (``metrics_std``), whose per-seed rows are in the table."""
    from .registry import get_method

    display = get_method(name).display_name
    added, full = [], []
    for record in _table_records(records):
        if record.get("ranks") is None:
            if "metrics_std" in record:
                logger.info("%s: %r is a mean over seeds; its per-seed rows are in the table", name, record["method"])
                continue
            raise ValueError(
                f"{display} ({where or name}): the record of row {record.get('method')!r} carries no per-user ranks, "
                "so the benchmark cannot check or pair it. The method's script must rank every row through "
                "hfrec.evaluation.evaluate_scorer and pass the result object itself to RankingTable.add (a "
                "{**metrics} copy loses the ranks); rerun it after that fix.")
        if record["protocol"] == "full":
            full.append(record)
            continue
        added.append(table.add(BenchmarkRow(
            row_label(display, record["method"]), record.get("model_type", name), list(record["ranks"]),
            list(record["user_ids"]), record.get("rows_fingerprint"), source=name, train_s=record.get("train_s"),
            eval_s=record.get("eval_s"), peak_memory_mb=record.get("peak_memory_mb"),
            train_tokens=record.get("train_tokens"), info={k: record[k] for k in INFO_KEYS if k in record})))
    for record in full:
        table.add_full_ranking(row_label(display, record["method"]), record)
    return added


def _llm_rows(run: BenchmarkRun, name: str) -> None:
    from .registry import get_method

    sr_model(run, TEACHER)  # trains the teacher into OUT/sasrec when it is not there yet
    argv = method_argv(run, name)
    records = _reusable(run, name, argv)
    if records is None:
        logger.info("%s: hfrec train %s %s", name, name, shlex.join(argv))
        get_method(name).run(argv)
        records = json.loads((run.output_dir / name / "eval_results.json").read_text())
    else:
        logger.info("%s: reusing the results in %s", name, run.output_dir / name)
    for row in add_method_records(run.table, name, records, where=str(run.output_dir / name / "eval_results.json")):
        run.log_row(row)


def _run_row(run: BenchmarkRun, name: str) -> None:
    from .registry import METHODS

    if name == "popularity":
        _popularity_row(run)
    elif METHODS[name].llm:
        _llm_rows(run, name)
    else:
        _sr_row(run, name)


def parse_methods(methods: str | list[str] | None) -> list[str]:
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    methods = list(methods or default_methods())
    unknown = [m for m in methods if m not in default_methods()]
    if unknown:
        raise ValueError(f"Unknown benchmark rows {unknown}; available: {', '.join(default_methods())}.")
    from .registry import METHODS

    if TEACHER not in methods and any(METHODS[m].llm for m in methods if m in METHODS):
        # the LLM methods' teacher is trained anyway; its row is what every row's paired test compares with
        methods.insert(methods.index("popularity") + 1 if "popularity" in methods else 0, TEACHER)
    return list(dict.fromkeys(methods))


def run_benchmark(output_dir: str = "runs/benchmark", dataset: str = "ml-100k", seed: int = 42,
                  preset: str = "cpu", methods: str | list[str] | None = None, data_dir: str | None = None,
                  eval_users: int | None = None, num_candidates: int = 20,
                  sr_args: dict[str, list[str]] | None = None) -> BenchmarkTable:
    """Run the rows ``methods`` (default: popularity and every registered method) into one table in ``output_dir``.

    ``eval_users``: the first N test users in every row (default: the preset's; 0: every test user);
    ``sr_args``: extra SR-trainer flags per SR model, after the preset's (``{"caser": ["--num_train_epochs", "5"]}``)."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}: use one of {sorted(PRESETS)}.")
    methods = parse_methods(methods)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    started = time.perf_counter()
    ds = load_benchmark(dataset, data_dir=data_dir, num_candidates=num_candidates, seed=seed)
    users = PRESETS[preset].eval_users if eval_users is None else (eval_users or None)
    if users is not None and users < 1:
        raise ValueError(f"eval_users must be a positive number of test users (0: all), got {users}")
    test = ds["test"]
    eval_rows = test.select(range(min(users, len(test)))) if users else test
    table = BenchmarkTable.for_rows(eval_rows, ds.name, num_candidates, seed, teacher="SASRec",
                                    description=(f"The first {len(eval_rows)} of {len(test)} test users"
                                                 if len(eval_rows) < len(test) else "Every test user")
                                    + f"; preset {preset}, seed {seed}.")
    run = BenchmarkRun(ds, eval_rows, Path(output_dir), seed, preset, table, data_dir,
                       {name: tuple(args) for name, args in (sr_args or {}).items()})
    for name in methods:
        logger.info("benchmark: %s", name)
        _run_row(run, name)
    text = table.save(run.output_dir, preset=preset, seed=seed, methods=methods,
                      wall_s=round(time.perf_counter() - started, 1))
    print("\n" + text, flush=True)
    return table


__all__ = ["BenchmarkPreset", "BenchmarkRun", "PRESETS", "TEACHER", "add_method_records", "default_methods",
           "method_argv", "parse_methods", "row_label", "run_benchmark", "sr_model"]
