"""Train an SR teacher / baseline (SASRec, GRU4Rec, Caser) on a benchmark, with early stopping on
validation NDCG@10, then write test metrics (full ranking and candidates) as `eval_results.json`.

    python trainers/train_sr.py --model sasrec --dataset ml-100k --output_dir runs/sasrec-ml100k
    accelerate launch trainers/train_sr.py --model sasrec --dataset ml-1m --output_dir runs/sasrec-ml1m
    python trainers/train_sr.py ... --resume_from_checkpoint true     # continue from the last checkpoint

Every `TrainingArguments` option is accepted (`--help` lists them); hfrec's defaults are in
`hfrec.trainers.sr_config.SRTrainingConfig`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser, set_seed
from transformers.trainer_utils import get_last_checkpoint

from ..data import load_benchmark
from ..evaluation import evaluation_record
from ..models import SR_MODELS
from .sr_config import SRTrainingConfig
from .sr_trainer import SRTrainer, evaluate_sr_model
from ..methods.common.ranking import write_recommender_info
from ..utils import atomic_write_json, atomic_write_text, run_script

logger = logging.getLogger("hfrec.train_sr")


@dataclass
class SRScriptArguments:
    model: str = field(default="sasrec", metadata={"help": f"SR model: {' | '.join(SR_MODELS)}."})
    dataset: str = field(default="ml-100k", metadata={"help": "Benchmark name (hfrec.data.BENCHMARKS) or 'atomic'."})
    data_dir: str | None = field(default=None, metadata={"help": "Folder of RecBole atomic files (optional)."})
    num_candidates: int = field(default=20, metadata={"help": "Candidate list size for the candidates protocol."})
    split_seed: int = field(default=42, metadata={"help": "Seed of the stored candidate lists (shared by every method)."})
    max_seq_length: int = field(default=50, metadata={"help": "Items of history the model reads."})
    model_kwargs: str = field(default="{}", metadata={"help": 'JSON of config overrides, e.g. \'{"hidden_size": 64}\'.'})


def make_parser() -> HfArgumentParser:
    return HfArgumentParser(
        (SRScriptArguments, SRTrainingConfig),
        description="Train an SR model (SASRec, GRU4Rec, Caser) with early stopping on validation NDCG@10.",
        epilog="example:\n  hfrec train sr --model sasrec --dataset ml-100k --output-dir runs/sasrec-ml100k\n"
               "  accelerate launch trainers/train_sr.py --model gru4rec --dataset ml-1m --output_dir runs/gru4rec",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_model(script: SRScriptArguments, num_items: int):
    if script.model not in SR_MODELS:
        raise ValueError(f"Unknown SR model {script.model!r}: use one of {sorted(SR_MODELS)}.")
    try:
        overrides = json.loads(script.model_kwargs)
    except json.JSONDecodeError as err:
        raise ValueError(f"--model_kwargs is not valid JSON ({err}): {script.model_kwargs!r}") from err
    config_class, model_class = SR_MODELS[script.model]
    config = config_class(num_items=num_items, max_seq_length=script.max_seq_length, **overrides)
    return model_class(config)


def main(argv: list[str] | None = None) -> dict:
    script, args = make_parser().parse_args_into_dataclasses(args=argv)
    if args.output_dir is None:
        raise ValueError("--output_dir is required: where the trained model and its metrics are written.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    set_seed(args.seed)

    ds = load_benchmark(script.dataset, data_dir=script.data_dir, num_candidates=script.num_candidates,
                        seed=script.split_seed, max_history=script.max_seq_length)
    model = build_model(script, ds.num_items)
    trainer = SRTrainer(model=model, args=args, train_dataset=ds["train"], eval_dataset=ds["validation"])

    resume = args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "last"):
        resume = get_last_checkpoint(args.output_dir)
        if resume is None:
            logger.warning("No checkpoint in %s: training from scratch.", args.output_dir)
    started = time.time()
    trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.time() - started
    trainer.save_model(args.output_dir)
    if trainer.is_world_process_zero():
        # Trainer pickles its arguments next to the model; keep a JSON copy instead (nothing loads pickles).
        Path(args.output_dir, "training_args.bin").unlink(missing_ok=True)
        atomic_write_text(Path(args.output_dir) / "training_args.json", args.to_json_string())

    command = "python trainers/train_sr.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    records = []
    model = trainer.accelerator.unwrap_model(trainer.model)
    for protocol in ("full", "candidates"):  # every process ranks its share of the users (hfrec.evaluation)
        metrics = evaluate_sr_model(model, ds["test"], protocol, args.per_device_eval_batch_size,
                                    progress=trainer.is_world_process_zero())
        records.append(evaluation_record(
            metrics, dataset=ds.name, split="test", protocol=protocol, num_candidates=script.num_candidates,
            seed=script.split_seed, model_type=script.model, num_users=len(ds["test"]), command=command,
            train_seed=args.seed, train_seconds=round(train_seconds, 1), epochs=trainer.state.epoch,
            best_validation={args.metric_for_best_model: trainer.state.best_metric},
            num_processes=trainer.accelerator.num_processes,
        ))
    if trainer.is_world_process_zero():
        atomic_write_json(Path(args.output_dir) / "eval_results.json", records)
        write_recommender_info(args.output_dir, method=script.model, dataset=ds.name, data_dir=script.data_dir,
                               split_seed=script.split_seed, num_candidates=script.num_candidates)
        print(json.dumps({r["protocol"]: r["metrics"] for r in records}, indent=2))
    return {r["protocol"]: r["metrics"] for r in records}


if __name__ == "__main__":
    run_script(main)
