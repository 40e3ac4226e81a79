"""LLM-TRSR end to end: SR teacher (the table's reference row) -> preference summaries (hierarchical and/or
recurrent, cached) -> a LoRA yes/no recommender per summary mode -> ranking table.

    python trainers/sft_trsr.py --preset cpu --teacher_dir runs/sasrec --output_dir runs/trsr-cpu
    accelerate launch --config_file hfrec/trainers/accelerate_configs/single_gpu.yaml \\
        trainers/sft_trsr.py --preset gpu --teacher_dir runs/sasrec --output_dir runs/trsr-gpu
    hfrec train trsr --preset cpu --output_dir runs/trsr-cpu            # the same, through the CLI

The table compares, on the same test users and the same stored candidate lists: popularity, the SR teacher, the
zero-shot LLM (the backbone without adapter on the same yes/no prompt; gpu preset or ``--zero_shot true``) and one
LLM-TRSR recommender per summary mode (``--summary_mode hierarchical | recurrent | none | all``, or a comma-separated
list; ``none`` is the paper's no-summary ablation: recent items only). Candidates are ranked by P(Yes) through
``hfrec.evaluation.evaluate_scorer``, with HR/NDCG/MRR at 1, 3, 5 and 10 (HR@k is the paper's Recall@k: one target).

Summaries: each user's training rows share the summary of the history before the earliest of them (one summary per
user and mode, never per epoch); each evaluation row is summarised from the history it shows. All of them are
generated up front, batched across users, into ``OUTPUT/summaries`` (a ``CachedGenerator`` table): a rerun, another
mode sharing blocks (the recurrent mode's first step is the hierarchical block prompt) or the pipeline reads them
back instead of generating.

Output: ``OUTPUT`` holds the first mode's recommender (the backbone's own weights and tokenizer + the LoRA adapter,
whose base is the folder itself, so ``AutoModelForCausalLM.from_pretrained(OUTPUT)`` loads both), other modes'
adapters in ``OUTPUT/modes/<mode>``, the SR teacher in ``OUTPUT/teacher``, ``eval_results.json``,
``results_table.txt`` and ``hfrec_recommender.json``. Rerunning the same command on that folder reloads every trained
mode and ranks it again (the summaries come from the cache), reproducing the recorded metrics.

Presets (fields left unset take the preset's value; any flag overrides); weights default to ``--dtype auto``:

``cpu``  sized for a 2-core AVX2-only CPU, offline, SmolLM2-135M-Instruct: the hierarchical summary over the last
         2 blocks of 5 items, 32-token summaries, item texts of 20 tokens, 3 recent items, 16 training rows, each
         one listwise example of the target and 4 negatives (a softmax over the candidates' yes-minus-no logits),
         LoRA on q/k/v/o of the top 10 layers (the backward pass stops there), the first 100 test users, the
         zero-shot row. Its cost is about 3 summaries per user (2 blocks and the merge) for the 116 users and about
         650 scored tokens per ranked user and row.
``gpu``  the full protocol: hierarchical, recurrent and no summary, 5 blocks of 5 items (the paper), 96-token
         summaries generated 1024 prompts at a time, 5 recent items, the 6 most recent training prefixes of every
         user (1 positive : 1 negative each) for 2 epochs, LoRA r 8 on every linear layer at 5e-4, batches of 64
         on compiled decoder layers, every test user, the zero-shot row, and the summariser's throughput: 64 users
         batched against 2 one user (and prompt) at a time.

``--compare_with DIR [DIR ...]`` adds rows of other hfrec runs (e.g. a DELRec run on the same dataset and candidate
seed) ranked on the same users and candidate lists.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoTokenizer, HfArgumentParser
from transformers.trainer_utils import get_last_checkpoint

from ...data import load_benchmark
from ...evaluation import evaluate_scorer, popularity_scorer, sr_model_scorer
from ...utils import atomic_write_json, run_script
from ..common.backbones import load_backbone, resolve_backbone, resolve_dtype
from ..common.data import select_training_rows
from ..common.prompts import ItemCatalog
from ..common.ranking import RECALL_MRR_COLUMNS, RankingTable, rank_saved_runs, write_recommender_info
from ..common.runs import MethodScriptArguments, copy_teacher, save_into, start_run
from ..common.sft import decompile_decoder_layers, training_cost
from ..common.teachers import load_or_train_teacher, teacher_display_name
from .config import RankingLoss, SummaryMode, TRSRSFTConfig, TRSRSummaryConfig
from .data import build_training_examples, item_counts, summary_histories
from .prompts import ANSWERS, TRSRPrompter
from .recommender import YesNoScorer
from .summaries import TRSRSummarizer
from .trainer import TRSRSFTTrainer

logger = logging.getLogger("hfrec.trsr")

KS = (1, 3, 5, 10)  # the paper reports @3, 5, 10; @1 is the shared tables' headline
SUMMARY_CACHE = "summaries"
MODE_MARKER = "trsr_summary_mode.json"  # which summary mode the adapter next to it was trained with
LABELS = {SummaryMode.HIERARCHICAL: "LLM-TRSR (hierarchical summary)",
          SummaryMode.RECURRENT: "LLM-TRSR (recurrent summary)", SummaryMode.NONE: "LLM-TRSR (no summary)"}

PRESETS: dict[str, dict] = {
    "cpu": dict(
        summary_mode="hierarchical", block_size=5, max_blocks=2, item_text_tokens=20,
        summary_max_new_tokens=32, summary_batch_size=16, recent_items=3, train_rows_per_user=1, train_max_rows=16,
        num_train_epochs=1.0, learning_rate=1e-3, per_device_train_batch_size=8, gradient_accumulation_steps=1,
        lora_target_modules="q_proj,k_proj,v_proj,o_proj", lora_top_layers=10, eval_users=100, eval_batch_size=8,
        teacher_epochs=20, zero_shot=True, compile_layers=False, summary_throughput_users=0,
        ranking_loss="listwise", num_negatives=4, popular_share=0.0,
    ),
    # The yes/no answer must first take the answer mass from the rest of the vocabulary (the untrained model's top
    # token after the turn change is neither Yes nor No), then learn which items are a user's next: one epoch of
    # 2 prefixes per user at 1e-4 (3,772 examples, 118 steps) stopped at the 1:1 prior on the H200. Hence 6
    # prefixes per user for 2 epochs (about 350 steps), LoRA on every linear layer at 5e-4, and batches of 64 on
    # compiled layers for throughput (DELRec's gpu preset); on the CPU 80 steps at 3e-4 of batch 16 did not learn
    # even a signal written in the candidate text (bench/RESULTS.md), and 1e-3 at batch 8 swung between constant
    # answers.
    "gpu": dict(
        summary_mode="all", block_size=5, max_blocks=5, item_text_tokens=32, summary_max_new_tokens=96,
        summary_batch_size=1024, recent_items=5, train_rows_per_user=6, train_max_rows=0, num_train_epochs=2.0,
        learning_rate=5e-4, per_device_train_batch_size=64, gradient_accumulation_steps=1,
        lora_target_modules="all-linear", lora_top_layers=0, eval_users=0, eval_batch_size=64, teacher_epochs=200,
        zero_shot=True, compile_layers=True, summary_throughput_users=64,
        ranking_loss="pointwise", num_negatives=1, popular_share=0.0,
    ),
}


def json_flag(name: str, value: str) -> dict:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ValueError(f"--{name} must be a JSON object of keyword arguments (e.g. '{{}}'), got {value!r}")
    return parsed


@dataclass
class TRSRScriptArguments(MethodScriptArguments):
    output_dir: str = field(default="runs/trsr", metadata={"help": "Run folder: model, summaries, tables."})
    summarizer: str | None = field(
        default=None, metadata={"help": "Instruction LLM that writes the summaries; unset: the backbone."})
    summary_mode: str | None = field(
        default=None, metadata={"help": "hierarchical | recurrent | none | all, or a comma-separated list: one "
                                        "recommender each; the first is saved in OUTPUT itself."})
    block_size: int | None = field(default=None, metadata={"help": "Items per summary block (paper: 5)."})
    max_blocks: int | None = field(default=None, metadata={"help": "Most recent blocks summarised (paper: 5)."})
    item_text_tokens: int | None = field(default=None, metadata={"help": "Token budget of one item's text."})
    summary_max_new_tokens: int | None = field(default=None, metadata={"help": "Length budget of a summary."})
    summary_batch_size: int | None = field(default=None, metadata={"help": "Summary prompts per generate call."})
    summary_generation_kwargs: str = field(
        default="{}", metadata={"help": "JSON: other model.generate arguments of the summariser (default greedy)."})
    recent_items: int | None = field(default=None, metadata={"help": "Latest items shown after the summary."})
    train_rows_per_user: int | None = field(default=None, metadata={"help": "Recent training prefixes per user."})
    train_prefix_stride: int = field(default=1, metadata={"help": "Take every N-th recent prefix."})
    train_max_rows: int | None = field(default=None, metadata={"help": "Cap on training rows (0: no cap)."})
    ranking_loss: str | None = field(
        default=None, metadata={"help": "pointwise (the paper's yes/no cross-entropy, one example per candidate) | "
                                        "listwise (softmax over a row's target and negatives of the yes-minus-no "
                                        "logits)."})
    num_negatives: int | None = field(default=None, metadata={"help": "Negatives per training row (paper: 1)."})
    popular_share: float | None = field(
        default=None, metadata={"help": "Share of each row's negatives drawn in proportion to the items' training "
                                        "counts (the rest uniformly, as the stored candidates are drawn)."})
    num_train_epochs: float | None = field(default=None, metadata={"help": "Recommender epochs."})
    learning_rate: float | None = field(default=None, metadata={"help": "LoRA learning rate."})
    lora_target_modules: str | None = field(
        default=None, metadata={"help": "Comma-separated module names, or all-linear (unset: the preset's)."})
    sft_args: str = field(default="{}", metadata={"help": "JSON: any other TRSRSFTConfig fields."})
    compile_layers: bool | None = field(default=None, metadata={"help": "torch.compile each decoder layer for "
                                                                        "training."})
    eval_batch_size: int | None = field(default=None, metadata={"help": "Users per ranking forward."})
    zero_shot: bool | None = field(default=None, metadata={"help": "Also rank with the zero-shot LLM."})
    summary_throughput_users: int | None = field(
        default=None, metadata={"help": "Also time summarising this many users batched, against a 32nd of them "
                                        "one at a time (0: no)."})

    def apply_preset(self) -> "TRSRScriptArguments":
        if self.preset not in PRESETS:
            raise ValueError(f"Unknown preset {self.preset!r}: use one of {list(PRESETS)}")
        for key, value in PRESETS[self.preset].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.dtype is None:
            self.dtype = "auto"
        resolve_dtype(self.dtype)  # a clear error for an unknown name
        self.modes()
        for name in ("summary_generation_kwargs", "sft_args"):
            json_flag(name, getattr(self, name))
        try:
            self.ranking_loss = RankingLoss(self.ranking_loss).value
        except ValueError:
            raise ValueError(f"--ranking_loss {self.ranking_loss!r}: use pointwise or listwise") from None
        if self.num_negatives < 1:
            raise ValueError(f"--num_negatives must be >= 1, got {self.num_negatives}")
        if not 0.0 <= self.popular_share <= 1.0:
            raise ValueError(f"--popular_share must be in [0, 1], got {self.popular_share}")
        if self.eval_split not in ("validation", "test"):
            raise ValueError(f"--eval_split must be validation or test, got {self.eval_split!r}")
        return self

    def modes(self) -> list[SummaryMode]:
        """The recommenders to train, in order (the first is the folder's own)."""
        names = ["hierarchical", "recurrent", "none"] if self.summary_mode == "all" else \
            [m.strip() for m in self.summary_mode.split(",") if m.strip()]
        try:
            modes = list(dict.fromkeys(SummaryMode(m) for m in names))
        except ValueError:
            raise ValueError(f"--summary_mode {self.summary_mode!r}: use hierarchical, recurrent, none, all or a "
                             "comma-separated list of the first three") from None
        if not modes:
            raise ValueError("--summary_mode names no mode: use hierarchical, recurrent, none or all")
        return modes

    def summary_config(self, mode: SummaryMode, domain: str) -> TRSRSummaryConfig:
        return TRSRSummaryConfig(
            mode=mode, block_size=self.block_size, max_blocks=self.max_blocks, item_text_tokens=self.item_text_tokens,
            max_new_tokens=self.summary_max_new_tokens, domain=domain, batch_size=self.summary_batch_size,
            generation_kwargs=json_flag("summary_generation_kwargs", self.summary_generation_kwargs), seed=self.seed)


def make_parser() -> HfArgumentParser:
    return HfArgumentParser(
        (TRSRScriptArguments,),
        description="LLM-TRSR (block summaries + a LoRA yes/no recommender) on an LLM, with its comparison table.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# ---------------------------------------------------------------------------------------------------- steps
@contextlib.contextmanager
def timed(timings: dict, key: str):
    """Wall seconds of the block, into ``timings[key]``."""
    start = time.perf_counter()
    yield
    timings[key] = round(time.perf_counter() - start, 1)


def new_backbone(args):
    """``(model, tokenizer)`` of the backbone, on the GPU when there is one."""
    model, tok = load_backbone(args.backbone, dtype=args.dtype)
    return (model.cuda() if torch.cuda.is_available() else model), tok


def mode_dir(out: Path, modes: list[SummaryMode], mode: SummaryMode) -> Path:
    return out if mode == modes[0] else out / "modes" / mode.value


def is_trained(folder: Path, out: Path, mode: SummaryMode) -> bool:
    """Whether ``folder`` holds this mode's trained adapter (an adapter of another mode there is an error: the
    folder was trained with another --summary_mode order)."""
    if not ((folder / "adapter_config.json").exists() and (out / "config.json").exists()):
        return False
    marker = folder / MODE_MARKER
    saved = json.loads(marker.read_text())["summary_mode"] if marker.exists() else None
    if saved != mode.value:
        raise ValueError(f"{folder} holds a recommender trained with summary mode {saved!r}, not {mode.value!r}: "
                         "pass --summary_mode in the order of that run (its first mode is the folder's own) or "
                         "use another --output_dir")
    return True


def load_trained(args, folder: Path):
    """A trained recommender: the backbone + the adapter saved in ``folder``."""
    from peft import PeftModel

    return PeftModel.from_pretrained(new_backbone(args)[0], str(folder)).eval()


def summarize_all(args, modes, catalog, domain, train_rows, eval_rows, out: Path, need_training, timings):
    """Per summary mode: the summariser (ranking reads its cache) and user id -> summary of the training rows, all
    generated up front, batched across users (the main process first: the others then read the cache)."""
    from accelerate import PartialState

    summarizers, train_summaries = {}, {}
    wanted = [m for m in modes if m != SummaryMode.NONE]
    if not wanted:
        return summarizers, train_summaries
    model, tok = load_backbone(args.summarizer or args.backbone, dtype=args.dtype)
    model = (model.cuda() if torch.cuda.is_available() else model).eval()
    by_user = summary_histories(train_rows)
    with timed(timings, "summaries_s"), PartialState().main_process_first():
        for mode in wanted:  # in order: a later mode's generator reads what an earlier one wrote
            summarizer = TRSRSummarizer(model, tok, catalog, out / SUMMARY_CACHE, args.summary_config(mode, domain))
            users = list(by_user) if need_training(mode) else []
            texts = summarizer.summarize([by_user[u] for u in users] + list(eval_rows["history"]),
                                         user_ids=users + list(eval_rows["user_id"]), progress=not args.disable_tqdm)
            summarizers[mode], train_summaries[mode] = summarizer, dict(zip(users, texts[: len(users)]))
    return summarizers, train_summaries


def summary_throughput(summarizer: TRSRSummarizer, histories, timings: dict) -> None:
    """Users summarised per second (hierarchical, into fresh caches): ``histories`` batched as the run batches them,
    against a 32nd of them (at least one) one user at a time with one prompt per generate call (the released code's
    way); recorded as ``summary_users_per_s_batched`` / ``_one_at_a_time``."""
    gen = summarizer.generator
    config = dataclasses.replace(summarizer.config, mode=SummaryMode.HIERARCHICAL)
    single = histories[: max(1, len(histories) // 32)]
    for label, batch_size, parts in (("batched", config.batch_size, [histories]),
                                     ("one_at_a_time", 1, [[h] for h in single])):
        with tempfile.TemporaryDirectory(prefix="trsr-throughput-") as tmp:
            fresh = TRSRSummarizer(gen.model, gen.tokenizer, summarizer.prompter.catalog, tmp,
                                   dataclasses.replace(config, batch_size=batch_size))
            start = time.perf_counter()
            for part in parts:
                fresh.summarize(part, progress=False)
            timings[f"summary_users_per_s_{label}"] = round(sum(map(len, parts)) / (time.perf_counter() - start), 3)
    logger.info("summaries: %.2f users/s batched (%d users), %.2f one at a time (%d users)",
                timings["summary_users_per_s_batched"], len(histories), timings["summary_users_per_s_one_at_a_time"],
                len(single))


def train_recommender(args, mode: SummaryMode, folder: Path, out: Path, examples: list[dict], timings: dict):
    """LoRA on a fresh backbone; the adapter is saved into ``folder`` (the first mode's folder also gets the base
    weights and tokenizer: the adapter's base is ``out`` itself) with the mode and the training's cost
    (``training_cost``) in its marker. Returns the trained model and that cost."""
    model, tok = new_backbone(args)
    model.name_or_path = str(out.resolve())  # what the saved adapter names as its base
    if folder == out and int(os.environ.get("RANK", "0")) == 0:
        save_into(out, lambda d: (model.save_pretrained(d), tok.save_pretrained(d)))
    checkpoints = out / "checkpoints" / mode.value
    config = args.sft_kwargs(checkpoints, args.num_train_epochs, args.learning_rate,
                             compile_layers=args.compile_layers)
    config["ranking_loss"] = args.ranking_loss
    config.update(json_flag("sft_args", args.sft_args))
    logger.info("%s: %d %s examples (mean %.0f tokens)", LABELS[mode], len(examples), args.ranking_loss,
                sum(example_tokens(e) for e in examples) / max(len(examples), 1))
    trainer = TRSRSFTTrainer(model=model, args=TRSRSFTConfig(**config), train_dataset=Dataset.from_list(examples),
                             processing_class=tok)
    resume = get_last_checkpoint(str(checkpoints)) if args.resume_from_checkpoint and checkpoints.exists() else None
    with timed(timings, f"train_{mode.value}_s"):
        trainer.train(resume_from_checkpoint=resume)
    cost = training_cost(trainer)
    peft_model = trainer.accelerator.unwrap_model(trainer.model)
    if trainer.is_world_process_zero():
        save_into(folder, peft_model.save_pretrained)
        atomic_write_json(folder / MODE_MARKER, {"summary_mode": mode.value, "training_cost": cost})
    trainer.accelerator.wait_for_everyone()
    decompile_decoder_layers(peft_model)  # ranking gains nothing from compiled layers
    return peft_model.eval(), cost


def example_tokens(example: dict) -> int:
    """Tokens one training example forwards (pointwise: its ids; listwise: the prompt once + every segment)."""
    if "input_ids" in example:
        return len(example["input_ids"])
    return len(example["prompt_ids"]) + sum(map(len, example["candidate_ids"]))


def saved_cost(folder: Path) -> dict:
    """The training cost a trained mode's marker recorded (a rerun re-ranks it without training)."""
    return json.loads((folder / MODE_MARKER).read_text()).get("training_cost") or {}


def save_recommender_info(args, out: Path, modes, teacher_dir: Path, ds, domain: str) -> None:
    """What ``pipeline("next-item-recommendation", model=out)`` needs besides the weights: the dataset, the SR
    teacher, the prompt settings and the summariser with its cache (the folder's own recommender is modes[0])."""
    copy_teacher(teacher_dir, out)
    main = modes[0]
    write_recommender_info(
        out, method="trsr", dataset=ds.name, data_dir=args.data_dir, split_seed=args.split_seed,
        num_candidates=args.num_candidates, teacher="teacher", summary_mode=main.value, label=LABELS[main],
        modes={m.value: str(mode_dir(out, modes, m).relative_to(out)) for m in modes},
        summary=None if main == SummaryMode.NONE else args.summary_config(main, domain).to_dict(),
        block_size=args.block_size, max_blocks=args.max_blocks, summarizer=args.summarizer or args.backbone,
        summarizer_dtype=str(resolve_dtype(args.dtype)).removeprefix("torch."), summary_cache=SUMMARY_CACHE,
        domain=domain, item_text_tokens=args.item_text_tokens, recent_items=args.recent_items,
        use_chat_template=True, answers=list(ANSWERS), eval_batch_size=args.eval_batch_size,
    )


def rank(table: RankingTable, label: str, model_type: str, scorer: YesNoScorer, eval_rows, timings: dict,
         key: str, **extra) -> dict:
    logger.info("ranking %d users with %s", len(eval_rows), label)
    metrics = evaluate_scorer(scorer, eval_rows, "candidates", ks=KS, progress=False)
    timings[key] = round(scorer.seconds, 1)
    return table.add(label, model_type, metrics, len(eval_rows), **extra)


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    (args,) = make_parser().parse_args_into_dataclasses(args=argv)
    out, command = start_run(args.apply_preset(), argv, "trainers/sft_trsr.py")
    started, timings = time.perf_counter(), {}
    with timed(timings, "teacher_s"):
        teacher, teacher_dir = load_or_train_teacher(
            out, args.teacher_dir, args.teacher, args.dataset, args.data_dir, args.teacher_epochs, args.seed,
            args.split_seed, args.num_candidates, args.disable_tqdm)
    ds = load_benchmark(args.dataset, data_dir=args.data_dir, num_candidates=args.num_candidates,
                        seed=args.split_seed, max_history=50)
    modes = args.modes()
    trained = {m: is_trained(mode_dir(out, modes, m), out, m) for m in modes}
    if all(trained.values()):
        logger.info("%s already holds every trained recommender: evaluating them, not retraining", out)
    domain = args.domain or ds.domain
    catalog = ItemCatalog.from_items(ds.item_table)

    eval_rows = ds[args.eval_split]
    if args.eval_users:
        eval_rows = eval_rows.select(range(min(args.eval_users, len(eval_rows))))
    n = len(eval_rows)
    table = RankingTable(ds.name, args.eval_split, args.num_candidates, args.split_seed, command,
                         columns=RECALL_MRR_COLUMNS)
    table.add("popularity", "popularity", evaluate_scorer(popularity_scorer(ds["train"], ds.num_items), eval_rows,
                                                          "candidates", ks=KS, progress=False), n, baseline=True)
    teacher_name = teacher_display_name(teacher)
    table.add(f"{teacher_name} (teacher)", teacher.config.model_type,
              evaluate_scorer(sr_model_scorer(teacher), eval_rows, "candidates", ks=KS, progress=False), n,
              baseline=True)

    train_rows = select_training_rows(ds["train"], args.train_rows_per_user, args.train_max_rows or None,
                                      seed=args.seed + 1, stride=args.train_prefix_stride)
    summarizers, train_summaries = summarize_all(args, modes, catalog, domain, train_rows, eval_rows, out,
                                                 lambda m: not trained[m], timings)
    if args.summary_throughput_users and summarizers and not all(trained.values()):
        summary_throughput(next(iter(summarizers.values())), list(eval_rows["history"])[
            : args.summary_throughput_users], timings)

    # the recommender's prompts, in the backbone's tokens (the summariser may be another model)
    tok = AutoTokenizer.from_pretrained(resolve_backbone(args.backbone))
    prompter = TRSRPrompter(tok, catalog, domain=domain, item_text_tokens=args.item_text_tokens,
                            recent_items=args.recent_items)
    backbone_label = Path(resolve_backbone(args.backbone)).name
    progress = not args.disable_tqdm
    if args.zero_shot:  # also on a rerun that reloads every recommender: the row belongs to the run's table
        first = summarizers.get(modes[0])
        zero = first.generator.model if first is not None and args.summarizer is None else new_backbone(args)[0]
        rank(table, f"zero-shot LLM ({backbone_label})", "llm-zero-shot",
             YesNoScorer(zero, tok, prompter, first, args.eval_batch_size, progress), eval_rows, timings,
             "rank_zero_shot_s", summary_mode=modes[0].value)

    final = {}
    counts = item_counts(ds["train"], ds.num_items) if args.popular_share else None
    for mode in modes:
        folder = mode_dir(out, modes, mode)
        if trained[mode]:
            model, cost = load_trained(args, folder), saved_cost(folder)
        else:
            examples = build_training_examples(
                train_rows, prompter, ds.num_items, train_summaries.get(mode), seed=args.seed + 2,
                num_negatives=args.num_negatives, listwise=args.ranking_loss == "listwise",
                popular_share=args.popular_share, counts=counts)
            model, cost = train_recommender(args, mode, folder, out, examples, timings)
        scorer = YesNoScorer(model, tok, prompter, summarizers.get(mode), args.eval_batch_size, progress)
        metrics = rank(table, LABELS[mode], "trsr", scorer, eval_rows, timings, f"rank_{mode.value}_s",
                       summary_mode=mode.value, ranking_loss=args.ranking_loss, num_negatives=args.num_negatives,
                       popular_share=args.popular_share, **cost)
        final = final or metrics
        del model, scorer
    with timed(timings, "rank_compared_s"):
        rank_saved_runs(table, args.compare_with, eval_rows, ks=KS, data_dir=args.data_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        save_recommender_info(args, out, modes, teacher_dir, ds, domain)
    timings["total_s"] = round(time.perf_counter() - started, 1)
    header = (f"LLM-TRSR on {ds.name} ({args.eval_split}, {args.num_candidates} candidates, backbone "
              f"{backbone_label}, summaries {', '.join(m.value for m in modes)}, teacher {teacher_name} from "
              f"{teacher_dir}, preset {args.preset}, {timings['total_s']:.0f} s)")
    for record in table.records:
        record["timings"] = timings
    table.save(out, header)
    return {label: metrics for label, _, metrics in table.rows} | {"timings": timings, "final": final}


__all__ = ["PRESETS", "TRSRScriptArguments", "main", "make_parser"]

if __name__ == "__main__":
    run_script(main)
