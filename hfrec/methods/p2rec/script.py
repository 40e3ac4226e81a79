"""P2Rec end to end: SR teacher -> latent categories -> preference-parser SFT -> item embeddings -> the same SR model
trained from scratch and with the embeddings -> ranking table.

    python trainers/sft_p2rec.py --preset cpu --output_dir runs/p2rec-cpu
    accelerate launch --config_file hfrec/trainers/accelerate_configs/single_gpu.yaml \\
        trainers/sft_p2rec.py --preset gpu --teacher_dir runs/sasrec-ml100k --output_dir runs/p2rec-gpu
    hfrec train p2rec --preset cpu --output_dir runs/p2rec-cpu          # the same, through the CLI

Stages (each skipped when its output is already in the folder, so a rerun on a finished folder reloads the saved
models and only re-ranks):

1. latent categories: k-means (scikit-learn) over the teacher's item embeddings (``OUTPUT/parser/categories.json``);
2. information reconstruction: ``PreferenceParserLM`` (LoRA + head) learns each user's category distribution from a
   prompt of the user's training sequence, one example per user (``--sft_level instance``: one per interaction
   prefix -> the next item's category, ``--max_prefixes_per_user`` a seeded sample of each user's); saved in
   ``OUTPUT/parser`` (base + adapter + tokenizer; ``p2rec_parser.json``: examples, tokens, wall time);
3. information augmentation: every item through the parser (``OUTPUT/item_embeddings``, a cached ``datasets`` table);
4. each SR model of ``--sr_model`` (comma-separated) trained twice per seed of ``--sr_seeds`` with the same settings:
   from scratch and with the table loaded (``--embedding_mode``). The first model's first-seed enhanced model is
   ``OUTPUT`` itself (an ordinary hfrec SR model: ``AutoModel``, the pipeline), its scratch twin ``OUTPUT/scratch``;
   further seeds go to ``OUTPUT/seed-<s>`` and ``OUTPUT/seed-<s>/scratch``, further SR models to ``OUTPUT/<model>/``
   in the same layout;
5. with ``--compare_sft_levels true``: the other SFT level trained on a fresh parser with the same settings, both
   levels' examples, tokens and wall time in ``OUTPUT/sft_cost.json`` (P2Rec's cost claim).

The table ranks popularity, the teacher and both SR models of every seed on the same users and stored candidates,
and both SR models on full ranking (history masked) of the same users; with several seeds, mean rows with the
standard deviation (``metrics_std``).

Presets (fields left unset take the preset's value; any flag overrides); weights default to ``--dtype auto``:

``cpu``  sized for a 2-core CPU, offline, SmolLM2-135M-Instruct: 20 categories, the last 10 items of 96 users
         (a seeded subset, ``--max_users``) in the prompt, item texts cut to 16 tokens, 1 epoch, LoRA on q/v of the
         top 10 layers, SASRec for at most 20 epochs, one seed (2020), every test user.
``gpu``  every user, the last 50 items, 32-token item texts, 2 epochs, LoRA on every linear layer, SASRec for up
         to 200 epochs (early stopping), seeds 2020, 2021, 2022, every test user.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import HfArgumentParser
from transformers.trainer_utils import get_last_checkpoint

from ...data import load_benchmark, training_sequences
from ...evaluation import evaluate_scorer, popularity_scorer
from ...models.p2rec import PreferenceParserLM
from ...trainers.sr_trainer import evaluate_sr_model
from ...utils import atomic_write_json, run_script
from ..common.backbones import resolve_dtype
from ..common.prompts import ItemCatalog
from ..common.ranking import RankingTable, write_recommender_info
from ..common.teachers import load_or_train_teacher, teacher_display_name
from ..common.runs import MethodScriptArguments, save_into, start_run
from .categories import teacher_item_categories
from .config import PreferenceParserSFTConfig
from .data import SFTLevel, build_parser_examples, uncapped_cost
from .embeddings import EMBEDDING_MODES, EMBEDDING_SCALES, item_embedding_table
from .sr_models import (is_saved_model, load_sr_model, sr_folders, sr_training_seconds, train_sr_job,
                        train_sr_jobs_in_processes)
from .prompts import PROMPT_VERSION, PreferencePrompter
from .trainer import PreferenceParserTrainer

logger = logging.getLogger("hfrec.p2rec")

PRESETS: dict[str, dict] = {
    "cpu": dict(
        num_categories=20, max_history=10, item_max_tokens=16, max_users=96, sft_epochs=1.0, learning_rate=5e-4,
        per_device_train_batch_size=8, gradient_accumulation_steps=1, lora_target_modules="q_proj,v_proj",
        lora_top_layers=10, embedding_batch_size=32, sr_epochs=20.0, sr_seeds="2020", teacher_epochs=20.0,
        eval_users=None,
    ),
    "gpu": dict(
        num_categories=20, max_history=50, item_max_tokens=32, max_users=None, sft_epochs=2.0, learning_rate=2e-4,
        per_device_train_batch_size=16, gradient_accumulation_steps=1, lora_target_modules="all-linear",
        lora_top_layers=0, embedding_batch_size=128, sr_epochs=200.0, sr_seeds="2020,2021,2022",
        teacher_epochs=200.0, eval_users=None,
    ),
}
SR_LABELS = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "caser": "Caser"}
# flags that change only how the finished models are ranked or shown: a rerun may change them
EVAL_ONLY = ("output_dir", "preset", "num_candidates", "eval_split", "eval_users", "eval_batch_size", "disable_tqdm",
             "resume_from_checkpoint", "embedding_batch_size", "compare_sft_levels", "sr_workers")
SETTINGS_NAME = "p2rec_settings.json"
SFT_COST_NAME = "sft_cost.json"
PARSER_STATS_NAME = "p2rec_parser.json"


@dataclass
class P2RecScriptArguments(MethodScriptArguments):
    output_dir: str = field(default="runs/p2rec", metadata={"help": "Where everything is written."})
    num_categories: int | None = field(default=None, metadata={"help": "K latent categories (k-means clusters)."})
    kmeans_n_init: int = field(default=10, metadata={"help": "k-means restarts (seeded by --seed)."})
    teacher_mix: float = field(
        default=0.0,
        metadata={"help": "Weight of the teacher's predicted category distribution in the target (0: category "
                  "frequencies only)."},
    )
    max_history: int | None = field(default=None, metadata={"help": "Most recent items in the prompt (and target)."})
    item_max_tokens: int | None = field(default=None, metadata={"help": "Token budget of each item's text."})
    item_fields: str | None = field(
        default=None, metadata={"help": "Comma-separated item text fields after the title; unset = every field."}
    )
    pooling: str = field(default="last", metadata={"help": "last (last real token) | mean (over real tokens)."})
    sft_level: str = field(
        default="user",
        metadata={"help": "user (one SFT example per user: P2Rec) | instance (one per interaction prefix -> the next "
                  "item's category: the conventional SFT the cost comparison measures)."},
    )
    max_prefixes_per_user: int | None = field(
        default=None, metadata={"help": "Instance level: a seeded sample of at most N prefixes per user (unset: all)."}
    )
    max_users: int | None = field(
        default=None, metadata={"help": "SFT on a seeded subset of at most N users (both levels: the same users)."}
    )
    compare_sft_levels: bool = field(
        default=False,
        metadata={"help": "After the run, train the other SFT level on a fresh parser (same settings) and write both "
                  "levels' examples, tokens and wall time to OUTPUT/sft_cost.json."},
    )
    sft_epochs: float | None = field(default=None, metadata={"help": "Epochs of the parser SFT."})
    learning_rate: float | None = field(default=None, metadata={"help": "Learning rate of the LoRA weights and head."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: str | None = field(
        default=None, metadata={"help": "Comma-separated module names, or all-linear."}
    )
    sft_args: str = field(default="{}", metadata={"help": "JSON: any other PreferenceParserSFTConfig fields."})
    embedding_batch_size: int | None = field(default=None, metadata={"help": "Items per forward for the table."})
    sr_model: str = field(
        default="sasrec",
        metadata={"help": "SR model(s) enhanced and compared, comma-separated: sasrec | gru4rec | caser (the first is "
                  "the run folder's model; all share one item table)."},
    )
    sr_model_kwargs: str = field(default="{}", metadata={"help": "JSON of SR config overrides."})
    sr_max_seq_length: int = field(default=50, metadata={"help": "Items of history the SR model reads."})
    sr_epochs: float | None = field(default=None, metadata={"help": "Epoch cap of each SR model (early stopping)."})
    sr_seeds: str | None = field(default=None, metadata={"help": "Comma-separated seeds of the SR comparison."})
    sr_args: str = field(default="{}", metadata={"help": "JSON: any other SRTrainingConfig fields."})
    embedding_mode: str = field(
        default="auto",
        metadata={"help": "auto (init, PCA when wider; fuse when narrower) | init | frozen | fuse "
                  "(docs/CONTRACTS.md, load_item_embeddings)."},
    )
    embedding_scale: str = field(
        default="match_init", metadata={"help": "match_init (the spread of the SR model's own init) | none."}
    )
    eval_batch_size: int = field(default=512, metadata={"help": "Users per SR ranking batch."})
    sr_workers: int = field(
        default=1,
        metadata={"help": "SR models trained at once, each in its own process (>1: a GPU is shared by several small "
                  "models, which one alone leaves mostly idle); the same seeds and results as one at a time."},
    )

    def apply_preset(self) -> "P2RecScriptArguments":
        if self.preset not in (*PRESETS, "none"):
            raise ValueError(f"Unknown preset {self.preset!r}: use one of {[*PRESETS, 'none']}")
        # preset none: the cpu sizes, but every user and every example unless capped
        values = PRESETS.get(self.preset) or {**PRESETS["cpu"], "max_users": None, "eval_users": None}
        for key, value in values.items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.dtype is None:
            self.dtype = "auto"
        resolve_dtype(self.dtype)  # a clear error for an unknown name
        if self.embedding_mode not in EMBEDDING_MODES:
            raise ValueError(f"--embedding_mode {self.embedding_mode!r} is unknown; use one of {EMBEDDING_MODES}")
        if self.embedding_scale not in EMBEDDING_SCALES:
            raise ValueError(f"--embedding_scale {self.embedding_scale!r} is unknown; use one of {EMBEDDING_SCALES}")
        SFTLevel.parse(self.sft_level)
        if self.max_prefixes_per_user is not None and self.max_prefixes_per_user < 1:
            raise ValueError(f"--max_prefixes_per_user must be >= 1 (unset: every prefix), got "
                             f"{self.max_prefixes_per_user}")
        self.sr_model_types()
        if self.sr_workers < 1:
            raise ValueError(f"--sr_workers must be >= 1 (1: one SR model at a time), got {self.sr_workers}")
        if self.sr_workers > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("--sr_workers > 1 starts its own processes: run it with python, not accelerate launch "
                             "(or keep --sr_workers 1)")
        self.seeds()  # a clear error for a bad list
        return self

    def sr_model_types(self) -> list[str]:
        types = [t.strip() for t in self.sr_model.split(",") if t.strip()]
        unknown = [t for t in types if t not in SR_LABELS]
        if not types or unknown or len(set(types)) != len(types):
            raise ValueError(f"--sr_model {self.sr_model!r}: give distinct SR models, comma-separated, from "
                             f"{sorted(SR_LABELS)}")
        return types

    def seeds(self) -> list[int]:
        try:
            seeds = [int(s) for s in str(self.sr_seeds).split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"--sr_seeds must be comma-separated integers, e.g. 2020,2021,2022; got "
                             f"{self.sr_seeds!r}") from None
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"--sr_seeds needs at least one seed and no repeats, got {self.sr_seeds!r}")
        return seeds


def make_parser() -> HfArgumentParser:
    return HfArgumentParser(
        (P2RecScriptArguments,),
        description="P2Rec (preference parsing): LLM-enhanced item embeddings for an SR model, with its comparison "
                    "table against the same SR model trained from scratch.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# ---------------------------------------------------------------------------------------------------- steps
def check_settings(out: Path, args: P2RecScriptArguments) -> None:
    """Record what the trained models depend on. Once the folder holds a trained parser or SR model, a run with
    other training settings would silently reuse them, so it is refused."""
    settings = {k: v for k, v in asdict(args).items() if k not in EVAL_ONLY}
    path = out / SETTINGS_NAME
    trained = (out / "parser" / "adapter_config.json").exists() or any(
        is_saved_model(folder) for sr_model in args.sr_model_types()
        for _, *folders in sr_folders(out, args.seeds(), sr_model, args.sr_model_types()) for folder in folders)
    if path.exists() and trained:
        saved = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in settings.keys() | saved.keys() if settings.get(k) != saved.get(k))
        if changed:
            raise ValueError(f"{out} holds a P2Rec run with other training settings ({', '.join(changed)}: "
                             f"{ {k: saved.get(k) for k in changed} } there, { {k: settings.get(k) for k in changed} } "
                             "now): use a new --output_dir, or the settings of that run")
    elif int(os.environ.get("RANK", "0")) == 0:
        atomic_write_json(path, settings)


def parser_prompter(args, tokenizer, ds) -> PreferencePrompter:
    fields = [f.strip() for f in args.item_fields.split(",") if f.strip()] if args.item_fields else None
    return PreferencePrompter(tokenizer, ItemCatalog.from_items(ds.item_table), domain=args.domain or ds.domain,
                              max_history=args.max_history, item_max_tokens=args.item_max_tokens, item_fields=fields)


def new_parser(args):
    """A fresh ``PreferenceParserLM`` on the backbone (zero head), on the GPU when there is one, and its tokenizer."""
    model, tok = PreferenceParserLM.from_backbone(args.backbone, num_categories=args.num_categories,
                                                  pooling=args.pooling, dtype=args.dtype)
    return (model.cuda() if torch.cuda.is_available() else model), tok


def parser_examples(args, ds, teacher, categories: np.ndarray, tok, level: SFTLevel) -> tuple[list[dict], dict]:
    """The SFT examples of ``level`` and their record: count, prompt tokens, and the uncapped set's size."""
    sequences = training_sequences(ds["train"])
    t0 = time.perf_counter()
    examples = build_parser_examples(sequences, parser_prompter(args, tok, ds), categories, args.num_categories,
                                     teacher=teacher, teacher_mix=args.teacher_mix, level=level,
                                     max_prefixes_per_user=args.max_prefixes_per_user,
                                     max_users=args.max_users, seed=args.seed)
    tokens = sum(len(e["input_ids"]) for e in examples)
    logger.info("parser SFT: %d %s-level examples, %d prompt tokens (mean %.0f)", len(examples), level.value, tokens,
                tokens / max(len(examples), 1))
    return examples, {"level": level.value, "examples": len(examples), "prompt_tokens": tokens,
                      "examples_s": round(time.perf_counter() - t0, 2),
                      "uncapped": uncapped_cost(examples, sequences, level)}


