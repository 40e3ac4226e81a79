"""DELRec end to end: SR teacher -> stage 1 (soft prompt distilling) -> stage 2 (LoRA) -> ranking table.

    python trainers/sft_delrec.py --preset cpu --output_dir runs/delrec-cpu
    accelerate launch --config_file hfrec/trainers/accelerate_configs/single_gpu.yaml \\
        trainers/sft_delrec.py --preset gpu --teacher_dir runs/sasrec-ml100k --output_dir runs/delrec-gpu
    python trainers/sft_delrec.py ... --resume_from_checkpoint true      # continue where it stopped
    hfrec train delrec --preset cpu --output_dir runs/delrec-cpu          # the same, through the CLI

The table compares, on the same test users and the same stored candidate lists: popularity, the SR teacher
(both marked ``baseline``: ``hfrec benchmark`` ranks them itself), the zero-shot LLM (the backbone with the same
prompt, teacher hint included, no soft prompt; gpu preset or ``--zero_shot true``), DELRec with its untrained soft
prompt (before stage 1, no LoRA: the untrained-backbone row of the cpu preset), DELRec and, with
``--ablation_no_soft_prompt`` (gpu preset), stage 2 alone: LoRA trained on the same prompt minus the soft prompt,
which measures what stage 1 adds. Trained rows carry their cost (``train_s``, ``train_tokens``; DELRec's row both
stages). Every LLM row ranks candidates by title
log-likelihood through ``hfrec.evaluation.evaluate_scorer`` (``hfrec.methods.common.ranking``), so every prediction
is a valid item. The steps live in functions (``train_stage1``, ``train_stage2``, ``rank_llm_row``); ``main`` only
wires them. Rerunning on a folder that holds a trained DELRec reloads and re-ranks it.

Presets (fields left unset take the preset's value; any flag overrides); weights default to ``--dtype auto``
(bf16 only where the GPU or CPU runs it natively):

``cpu``  sized for a 2-core AVX2-only CPU (bench/RESULTS.md), offline, SmolLM2-135M-Instruct: 10 virtual tokens,
         5 history items, the teacher's top-3, no candidate list in the prompt (shorter prompts; ranking scores the
         candidate titles either way), 24 stage-1 and 96 stage-2 examples, LoRA on the q/v projections of the top 10
         layers (the backward pass stops there), the first 100 test users, no zero-shot row, no ablation row.
``gpu``  the full protocol: 100 virtual tokens (paper), 10 history items, top-5, the 20 candidates listed, every
         test user, ~3.8k stage-1 examples (1 epoch) and ~15k stage-2 examples (16 recent prefixes per user,
         2 epochs), LoRA on every linear layer, batch 64, stage-2 decoder layers compiled (``compile_layers``),
         each LLM row's length normalisation picked on the validation users, the stage-2-without-soft-prompt
         ablation row.
         ``--group_by_length`` cuts padding but was slower with compiled layers on the H100.

Prompt variants (issue 19): ``--prompt_hints none`` is the official stage-2 prompt (LSR), with no teacher
predictions (the zero-shot row then has no hint either); ``--item_titles article_first`` writes "The Usual Suspects
(1995)" for MovieLens's "Usual Suspects, The (1995)", as the official code does. Both are saved with the model, so
the pipeline rebuilds the same prompt.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import HfArgumentParser
from transformers.trainer_utils import get_last_checkpoint

from ...data import load_benchmark
from ...evaluation import evaluate_scorer, popularity_scorer, sr_model_scorer
from ...models.delrec import DELRecForCausalLM
from ...utils import atomic_write_json, run_script
from ..common.backbones import resolve_dtype
from ..common.data import select_training_rows
from ..common.prompts import TITLE_STYLES, ItemCatalog
from ..common.ranking import (GenerateThenMatchScorer, LikelihoodScorer, RankingTable, choose_length_normalization,
                              rank_saved_runs, write_recommender_info)
from ..common.runs import MethodScriptArguments, copy_teacher, save_into, start_run
from ..common.sft import decompile_decoder_layers, training_cost
from ..common.teachers import load_or_train_teacher, teacher_display_name
from .config import DELRecDistillConfig, DELRecSFTConfig
from .data import build_ranking_inputs, build_recommendation_examples, build_stage1_examples
from .prompts import DELRecPrompter
from .trainer import DELRecSFTTrainer, SoftPromptSRDistiller

logger = logging.getLogger("hfrec.delrec")

PRESETS: dict[str, dict] = {
    "cpu": dict(
        num_virtual_tokens=10, teacher_top_k=3, max_history=5, show_candidates=False, stage1_candidates=5,
        stage1_rows_per_user=1, stage1_max_rows=12, stage1_epochs=1.0, stage1_learning_rate=1e-2,
        stage2_rows_per_user=1, stage2_max_rows=96, stage2_epochs=1.0, stage2_learning_rate=2e-3,
        per_device_train_batch_size=8, gradient_accumulation_steps=1, eval_users=100, eval_batch_size=8,
        teacher_epochs=20, dtype="auto", lora_target_modules="q_proj,v_proj", lora_dropout=0.0,
        length_normalize="1.0", compile_layers=False, group_by_length=False, zero_shot=False,
        lora_top_layers=10, ablation_no_soft_prompt=False,
    ),
    "gpu": dict(
        num_virtual_tokens=100, teacher_top_k=5, max_history=10, show_candidates=True, stage1_candidates=10,
        stage1_rows_per_user=2, stage1_max_rows=None, stage1_epochs=1.0, stage1_learning_rate=1e-3,
        stage2_rows_per_user=16, stage2_max_rows=None, stage2_epochs=2.0, stage2_learning_rate=3e-4,
        per_device_train_batch_size=64, gradient_accumulation_steps=1, eval_users=None, eval_batch_size=64,
        teacher_epochs=200, dtype="auto", lora_target_modules="all-linear", lora_dropout=0.0,
        length_normalize="auto", compile_layers=True, group_by_length=False, zero_shot=True,
        lora_top_layers=0, ablation_no_soft_prompt=True,
    ),
}


@dataclass
class DELRecScriptArguments(MethodScriptArguments):
    output_dir: str = field(default="runs/delrec", metadata={"help": "Where everything is written."})
    num_virtual_tokens: int | None = field(default=None, metadata={"help": "Soft prompt length (paper: 100)."})
    teacher_top_k: int | None = field(default=None, metadata={"help": "Teacher recommendations shown in prompts."})
    max_history: int | None = field(default=None, metadata={"help": "History items shown in prompts."})
    show_candidates: bool | None = field(default=None, metadata={"help": "List the candidates in the prompt."})
    teacher_topk_scope: str = field(
        default="candidates",
        metadata={"help": "candidates: the teacher's top-k among the candidate list; catalogue: over all items."},
    )
    stages: str = field(default="both", metadata={"help": "1 | 2 | both | eval (eval: only the table)."})
    stage1_rows_per_user: int | None = field(default=None, metadata={"help": "Recent train prefixes per user."})
    stage1_max_rows: int | None = field(default=None, metadata={"help": "Cap on stage-1 rows (2 examples each)."})
    stage1_candidates: int | None = field(default=None, metadata={"help": "Candidates in TA / RPS prompts."})
    rps_top_k: int = field(default=5, metadata={"help": "Teacher top-k inside the RPS candidates."})
    ta_window: int = field(default=3, metadata={"help": "TA masks one of the last N shown items."})
    stage1_epochs: float | None = field(default=None, metadata={"help": "Stage-1 epochs."})
    stage1_learning_rate: float | None = field(default=None, metadata={"help": "Stage-1 learning rate."})
    stage2_rows_per_user: int | None = field(default=None, metadata={"help": "Recent train prefixes per user."})
    stage2_prefix_stride: int = field(
        default=1,
        metadata={"help": "Take every N-th recent prefix (N > max_history: no row's target is shown in another row of "
                  "the same user, so the LLM cannot memorise user sequences)."},
    )
    stage2_max_rows: int | None = field(default=None, metadata={"help": "Cap on stage-2 examples."})
    stage2_epochs: float | None = field(default=None, metadata={"help": "Stage-2 epochs."})
    stage2_learning_rate: float | None = field(default=None, metadata={"help": "Stage-2 (LoRA) learning rate."})
    lora_target_modules: str | None = field(
        default=None, metadata={"help": "Comma-separated module names, or all-linear (every linear but the LM head)."}
    )
    lora_dropout: float | None = field(default=None, metadata={"help": "LoRA dropout."})
    stage1_args: str = field(default="{}", metadata={"help": "JSON: any other DELRecDistillConfig fields."})
    stage2_args: str = field(default="{}", metadata={"help": "JSON: any other DELRecSFTConfig fields."})
    eval_batch_size: int | None = field(default=None, metadata={"help": "Users per ranking forward."})
    length_normalize: str | None = field(
        default=None,
        metadata={"help": "Title score = sum logp / n**a: a number a (1 = mean, 0 = sum), or auto = the a in "
                  "{1, 0.5, 0} with the best validation HR@1, per LLM row (one extra ranking of the validation users)."},
    )
    compile_layers: bool | None = field(
        default=None,
        metadata={"help": "torch.compile each decoder layer (regional, dynamic shapes) for stage 2, the long stage "
                  "(stage 1 is too short to repay the compilation; pass stage1_args '{\"compile_layers\": true}' to "
                  "compile it too). Measured gains: bench/RESULTS.md."},
    )
    group_by_length: bool | None = field(
        default=None, metadata={"help": "Stage-2 batches of similar lengths (less padding; transformers' sampler)."}
    )
    baselines: bool = field(default=True, metadata={"help": "Also rank with popularity, the teacher and the untrained "
                                                            "soft prompt."})
    zero_shot: bool | None = field(default=None, metadata={"help": "Also rank with the zero-shot LLM (one more LLM "
                                                                    "ranking: the cpu preset leaves it out)."})
    generate_then_match: bool = field(default=False, metadata={"help": "Also greedy-decode and report valid ratio."})
    ablation_no_soft_prompt: bool | None = field(
        default=None,
        metadata={"help": "Also train stage 2 alone (LoRA on the same prompt minus the soft prompt, same rows and "
                  "settings) and rank it: what stage 1 adds (gpu preset: on; one more training and ranking)."})
    prompt_hints: str = field(
        default="teacher_topk",
        metadata={"help": "teacher_topk: the stage-2 prompt shows the teacher's top-k; none: the official stage-2 "
                  "prompt, without teacher predictions (stage 1's RPS task still simulates the teacher)."})
    item_titles: str = field(
        default="as_is",
        metadata={"help": "as_is: the dataset's titles; article_first: 'Usual Suspects, The (1995)' -> 'The Usual "
                  "Suspects (1995)' (the official DELRec code's form)."})

    def apply_preset(self) -> "DELRecScriptArguments":
        if self.preset not in (*PRESETS, "none"):
            raise ValueError(f"Unknown preset {self.preset!r}: use one of {[*PRESETS, 'none']}")
        for key, value in PRESETS.get(self.preset, {}).items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        fallback = PRESETS["cpu"]
        for key in ("num_virtual_tokens", "teacher_top_k", "max_history", "show_candidates", "stage1_candidates",
                    "stage1_rows_per_user", "stage1_epochs",
                    "stage1_learning_rate", "stage2_rows_per_user", "stage2_epochs", "stage2_learning_rate",
                    "per_device_train_batch_size", "gradient_accumulation_steps", "eval_batch_size",
                    "teacher_epochs", "lora_target_modules", "lora_dropout", "length_normalize", "compile_layers",
                    "group_by_length", "zero_shot", "lora_top_layers", "ablation_no_soft_prompt"):
            if getattr(self, key) is None:
                setattr(self, key, fallback[key])
        if self.dtype is None:
            self.dtype = "auto"
        resolve_dtype(self.dtype)  # a clear error for an unknown name
        if self.prompt_hints not in ("teacher_topk", "none"):
            raise ValueError(f"--prompt_hints must be teacher_topk or none, got {self.prompt_hints!r}")
        if self.item_titles not in TITLE_STYLES:
            raise ValueError(f"--item_titles must be one of {list(TITLE_STYLES)}, got {self.item_titles!r}")
        if self.stages not in ("1", "2", "both", "eval"):
            raise ValueError(f"--stages must be 1, 2, both or eval, got {self.stages!r}")
        if self.length_normalize != "auto":
            try:
                float(self.length_normalize)
            except ValueError:
                raise ValueError(f"--length_normalize must be a number or auto, got {self.length_normalize!r}") from None
        elif self.eval_split != "test":
            raise ValueError("--length_normalize auto picks the normalisation on the validation split, so it needs "
                             "--eval_split test (or give a number)")
        return self


def make_parser() -> HfArgumentParser:
    return HfArgumentParser(
        (DELRecScriptArguments,),
        description="DELRec (soft prompts distilled from an SR teacher + LoRA) on an LLM, with its comparison table.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# ---------------------------------------------------------------------------------------------------- steps
def train_stage1(args, model, tok, prompter, teacher, ds, out: Path, timings: dict):
    """Stage 1 (soft prompt only); returns the model to continue with (a fresh copy when FSDP sharded it) and the
    stage's cost (``training_cost``)."""
    s1_dir = out / "stage1"
    done_marker = s1_dir / "stage1_done.json"
    if args.resume_from_checkpoint and done_marker.exists():
        logger.info("Stage 1 already done: loading the soft prompt from %s", s1_dir)
        cost = json.loads(done_marker.read_text()).get("cost") or {"train_s": None, "train_tokens": None}
        return model.load_soft_prompt(s1_dir), cost
    t0 = time.time()
    rows = select_training_rows(ds["train"], args.stage1_rows_per_user, args.stage1_max_rows, seed=args.seed,
                                min_history=2)
    examples = build_stage1_examples(rows, prompter, teacher, ds.num_items, args.stage1_candidates, args.rps_top_k,
                                     args.ta_window, seed=args.seed)
    logger.info("stage 1: %d TA/RPS examples (mean %.0f tokens)", len(examples),
                sum(len(e["input_ids"]) for e in examples) / max(len(examples), 1))
    config = DELRecDistillConfig(
        output_dir=str(s1_dir), num_train_epochs=args.stage1_epochs, learning_rate=args.stage1_learning_rate,
        per_device_train_batch_size=args.per_device_train_batch_size, max_steps=args.max_steps,
        gradient_accumulation_steps=args.gradient_accumulation_steps, seed=args.seed,
        disable_tqdm=args.disable_tqdm, **json.loads(args.stage1_args),
    )
    trainer = SoftPromptSRDistiller(model=model, args=config, train_dataset=Dataset.from_list(examples),
                                    processing_class=tok)
    resume = get_last_checkpoint(str(s1_dir)) if args.resume_from_checkpoint and s1_dir.exists() else None
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(s1_dir))
    timings["stage1_s"] = round(time.time() - t0, 1)
    cost = training_cost(trainer)
    if trainer.is_world_process_zero():
        atomic_write_json(done_marker, {"examples": len(examples), "train_runtime": result.metrics.get("train_runtime"),
                                        "task_weights": trainer.task_weights.tolist(), "cost": cost})
    sharded = trainer.is_fsdp_enabled
    trainer.accelerator.wait_for_everyone()
    del trainer
    if sharded:  # FSDP sharded the modules in place: stage 2 starts from a fresh copy + the saved soft prompt
        return new_delrec(args, teacher, ds)[0].load_soft_prompt(s1_dir), cost
    return model, cost


