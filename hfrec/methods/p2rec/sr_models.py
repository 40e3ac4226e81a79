"""P2Rec's SR models: where each (model type, seed, scratch / enhanced) model lives in a run folder, training one
(from scratch, or with the parser's item table through ``load_item_embeddings``), and training many at a time in
spawned worker processes (one small SR model leaves a GPU mostly idle). ``hfrec.methods.p2rec.script`` decides
which models a run needs and ranks them."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, set_seed

from ...data import load_benchmark
from ...trainers.sr_config import SRTrainingConfig
from ...trainers.sr_trainer import SRTrainer
from ...trainers.train_sr import SRScriptArguments, build_model
from ...utils import atomic_write_json
from ..common.runs import save_into
from .embeddings import load_enhanced_embeddings

logger = logging.getLogger("hfrec.p2rec")


def sr_folders(out: Path, seeds: list[int], sr_model: str | None = None,
               sr_model_types: list[str] | None = None) -> list[tuple[int, Path, Path]]:
    """(seed, scratch folder, enhanced folder) per seed: the first SR model's first-seed enhanced model is ``out``
    itself; further SR models of ``--sr_model`` have the same layout under ``out/<model>``."""
    if sr_model is not None and sr_model_types and sr_model != sr_model_types[0]:
        out = out / sr_model
    return [(s, (out if i == 0 else out / f"seed-{s}") / "scratch", out if i == 0 else out / f"seed-{s}")
            for i, s in enumerate(seeds)]


def is_saved_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def train_sr_model(args, ds, sr_model: str, seed: int, folder: Path, work: Path, table: np.ndarray | None = None):
    """The SR model ``sr_model`` trained with ``seed`` (with the P2Rec table when given), saved into ``folder``."""
    set_seed(seed)  # the same initial weights for the scratch and the enhanced model (but the item table)
    model = build_model(SRScriptArguments(model=sr_model, max_seq_length=args.sr_max_seq_length,
                                          model_kwargs=args.sr_model_kwargs), ds.num_items)
    loaded = {}
    if table is not None:
        model, loaded = load_enhanced_embeddings(model, table, args.embedding_mode, args.embedding_scale)
    config = {"output_dir": str(work), "num_train_epochs": args.sr_epochs, "seed": seed,
              "per_device_eval_batch_size": args.eval_batch_size, "disable_tqdm": args.disable_tqdm,
              **json.loads(args.sr_args)}
    trainer = SRTrainer(model=model, args=SRTrainingConfig(**config), train_dataset=ds["train"],
                        eval_dataset=ds["validation"])
    started = time.perf_counter()
    trainer.train()
    train_s = round(time.perf_counter() - started, 1)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if trainer.is_world_process_zero():
        save_into(folder, model.save_pretrained)
        atomic_write_json(folder / "p2rec_sr_training.json", {
            "seed": seed, "epochs": trainer.state.epoch, "train_s": train_s, "item_table": loaded or None,
            "best_validation": {trainer.args.metric_for_best_model: trainer.state.best_metric}})
        shutil.rmtree(work, ignore_errors=True)  # checkpoints: the model is saved
    trainer.accelerator.wait_for_everyone()
    return model.eval()


def sr_training_seconds(folder: Path) -> float | None:
    """The seconds the SR model in ``folder`` trained for (None for a folder saved before they were recorded)."""
    path = folder / "p2rec_sr_training.json"
    return json.loads(path.read_text(encoding="utf-8")).get("train_s") if path.is_file() else None


def load_sr_model(folder: Path):
    model = AutoModel.from_pretrained(str(folder))
    return (model.cuda() if torch.cuda.is_available() else model).eval()


def train_sr_job(args, ds, sr_model: str, seed: int, folder: Path, table, out: Path) -> dict:
    """One SR model trained and saved into ``folder``; returns its timing entry."""
    t0 = time.time()
    kind = "scratch" if table is None else "p2rec"
    train_sr_model(args, ds, sr_model, seed, folder, out / "sr_training" / f"{sr_model}-{kind}-{seed}", table)
    return {f"sr_{sr_model}_{kind}_{seed}_s": round(time.time() - t0, 1)}


def _sr_worker(args, job, table, out: Path, threads: int) -> dict:
    """A worker process's job: its own copy of the benchmark (from the Arrow cache) and one SR model."""
    torch.set_num_threads(threads)  # the workers share the machine's cores
    ds = load_benchmark(args.dataset, data_dir=args.data_dir, num_candidates=args.num_candidates,
                        seed=args.split_seed, max_history=args.sr_max_seq_length)
    sr_model, seed, folder, with_table = job
    return train_sr_job(args, ds, sr_model, seed, folder, table if with_table else None, out)


def train_sr_jobs_in_processes(args, jobs: list, table, out: Path) -> dict:
    """``jobs`` trained ``--sr_workers`` at a time in spawned processes (CUDA cannot be forked); the models land in
    their folders as in-process training would leave them. A failed job raises here with its own error."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    workers = min(args.sr_workers, len(jobs))
    threads = max(1, (os.cpu_count() or 1) // workers)
    logger.info("training %d SR models, %d at a time in worker processes", len(jobs), workers)
    timings: dict = {}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for result in [pool.submit(_sr_worker, args, job, table, out, threads) for job in jobs]:
            timings.update(result.result())
    return timings


__all__ = ["is_saved_model", "load_sr_model", "sr_training_seconds", "sr_folders", "train_sr_job", "train_sr_jobs_in_processes",
           "train_sr_model"]