def fit_parser(args, model, tok, examples: list[dict], work_dir: Path, **config_overrides):
    """Train ``model`` on ``examples`` with the run's SFT settings; returns ``(trainer, record)``, the record holding
    the tokens trained, steps, losses and the wall time of ``trainer.train()``."""
    config = args.sft_kwargs(work_dir, args.sft_epochs, args.learning_rate)
    config.update(json.loads(args.sft_args), **config_overrides)
    trainer = PreferenceParserTrainer(model=model, args=PreferenceParserSFTConfig(**config),
                                      train_dataset=Dataset.from_list(examples), processing_class=tok)
    resume = get_last_checkpoint(config["output_dir"]) if args.resume_from_checkpoint and \
        Path(config["output_dir"]).is_dir() else None
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # the clock stops when the GPU is done
    wall = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return trainer, {"tokens_trained": trainer.tokens_trained, "steps": trainer.state.global_step,
                     "epochs": trainer.state.epoch, "train_s": round(wall, 2),
                     "tokens_per_s": round(trainer.tokens_trained / wall, 1) if wall > 0 else None,
                     "train_runtime_s": result.metrics.get("train_runtime"),
                     "first_loss": losses[0] if losses else None, "train_loss": result.metrics.get("train_loss")}


def train_parser(args, ds, teacher, out: Path, timings: dict):
    """Stages 1-2: categories, then the parser SFT at ``--sft_level``; saves base + adapter + tokenizer and the SFT
    record in ``out/parser`` and returns ``(trained model, tokenizer)``."""
    parser_dir = out / "parser"
    t0 = time.time()
    categories = teacher_item_categories(teacher, args.num_categories, seed=args.seed, n_init=args.kmeans_n_init)
    timings["categories_s"] = round(time.time() - t0, 1)
    model, tok = new_parser(args)
    examples, record = parser_examples(args, ds, teacher, categories, tok, SFTLevel.parse(args.sft_level))
    timings["examples_s"] = record["examples_s"]
    # the saved base (backbone + zero head) is the PEFT base of the adapter written next to it
    model.name_or_path = str(parser_dir.resolve())
    if int(os.environ.get("RANK", "0")) == 0:
        save_into(parser_dir, lambda d: (model.save_pretrained(d), tok.save_pretrained(d)))
        sizes = np.bincount(categories[1:], minlength=args.num_categories).tolist()
        atomic_write_json(parser_dir / "categories.json", {
            "num_categories": args.num_categories, "seed": args.seed, "n_init": args.kmeans_n_init,
            "source": f"k-means over {teacher.config.model_type} item_representations()", "sizes": sizes,
            "categories": categories.tolist()})
    work = out / "parser_training"
    t0 = time.time()
    trainer, fit = fit_parser(args, model, tok, examples, work)
    timings["parser_sft_s"] = round(time.time() - t0, 1)
    peft_model = trainer.accelerator.unwrap_model(trainer.model)
    if trainer.is_world_process_zero():
        atomic_write_json(parser_dir / PARSER_STATS_NAME, {**record, **fit, "prompt_version": PROMPT_VERSION})
        save_into(parser_dir, peft_model.save_pretrained)  # the adapter last: its presence marks the parser done
        shutil.rmtree(work, ignore_errors=True)  # checkpoints: the parser is saved
    trainer.accelerator.wait_for_everyone()
    return peft_model, tok