def train_stage2(args, model, tok, prompter, teacher, ds, out: Path, timings: dict, timing_key: str = "stage2_s"):
    """Stage 2 (LoRA, soft prompt frozen); saves base + adapter into ``out`` and returns the trained model and the
    stage's cost (``training_cost``). With a prompter without soft prompt it is the no-soft-prompt ablation."""
    # the distilled base (backbone + frozen soft prompt) is the PEFT base of the adapter written next to it
    model.name_or_path = str(out.resolve())
    if int(os.environ.get("RANK", "0")) == 0:
        save_into(out, lambda d: (model.save_pretrained(d), tok.save_pretrained(d), model.save_soft_prompt(d)))
    t0 = time.time()
    s2_dir = out / "stage2"
    rows = select_training_rows(ds["train"], args.stage2_rows_per_user, args.stage2_max_rows, seed=args.seed + 1,
                                stride=args.stage2_prefix_stride)
    examples = build_recommendation_examples(rows, prompter, teacher, ds.num_items, args.teacher_top_k,
                                             args.num_candidates, seed=args.seed + 1, topk_scope=args.teacher_topk_scope)
    logger.info("stage 2: %d recommendation examples (mean %.0f tokens)", len(examples),
                sum(len(e["input_ids"]) for e in examples) / max(len(examples), 1))
    config = args.sft_kwargs(
        s2_dir, args.stage2_epochs, args.stage2_learning_rate, compile_layers=args.compile_layers,
        train_sampling_strategy="group_by_length" if args.group_by_length else "random",
    )
    config.update(json.loads(args.stage2_args))
    trainer = DELRecSFTTrainer(model=model, args=DELRecSFTConfig(**config), train_dataset=Dataset.from_list(examples),
                               processing_class=tok)
    resume = get_last_checkpoint(str(s2_dir)) if args.resume_from_checkpoint and s2_dir.exists() else None
    trainer.train(resume_from_checkpoint=resume)
    timings[timing_key] = round(time.time() - t0, 1)
    cost = training_cost(trainer)
    peft_model = trainer.model
    sharded = trainer.is_fsdp_enabled
    # FSDP shards the adapter: every rank takes part in gathering it, rank 0 writes it
    state = trainer.accelerator.get_state_dict(trainer.model_wrapped) if sharded else None
    if trainer.is_world_process_zero():
        save_into(out, lambda d: trainer.accelerator.unwrap_model(peft_model).save_pretrained(
            d, **({"state_dict": state} if state is not None else {})))
    trainer.accelerator.wait_for_everyone()
    model = trainer.accelerator.unwrap_model(peft_model)
    del trainer
    if sharded:  # rank the users with the saved, whole model on every rank
        model = load_delrec(out, args.dtype)
    decompile_decoder_layers(model)  # ranking gains nothing from them and would compile a no-grad graph
    return model, cost


