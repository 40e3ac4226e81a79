"""DELRec end to end: SR teacher -> stage 1 (soft prompt distilling) -> stage 2 (LoRA) -> ranking table.

    python trainers/sft_delrec.py --preset cpu --output_dir runs/delrec-cpu
    accelerate launch --config_file hfrec/trainers/accelerate_configs/single_gpu.yaml \\
        trainers/sft_delrec.py --preset gpu --teacher_dir runs/sasrec-ml100k --output_dir runs/delrec-gpu
    python trainers/sft_delrec.py ... --resume_from_checkpoint true      # continue where it stopped
    hfrec train delrec --preset cpu --output_dir runs/delrec-cpu          # the same, through the CLI

The table compares, on the same test users and the same stored candidate lists: popularity, the SR teacher,
the zero-shot LLM (the backbone with the same prompt, no soft prompt), DELRec with its untrained soft prompt
(before stage 1, no LoRA) and DELRec. Every LLM row ranks candidates by title log-likelihood
(``hfrec.scoring``), so every prediction is a valid item.

Presets (fields left unset take the preset's value; any flag overrides):

``cpu``  documented small run for a 2-core CPU, offline, SmolLM2-135M-Instruct in bf16: 10 virtual tokens, 5 history
         items, the teacher's top-3, no candidate list in the prompt (shorter prompts; ranking scores the candidate
         titles either way), 96 stage-1 and 384 stage-2 examples, LoRA on q/v projections, evaluation on the
         first 200 test users.
``gpu``  the full protocol: 100 virtual tokens (paper), 10 history items, top-5, the 20 candidates listed, every
         test user, ~3.8k stage-1 examples (1 epoch) and ~15k stage-2 examples (16 recent prefixes per user,
         2 epochs), LoRA on every linear layer, bf16, batch 64, stage-2 decoder layers compiled (``compile_layers``),
         each LLM row's length normalisation picked on the validation users (about 5 minutes on an H100 after
         the teacher with a warm compile cache; a fresh machine adds ~1.5 minutes of compilation).
         ``--group_by_length`` cuts padding but was slower with compiled layers on the H100.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import HfArgumentParser, set_seed
from transformers.trainer_utils import get_last_checkpoint

from ..utils import atomic_write_json, atomic_write_text

logger = logging.getLogger("hfrec.delrec")

PRESETS: dict[str, dict] = {
    "cpu": dict(
        num_virtual_tokens=10, teacher_top_k=3, max_history=5, show_candidates=False, stage1_candidates=5,
        stage1_rows_per_user=1, stage1_max_rows=48, stage1_epochs=1.0, stage1_learning_rate=1e-2,
        stage2_rows_per_user=1, stage2_max_rows=384, stage2_epochs=1.0, stage2_learning_rate=2e-3,
        per_device_train_batch_size=8, gradient_accumulation_steps=1, eval_users=200, eval_batch_size=8,
        teacher_epochs=20, dtype="bfloat16", lora_target_modules="q_proj,v_proj", lora_dropout=0.0,
        length_normalize="1.0", compile_layers=False, group_by_length=False,
    ),
    "gpu": dict(
        num_virtual_tokens=100, teacher_top_k=5, max_history=10, show_candidates=True, stage1_candidates=10,
        stage1_rows_per_user=2, stage1_max_rows=None, stage1_epochs=1.0, stage1_learning_rate=1e-3,
        stage2_rows_per_user=16, stage2_max_rows=None, stage2_epochs=2.0, stage2_learning_rate=3e-4,
        per_device_train_batch_size=64, gradient_accumulation_steps=1, eval_users=None, eval_batch_size=64,
        teacher_epochs=200, dtype="bfloat16", lora_target_modules="all-linear", lora_dropout=0.0,
        length_normalize="auto", compile_layers=True, group_by_length=False,
    ),
}


@dataclass
class DELRecScriptArguments:
    output_dir: str = field(default="runs/delrec", metadata={"help": "Where everything is written."})
    preset: str = field(default="cpu", metadata={"help": "cpu | gpu | none: defaults for the fields left unset."})
    dataset: str = field(default="ml-100k", metadata={"help": "Benchmark name (hfrec.data.BENCHMARKS)."})
    data_dir: str | None = field(default=None, metadata={"help": "Folder of RecBole atomic files (optional)."})
    num_candidates: int = field(default=20, metadata={"help": "Candidates per test user (stored lists)."})
    split_seed: int = field(default=42, metadata={"help": "Seed of the stored candidate lists."})
    backbone: str | None = field(
        default=None, metadata={"help": "Causal LM: Hub id or folder; unset = offline SmolLM2-135M-Instruct."}
    )
    dtype: str | None = field(default=None, metadata={"help": "Backbone weights: float32 | bfloat16 | float16."})
    teacher_dir: str | None = field(
        default=None, metadata={"help": "A trained hfrec SR model folder; unset = train one into OUTPUT/teacher."}
    )
    teacher: str = field(default="sasrec", metadata={"help": "SR model to train when no teacher_dir is given."})
    teacher_epochs: float | None = field(default=None, metadata={"help": "Epoch cap when training the teacher."})
    num_virtual_tokens: int | None = field(default=None, metadata={"help": "Soft prompt length (paper: 100)."})
    teacher_top_k: int | None = field(default=None, metadata={"help": "Teacher recommendations shown in prompts."})
    max_history: int | None = field(default=None, metadata={"help": "History items shown in prompts."})
    show_candidates: bool | None = field(default=None, metadata={"help": "List the candidates in the prompt."})
    teacher_topk_scope: str = field(
        default="candidates",
        metadata={"help": "candidates: the teacher's top-k among the candidate list; catalogue: over all items."},
    )
    domain: str | None = field(default=None, metadata={"help": "Prompt domain; unset = the dataset's."})
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
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_target_modules: str | None = field(
        default=None, metadata={"help": "Comma-separated module names, or all-linear (every linear but the LM head)."}
    )
    lora_dropout: float | None = field(default=None, metadata={"help": "LoRA dropout."})
    per_device_train_batch_size: int | None = field(default=None, metadata={"help": "Batch per device."})
    gradient_accumulation_steps: int | None = field(default=None, metadata={"help": "Accumulation steps."})
    stage1_args: str = field(default="{}", metadata={"help": "JSON: any other DELRecDistillConfig fields."})
    stage2_args: str = field(default="{}", metadata={"help": "JSON: any other DELRecSFTConfig fields."})
    eval_split: str = field(default="test", metadata={"help": "validation | test."})
    eval_users: int | None = field(default=None, metadata={"help": "First N users of the split (unset: all)."})
    eval_batch_size: int | None = field(default=None, metadata={"help": "Users per ranking forward."})
    length_normalize: str | None = field(
        default=None,
        metadata={"help": "Title score = sum logp / n**a: a number a (1 = mean, 0 = sum), or auto = the a in "
                  "{1, 0.5, 0} with the best validation HR@1, per LLM row (one extra ranking of the validation users)."},
    )
    compile_layers: bool | None = field(
        default=None,
        metadata={"help": "torch.compile each decoder layer (regional, dynamic shapes) for stage 2, the long stage: "
                  "~1.75x its tokens/s on an H100 after ~90 s of compilation on a fresh machine (stage 1 is too short "
                  "to repay it; pass stage1_args '{\"compile_layers\": true}' to compile it too)."},
    )
    group_by_length: bool | None = field(
        default=None, metadata={"help": "Stage-2 batches of similar lengths (less padding; transformers' sampler)."}
    )
    baselines: bool = field(default=True, metadata={"help": "Also rank with popularity/teacher/zero-shot/untrained."})
    generate_then_match: bool = field(default=False, metadata={"help": "Also greedy-decode and report valid ratio."})
    resume_from_checkpoint: bool = field(default=False, metadata={"help": "Resume each stage from its last checkpoint."})
    seed: int = field(default=42, metadata={"help": "Training seed."})
    disable_tqdm: bool = field(default=False, metadata={"help": "No progress bars."})

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
                    "group_by_length"):
            if getattr(self, key) is None:
                setattr(self, key, fallback[key])
        if self.dtype is None:
            self.dtype = "bfloat16" if torch.cuda.is_available() else "float32"
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


# ---------------------------------------------------------------------------------------------------- helpers
def _atomic_save_dir(final_dir: Path, save_fn) -> None:
    """``save_fn(tmp_dir)`` writes files; each is then moved into ``final_dir`` with an atomic rename."""
    final_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".saving-", dir=final_dir))
    try:
        save_fn(tmp)
        for f in tmp.iterdir():
            os.replace(f, final_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)



def load_or_train_teacher(args: DELRecScriptArguments, out: Path):
    """The SR teacher: ``--teacher_dir`` if given, else the one under OUTPUT/teacher, else train it there."""
    from transformers import AutoModel

    from .. import models  # noqa: F401  registers the SR model types

    teacher_dir = Path(args.teacher_dir) if args.teacher_dir else out / "teacher"
    if not (teacher_dir / "config.json").exists():
        if args.teacher_dir:
            raise FileNotFoundError(f"--teacher_dir {teacher_dir} holds no trained model (config.json missing)")
        from .train_sr import main as train_sr_main

        logger.info("Training the %s teacher into %s", args.teacher, teacher_dir)
        train_sr_main([
            "--model", args.teacher, "--dataset", args.dataset, "--output_dir", str(teacher_dir),
            "--num_train_epochs", str(args.teacher_epochs), "--seed", str(args.seed),
            "--split_seed", str(args.split_seed), "--num_candidates", str(args.num_candidates),
            "--disable_tqdm", str(args.disable_tqdm).lower(),
            *(["--data_dir", args.data_dir] if args.data_dir else []),
        ])
    teacher = AutoModel.from_pretrained(str(teacher_dir))
    if torch.cuda.is_available():
        teacher = teacher.cuda()
    return teacher.eval(), teacher_dir


def _model_type_name(teacher) -> str:
    return {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "caser": "Caser"}.get(teacher.config.model_type,
                                                                             teacher.config.model_type)


LENGTH_NORMALIZE_GRID = (1.0, 0.5, 0.0)  # --length_normalize auto: mean, sum / sqrt(n), sum


def candidate_metrics(scores: torch.Tensor, cand_ids, targets, ks=(1, 5, 10)) -> dict[str, float]:
    from ..metrics import candidate_target_index, metrics_from_ranks, target_ranks

    cands = torch.as_tensor(cand_ids)
    return metrics_from_ranks(target_ranks(scores, candidate_target_index(cands, torch.as_tensor(targets))), ks)


def _print_table(rows: list[tuple[str, dict, float | None]], n_users: int, header: str) -> str:
    cols = ["HR@1", "HR@5", "NDCG@5", "HR@10", "NDCG@10"]
    width = max(len(r[0]) for r in rows) + 2
    lines = [header, f"{'method':<{width}}" + "".join(f"{c:>9}" for c in cols) + f"{'valid':>8}"]
    for name, m, valid in rows:
        lines.append(f"{name:<{width}}" + "".join(f"{m[c]:>9.4f}" for c in cols)
                     + (f"{valid:>8.2f}" if valid is not None else f"{1.0:>8.2f}"))
    lines.append(f"({n_users} users, every row ranks the same stored candidate lists)")
    text = "\n".join(lines)
    if int(os.environ.get("RANK", "0")) == 0:  # one table per run, not one per process
        print(text, flush=True)
    return text


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    (args,) = make_parser().parse_args_into_dataclasses(args=argv)
    args.apply_preset()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    set_seed(args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = "python trainers/sft_delrec.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    timings: dict[str, float] = {}
    t_start = time.time()

    from ..data import load_benchmark
    from ..evaluation import evaluation_record, popularity_scorer
    from ..models.delrec import DELRecForCausalLM
    from ..prompts import DELRecPrompter, ItemCatalog
    from ..scoring import candidate_log_likelihoods, generate_then_match, normalize_by_length
    from .delrec_config import DELRecDistillConfig, DELRecSFTConfig
    from .delrec_data import (build_ranking_inputs, build_recommendation_examples, build_stage1_examples,
                              select_training_rows)
    from .delrec_trainer import DELRecSFTTrainer, SoftPromptSRDistiller, decompile_decoder_layers

    ds = load_benchmark(args.dataset, data_dir=args.data_dir, num_candidates=args.num_candidates,
                        seed=args.split_seed, max_history=50)
    domain = args.domain or ds.domain
    catalog = ItemCatalog(list(ds.item_titles))

    t0 = time.time()
    teacher, teacher_dir = load_or_train_teacher(args, out)
    teacher_name = _model_type_name(teacher)
    timings["teacher_s"] = round(time.time() - t0, 1)

    dtype = getattr(torch, args.dtype)
    is_main = int(os.environ.get("RANK", "0")) == 0
    final_done = (out / "adapter_config.json").exists() and (out / "config.json").exists()
    if final_done:
        logger.info("%s already holds a trained DELRec (adapter + base): evaluating it, not retraining", out)
    if args.stages == "eval" and not final_done:
        raise FileNotFoundError(f"--stages eval needs a trained DELRec in {out}")

    def fresh_model():
        m, t = DELRecForCausalLM.from_backbone(
            args.backbone, num_virtual_tokens=args.num_virtual_tokens, dtype=dtype, teacher_name=teacher_name,
            teacher_top_k=args.teacher_top_k, num_candidates=args.num_candidates, max_history=args.max_history,
            domain=domain, seed=args.seed,
        )
        return (m.cuda() if torch.cuda.is_available() else m), t

    def load_trained():
        from peft import PeftModel

        base = DELRecForCausalLM.from_pretrained(str(out), dtype=dtype, use_safetensors=True)
        if torch.cuda.is_available():
            base = base.cuda()
        return base if hasattr(base, "peft_config") else PeftModel.from_pretrained(base, str(out))

    model, tok = fresh_model()
    backbone_label = model.config.backbone_name_or_path or "LLM"
    backbone_label = Path(str(backbone_label)).name or str(backbone_label)
    prompter = DELRecPrompter(tok, catalog, domain=domain, teacher_name=teacher_name,
                              num_virtual_tokens=args.num_virtual_tokens, soft_prompt_token=model.config.soft_prompt_token,
                              max_history=args.max_history, show_candidates=args.show_candidates)
    zero_shot_prompter = dataclasses.replace(prompter, num_virtual_tokens=0, _completion_cache={})

    # evaluation rows: the same users and candidate lists for every method
    eval_rows = ds[args.eval_split]
    if args.eval_users:
        eval_rows = eval_rows.select(range(min(args.eval_users, len(eval_rows))))
    t0 = time.time()
    prompts, cand_titles, cand_ids, targets = build_ranking_inputs(eval_rows, prompter, teacher, args.teacher_top_k,
                                                                   args.teacher_topk_scope)
    auto_norm = args.length_normalize == "auto"
    val_inputs: dict[str, tuple] = {}
    if auto_norm:  # the same number of validation users, their stored candidates: picks each LLM row's normalisation
        val_rows = ds["validation"]
        if args.eval_users:
            val_rows = val_rows.select(range(min(args.eval_users, len(val_rows))))
        val_inputs["soft"] = build_ranking_inputs(val_rows, prompter, teacher, args.teacher_top_k,
                                                  args.teacher_topk_scope)
        val_inputs["zero-shot"] = build_ranking_inputs(val_rows, zero_shot_prompter, teacher, args.teacher_top_k,
                                                       args.teacher_topk_scope)
    timings["eval_prompts_s"] = round(time.time() - t0, 1)
    table: list[tuple[str, dict, float | None]] = []
    records = []
    bs = args.eval_batch_size
    show = not args.disable_tqdm

    def record(name, model_type, metrics, valid=None, **extra):
        table.append((name, metrics, valid))
        records.append(evaluation_record(
            metrics, dataset=ds.name, split=args.eval_split, protocol="candidates",
            num_candidates=args.num_candidates, seed=args.split_seed, model_type=model_type,
            num_users=len(targets), command=command, method=name,
            num_processes=int(os.environ.get("WORLD_SIZE", "1")), **extra))

    def llm_scores(m, ps, what="DELRec", prompt_kind="soft"):
        """Test scores of an LLM row, its ranking seconds, and how its length normalisation was chosen."""
        logger.info("ranking %d users x %d candidates with %s", len(ps), args.num_candidates, what)
        t = time.time()
        sums, counts = candidate_log_likelihoods(m, tok, ps, cand_titles, batch_size=bs, progress=show)
        secs = time.time() - t
        if not auto_norm:
            a = float(args.length_normalize)
            return normalize_by_length(sums, counts, a), secs, {"length_normalize": a}
        v_prompts, v_titles, v_cands, v_targets = val_inputs[prompt_kind]
        v_sums, v_counts = candidate_log_likelihoods(m, tok, v_prompts, v_titles, batch_size=bs, progress=show)
        per_alpha = {a: candidate_metrics(normalize_by_length(v_sums, v_counts, a), v_cands, v_targets)
                     for a in LENGTH_NORMALIZE_GRID}
        # best validation HR@1, then NDCG@5; ties keep the grid order (mean first)
        a = max(LENGTH_NORMALIZE_GRID, key=lambda x: (round(per_alpha[x]["HR@1"], 6), round(per_alpha[x]["NDCG@5"], 6)))
        logger.info("%s: length normalisation %s chosen on %d validation users (HR@1 %s)", what, a, len(v_prompts),
                    {k: round(v["HR@1"], 4) for k, v in per_alpha.items()})
        info = {"length_normalize": a, "length_normalize_selection": {
            "split": "validation", "users": len(v_prompts), "criterion": "HR@1, then NDCG@5",
            "validation_metrics": {str(k): v for k, v in per_alpha.items()}}}
        return normalize_by_length(sums, counts, a), secs, info

    if args.baselines:
        pop = popularity_scorer(ds["train"], ds.num_items)
        record("popularity", "popularity", candidate_metrics(pop({"candidates": cand_ids}, "candidates"), cand_ids, targets))
        from ..evaluation import left_pad

        with torch.no_grad():
            dev = next(teacher.parameters()).device
            ts = teacher.score_candidates(left_pad([list(h) for h in eval_rows["history"]],
                                                   teacher.config.max_seq_length).to(dev),
                                          torch.as_tensor(cand_ids, device=dev)).float().cpu()
        record(f"{teacher_name} (teacher)", teacher.config.model_type, candidate_metrics(ts, cand_ids, targets))
        if not final_done:
            zs_prompts = build_ranking_inputs(eval_rows, zero_shot_prompter, teacher, args.teacher_top_k,
                                              args.teacher_topk_scope)[0]
            s, secs, info = llm_scores(model, zs_prompts, "the zero-shot LLM", "zero-shot")
            timings["rank_zero_shot_s"] = round(secs, 1)
            record(f"zero-shot LLM ({backbone_label})", "llm-zero-shot", candidate_metrics(s, cand_ids, targets),
                   **info)
            s, secs, info = llm_scores(model, prompts, "the untrained soft prompt")
            timings["rank_untrained_s"] = round(secs, 1)
            record("DELRec, untrained soft prompt", "delrec-untrained", candidate_metrics(s, cand_ids, targets),
                   **info)

    train_rows_all = ds["train"]
    # ------------------------------------------------------------------ stage 1
    if args.stages in ("1", "both") and not final_done:
        s1_dir = out / "stage1"
        done_marker = s1_dir / "stage1_done.json"
        if args.resume_from_checkpoint and done_marker.exists():
            model.load_soft_prompt(s1_dir)
            logger.info("Stage 1 already done: loaded the soft prompt from %s", s1_dir)
        else:
            t0 = time.time()
            rows = select_training_rows(train_rows_all, args.stage1_rows_per_user, args.stage1_max_rows,
                                        seed=args.seed, min_history=2)
            examples = build_stage1_examples(rows, prompter, teacher, ds.num_items, args.stage1_candidates,
                                             args.rps_top_k, args.ta_window, seed=args.seed)
            logger.info("stage 1: %d TA/RPS examples (mean %.0f tokens)", len(examples),
                        sum(len(e["input_ids"]) for e in examples) / max(len(examples), 1))
            s1_args = DELRecDistillConfig(
                output_dir=str(s1_dir), num_train_epochs=args.stage1_epochs, learning_rate=args.stage1_learning_rate,
                per_device_train_batch_size=args.per_device_train_batch_size,
                gradient_accumulation_steps=args.gradient_accumulation_steps, seed=args.seed,
                disable_tqdm=args.disable_tqdm, **json.loads(args.stage1_args),
            )
            trainer = SoftPromptSRDistiller(model=model, args=s1_args, train_dataset=Dataset.from_list(examples),
                                            processing_class=tok)
            resume = get_last_checkpoint(str(s1_dir)) if args.resume_from_checkpoint and s1_dir.exists() else None
            result = trainer.train(resume_from_checkpoint=resume)
            trainer.save_model(str(s1_dir))
            timings["stage1_s"] = round(time.time() - t0, 1)
            if trainer.is_world_process_zero():
                atomic_write_json(done_marker, {"examples": len(examples), "train_runtime": result.metrics.get("train_runtime"),
                                           "task_weights": trainer.task_weights.tolist()})
            sharded = trainer.is_fsdp_enabled
            trainer.accelerator.wait_for_everyone()
            del trainer
            if sharded:  # FSDP sharded the modules in place: stage 2 starts from a fresh copy + the saved soft prompt
                model = fresh_model()[0].load_soft_prompt(s1_dir)
    elif args.stages == "2" and not final_done:
        model.load_soft_prompt(out / "stage1")

    # ------------------------------------------------------------------ stage 2
    if args.stages in ("2", "both") and not final_done:
        # the distilled base (backbone + frozen soft prompt) is the PEFT base of the adapter written next to it
        model.name_or_path = str(out.resolve())
        if is_main:
            _atomic_save_dir(out, lambda d: (model.save_pretrained(d), tok.save_pretrained(d), model.save_soft_prompt(d)))
        t0 = time.time()
        s2_dir = out / "stage2"
        rows = select_training_rows(train_rows_all, args.stage2_rows_per_user, args.stage2_max_rows, seed=args.seed + 1,
                                    stride=args.stage2_prefix_stride)
        examples = build_recommendation_examples(rows, prompter, teacher, ds.num_items, args.teacher_top_k,
                                                 args.num_candidates, seed=args.seed + 1,
                                                 topk_scope=args.teacher_topk_scope)
        logger.info("stage 2: %d recommendation examples (mean %.0f tokens)", len(examples),
                    sum(len(e["input_ids"]) for e in examples) / max(len(examples), 1))
        s2_kwargs = dict(
            output_dir=str(s2_dir), num_train_epochs=args.stage2_epochs, learning_rate=args.stage2_learning_rate,
            per_device_train_batch_size=args.per_device_train_batch_size,
            gradient_accumulation_steps=args.gradient_accumulation_steps, seed=args.seed, lora_r=args.lora_r,
            lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, disable_tqdm=args.disable_tqdm,
            lora_target_modules=[m.strip() for m in args.lora_target_modules.split(",") if m.strip()],
            compile_layers=args.compile_layers,
            train_sampling_strategy="group_by_length" if args.group_by_length else "random",
        )
        s2_kwargs.update(json.loads(args.stage2_args))
        trainer = DELRecSFTTrainer(model=model, args=DELRecSFTConfig(**s2_kwargs),
                                   train_dataset=Dataset.from_list(examples), processing_class=tok)
        resume = get_last_checkpoint(str(s2_dir)) if args.resume_from_checkpoint and s2_dir.exists() else None
        trainer.train(resume_from_checkpoint=resume)
        timings["stage2_s"] = round(time.time() - t0, 1)
        peft_model = trainer.model
        sharded = trainer.is_fsdp_enabled
        # FSDP shards the adapter: every rank takes part in gathering it, rank 0 writes it
        state = trainer.accelerator.get_state_dict(trainer.model_wrapped) if sharded else None
        if trainer.is_world_process_zero():
            _atomic_save_dir(out, lambda d: trainer.accelerator.unwrap_model(peft_model).save_pretrained(
                d, **({"state_dict": state} if state is not None else {})))
        trainer.accelerator.wait_for_everyone()
        model = trainer.accelerator.unwrap_model(peft_model)
        del trainer
        if sharded:  # rank the users with the saved, whole model on every rank
            model = load_trained()
        decompile_decoder_layers(model)  # ranking gains nothing from them and would compile a no-grad graph
    elif final_done:
        model = load_trained()

    # ------------------------------------------------------------------ DELRec ranking
    result_metrics = {}
    if args.stages in ("2", "both", "eval"):
        s, secs, info = llm_scores(model, prompts)
        timings["rank_delrec_s"] = round(secs, 1)
        valid = None
        extra = dict(info)
        if args.generate_then_match:
            t = time.time()
            g = generate_then_match(model, tok, prompts, cand_titles, batch_size=bs, progress=show)
            extra["generate_then_match"] = {"metrics": candidate_metrics(g.scores, cand_ids, targets),
                                            "valid_ratio": g.valid_ratio, "seconds": round(time.time() - t, 1)}
            valid = 1.0
        result_metrics = candidate_metrics(s, cand_ids, targets)
        record("DELRec", "delrec", result_metrics, valid, timings=timings, **extra)
        if "generate_then_match" in extra:
            table.append(("DELRec, generate-then-match", extra["generate_then_match"]["metrics"],
                          extra["generate_then_match"]["valid_ratio"]))
    timings["total_s"] = round(time.time() - t_start, 1)
    header = (f"DELRec on {ds.name} ({args.eval_split}, {args.num_candidates} candidates, backbone {backbone_label}, "
              f"teacher {teacher_name} from {teacher_dir}, preset {args.preset}, {timings['total_s']:.0f} s)")
    text = _print_table(table, len(targets), header)
    if is_main:
        prev = out / "eval_results.json"
        atomic_write_json(prev, records)
        atomic_write_text(out / "results_table.txt", text + "\n")
    return {name: m for name, m, _ in table} | {"timings": timings, "final": result_metrics}


__all__ = ["DELRecScriptArguments", "PRESETS", "main", "make_parser"]

if __name__ == "__main__":
    main()