def measure_parser_sft(args, ds, teacher, out: Path, level: SFTLevel | str) -> dict:
    """The parser SFT of ``level`` on a fresh parser from the same backbone, with the run's settings and the saved
    run's categories (``out/parser/categories.json``), trained and thrown away: its record (examples, tokens, wall
    time, the uncapped set's size). No checkpoints are written, so only the training is timed."""
    saved = json.loads((out / "parser" / "categories.json").read_text(encoding="utf-8"))
    model, tok = new_parser(args)
    examples, record = parser_examples(args, ds, teacher, np.asarray(saved["categories"]), tok,
                                       SFTLevel.parse(level))
    work = out / f"parser_sft_{SFTLevel.parse(level).value}"
    try:
        trainer, fit = fit_parser(args, model, tok, examples, work, save_strategy="no")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {**record, **fit}


def load_parser(parser_dir: Path, dtype="auto"):
    """A trained parser (base + adapter) and its tokenizer, on the GPU when there is one."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    model = PreferenceParserLM.from_pretrained(str(parser_dir), dtype=resolve_dtype(dtype), use_safetensors=True)
    model = model.cuda() if torch.cuda.is_available() else model
    if not hasattr(model, "peft_config"):  # transformers loads an adapter found beside the weights by itself
        model = PeftModel.from_pretrained(model, str(parser_dir))
    return model.eval(), AutoTokenizer.from_pretrained(str(parser_dir))


def enhanced_item_table(args, ds, teacher, out: Path, timings: dict) -> np.ndarray:
    """Stages 1-3: the parser (trained now or loaded) and its (N, H) item table (cached)."""
    parser_dir = out / "parser"
    if (parser_dir / "adapter_config.json").exists():
        logger.info("%s holds a trained parser: loading it", parser_dir)
        model, tok = load_parser(parser_dir, args.dtype)
    else:
        model, tok = train_parser(args, ds, teacher, out, timings)
    t0 = time.time()
    table = item_embedding_table(model, parser_prompter(args, tok, ds), ds.num_items, cache_dir=out / "item_embeddings",
                                 batch_size=args.embedding_batch_size, progress=not args.disable_tqdm)
    timings["item_embeddings_s"] = round(time.time() - t0, 1)
    return table


def sr_models(args, ds, teacher, out: Path, timings: dict) -> dict[str, list[tuple[int, object, object]]]:
    """SR model type -> (seed, scratch model, enhanced model) per seed, trained now or loaded from the folder; every
    enhanced model takes the same item table."""
    types = args.sr_model_types()
    folders = {t: sr_folders(out, args.seeds(), t, types) for t in types}
    table = None
    if not all(is_saved_model(f) for per_seed in folders.values() for _, _, f in per_seed):
        table = enhanced_item_table(args, ds, teacher, out, timings)
    jobs = [(sr_model, seed, folder, with_table) for sr_model, per_seed in folders.items()
            for seed, scratch_dir, enhanced_dir in per_seed
            for folder, with_table in ((scratch_dir, False), (enhanced_dir, True)) if not is_saved_model(folder)]
    t0 = time.time()
    if args.sr_workers > 1 and len(jobs) > 1:
        timings.update(train_sr_jobs_in_processes(args, jobs, table, out))
    else:
        for sr_model, seed, folder, with_table in jobs:
            timings.update(train_sr_job(args, ds, sr_model, seed, folder, table if with_table else None, out))
    if jobs:
        timings["sr_training_s"] = round(time.time() - t0, 1)
    shutil.rmtree(out / "sr_training", ignore_errors=True)
    return {sr_model: [(seed, load_sr_model(scratch_dir), load_sr_model(enhanced_dir))
                       for seed, scratch_dir, enhanced_dir in per_seed] for sr_model, per_seed in folders.items()}


def mark_full_ranking(table: RankingTable, method: str) -> None:
    """The last row of ``table`` was ranked over the whole catalogue (RankingTable.add records candidates). Its record
    takes ``method``, the label of the same model's candidates row: one method label with both protocols, as
    ``hfrec benchmark`` reads an LLM run's records (the printed table keeps the ", full ranking" label)."""
    table.records[-1].update(protocol="full", num_candidates=None, method=method)