def new_delrec(args, teacher, ds):
    """``(DELRecForCausalLM, tokenizer)`` freshly built on the backbone, on the GPU when there is one."""
    model, tok = DELRecForCausalLM.from_backbone(
        args.backbone, num_virtual_tokens=args.num_virtual_tokens, dtype=args.dtype,
        teacher_name=teacher_display_name(teacher), teacher_top_k=args.teacher_top_k,
        num_candidates=args.num_candidates, max_history=args.max_history, domain=args.domain or ds.domain,
        seed=args.seed,
    )
    return (model.cuda() if torch.cuda.is_available() else model), tok


def load_delrec(folder, dtype="auto"):
    """A trained DELRec (distilled base + LoRA adapter) from its folder, on the GPU when there is one."""
    from peft import PeftModel

    base = DELRecForCausalLM.from_pretrained(str(folder), dtype=resolve_dtype(dtype), use_safetensors=True)
    if torch.cuda.is_available():
        base = base.cuda()
    has_adapter = (Path(folder) / "adapter_config.json").exists()
    return PeftModel.from_pretrained(base, str(folder)) if has_adapter and not hasattr(base, "peft_config") else base


def ranking_prompts(prompter, teacher, args):
    """rows -> DELRec prompt token ids (the teacher's top-k computed for those rows)."""
    return lambda rows: build_ranking_inputs(Dataset.from_dict(rows), prompter, teacher, args.teacher_top_k,
                                             args.teacher_topk_scope)[0]


