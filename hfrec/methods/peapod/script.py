"""PeaPOD end to end: SR teacher -> users' interest vectors -> PersonalizedPromptLM trained on three tasks (LoRA +
prompt pool) -> ranking tables.

    python trainers/sft_peapod.py --preset cpu --teacher_dir runs/sasrec --output_dir runs/peapod-cpu
    accelerate launch --config_file hfrec/trainers/accelerate_configs/single_gpu.yaml \\
        trainers/sft_peapod.py --preset gpu --teacher_dir runs/sasrec --output_dir runs/peapod-gpu
    hfrec train peapod --preset cpu --output_dir runs/peapod-cpu          # the same, through the CLI

Interest vectors are the SR teacher's representations of each user's training sequence
(``hfrec.methods.peapod.data.user_interest_table``). Each variant of ``--variants`` trains its own model on the same
examples: ``personalized`` (the prompt pool composed per user: PeaPOD), ``global`` (one soft prompt composed from the
pool for everyone) and ``none`` (no soft prompt: LoRA on the same text prompts). The tasks: sequential
recommendation, top-n recommendation (P5's direct recommendation: the user given by the soft prompt alone) and
explanation generation on datasets with review text (skipped with one message elsewhere: MovieLens has none).

Evaluation, every row on the same test users:

* sequential recommendation over the 20 stored candidates, by title likelihood (``LikelihoodScorer``), next to
  popularity, the SR teacher and the zero-shot LLM (the table of ``results_table.txt``, ``eval_results.json``);
* top-n over stored lists of 1 positive + 99 negatives (``load_benchmark(num_candidates=100)``: the same protocol,
  lists stored with the split);
* sequential recommendation over the whole catalogue by beam search under an item trie (never an invalid item; the
  valid ratio is recorded anyway);
* explanations: BLEU-4 (sacrebleu) and ROUGE-1/2/L F1 (rouge-score) of greedy generations against the test reviews.

Output: ``OUTPUT/<variant>`` holds each trained model (LoRA merged into the backbone; ``PersonalizedPromptLM``
loads it), its tokenizer, ``hfrec_recommender.json`` and the teacher; ``OUTPUT`` holds the tables. Each saved model
is reloaded and re-scored on the first users: ``reload_max_abs_diff`` in the records must be 0.

Presets (fields left unset take the preset's value; any flag overrides):

``cpu``  a 2-core AVX2-only CPU, offline, SmolLM2-135M-Instruct: the personalized variant only, 5 history items,
         the latest training prefix and one top-n item per user (capped at 96 examples), one epoch, LoRA on q/v of
         the top 10 layers (the backward pass stops there), 60 test users for sequential ranking and 20 for
         top-n, no generative ranking, no zero-shot row.
``gpu``  the full protocol: every variant (the ablation), 10 history items, 4 training prefixes and 2 top-n items
         per user, one epoch, LoRA on every linear layer, batch 64, every test user, generative ranking with 10
         beams, the zero-shot row. Decoder layers run eagerly: compiled, the first 60 training steps on an H200
         ran 3.4x slower (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import HfArgumentParser

from ...data import load_benchmark, load_reviews
from ...evaluation import evaluate_scorer, popularity_scorer, sr_model_scorer
from ...metrics import metrics_from_ranks
from ...models.peapod import PersonalizedPromptLM
from ...utils import run_script
from ..common.backbones import resolve_dtype
from ..common.generation import ItemTrie, generate_items, generate_token_ids
from ..common.prompts import ItemCatalog
from ..common.ranking import (LikelihoodScorer, RankingTable, choose_length_normalization, rank_saved_runs,
                              write_recommender_info)
from ..common.runs import MethodScriptArguments, copy_teacher, save_into, start_run
from ..common.sft import decompile_decoder_layers, training_cost
from ..common.teachers import load_or_train_teacher, teacher_display_name
from .config import PeaPODSFTConfig
from .data import build_training_examples, user_index, user_interest_table
from .prompts import TASK_EXPLANATION, TASK_SEQUENTIAL, TASK_TOPN, PeaPODPrompter
from .trainer import PeaPODTrainer

logger = logging.getLogger("hfrec.peapod")

VARIANTS = ("personalized", "global", "none")
VARIANT_LABELS = {"personalized": "PeaPOD (personalized prompt pool)", "global": "PeaPOD, one global soft prompt",
                  "none": "PeaPOD, no soft prompt (LoRA only)"}

T5_LORA_TARGETS = {"q_proj,v_proj": "q,v", "q_proj,k_proj,v_proj,o_proj": "q,k,v,o"}

# fields whose unset value means "all" (users, examples): preset "none" leaves them unset
NULLABLE = {"eval_users", "topn_users", "generative_users", "explanation_users", "max_train_examples",
            "explanation_max"}

PRESETS: dict[str, dict] = {
    "cpu": dict(variants="personalized", max_history=5, sequential_rows_per_user=1, topn_per_user=1,
                max_train_examples=96, explanation_max=64, epochs=1.0, learning_rate=2e-3, prompt_learning_rate=1e-2,
                per_device_train_batch_size=8, eval_users=100, topn_users=0, generative_users=0, num_beams=10,
                eval_batch_size=8, lora_target_modules="q_proj,v_proj", lora_top_layers=10, compile_layers=False,
                zero_shot=True, teacher_epochs=20, explanation_users=20, length_normalize="auto",
                prompt_values="pool"),
    "gpu": dict(variants="personalized,global,none", max_history=10, sequential_rows_per_user=4, topn_per_user=2,
                max_train_examples=None, explanation_max=None, epochs=1.0, learning_rate=3e-4,
                prompt_learning_rate=1e-3, per_device_train_batch_size=64, eval_users=None, topn_users=None,
                generative_users=None, num_beams=10, eval_batch_size=32, lora_target_modules="all-linear",
                lora_top_layers=0, compile_layers=False, zero_shot=True, teacher_epochs=200,
                explanation_users=None, length_normalize="auto", prompt_values="pool"),
}


@dataclass
class PeaPODScriptArguments(MethodScriptArguments):
    output_dir: str = field(default="runs/peapod", metadata={"help": "Where everything is written."})
    backbone_kind: str = field(default="causal", metadata={"help": "causal | seq2seq (T5, as in the paper)."})
    variants: str | None = field(default=None, metadata={"help": "Comma list of personalized, global, none."})
    interest_source: str = field(default="user", metadata={"help": "user | similar_users (the released code's "
                                                                   "neighbour variant) for the personalized variant."})
    num_prompt_components: int = field(default=20, metadata={"help": "Pool size (released code: 20)."})
    component_length: int = field(default=3, metadata={"help": "Vectors per component (released code: 3)."})
    num_prompt_heads: int = field(default=4, metadata={"help": "Attention heads (released code: 4)."})
    task_prompt_length: int = field(default=3, metadata={"help": "Task-specific prompt vectors."})
    item_identifier: str = field(default="title", metadata={"help": "title | id (P5-style numeric ids)."})
    max_history: int | None = field(default=None, metadata={"help": "History items in sequential prompts."})
    sequential_rows_per_user: int | None = field(default=None, metadata={"help": "Training prefixes per user."})
    topn_per_user: int | None = field(default=None, metadata={"help": "Top-n training items per user."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Cap on the training examples."})
    explanation_max: int | None = field(default=None, metadata={"help": "Cap on explanation training examples."})
    epochs: float | None = field(default=None, metadata={"help": "Training epochs."})
    learning_rate: float | None = field(default=None, metadata={"help": "LoRA learning rate."})
    prompt_learning_rate: float | None = field(default=None, metadata={"help": "Prompt pool learning rate."})
    lora_target_modules: str | None = field(default=None, metadata={"help": "Comma list or all-linear."})
    compile_layers: bool | None = field(default=None, metadata={"help": "Compile decoder layers for training."})
    topn_candidates: int = field(default=100, metadata={"help": "Top-n list size: 1 positive + N-1 negatives "
                                                                "(paper: 100), stored with the split."})
    topn_users: int | None = field(default=None, metadata={"help": "Users ranked over top-n lists (unset: all; 0: none)."})
    generative_users: int | None = field(default=None, metadata={"help": "Users ranked by constrained beam search "
                                                                        "over the catalogue (0: none)."})
    explanation_users: int | None = field(default=None, metadata={"help": "Test reviews explained (unset: all)."})
    num_beams: int | None = field(default=None, metadata={"help": "Beams of generative ranking."})
    eval_batch_size: int | None = field(default=None, metadata={"help": "Users per scoring batch."})
    zero_shot: bool | None = field(default=None, metadata={"help": "Also rank with the backbone alone."})
    length_normalize: str | None = field(
        default=None,
        metadata={"help": "Sequential title score = sum logp / n**a: a number a (1 = mean, 0 = sum), or auto = the a "
                  "in {1, 0.5, 0} with the best HR@1 on as many validation users as --eval_users, per LLM row (one "
                  "more ranking of those users). With --eval_split validation, auto reports the chosen a's metrics "
                  "on the rows it was chosen on (for tuning; the test split gives the honest figure)."})
    prompt_values: str | None = field(
        default=None,
        metadata={"help": "pool: the personalized prompt mixes learned pool components (weights from the user's "
                  "interest vector); similar_users: the released code's form, attention from the user over its "
                  "--num_prompt_components most similar users, whose projected vectors make the prompt (user "
                  "information flows into the prompt directly). The global variant always uses the pool."})

    def apply_preset(self) -> "PeaPODScriptArguments":
        if self.preset not in (*PRESETS, "none"):
            raise ValueError(f"Unknown preset {self.preset!r}: use one of {[*PRESETS, 'none']}")
        preset = PRESETS.get(self.preset, {})
        for key, fallback in PRESETS["cpu"].items():  # unset fields: the preset's value, else the cpu one
            if getattr(self, key) is None:
                if key in preset:
                    setattr(self, key, preset[key])
                elif key not in NULLABLE:
                    setattr(self, key, fallback)
        if self.backbone_kind == "seq2seq":  # T5 names its attention projections q, k, v, o
            self.lora_target_modules = T5_LORA_TARGETS.get(self.lora_target_modules, self.lora_target_modules)
        self.dtype = self.dtype or "auto"
        resolve_dtype(self.dtype)
        unknown = [v for v in self.variant_list if v not in VARIANTS]
        if unknown or not self.variant_list:
            raise ValueError(f"--variants takes a comma list of {VARIANTS}, got {self.variants!r}")
        if self.interest_source not in ("user", "similar_users"):
            raise ValueError(f"--interest_source must be user or similar_users, got {self.interest_source!r}")
        if self.backbone_kind not in ("causal", "seq2seq"):
            raise ValueError(f"--backbone_kind must be causal or seq2seq, got {self.backbone_kind!r}")
        if self.prompt_values not in ("pool", "similar_users"):
            raise ValueError(f"--prompt_values must be pool or similar_users, got {self.prompt_values!r}")
        if self.length_normalize != "auto":
            try:
                float(self.length_normalize)
            except ValueError:
                raise ValueError(f"--length_normalize must be a number or auto, got {self.length_normalize!r}") from None
        return self

    @property
    def variant_list(self) -> list[str]:
        return [v.strip() for v in (self.variants or "").split(",") if v.strip()]


def make_parser() -> HfArgumentParser:
    return HfArgumentParser(
        (PeaPODScriptArguments,),
        description="PeaPOD (personalized soft prompts from a shared pool, three tasks) with its comparison tables.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# ---------------------------------------------------------------------------------------------------- steps
def new_model(args, variant: str, interests, ds):
    """A fresh ``(PersonalizedPromptLM, tokenizer)`` for one variant, on the GPU when there is one."""
    source = "none" if variant == "global" else args.interest_source
    released = args.prompt_values == "similar_users" and variant == "personalized"
    neighbours = {"num_similar_users": args.num_prompt_components} if released else {}
    model, tok = PersonalizedPromptLM.from_backbone(
        args.backbone, user_interests=interests, dtype=args.dtype, kind=args.backbone_kind, seed=args.seed,
        num_prompt_components=args.num_prompt_components, component_length=args.component_length,
        num_prompt_heads=args.num_prompt_heads, task_prompt_length=args.task_prompt_length, interest_source=source,
        domain=args.domain or ds.domain, item_identifier=args.item_identifier,
        prompt_values="similar_users" if released else "pool", **neighbours)
    return (model.cuda() if torch.cuda.is_available() else model), tok


def prompter_for(args, model, tok, ds, variant: str) -> PeaPODPrompter:
    return PeaPODPrompter(tok, ItemCatalog.from_items(ds.item_table),
                          num_virtual_tokens=0 if variant == "none" else model.config.num_virtual_tokens,
                          prompt_token=model.config.prompt_token, domain=args.domain or ds.domain,
                          max_history=args.max_history, item_identifier=args.item_identifier,
                          use_chat_template=args.backbone_kind == "causal")


def train_variant(args, variant: str, model, tok, prompter, ds, reviews, out: Path, timings: dict):
    """LoRA + prompt modules on the three tasks; returns the model with LoRA merged in."""
    examples, counts = build_training_examples(ds["train"], prompter, reviews, args.sequential_rows_per_user,
                                               args.topn_per_user, args.explanation_max, seed=args.seed)
    built = len(examples)
    if args.max_train_examples is not None:  # the tasks are shuffled together: the cap keeps their mix
        examples = examples[: args.max_train_examples]
    logger.info("%s: %d training examples of %d built (%s; mean %.0f tokens)", variant, len(examples), built, counts,
                sum(len(e["input_ids"]) for e in examples) / max(len(examples), 1))
    t0 = time.time()
    config = PeaPODSFTConfig(**args.sft_kwargs(
        out / "checkpoints", args.epochs, args.learning_rate, prompt_learning_rate=args.prompt_learning_rate,
        train_prompts=variant != "none", compile_layers=args.compile_layers and args.backbone_kind == "causal",
        save_strategy="no"))
    trainer = PeaPODTrainer(model=model, args=config, train_dataset=Dataset.from_list(examples), processing_class=tok)
    result = trainer.train()
    timings[f"train_{variant}_s"] = round(time.time() - t0, 1)
    cost = training_cost(trainer)
    merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
    decompile_decoder_layers(merged)
    del trainer
    return merged.eval(), {"examples": counts, "train_loss": result.training_loss, **cost}


def row_inputs_of(rows: dict, task: int) -> dict:
    users = [user_index(u) for u in rows["user_id"]]
    return {"user_index": torch.tensor(users), "task": torch.full((len(users),), task)}


def sequential_scorer(model, tok, prompter, args, variant: str | None) -> LikelihoodScorer:
    return LikelihoodScorer(model, tok, lambda rows: [prompter.sequential_prompt(h) for h in rows["history"]],
                            prompter.item_text, batch_size=args.eval_batch_size, progress=not args.disable_tqdm,
                            row_inputs=None if variant in (None, "none") else
                            (lambda rows: row_inputs_of(rows, TASK_SEQUENTIAL)))


def topn_scorer(model, tok, prompter, args, variant: str | None) -> LikelihoodScorer:
    return LikelihoodScorer(model, tok, lambda rows: [prompter.topn_prompt() for _ in rows["history"]],
                            prompter.item_text, batch_size=max(1, args.eval_batch_size // 4),
                            progress=not args.disable_tqdm,
                            row_inputs=None if variant in (None, "none") else (lambda rows: row_inputs_of(rows, TASK_TOPN)))


def generative_metrics(model, tok, prompter, args, variant: str | None, rows, num_items: int) -> dict:
    """HR/NDCG/MRR@1,5,10 over the whole catalogue from constrained beam search (an item outside the list, or an
    invalid output, is a miss); seen items are not masked: a generated history item is simply a wrong answer. Beam
    search returns ``num_beams`` items, so metrics at k > num_beams count only those."""
    trie = ItemTrie({i: prompter.item_completion(i) for i in range(1, num_items + 1)})
    extra = None if variant in (None, "none") else row_inputs_of(rows[:], TASK_SEQUENTIAL)
    result = generate_items(model, tok, [prompter.sequential_prompt(h) for h in rows["history"]], trie,
                            num_beams=args.num_beams, batch_size=args.eval_batch_size,
                            row_inputs=extra, progress=not args.disable_tqdm)
    targets = [trie.canonical(t) for t in rows["target"]]  # a title shared by two items names both
    ranks = torch.tensor([items.index(t) if t in items else num_items for items, t in zip(result.items, targets)],
                         dtype=torch.float64)
    return {**metrics_from_ranks(ranks), "valid_ratio": result.valid_ratio, "items_sharing_identifier":
            trie.num_shared}


def explanation_metrics(model, tok, prompter, args, variant: str | None, pairs, reviews) -> dict:
    """BLEU-4 (sacrebleu, corpus level) and ROUGE-1/2/L F1 (rouge-score, mean) of greedy explanations."""
    try:
        import sacrebleu
        from rouge_score import rouge_scorer
    except ImportError as err:
        raise ImportError("Explanation metrics need sacrebleu and rouge-score: pip install 'hfrec[explain]'") from err
    prompts = [prompter.explanation_prompt(i) for _, i in pairs]
    rows = {"user_id": [u for u, _ in pairs]}
    extra = None if variant in (None, "none") else row_inputs_of(rows, TASK_EXPLANATION)
    texts = []
    for s in range(0, len(prompts), args.eval_batch_size):
        part = None if extra is None else {k: v[s : s + args.eval_batch_size] for k, v in extra.items()}
        ids = generate_token_ids(model, tok, prompts[s : s + args.eval_batch_size], row_inputs=part,
                                 do_sample=False, num_beams=1, max_new_tokens=prompter.explanation_tokens)
        texts += [t.strip() for t in tok.batch_decode(ids, skip_special_tokens=True)]
    references = [reviews[p] for p in pairs]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    rouge = [scorer.score(ref, hyp) for ref, hyp in zip(references, texts)]
    metrics = {"BLEU-4": sacrebleu.corpus_bleu(texts, [references]).score}
    for key, name in (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L")):
        metrics[name] = 100 * sum(r[key].fmeasure for r in rouge) / max(len(rouge), 1)
    return metrics


def variant_folder(out: Path, args, variant: str) -> Path:
    """The first variant's model lives in ``OUTPUT`` itself (what the pipeline and ``push_to_hub`` take), the others
    in ``OUTPUT/variants/<variant>``."""
    return out if variant == args.variant_list[0] else out / "variants" / variant


def load_variant(folder: Path, variant: str, args):
    """A trained variant saved by an earlier run of the same command, or None."""
    from transformers import AutoTokenizer

    from ..common.ranking import read_recommender_info

    info = read_recommender_info(folder)
    if info is None or not (folder / "config.json").exists():
        return None
    if info.get("method") != "peapod" or info.get("variant") != variant:
        raise ValueError(f"{folder} holds a {info.get('method')} model of variant {info.get('variant')!r}, not the "
                         f"PeaPOD variant {variant!r}: use another --output_dir or the same --variants order")
    model = PersonalizedPromptLM.from_pretrained(str(folder), dtype=resolve_dtype(args.dtype))
    logger.info("%s already holds the trained %s variant: evaluating it, not retraining", folder, variant)
    cost = {k: info[k] for k in ("train_s", "train_tokens", "examples", "train_loss") if k in info}
    return ((model.cuda() if torch.cuda.is_available() else model).eval(), AutoTokenizer.from_pretrained(str(folder)),
            cost)


def write_variant_info(args, variant: str, folder: Path, ds, **more) -> None:
    """``hfrec_recommender.json``: what the pipeline needs, and the row's training cost (a later run that reuses
    the saved variant reports it too); written again once ranking has chosen the length normalisation."""
    write_recommender_info(folder, method="peapod", dataset=ds.name, data_dir=args.data_dir,
                           split_seed=args.split_seed, num_candidates=args.num_candidates, teacher="teacher",
                           variant=variant, max_history=args.max_history, item_identifier=args.item_identifier,
                           domain=args.domain or ds.domain, use_chat_template=args.backbone_kind == "causal",
                           eval_batch_size=args.eval_batch_size, **more)


def save_variant(args, variant: str, model, tok, folder: Path, teacher_dir: Path, ds, **more) -> Path:
    save_into(folder, lambda d: (model.save_pretrained(d), tok.save_pretrained(d)))
    copy_teacher(teacher_dir, folder)
    write_variant_info(args, variant, folder, ds, **more)
    return folder


def reload_difference(folder: Path, model, tok, prompter, args, variant: str, rows) -> float:
    """Largest |score difference| between the in-memory model and the one reloaded from ``folder``."""
    dtype = model.get_input_embeddings().weight.dtype  # the backbone's (model.dtype reads the fp32 prompt pool)
    reloaded = PersonalizedPromptLM.from_pretrained(str(folder), dtype=dtype).to(model.device).eval()
    before = sequential_scorer(model, tok, prompter, args, variant)(rows, "candidates")
    after = sequential_scorer(reloaded, tok, prompter, args, variant)(rows, "candidates")
    del reloaded
    return float((before - after).abs().max())


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    (args,) = make_parser().parse_args_into_dataclasses(args=argv)
    out, command = start_run(args.apply_preset(), argv, "trainers/sft_peapod.py")
    timings: dict[str, float] = {}
    t_start = time.time()

    ds = load_benchmark(args.dataset, data_dir=args.data_dir, num_candidates=args.num_candidates,
                        seed=args.split_seed, max_history=50)
    try:
        ds100 = load_benchmark(args.dataset, data_dir=args.data_dir, num_candidates=args.topn_candidates,
                               seed=args.split_seed, max_history=50)
    except ValueError as err:  # too few items for lists of that size
        logger.warning("Top-n task skipped: %s", err)
        ds100 = None
    teacher, teacher_dir = load_or_train_teacher(
        out, args.teacher_dir, args.teacher, args.dataset, args.data_dir, args.teacher_epochs, args.seed,
        args.split_seed, args.num_candidates, args.disable_tqdm)
    teacher_name = teacher_display_name(teacher)
    interests = user_interest_table(teacher, ds["validation"], ds.num_users)
    reviews = load_reviews(ds, args.data_dir)
    if not reviews:
        logger.warning("Explanation task skipped: %s has no review text in its .inter file (fields %s); training "
                       "and evaluating sequential and top-n recommendation only.", ds.name,
                       "review_text / review / explanation / text / summary")

    # every row ranks the same users; as many validation users choose each LLM row's length normalisation
    eval_rows, val_rows = ds[args.eval_split], ds["validation"]
    if args.eval_users:
        eval_rows = eval_rows.select(range(min(args.eval_users, len(eval_rows))))
        val_rows = val_rows.select(range(min(args.eval_users, len(val_rows))))
    topn_rows = ds100[args.eval_split] if ds100 is not None else ds[args.eval_split].select([])
    if args.topn_users is not None:  # None: every user; 0: no top-n ranking (the cpu preset)
        topn_rows = topn_rows.select(range(min(args.topn_users, len(topn_rows))))
    n_gen = len(eval_rows) if args.generative_users is None else min(args.generative_users, len(eval_rows))
    gen_rows = eval_rows.select(range(n_gen))
    test_pairs = [(int(u), int(t)) for u, t in zip(ds[args.eval_split]["user_id"], ds[args.eval_split]["target"])
                  if (int(u), int(t)) in reviews][: args.explanation_users or None]

    table = RankingTable(ds.name, args.eval_split, args.num_candidates, args.split_seed, command)
    topn_table = RankingTable(ds.name, args.eval_split, args.topn_candidates, args.split_seed, command)
    n = len(eval_rows)
    # baseline rows: hfrec benchmark ranks popularity and the teacher itself and skips these
    table.add("popularity", "popularity", evaluate_scorer(popularity_scorer(ds["train"], ds.num_items), eval_rows,
                                                          "candidates", progress=False), n, baseline=True)
    table.add(f"{teacher_name} (teacher)", teacher.config.model_type,
              evaluate_scorer(sr_model_scorer(teacher), eval_rows, "candidates", progress=False), n, baseline=True)
    for label, scorer in (("popularity", popularity_scorer(ds["train"], ds.num_items)),
                          (f"{teacher_name} (teacher)", sr_model_scorer(teacher))) if len(topn_rows) else ():
        topn_table.add(label, "baseline", evaluate_scorer(scorer, topn_rows, "candidates", progress=False),
                       len(topn_rows), task="topn")
    rank_saved_runs(table, args.compare_with, eval_rows, data_dir=args.data_dir)  # e.g. a DELRec run
    extra_records: list[dict] = []

    def evaluate(label: str, model_type: str, model, tok, prompter, variant: str | None, info: dict) -> float:
        """Ranks every task's rows; returns the sequential row's length normalisation."""
        t0 = time.time()
        scorer = sequential_scorer(model, tok, prompter, args, variant)
        if args.length_normalize == "auto":
            alpha, selection = choose_length_normalization(scorer, val_rows)
            logger.info("%s: length normalisation %s chosen on %d validation users", label, alpha, len(val_rows))
            info = {**info, "length_normalize_selection": selection}
            # tuning on validation: the selection pass already ranked these very rows
            metrics = (selection["validation_metrics"][str(alpha)] if args.eval_split == "validation" else
                       evaluate_scorer(scorer, eval_rows, "candidates", progress=False))
        else:
            scorer.length_normalize = float(args.length_normalize)
            metrics = evaluate_scorer(scorer, eval_rows, "candidates", progress=False)
        table.add(label, model_type, metrics, n, task="sequential", length_normalize=scorer.length_normalize, **info)
        if len(topn_rows):
            topn_table.add(label, model_type, evaluate_scorer(topn_scorer(model, tok, prompter, args, variant),
                                                              topn_rows, "candidates", progress=False),
                           len(topn_rows), task="topn", **info)
        if len(gen_rows):
            metrics = generative_metrics(model, tok, prompter, args, variant, gen_rows, ds.num_items)
            extra_records.append({"method": label, "task": "sequential", "protocol": "full-generative",
                                  "num_beams": args.num_beams, "num_users": len(gen_rows), "metrics": metrics})
        if test_pairs:
            metrics = explanation_metrics(model, tok, prompter, args, variant, test_pairs, reviews)
            extra_records.append({"method": label, "task": "explanation", "num_users": len(test_pairs),
                                  "metrics": metrics})
        timings[f"eval_{info.get('variant', model_type)}_s"] = round(time.time() - t0, 1)
        return scorer.length_normalize

    if args.zero_shot:
        model, tok = new_model(args, "none", interests, ds)
        evaluate(f"zero-shot LLM ({Path(str(model.config.backbone_name_or_path)).name})", "llm-zero-shot", model,
                 tok, prompter_for(args, model, tok, ds, "none"), None, {})
        del model

    final = {}
    for variant in args.variant_list:
        folder = variant_folder(out, args, variant)
        loaded = load_variant(folder, variant, args)
        if loaded is not None:
            model, tok, cost = loaded
            info = {"variant": variant, "reloaded": True, **cost}
            prompter = prompter_for(args, model, tok, ds, variant)
        else:
            model, tok = new_model(args, variant, interests, ds)
            prompter = prompter_for(args, model, tok, ds, variant)
            model, info = train_variant(args, variant, model, tok, prompter, ds, reviews, out, timings)
            save_variant(args, variant, model, tok, folder, teacher_dir, ds, **info)
            info["variant"] = variant
            info["reload_max_abs_diff"] = reload_difference(folder, model, tok, prompter, args, variant,
                                                            eval_rows.select(range(min(4, n)))[:])
        alpha = evaluate(VARIANT_LABELS[variant], "peapod", model, tok, prompter, variant, info)
        if int(os.environ.get("RANK", "0")) == 0:  # the pipeline scores with the normalisation chosen here
            write_variant_info(args, variant, folder, ds, length_normalize=alpha,
                               **{k: v for k, v in info.items() if k not in ("variant", "reloaded",
                                                                             "reload_max_abs_diff")})
        final = final or table.rows[-1][2]
        del model

    timings["total_s"] = round(time.time() - t_start, 1)
    backbone_label = Path(str(args.backbone or "SmolLM2-135M-Instruct")).name
    header = (f"PeaPOD on {ds.name} ({args.eval_split}, backbone {backbone_label}, teacher {teacher_name}, preset "
              f"{args.preset}, variants {args.variants}, {timings['total_s']:.0f} s)")
    for record in table.records + topn_table.records:
        record["timings"] = timings
    table.save(out, "Sequential recommendation, 20 stored candidates. " + header)
    topn_text = topn_table.text("Top-n recommendation, 1 positive + 99 negatives (stored lists). " + header)
    if int(os.environ.get("RANK", "0")) == 0:
        from ...utils import atomic_write_json, atomic_write_text

        atomic_write_json(out / "eval_results_topn.json", topn_table.records)
        atomic_write_json(out / "eval_results_generative.json", extra_records)
        atomic_write_text(out / "results_topn.txt", topn_text + "\n")
        print(topn_text, flush=True)
        for record in extra_records:
            print(json.dumps(record), flush=True)
    return {label: metrics for label, _, metrics in table.rows} | {"timings": timings, "final": final,
                                                                    "topn": {l: m for l, _, m in topn_table.rows},
                                                                    "generative": extra_records}


__all__ = ["PRESETS", "PeaPODScriptArguments", "VARIANTS", "main", "make_parser"]

if __name__ == "__main__":
    run_script(main)