def add_mean_rows(table: RankingTable, labels: list[str], label: str, model_type: str, num_users: int,
                  full_method: str | None, **extra):
    """Mean (and sample standard deviation, ``metrics_std``) of the rows ``labels`` (one per seed); ``full_method``:
    the rows were ranked over the whole catalogue, and the record takes that method label."""
    per_seed = [metrics for name, _, metrics in table.rows if name in labels]
    keys = [k for k in per_seed[0] if isinstance(per_seed[0][k], float)]
    mean = {k: float(np.mean([m[k] for m in per_seed])) for k in keys}
    std = {k: float(np.std([m[k] for m in per_seed], ddof=1)) for k in keys}
    table.add(label, model_type, mean, num_users, metrics_std=std, seeds=len(per_seed), **extra)
    if full_method:
        mark_full_ranking(table, full_method)


def cost_of(folder: Path, parser: dict | None) -> dict:
    """``train_s`` / ``train_tokens`` of the SR model in ``folder``: its own training seconds, plus the parser SFT's
    seconds and tokens when its item table came from the parser (``parser``: the parser's training record)."""
    seconds = sr_training_seconds(folder)
    if parser is None:
        return {"train_s": seconds}
    return {"train_s": None if seconds is None or parser.get("train_s") is None else round(seconds + parser["train_s"], 1),
            "train_tokens": parser.get("tokens_trained")}


