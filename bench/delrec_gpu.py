"""DELRec on a GPU: the full protocol table and the two throughput comparisons of issue 3.

    python bench/delrec_gpu.py --out results/            # on an H100/H200, offline (see bench/delrec_notes.md)

1. Full protocol (ML-100K, every test user, the 20 stored candidates, SASRec teacher): HR@1/5, NDCG@5 for
   popularity, SASRec, the zero-shot LLM, DELRec with its untrained soft prompt and DELRec (``--preset gpu``).
2. Stage-2 training throughput (tokens/s, MFU) of ``DELRecSFTTrainer`` as configured by hfrec (bf16 weights, LoRA,
   larger batches, no activation checkpointing) against TRL's ``SFTTrainer`` with default settings (``SFTConfig``
   defaults, the model passed by path, full fine-tuning) on the same recommendation examples, in the same process.
3. Ranking throughput (users/s): packed title-likelihood scoring against greedy generate-then-match (batched, and
   batch size 1 as in the released LLM-recommender code), with the latter's valid ratio and HR@1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

H100_BF16_PEAK = 989.4e12  # dense bf16 FLOP/s of an H100 SXM
H200_BF16_PEAK = 989.4e12  # same tensor cores


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def flops_per_token(cfg, seq_len: float, full_finetune: bool) -> float:
    """Model FLOPs per trained token (no recompute): forward 2N + 4*l*d*T (attention scores and values), a full
    backward twice the forward, a frozen-base (LoRA / soft prompt) backward about one forward (activation grads)."""
    d, l, v = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    inter = cfg.intermediate_size
    kv = cfg.num_key_value_heads * (d // cfg.num_attention_heads)
    n_layer = l * (2 * d * d + 2 * d * kv + 3 * d * inter)  # q,o + k,v + gate,up,down
    fwd = 2 * n_layer + 4 * l * d * seq_len
    return fwd * (3 if full_finetune else 2)


class StepTimer:
    """TrainerCallback timing optimizer steps after `warmup` steps, counting non-pad tokens."""

    def __init__(self, warmup: int = 3):
        from transformers import TrainerCallback

        outer = self

        class _CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if state.global_step == warmup:
                    sync()
                    outer.t0 = time.perf_counter()

            def on_train_end(self, args, state, control, **kw):
                sync()
                outer.t1 = time.perf_counter()
                outer.steps = state.global_step - warmup

        self.callback = _CB()
        self.warmup = warmup
        self.per_batch: list[int] = []
        self.per_batch_padded: list[int] = []
        self.t0 = self.t1 = None
        self.steps = 0

    def result(self) -> dict:
        # batches are collated in the order the steps consume them (one process, no accumulation; the loader may
        # collate one ahead in time, not out of order): the timed steps' tokens are those of batches warmup..
        secs = self.t1 - self.t0
        timed = slice(self.warmup, self.warmup + self.steps)
        tokens, padded = sum(self.per_batch[timed]), sum(self.per_batch_padded[timed])
        return {"timed_steps": self.steps, "seconds": round(secs, 3), "tokens": tokens,
                "tokens_per_s": tokens / secs, "padded_tokens_per_s": padded / secs,
                "padding_share": round(1 - tokens / max(padded, 1), 4)}


def count_tokens_collator(inner, timer):
    def collate(examples):
        batch = inner(examples)
        n = int(batch["attention_mask"].sum()) if "attention_mask" in batch else int(batch["input_ids"].numel())
        timer.per_batch.append(n)
        timer.per_batch_padded.append(int(batch["input_ids"].numel()))
        return batch

    return collate


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--teacher_dir", default=None, help="trained SASRec; unset: train one (early stopping)")
    ap.add_argument("--teacher_epochs", default="200")
    ap.add_argument("--train_steps", type=int, default=25, help="timed stage-2 steps per trainer (after 3 warm-up)")
    ap.add_argument("--our_batch", type=int, default=64)
    ap.add_argument("--gen_b1_users", type=int, default=64, help="users for batch-1 generate-then-match timing")
    ap.add_argument("--skip_table", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also time our trainer with compile_layers (+ grouping)")
    ap.add_argument("--skip_throughput", action="store_true", help="skip the stage-2 training-throughput part")
    ap.add_argument("--table_name", default="delrec", help="folder (under the work dir) and key of the table run")
    ap.add_argument("--stage1_from", default=None, help="reuse this table run's stage-1 soft prompt (--stages 2)")
    ap.add_argument("--rank_show_candidates", type=lambda x: x.lower() == "true", default=True,
                    help="ranking-throughput prompts list the candidates (as the gpu preset does)")
    ap.add_argument("--report_name", default="delrec_gpu.json")
    ap.add_argument("--extra_variants", default="[]",
                    help='JSON [[name, {DELRecSFTConfig fields}], ...]: more stage-2 throughput variants')
    ap.add_argument("--gen_batched_users", type=int, default=0, help="users for batched generation (0 = all)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script on a CPU")
    ap.add_argument("--profile", action="store_true", help="write a torch.profiler table of 3 training steps")
    ap.add_argument("--batches", default="64", help="our per-device batch sizes to time (comma-separated)")
    ap.add_argument("--skip_ranking", action="store_true", help="skip the ranking-throughput part")
    ap.add_argument("--table_args", default="", help="extra flags for the --preset gpu table run")
    a = ap.parse_args()
    if a.smoke:
        a.train_steps, a.our_batch, a.gen_b1_users = 1, 1, 2
    warm = 1 if a.smoke else 3
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = True
    dev_name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else platform.processor() or "cpu"
    report: dict = {"device": dev_name, "torch": torch.__version__, "python": platform.python_version(),
                    "date": time.strftime("%Y-%m-%d"), "argv": sys.argv[1:]}
    import transformers
    import trl

    report["versions"] = {"transformers": transformers.__version__, "trl": trl.__version__}

    def save():
        tmp = out / f".{a.report_name}.tmp"
        tmp.write_text(json.dumps(report, indent=1, default=str))
        os.replace(tmp, out / a.report_name)

    from hfrec.methods.delrec.script import main as delrec_main
    from hfrec.trainers.train_sr import main as train_sr

    work = Path(os.environ.get("DELREC_WORK", "/tmp/delrec_bench"))
    teacher_dir = Path(a.teacher_dir) if a.teacher_dir else work / "teacher"
    if not (teacher_dir / "config.json").exists():
        t = time.time()
        log("training the SASRec teacher")
        train_sr(["--model", "sasrec", "--dataset", "ml-100k", "--output_dir", str(teacher_dir), "--num_train_epochs",
                  a.teacher_epochs, "--disable_tqdm", "true", "--seed", "42"])
        report["teacher_train_s"] = round(time.time() - t, 1)
        save()

    # ---------------------------------------------------------------- shared pieces for the throughput runs
    from datasets import Dataset
    from transformers import AutoModel
    from trl import SFTConfig, SFTTrainer

    import hfrec.models  # noqa: F401
    from hfrec.data import load_benchmark
    from hfrec.methods.common.backbones import offline_backbone_path
    from hfrec.models.delrec import DELRecForCausalLM
    from hfrec.methods.common.prompts import ItemCatalog
    from hfrec.methods.delrec.prompts import DELRecPrompter
    from hfrec.methods.common.generation import generate_then_match
    from hfrec.methods.common.scoring import score_candidates_by_likelihood
    from hfrec.methods.delrec.config import DELRecSFTConfig
    from hfrec.methods.common.data import select_training_rows
    from hfrec.methods.delrec.data import build_ranking_inputs, build_recommendation_examples
    from hfrec.metrics import candidate_target_index, ranking_metrics

    def candidate_metrics(scores, cand_ids, target_ids):
        return ranking_metrics(scores, candidate_target_index(torch.as_tensor(cand_ids), torch.as_tensor(target_ids)))
    from hfrec.methods.common.sft import PaddingCollator
    from hfrec.methods.delrec.trainer import DELRecSFTTrainer

    ds = load_benchmark("ml-100k")
    catalog = ItemCatalog(list(ds.item_titles))
    teacher = AutoModel.from_pretrained(str(teacher_dir)).to(DEVICE).eval()
    backbone_path = str(offline_backbone_path())
    extra_bs = [v.get("per_device_train_batch_size", 0) for _, v in json.loads(a.extra_variants)]
    n_ex = (a.train_steps + 4) * (max([a.our_batch, 8, *map(int, a.batches.split(",")), *extra_bs]) if not a.smoke else 1)
    rows = select_training_rows(ds["train"], 8, n_ex, seed=0)

    # ---------------------------------------------------------------- 2. stage-2 training throughput
    model, tok = DELRecForCausalLM.from_backbone(backbone_path, num_virtual_tokens=100, dtype=torch.bfloat16)
    pr = DELRecPrompter(tok, catalog, num_virtual_tokens=100, max_history=10)
    ours_ex = build_recommendation_examples(rows, pr, teacher, ds.num_items, 5, 20, seed=0)
    zs = DELRecPrompter(tok, catalog, num_virtual_tokens=0, max_history=10)
    base_ex = build_recommendation_examples(rows, zs, teacher, ds.num_items, 5, 20, seed=0)
    text_ds = Dataset.from_list([
        {"prompt": tok.decode([t for t, l in zip(e["input_ids"], e["labels"]) if l == -100]),
         "completion": tok.decode([t for t in e["labels"] if t != -100])} for e in base_ex])
    thr: dict = {"examples": len(rows)}
    cfg_text = model.config.text_config

    if not a.skip_throughput:  # TRL's defaults first, then ours, in this one process
        log("throughput: TRL SFTTrainer defaults")
        timer = StepTimer(warm)
        base_args = SFTConfig(output_dir=str(work / "trl_default"), max_steps=a.train_steps + warm, report_to="none",
                              save_strategy="no", disable_tqdm=True, logging_steps=1000,
                              **({"per_device_train_batch_size": 1, "use_cpu": True} if a.smoke else {}))
        base = SFTTrainer(model=backbone_path, args=base_args, train_dataset=text_ds, callbacks=[timer.callback])
        base.data_collator = count_tokens_collator(base.data_collator, timer)
        base.train()
        r = timer.result()
        L = r["tokens"] / max(r["timed_steps"] * base_args.per_device_train_batch_size, 1)
        r.update(per_device_train_batch_size=base_args.per_device_train_batch_size, bf16=base_args.bf16,
                 gradient_checkpointing=base_args.gradient_checkpointing, full_finetune=True,
                 weights_dtype=str(next(base.model.parameters()).dtype), mean_tokens_per_example=round(L, 1))
        r["mfu"] = r["tokens_per_s"] * flops_per_token(cfg_text, L, True) / H100_BF16_PEAK
        thr["trl_sft_default"] = r
        log("  ", r)
        del base
        torch.cuda.empty_cache() if DEVICE == 'cuda' else None

    variants = [(f"hfrec_delrec_stage2_bs{b}", {"per_device_train_batch_size": int(b)}) for b in a.batches.split(",")]
    if a.compile:
        variants.append((f"hfrec_delrec_stage2_bs{a.our_batch}_compile_layers",
                         {"compile_layers": True}))
        variants.append((f"hfrec_delrec_stage2_bs{a.our_batch}_compile_layers_group_by_length",
                         {"compile_layers": True, "train_sampling_strategy": "group_by_length"}))
    variants += [tuple(v) for v in json.loads(a.extra_variants)]
    for name, extra in ([] if a.skip_throughput else variants):
        bsz = extra.get("per_device_train_batch_size", a.our_batch)
        log("throughput:", name)
        m = DELRecForCausalLM.from_backbone(backbone_path, num_virtual_tokens=100, dtype=torch.bfloat16)[0].to(DEVICE)
        timer = StepTimer(warm)
        args = DELRecSFTConfig(output_dir=str(work / name), max_steps=a.train_steps + warm, report_to="none",
                               save_strategy="no", disable_tqdm=True, logging_steps=1000,
                               **{"per_device_train_batch_size": a.our_batch, **extra}, bf16=False)
        try:
            tr = DELRecSFTTrainer(model=m, args=args, train_dataset=Dataset.from_list(ours_ex), processing_class=tok,
                                  data_collator=count_tokens_collator(PaddingCollator(tok.pad_token_id, 8), timer),
                                  callbacks=[timer.callback])
            tr.train()
            r = timer.result()
            L = r["tokens"] / max(r["timed_steps"] * bsz, 1)
            r.update(per_device_train_batch_size=bsz, weights_dtype="bfloat16", lora_r=args.lora_r,
                     gradient_checkpointing=False, full_finetune=False, mean_tokens_per_example=round(L, 1),
                     compile_layers=args.compile_layers, train_sampling_strategy=args.train_sampling_strategy)
            r["mfu"] = r["tokens_per_s"] * flops_per_token(cfg_text, L, False) / H100_BF16_PEAK
            r["speedup_tokens_per_s_vs_trl_default"] = r["tokens_per_s"] / thr["trl_sft_default"]["tokens_per_s"]
            thr[name] = r
            log("  ", r)
            del tr
        except Exception as err:  # report, keep the rest of the bench
            thr[name] = {"error": repr(err)[:500]}
            log("  failed:", err)
        del m
        torch.cuda.empty_cache() if DEVICE == 'cuda' else None
    report["stage2_training_throughput"] = thr
    save()

    if a.profile and DEVICE == "cuda":
        log("profiling 3 steps of our stage-2 trainer")
        from transformers import TrainerCallback

        m = DELRecForCausalLM.from_backbone(backbone_path, num_virtual_tokens=100, dtype=torch.bfloat16)[0].to(DEVICE)
        prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                  torch.profiler.ProfilerActivity.CUDA])

        class _Prof(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if state.global_step == 3:
                    prof.start()

            def on_step_end(self, args, state, control, **kw):
                if state.global_step == 6:
                    sync()
                    prof.stop()

        args = DELRecSFTConfig(output_dir=str(work / "prof"), max_steps=6, report_to="none", save_strategy="no",
                               disable_tqdm=True, logging_steps=1000, per_device_train_batch_size=a.our_batch,
                               bf16=False, **({"compile_layers": True, "train_sampling_strategy": "group_by_length"}
                                              if a.compile else {}))
        tr = DELRecSFTTrainer(model=m, args=args, train_dataset=Dataset.from_list(ours_ex), processing_class=tok,
                              data_collator=PaddingCollator(tok.pad_token_id, 64), callbacks=[_Prof()])
        tr.train()
        ka = prof.key_averages()
        text = "== by CPU total ==\n" + ka.table(sort_by="cpu_time_total", row_limit=25)
        for key in ("device_time_total", "cuda_time_total"):
            try:
                text += f"\n== by {key} ==\n" + ka.table(sort_by=key, row_limit=25)
                break
            except Exception as err:  # the key's name changed across torch versions
                text += f"\n({key}: {err})"
        (out / "delrec_profile.txt").write_text(text)
        del tr, m
        torch.cuda.empty_cache()

    # ---------------------------------------------------------------- 1. the full-protocol table (after the training-throughput runs, so a time-out still leaves those)
    table_dir = work / a.table_name
    if not a.skip_table:
        t = time.time()
        log(f"DELRec --preset gpu (table run {a.table_name}: {a.table_args or 'preset only'})")
        stage_args = []
        if a.stage1_from:  # same stage-1 recipe: reuse its soft prompt, train only stage 2
            shutil.copytree(work / a.stage1_from / "stage1", table_dir / "stage1", dirs_exist_ok=True)
            stage_args = ["--stages", "2"]
        smoke = ["--preset", "cpu", "--eval_users", "4", "--stage1_max_rows", "2", "--stage2_max_rows", "4",
                 "--length_normalize", "auto"]
        res = delrec_main([*(smoke if a.smoke else ["--preset", "gpu"]), "--teacher_dir", str(teacher_dir),
                           "--output_dir", str(table_dir), "--disable_tqdm", "true", *stage_args,
                           *a.table_args.split()])
        report[f"table_{a.table_name}"] = {k: v for k, v in res.items() if k not in ("final",)}
        report[f"table_{a.table_name}_wall_s"] = round(time.time() - t, 1)
        report[f"table_{a.table_name}_text"] = (table_dir / "results_table.txt").read_text()
        report[f"table_{a.table_name}_records"] = json.loads((table_dir / "eval_results.json").read_text())
        save()

    # ---------------------------------------------------------------- 3. ranking throughput
    if a.skip_ranking:
        log("done")
        return
    log("ranking throughput")
    final_dir = work / a.table_name
    if (final_dir / "adapter_config.json").exists():
        rank_model = DELRecForCausalLM.from_pretrained(str(final_dir), dtype=torch.bfloat16).to(DEVICE).eval()
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(final_dir))
        nvt = rank_model.config.num_virtual_tokens
        label = "trained DELRec (LoRA adapter unmerged)"
    else:
        rank_model, tok = DELRecForCausalLM.from_backbone(backbone_path, num_virtual_tokens=100, dtype=torch.bfloat16)
        rank_model = rank_model.to(DEVICE).eval()
        nvt = 100
        label = "untrained DELRec"
    cfg = rank_model.config
    pr = DELRecPrompter(tok, catalog, num_virtual_tokens=nvt, max_history=cfg.max_history or 10,
                        show_candidates=a.rank_show_candidates)
    test = ds["test"].select(range(6)) if a.smoke else ds["test"]
    prompts, titles, cands, targets = build_ranking_inputs(test, pr, teacher, cfg.teacher_top_k or 5)
    rk: dict = {"model": label, "users": len(prompts),
                "mean_prompt_tokens": sum(map(len, prompts)) / len(prompts),
                "mean_candidate_tokens": sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 1
                                             for ts in titles for t in ts) / len(prompts)}

    def time_likelihood(tag, batch_sizes):
        for bs in batch_sizes:
            score_candidates_by_likelihood(rank_model, tok, prompts[:bs], titles[:bs], batch_size=bs)  # warm-up
            sync()
            t = time.perf_counter()
            s = score_candidates_by_likelihood(rank_model, tok, prompts, titles, batch_size=bs)
            sync()
            secs = time.perf_counter() - t
            rk[f"likelihood{tag}_bs{bs}"] = {"seconds": round(secs, 3), "users_per_s": len(prompts) / secs,
                                             "metrics": candidate_metrics(s, cands, targets)}
            log(f"  likelihood{tag} bs", bs, rk[f"likelihood{tag}_bs{bs}"]["users_per_s"])
            save()

    time_likelihood("", (2,) if a.smoke else (64, 128))
    n_batched = a.gen_batched_users or len(prompts)
    for bs, n in ((2 if a.smoke else 64, n_batched), (1, a.gen_b1_users)):
        generate_then_match(rank_model, tok, prompts[:2], titles[:2], batch_size=min(bs, 2))  # warm-up
        sync()
        t = time.perf_counter()
        g = generate_then_match(rank_model, tok, prompts[:n], titles[:n], batch_size=bs)
        sync()
        secs = time.perf_counter() - t
        rk[f"generate_then_match_bs{bs}"] = {
            "users": n, "seconds": round(secs, 3), "users_per_s": n / secs, "valid_ratio": g.valid_ratio,
            "metrics": candidate_metrics(g.scores, cands[:n], targets[:n]), "examples": g.texts[:3]}
        log("  generate bs", bs, rk[f"generate_then_match_bs{bs}"]["users_per_s"], "valid", g.valid_ratio)
        save()
    try:  # the same packed ranking through regionally compiled layers (after generation, which stays eager)
        from hfrec.methods.common.sft import compile_decoder_layers

        compile_decoder_layers(rank_model)
        time_likelihood("_compile_layers", (2,) if a.smoke else (64, 128))
    except Exception as err:  # report, keep the rest
        rk["likelihood_compile_layers_error"] = repr(err)[:500]
    best = max(v["users_per_s"] for k, v in rk.items() if k.startswith("likelihood") and isinstance(v, dict))
    for k, v in rk.items():
        if k.startswith("generate_then_match"):
            v["likelihood_speedup"] = best / v["users_per_s"]
    report["ranking_throughput"] = rk
    save()
    log("done")


if __name__ == "__main__":
    main()