def rank_llm_row(table, label, model_type, model, tok, prompter, teacher, args, eval_rows, val_rows, timings,
                 timing_key, cost: dict | None = None):
    """Rank ``eval_rows`` with an LLM (length normalisation fixed or chosen on ``val_rows``) into ``table``;
    ``cost``: the row's training cost (``train_s``, ``train_tokens``)."""
    scorer = LikelihoodScorer(model, tok, ranking_prompts(prompter, teacher, args), prompter.catalog.title,
                              batch_size=args.eval_batch_size, progress=not args.disable_tqdm)
    extra = {}
    if args.length_normalize == "auto":
        alpha, selection = choose_length_normalization(scorer, val_rows)
        logger.info("%s: length normalisation %s chosen on %d validation users", label, alpha, len(val_rows))
        extra["length_normalize_selection"] = selection
        scorer.seconds = 0.0
    else:
        scorer.length_normalize = float(args.length_normalize)
    logger.info("ranking %d users x %d candidates with %s", len(eval_rows), args.num_candidates, label)
    metrics = evaluate_scorer(scorer, eval_rows, "candidates", batch_size=256, progress=False)
    timings[timing_key] = round(scorer.seconds, 1)
    return table.add(label, model_type, metrics, len(eval_rows), length_normalize=scorer.length_normalize,
                     **extra, **(cost or {}))