def rank_models(args, ds, teacher, models: dict, out: Path, command: str) -> RankingTable:
    """Popularity, the teacher and, per SR model type, both SR models of every seed on the same users: the stored
    candidates, then full ranking of the SR models (and mean rows over several seeds). P2Rec's rows carry the
    parser's training record."""
    eval_rows = ds[args.eval_split]
    if args.eval_users:
        eval_rows = eval_rows.select(range(min(args.eval_users, len(eval_rows))))
    n = len(eval_rows)
    table = RankingTable(ds.name, args.eval_split, args.num_candidates, args.split_seed, command)
    # baseline rows: hfrec benchmark ranks popularity and the teacher itself and skips these
    table.add("popularity", "popularity",
              evaluate_scorer(popularity_scorer(ds["train"], ds.num_items), eval_rows, "candidates", progress=False), n,
              baseline=True)
    table.add(f"{teacher_display_name(teacher)} (teacher)", teacher.config.model_type,
              evaluate_sr_model(teacher, eval_rows, "candidates", args.eval_batch_size, progress=False), n,
              baseline=True)
    stats_path = out / "parser" / PARSER_STATS_NAME
    parser = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.exists() else None
    for sr_model, per_seed in models.items():
        sr_name = SR_LABELS[sr_model]
        # each row's training cost: its SR model's training, plus the parser's SFT for the enhanced model
        costs = {seed: (cost_of(scratch_dir, None), cost_of(enhanced_dir, parser))
                 for seed, scratch_dir, enhanced_dir in sr_folders(out, args.seeds(), sr_model, args.sr_model_types())}
        kinds = ((f"{sr_name} from scratch", sr_model, {}),
                 (f"{sr_name} + P2Rec embeddings", "p2rec", {"parser": parser, "sr_model": sr_model}))
        for protocol, suffix in (("candidates", ""), ("full", ", full ranking")):
            full = protocol == "full"
            for index, (name, model_type, extra) in enumerate(kinds):
                labels = []
                for seed, *pair in per_seed:  # pair = (scratch, enhanced)
                    labels.append(f"{name} (seed {seed}){suffix}")
                    metrics = evaluate_sr_model(pair[index], eval_rows, protocol, args.eval_batch_size, progress=False)
                    table.add(labels[-1], model_type, metrics, n, train_seed=seed, **costs[seed][index], **extra)
                    if full:
                        mark_full_ranking(table, f"{name} (seed {seed})")
                if len(per_seed) > 1:
                    mean_label = f"{name} (mean of {len(per_seed)} seeds)"
                    add_mean_rows(table, labels, mean_label + suffix, model_type, n, mean_label if full else None,
                                  **extra)
    return table


def compare_sft_levels(args, ds, teacher, out: Path) -> dict:
    """P2Rec's cost claim measured: the run's parser SFT record (``--sft_level``) against the other level trained on
    a fresh parser from the same backbone with the same settings and categories (:func:`measure_parser_sft`).

    Each level's ``uncapped`` entry is the size of its whole example set; where a cap kept a sample,
    ``estimated_uncapped_train_s`` is that set's prompt tokens x ``--sft_epochs`` at the measured tokens/s (training
    time is close to linear in tokens for prompts of this length; fixed overheads are left out)."""
    level = SFTLevel.parse(args.sft_level)
    other = SFTLevel.INSTANCE if level is SFTLevel.USER else SFTLevel.USER
    records = {level.value: json.loads((out / "parser" / PARSER_STATS_NAME).read_text(encoding="utf-8")),
               other.value: measure_parser_sft(args, ds, teacher, out, other)}
    for record in records.values():
        uncapped, rate = record["uncapped"], record["tokens_per_s"]
        record["estimated_uncapped_train_s"] = (round(uncapped["prompt_tokens"] * args.sft_epochs / rate, 1)
                                                if rate and uncapped["prompt_tokens"] is not None else None)
    user, instance = records["user"], records["instance"]

    def ratio(key, sub=None):
        a, b = (instance[key][sub], user[key][sub]) if sub else (instance[key], user[key])
        return round(a / b, 2) if a is not None and b else None

    result = {"first_measured": level.value, "sft_epochs": args.sft_epochs, "levels": records,
              "instance_over_user": {"uncapped_examples": ratio("uncapped", "examples"),
                                     "uncapped_prompt_tokens": ratio("uncapped", "prompt_tokens"),
                                     "estimated_uncapped_train_s": ratio("estimated_uncapped_train_s"),
                                     "measured_train_s": ratio("train_s"), "measured_tokens": ratio("tokens_trained")}}
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_write_json(out / SFT_COST_NAME, result)
    return result