UNTRAINED_COST = {"train_s": 0.0, "train_tokens": 0}
COST_FILE = "delrec_training_cost.json"  # the final model's cost, so a rerun that re-ranks it reports it too


def summed_cost(*costs: dict) -> dict:
    """The cost of a row trained in several stages (a stage whose cost is unknown makes the sum unknown)."""
    out = {}
    for key in ("train_s", "train_tokens"):
        values = [c.get(key) for c in costs]
        out[key] = None if any(v is None for v in values) else round(sum(values), 1) if key == "train_s" else sum(values)
    return out


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    (args,) = make_parser().parse_args_into_dataclasses(args=argv)
    out, command = start_run(args.apply_preset(), argv, "trainers/sft_delrec.py")
    timings: dict[str, float] = {}
    t_start = time.time()

    ds = load_benchmark(args.dataset, data_dir=args.data_dir, num_candidates=args.num_candidates,
                        seed=args.split_seed, max_history=50)
    t0 = time.time()
    teacher, teacher_dir = load_or_train_teacher(
        out, args.teacher_dir, args.teacher, args.dataset, args.data_dir, args.teacher_epochs, args.seed,
        args.split_seed, args.num_candidates, args.disable_tqdm)
    timings["teacher_s"] = round(time.time() - t0, 1)
    teacher_name = teacher_display_name(teacher)
    final_done = (out / "adapter_config.json").exists() and (out / "config.json").exists()
    if final_done:
        logger.info("%s already holds a trained DELRec (adapter + base): evaluating it, not retraining", out)
    if args.stages == "eval" and not final_done:
        raise FileNotFoundError(f"--stages eval needs a trained DELRec in {out}")

    model, tok = new_delrec(args, teacher, ds)
    backbone_label = Path(str(model.config.backbone_name_or_path or "LLM")).name
    prompter = DELRecPrompter(tok, ItemCatalog.from_items(ds.item_table, title_style=args.item_titles),
                              domain=args.domain or ds.domain, teacher_name=teacher_name,
                              num_virtual_tokens=args.num_virtual_tokens,
                              soft_prompt_token=model.config.soft_prompt_token, max_history=args.max_history,
                              show_candidates=args.show_candidates, teacher_hints=args.prompt_hints != "none")
    zero_shot_prompter = dataclasses.replace(prompter, num_virtual_tokens=0, _completion_cache={})

    # the same users and candidate lists for every row; validation users of the same number pick normalisations
    eval_rows, val_rows = ds[args.eval_split], ds["validation"]
    if args.eval_users:
        eval_rows = eval_rows.select(range(min(args.eval_users, len(eval_rows))))
        val_rows = val_rows.select(range(min(args.eval_users, len(val_rows))))
    table = RankingTable(ds.name, args.eval_split, args.num_candidates, args.split_seed, command)
    n = len(eval_rows)

    def rank(label, model_type, m, p, timing_key, cost=None):
        return rank_llm_row(table, label, model_type, m, tok, p, teacher, args, eval_rows, val_rows, timings,
                            timing_key, cost)

    if args.baselines:
        table.add("popularity", "popularity",
                  evaluate_scorer(popularity_scorer(ds["train"], ds.num_items), eval_rows, "candidates",
                                  progress=False), n, baseline=True)
        table.add(f"{teacher_name} (teacher)", teacher.config.model_type,
                  evaluate_scorer(sr_model_scorer(teacher), eval_rows, "candidates", progress=False), n,
                  baseline=True)
        if not final_done and args.zero_shot:
            # the zero-shot prompt is DELRec's minus the soft prompt: it shows the teacher's top-k when DELRec's does
            hint = f", with {teacher_name} top-{args.teacher_top_k} hint" if prompter.teacher_hints else ""
            rank(f"zero-shot LLM ({backbone_label}){hint}", "llm-zero-shot", model, zero_shot_prompter,
                 "rank_zero_shot_s", UNTRAINED_COST)
        if not final_done:
            rank("DELRec, untrained soft prompt", "delrec-untrained", model, prompter, "rank_untrained_s",
                 UNTRAINED_COST)

    stage1_cost = stage2_cost = None
    if args.stages in ("1", "both") and not final_done:
        model, stage1_cost = train_stage1(args, model, tok, prompter, teacher, ds, out, timings)
    elif args.stages == "2" and not final_done:
        model.load_soft_prompt(out / "stage1")
        marker = out / "stage1" / "stage1_done.json"
        stage1_cost = (json.loads(marker.read_text()).get("cost") if marker.exists() else None) or \
            {"train_s": None, "train_tokens": None}
    if args.stages in ("2", "both") and not final_done:
        model, stage2_cost = train_stage2(args, model, tok, prompter, teacher, ds, out, timings)
        delrec_cost = summed_cost(stage1_cost, stage2_cost)
        if int(os.environ.get("RANK", "0")) == 0:
            atomic_write_json(out / COST_FILE, {"stage1": stage1_cost, "stage2": stage2_cost, "row": delrec_cost})
    elif final_done:
        model = load_delrec(out, args.dtype)
        delrec_cost = json.loads((out / COST_FILE).read_text())["row"] if (out / COST_FILE).exists() else \
            {"train_s": None, "train_tokens": None}

    final = {}
    if args.stages in ("2", "both", "eval"):
        final = rank("DELRec", "delrec", model, prompter, "rank_delrec_s", delrec_cost)
        if int(os.environ.get("RANK", "0")) == 0:
            save_recommender_info(out, args, teacher_dir, ds, table.records[-1]["length_normalize"])
        if args.generate_then_match:
            scorer = GenerateThenMatchScorer(model, tok, ranking_prompts(prompter, teacher, args),
                                             prompter.catalog.title, batch_size=args.eval_batch_size)
            metrics = evaluate_scorer(scorer, eval_rows, "candidates", progress=False)
            metrics["valid_ratio"] = scorer.valid_ratio  # in place: the per-user ranks stay with the metrics
            table.add("DELRec, generate-then-match", "delrec", metrics, n, **delrec_cost)
        if args.ablation_no_soft_prompt:
            del model
            rank_without_soft_prompt(args, teacher, ds, zero_shot_prompter, out, timings, rank)
    rank_saved_runs(table, args.compare_with, eval_rows, data_dir=args.data_dir)
    timings["total_s"] = round(time.time() - t_start, 1)
    header = (f"DELRec on {ds.name} ({args.eval_split}, {args.num_candidates} candidates, backbone {backbone_label}, "
              f"teacher {teacher_name} from {teacher_dir}, preset {args.preset}, {timings['total_s']:.0f} s)")
    for record in table.records:
        record["timings"] = timings
    table.save(out, header)
    return {label: metrics for label, _, metrics in table.rows} | {"timings": timings, "final": final}