def save_recommender_info(out: Path, args, ds) -> None:
    """What the pipeline needs besides the weights (the dataset of the items), and where the item table came from."""
    table = json.loads((out / "p2rec_sr_training.json").read_text(encoding="utf-8"))["item_table"]
    write_recommender_info(out, method="p2rec", dataset=ds.name, data_dir=args.data_dir, split_seed=args.split_seed,
                           num_candidates=args.num_candidates, sr_model=args.sr_model_types()[0],
                           item_embeddings={"source": "P2Rec preference parser", "parser": "parser",
                                            "backbone": args.backbone or "SmolLM2-135M-Instruct",
                                            "num_categories": args.num_categories, **table})


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    (args,) = make_parser().parse_args_into_dataclasses(args=argv)
    out, command = start_run(args.apply_preset(), argv, "trainers/sft_p2rec.py")
    check_settings(out, args)
    timings: dict[str, float] = {}
    t_start = time.time()

    ds = load_benchmark(args.dataset, data_dir=args.data_dir, num_candidates=args.num_candidates,
                        seed=args.split_seed, max_history=args.sr_max_seq_length)
    t0 = time.time()
    teacher, teacher_dir = load_or_train_teacher(
        out, args.teacher_dir, args.teacher, args.dataset, args.data_dir, args.teacher_epochs, args.seed,
        args.split_seed, args.num_candidates, args.disable_tqdm)
    timings["teacher_s"] = round(time.time() - t0, 1)
    models = sr_models(args, ds, teacher, out, timings)

    table = rank_models(args, ds, teacher, models, out, command)
    cost = None
    if args.compare_sft_levels:
        t0 = time.time()
        cost = compare_sft_levels(args, ds, teacher, out)
        timings["compare_sft_levels_s"] = round(time.time() - t0, 1)
    timings["total_s"] = round(time.time() - t_start, 1)
    for record in table.records:
        record["timings"] = timings
    if int(os.environ.get("RANK", "0")) == 0:
        save_recommender_info(out, args, ds)
    sr_names = [SR_LABELS[t] for t in args.sr_model_types()]
    header = (f"P2Rec on {ds.name} ({args.eval_split}, {table.rows[0][1]} users; {args.num_candidates} candidates, and "
              f"full ranking where marked; {', '.join(sr_names)} from scratch vs with the parser's item embeddings, "
              f"seeds {args.sr_seeds}, teacher {teacher_display_name(teacher)} from {teacher_dir}, preset "
              f"{args.preset}, {timings['total_s']:.0f} s)")
    table.save(out, header)
    final = next(m for label, _, m in table.rows if label.startswith(f"{sr_names[0]} + P2Rec"))
    return {label: metrics for label, _, metrics in table.rows} | {"timings": timings, "final": final,
                                                                    "sft_cost": cost}


__all__ = ["P2RecScriptArguments", "PRESETS", "main", "make_parser"]

if __name__ == "__main__":
    run_script(main)