def rank_without_soft_prompt(args, teacher, ds, zero_shot_prompter, out: Path, timings: dict, rank) -> dict:
    """The ablation row: stage 2 alone (LoRA on DELRec's prompt minus the soft-prompt placeholders, the same rows and
    settings) on a fresh backbone, saved in ``out/no_soft_prompt`` (reloaded and re-ranked when already there)."""
    folder = out / "no_soft_prompt"
    if (folder / "adapter_config.json").exists() and (folder / COST_FILE).exists():
        logger.info("%s already holds the no-soft-prompt ablation: evaluating it, not retraining", folder)
        model, cost = load_delrec(folder, args.dtype), json.loads((folder / COST_FILE).read_text())["row"]
    else:  # the prompter's tokenizer is the run's: the same backbone tokenizer with the same placeholder token
        model = new_delrec(args, teacher, ds)[0]
        model, cost = train_stage2(args, model, zero_shot_prompter.tokenizer, zero_shot_prompter, teacher, ds, folder,
                                   timings, timing_key="stage2_no_soft_prompt_s")
        if int(os.environ.get("RANK", "0")) == 0:
            atomic_write_json(folder / COST_FILE, {"row": cost})
    return rank("DELRec, stage 2 without soft prompt (LoRA only)", "delrec-no-soft-prompt", model,
                zero_shot_prompter, "rank_no_soft_prompt_s", cost)


def save_recommender_info(out: Path, args, teacher_dir: Path, ds, length_normalize: float) -> None:
    """What ``pipeline("next-item-recommendation", model=out)`` needs besides the weights: the dataset the items
    come from and the teacher whose top-k the prompts show (copied next to the model: an SR model is small)."""
    copy_teacher(teacher_dir, out)
    write_recommender_info(out, method="delrec", dataset=ds.name, data_dir=args.data_dir, split_seed=args.split_seed,
                           num_candidates=args.num_candidates, teacher="teacher", max_history=args.max_history,
                           teacher_top_k=args.teacher_top_k, teacher_topk_scope=args.teacher_topk_scope,
                           show_candidates=args.show_candidates, domain=args.domain or ds.domain,
                           length_normalize=length_normalize, prompt_hints=args.prompt_hints,
                           item_titles=args.item_titles)


__all__ = ["DELRecScriptArguments", "PRESETS", "main", "make_parser"]

if __name__ == "__main__":
    run_script(main)
