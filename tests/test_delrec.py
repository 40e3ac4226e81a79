"""DELRec on tiny random Llama models (no network): soft prompt placement, gradients per stage, save/load, prompts,
bad inputs. The slow test at the end runs the real offline backbone (SmolLM2-135M-Instruct)."""

import json
import random

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM

import hfrec.models.delrec  # noqa: F401  registers "delrec" with the Auto classes
from hfrec.models.delrec import DELRecConfig, DELRecForCausalLM, SoftPromptEncoder
from hfrec.methods.common.prompts import DOMAIN_WORDS, ItemCatalog
from hfrec.methods.common.sft import PaddingCollator
from hfrec.methods.delrec.prompts import DELRecPrompter
from hfrec.methods.common.scoring import rank_candidates, score_candidates_by_likelihood
from hfrec.methods.delrec.config import DELRecDistillConfig, DELRecSFTConfig
from hfrec.methods.delrec.data import (TASK_RPS, TASK_TA, build_ranking_inputs, build_recommendation_examples,
                                        build_stage1_examples)
from hfrec.methods.delrec.trainer import DELRecSFTTrainer, SoftPromptSRDistiller
from test_methods import tiny_setup  # noqa: F401  (fixture: a tiny SASRec teacher and a tiny causal LM)
from tiny_llm import tiny_lm, tiny_tokenizer  # tests/tiny_llm.py

N_ITEMS = 30
NVT = 4


def tiny_delrec(seed=0, nvt=NVT, **kw):  # kw: tiny_lm's (hidden, tie, layers)
    return DELRecForCausalLM.from_backbone(tiny_lm(seed, **kw), tiny_tokenizer(), num_virtual_tokens=nvt, seed=seed)


class FakeTeacher(torch.nn.Module):
    """SR-teacher contract (`top_k`, `score_candidates`): prefers high item ids."""

    def __init__(self, n=N_ITEMS):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.config = type("C", (), {"max_seq_length": 8, "num_items": n})()
        self.n = n

    def _scores(self, b):
        s = torch.arange(self.n + 1, dtype=torch.float).expand(b, -1).clone()
        s[:, 0] = float("-inf")
        return s

    def top_k(self, input_ids, k, exclude=None):
        s = self._scores(input_ids.shape[0])
        if exclude is not None:
            s = s.scatter(1, exclude, float("-inf"))
        return s.topk(k, 1).indices

    def score_candidates(self, input_ids, candidates):
        return self._scores(input_ids.shape[0]).gather(1, candidates)


CATALOG = ItemCatalog.from_items({i: f"item {i}" for i in range(1, N_ITEMS + 1)})


def rows(n=8):
    out = []
    for u in range(n):
        rng = random.Random(u)
        target = rng.randint(1, N_ITEMS)
        hist = [i for i in rng.sample(range(1, N_ITEMS + 1), 6) if i != target][:5]
        cands = [target] + [i for i in range(1, N_ITEMS + 1) if i != target and i not in hist][:5]
        rng.shuffle(cands)
        out.append({"user_id": u, "history": hist, "target": target, "candidates": cands, "full_history": hist})
    return out


# ------------------------------------------------------------------------------------------------ config / model
def test_config_validation_and_subconfig():
    cfg = DELRecConfig(text_config=tiny_lm().config.to_dict(), num_virtual_tokens=3)
    assert cfg.get_text_config() is cfg.text_config and cfg.tie_word_embeddings
    with pytest.raises(Exception, match="domain"):
        DELRecConfig(domain="books")
    with pytest.raises(Exception, match="num_virtual_tokens"):
        DELRecConfig(num_virtual_tokens=0)


def test_soft_prompt_shape_and_placement():
    model, tok = tiny_delrec()
    sp = model.soft_prompt.weight
    assert sp.shape == (NVT, model.config.text_config.hidden_size) and sp.dtype == torch.float32
    token = model.config.soft_prompt_token
    assert tok.convert_tokens_to_ids(token) == model.config.soft_prompt_token_id
    ids = torch.tensor([tok("ab" + token * NVT + "cd")["input_ids"], tok("x" + token * NVT + "yz!")["input_ids"]])
    assert ids.shape[1] == 4 + NVT
    emb = model.model.embed(ids)
    plain = model.get_input_embeddings()
    for row in range(2):
        pos = (ids[row] == model.config.soft_prompt_token_id).nonzero().flatten()
        assert pos.tolist() == list(range(pos[0], pos[0] + NVT))
        torch.testing.assert_close(emb[row, pos], sp.to(emb.dtype))
        other = ids[row] != model.config.soft_prompt_token_id
        torch.testing.assert_close(emb[row, other], plain(ids[row, other]))
    # sequence length and logits shape never change
    assert model(input_ids=ids).logits.shape == (2, ids.shape[1], 258)


def test_wrong_placeholder_count_is_a_clear_error():
    model, tok = tiny_delrec()
    ids = torch.tensor([tok("a" + model.config.soft_prompt_token * (NVT - 1))["input_ids"]])
    with pytest.raises(ValueError, match=f"exactly {NVT} placeholder"):
        model(input_ids=ids)


def test_soft_prompt_for_another_backbone_is_rejected(tmp_path):
    model, _ = tiny_delrec()
    other, _ = tiny_delrec(hidden=48)
    other.save_soft_prompt(tmp_path / "sp48")
    with pytest.raises(ValueError, match="another backbone.*hidden_size 48 != backbone hidden_size 32"):
        model.load_soft_prompt(tmp_path / "sp48")
    longer, _ = tiny_delrec(nvt=NVT + 2)
    longer.save_soft_prompt(tmp_path / "sp_long")
    with pytest.raises(ValueError, match="num_virtual_tokens"):
        model.load_soft_prompt(tmp_path / "sp_long")


def test_soft_prompt_save_load_roundtrip(tmp_path):
    model, _ = tiny_delrec(seed=1)
    model.save_soft_prompt(tmp_path)
    assert (tmp_path / "soft_prompt.safetensors").exists()
    cfg = json.loads((tmp_path / "soft_prompt_config.json").read_text())
    assert cfg["num_virtual_tokens"] == NVT and cfg["hidden_size"] == 32 and cfg["backbone_model_type"] == "llama"
    enc = SoftPromptEncoder.from_pretrained(tmp_path)
    torch.testing.assert_close(enc.weight, model.soft_prompt.weight)
    fresh, _ = tiny_delrec(seed=1)
    with torch.no_grad():
        fresh.soft_prompt.embedding.weight.zero_()
    fresh.load_soft_prompt(tmp_path)
    torch.testing.assert_close(fresh.soft_prompt.weight, model.soft_prompt.weight)


def _prompts(tok, model, domain="movie"):
    pr = DELRecPrompter(tok, CATALOG, domain=domain, num_virtual_tokens=model.config.num_virtual_tokens,
                        soft_prompt_token=model.config.soft_prompt_token, max_history=5)
    return build_ranking_inputs(rows(4), pr, FakeTeacher(), 3)


def test_save_reload_gives_identical_scores(tmp_path):
    model, tok = tiny_delrec(seed=2)
    prompts, titles, cands, _ = _prompts(tok, model)
    before = score_candidates_by_likelihood(model, tok, prompts, titles, batch_size=3)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again = DELRecForCausalLM.from_pretrained(tmp_path)
    auto = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(auto) is DELRecForCausalLM
    assert again.lm_head.weight.data_ptr() == again.get_input_embeddings().weight.data_ptr()  # still tied
    for m in (again, auto):
        torch.testing.assert_close(score_candidates_by_likelihood(m, tok, prompts, titles, batch_size=2), before)
    ranked = rank_candidates(before, torch.tensor(cands))
    assert all(sorted(r) == sorted(c) for r, c in zip(ranked.tolist(), cands))


# ------------------------------------------------------------------------------------------------ prompts
def test_prompt_bad_inputs_are_clear_errors():
    tok = tiny_tokenizer()
    pr = DELRecPrompter(tok, ItemCatalog.from_items({1: "A", 2: "B", 3: ""}))
    with pytest.raises(ValueError, match="Empty history"):
        pr.recommendation_text([], [1, 2], [])
    with pytest.raises(ValueError, match=r"Unknown item id\(s\) \[99\].*1\.\.3"):
        pr.recommendation_text([99], [1, 2], [])
    with pytest.raises(ValueError, match=r"Candidate\(s\) \[3\] have no title"):
        pr.recommendation_text([1], [2, 3], [])
    with pytest.raises(ValueError, match="Unknown domain"):
        DELRecPrompter(tok, CATALOG, domain="books")
    with pytest.raises(ValueError, match="does not know the soft-prompt token"):
        DELRecPrompter(tok, CATALOG, num_virtual_tokens=3)


@pytest.mark.parametrize("domain", ["movie", "game", "product"])
def test_prompt_domain_variants(domain):
    pr = DELRecPrompter(tiny_tokenizer(), CATALOG, domain=domain)
    text = pr.recommendation_text([1, 2], [3, 4], [4])
    w = DOMAIN_WORDS[domain]
    assert f"has {w['past']} these {w['items']}" in text and "item 3; item 4" in text
    ex = pr.example(text, 3)
    n_prompt = sum(1 for x in ex["labels"] if x == -100)
    assert ex["labels"][n_prompt:] == ex["input_ids"][n_prompt:] == pr.completion_ids(3)


@pytest.mark.parametrize("title, expected", [
    ("Usual Suspects, The (1995)", "The Usual Suspects (1995)"),
    ("Mis\u00e9rables, Les (1995)", "Les Mis\u00e9rables (1995)"),
    ("City of Lost Children, The (1995)", "The City of Lost Children (1995)"),
    ("Toy Story (1995)", "Toy Story (1995)"),  # no article
    ("Cry, the Beloved Country (1995)", "Cry, the Beloved Country (1995)"),  # a comma, but no trailing article
    ("Star Maker, The (Uomo delle stelle, L') (1995)", "The Star Maker (L'Uomo delle stelle) (1995)"),
    ("Seven (Se7en) (1995)", "Seven (Se7en) (1995)"),
    ("Big Blue, The", "The Big Blue"),  # no year
])
def test_article_first_titles(title, expected):
    from hfrec.methods.common.prompts import article_first_title

    assert article_first_title(title) == expected
    catalog = ItemCatalog.from_items({1: title, 2: "Heat (1995)"}, title_style="article_first")
    assert catalog.titles_of([1, 2]) == [expected, "Heat (1995)"]
    assert ItemCatalog.from_items({1: title}).title(1) == title  # the default keeps the dataset's titles
    assert catalog.item_id(expected) == 1


def test_title_style_bad_value_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Unknown title_style 'articles'.*article_first"):
        ItemCatalog.from_items({1: "A"}, title_style="articles")


@pytest.mark.parametrize("hints, expect_hint", [(True, True), (False, False)])
def test_recommendation_prompt_with_and_without_teacher_hints(hints, expect_hint):
    pr = DELRecPrompter(tiny_tokenizer(), CATALOG, teacher_name="SASRec", teacher_hints=hints)
    text = pr.recommendation_text([1, 2], [3, 4], [4])
    assert ("The sequential recommender SASRec suggests: item 4.\n" in text) is expect_hint
    assert "oldest first: item 1; item 2.\nCandidate movies: item 3; item 4.\n" in text or expect_hint
    # without hints the teacher is never asked (None would fail at its first call)
    if not hints:
        prompts = build_ranking_inputs(rows(3), pr, None, 3)[0]
        assert prompts == [pr.encode(pr.recommendation_text(r["history"], r["candidates"])) for r in rows(3)]
        examples = build_recommendation_examples(rows(3), pr, None, N_ITEMS, 3, num_candidates=4)
        assert all("suggests" not in tiny_tokenizer().decode(e["input_ids"]) for e in examples)


def test_stage1_examples_mix_tasks_and_mask_the_prompt():
    model, tok = tiny_delrec()
    pr = DELRecPrompter(tok, CATALOG, num_virtual_tokens=NVT, max_history=5)
    ex = build_stage1_examples(rows(4), pr, FakeTeacher(), N_ITEMS, num_candidates=5, rps_top_k=3)
    assert [e["task"] for e in ex] == [TASK_TA, TASK_RPS] * 4
    for e in ex:
        assert e["input_ids"].count(model.config.soft_prompt_token_id) == NVT
        assert -100 in e["labels"] and e["labels"][-1] == tok.eos_token_id
    rps = tok.decode([t for t in ex[1]["labels"] if t != -100], skip_special_tokens=True)
    assert rps == "item 30"  # the fake teacher's top-1 among unseen items


# ------------------------------------------------------------------------------------------------ training
def _stage1_trainer(model, tok, tmp_path, steps=2):
    pr = DELRecPrompter(tok, CATALOG, num_virtual_tokens=NVT, max_history=5)
    ex = build_stage1_examples(rows(8), pr, FakeTeacher(), N_ITEMS, num_candidates=5, rps_top_k=3)
    args = DELRecDistillConfig(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=4,
                               learning_rate=5e-2, logging_steps=1, save_steps=steps, disable_tqdm=True,
                               gradnorm_lr=0.2)
    return SoftPromptSRDistiller(model=model, args=args, train_dataset=Dataset.from_list(ex), processing_class=tok)


def test_stage1_soft_prompt_gets_gradient_backbone_does_not(tmp_path):
    model, tok = tiny_delrec()
    trainer = _stage1_trainer(model, tok, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "labels", "task"}
    model.train()
    trainer.compute_loss(model, dict(batch)).backward()
    grad = model.soft_prompt.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert all(p.grad is None for n, p in model.named_parameters() if "soft_prompt" not in n)
    views = trainer._pending["views"]  # one soft-prompt view per task, each with that task's gradient
    assert len(views) == 2 and all(v.grad is not None for v in views)
    torch.testing.assert_close(views[0].grad + views[1].grad, grad)


def test_stage1_training_updates_only_the_soft_prompt_and_reweights(tmp_path):
    model, tok = tiny_delrec()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = _stage1_trainer(model, tok, tmp_path, steps=2)
    trainer.train()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert changed == ["model.soft_prompt.embedding.weight"]
    w = trainer.task_weights
    assert not torch.equal(w, torch.ones(2)) and float(w.sum()) == pytest.approx(2.0)
    ckpt = tmp_path / "checkpoint-2"
    assert (ckpt / "soft_prompt.safetensors").exists() and not (ckpt / "model.safetensors").exists()
    # resume: a fresh model gets the checkpoint's soft prompt
    fresh, tok2 = tiny_delrec()
    t2 = _stage1_trainer(fresh, tok2, tmp_path / "again", steps=2)
    t2._load_from_checkpoint(str(ckpt))
    torch.testing.assert_close(fresh.soft_prompt.weight, model.soft_prompt.weight)
    # ... and the task weights, from JSON (hfrec adds no pickle of its own to checkpoints)
    assert (ckpt / "delrec_task_weights.json").is_file() and not (ckpt / "delrec_task_weights.pt").exists()
    assert torch.equal(t2.task_weights, w)


def test_stage2_lora_trains_soft_prompt_frozen_but_used(tmp_path):
    model, tok = tiny_delrec(seed=5)
    pr = DELRecPrompter(tok, CATALOG, num_virtual_tokens=NVT, max_history=5)
    ex = build_recommendation_examples(rows(8), pr, FakeTeacher(), N_ITEMS, teacher_top_k_n=3, num_candidates=5)
    soft_before = model.soft_prompt.weight.detach().clone()
    calls = []
    original_embed = model.model.embed
    model.model.embed = lambda ids, soft=None: calls.append(1) or original_embed(ids, soft)  # spy: injection runs
    args = DELRecSFTConfig(output_dir=str(tmp_path / "s2"), max_steps=2, per_device_train_batch_size=4,
                           learning_rate=5e-2, disable_tqdm=True, save_strategy="no", lora_r=2, lora_alpha=4)
    trainer = DELRecSFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(ex), processing_class=tok)
    lora_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert lora_before and all("lora" in n for n in lora_before)
    trainer.train()
    assert len(calls) >= 2
    assert model.soft_prompt.weight.grad is None
    torch.testing.assert_close(model.soft_prompt.weight, soft_before, rtol=0, atol=0)
    assert any(not torch.equal(p, lora_before[n]) for n, p in trainer.model.named_parameters() if n in lora_before)

    # saved as a standard PEFT adapter next to the distilled base: both loaders give the trained model's scores
    out = tmp_path / "final"
    del model.model.embed  # drop the spy before saving
    model.name_or_path = str(out)
    trainer.model.save_pretrained(out)
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    prompts, titles, _, _ = build_ranking_inputs(rows(3), pr, FakeTeacher(), 3)
    trained = score_candidates_by_likelihood(trainer.model, tok, prompts, titles)

    from peft import PeftModel

    base, _ = tiny_delrec(seed=5)
    base.save_pretrained(out)  # the stage-1 model (seed 5, untrained soft prompt here) is the adapter's base
    tok.save_pretrained(out)
    peft_loaded = PeftModel.from_pretrained(DELRecForCausalLM.from_pretrained(out), out)
    torch.testing.assert_close(score_candidates_by_likelihood(peft_loaded, tok, prompts, titles), trained)
    auto = AutoModelForCausalLM.from_pretrained(out)  # base + embedded adapter, through transformers' PEFT support
    torch.testing.assert_close(score_candidates_by_likelihood(auto, tok, prompts, titles), trained)


def test_compiled_layers_score_like_eager_and_train(tmp_path):
    """compile_layers: the decoder layers share one compiled graph (dynamic shapes), scores equal eager ones, and
    stage 2 trains through them with length-grouped batches. Dynamo + AOT autograd with the aot_eager backend:
    CI machines may have no C++ compiler for inductor's CPU kernels (the GPU bench runs inductor)."""
    from torch._dynamo.utils import counters

    from hfrec.methods.common.sft import compile_decoder_layers, decompile_decoder_layers

    model, tok = tiny_delrec(seed=6, layers=4)
    pr = DELRecPrompter(tok, CATALOG, num_virtual_tokens=NVT, max_history=5)
    prompts, titles, _, _ = build_ranking_inputs(rows(5), pr, FakeTeacher(), 3)
    eager = score_candidates_by_likelihood(model, tok, prompts, titles, batch_size=2)
    counters.clear()
    assert compile_decoder_layers(model, backend="aot_eager") == 4
    assert compile_decoder_layers(model, backend="aot_eager") == 0  # already compiled: left alone
    for bs in (2, 3):  # other padded lengths and batch sizes: no recompilation per layer
        torch.testing.assert_close(score_candidates_by_likelihood(model, tok, prompts, titles, batch_size=bs), eager,
                                   atol=1e-5, rtol=1e-5)
    assert counters["stats"]["unique_graphs"] <= 2

    ex = build_recommendation_examples(rows(8), pr, FakeTeacher(), N_ITEMS, teacher_top_k_n=3, num_candidates=5)
    args = DELRecSFTConfig(output_dir=str(tmp_path / "s2"), max_steps=2, per_device_train_batch_size=4,
                           learning_rate=5e-2, disable_tqdm=True, save_strategy="no", lora_r=2, lora_alpha=4,
                           compile_layers=True, compile_layers_backend="aot_eager",
                           train_sampling_strategy="group_by_length")
    trainer = DELRecSFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(ex), processing_class=tok)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters() if n in before)
    trained = score_candidates_by_likelihood(trainer.model, tok, prompts, titles, batch_size=2)
    assert decompile_decoder_layers(trainer.model) == 4  # eager again (the script ranks that way)
    torch.testing.assert_close(score_candidates_by_likelihood(trainer.model, tok, prompts, titles, batch_size=2),
                               trained, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="either compile_layers"):
        DELRecSFTConfig(output_dir=str(tmp_path / "x"), compile_layers=True, torch_compile=True)


@pytest.mark.parametrize("argv, message", [
    (["--length_normalize", "mean"], "must be a number or auto"),
    (["--length_normalize", "auto", "--eval_split", "validation"], "needs --eval_split test"),
    (["--preset", "laptop"], "Unknown preset"),
    (["--stages", "3"], "--stages must be"),
    (["--prompt_hints", "top5"], "--prompt_hints must be teacher_topk or none"),
    (["--item_titles", "the_first"], "--item_titles must be one of"),
])
def test_script_arguments_bad_values(argv, message):
    from hfrec.methods.delrec.script import make_parser

    (args,) = make_parser().parse_args_into_dataclasses(args=argv)
    with pytest.raises(ValueError, match=message):
        args.apply_preset()


@pytest.mark.parametrize("stride, per_user", [(1, [9, 8, 7]), (4, [9, 5, 1]), (20, [9])])
def test_training_rows_recent_prefixes_with_stride(stride, per_user):
    from hfrec.methods.common.data import select_training_rows

    seq = list(range(1, 11))  # one user, targets 2..10 after histories 1..9 items long
    train = Dataset.from_list([{"user_id": 0, "history": seq[:t], "target": seq[t]} for t in range(1, 10)])
    got = select_training_rows(train, rows_per_user=3, stride=stride)
    assert [len(r["history"]) for r in sorted(got, key=lambda r: -len(r["history"]))] == per_user
    with pytest.raises(ValueError, match="stride"):
        select_training_rows(train, stride=0)


def test_collator_pads_and_keeps_task():
    batch = PaddingCollator(pad_token_id=0, extra_columns=("task",))([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "task": 1},
                                            {"input_ids": [8], "labels": [8], "task": 0}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["task"].tolist() == [1, 0]


def test_config_defaults_differ_from_sft_in_one_place():
    from hfrec.methods.common.sft import HFREC_SFT_DEFAULTS as DELREC_SFT_DEFAULTS

    args = DELRecDistillConfig(output_dir="unused")
    assert args.activation_checkpointing is False and args.bf16 is (torch.cuda.is_available()
                                                                     and torch.cuda.is_bf16_supported())
    assert args.dataset_kwargs == {"skip_prepare_dataset": True} and args.remove_unused_columns is False
    assert set(DELREC_SFT_DEFAULTS) >= {"activation_checkpointing", "bf16", "max_length"}
    lora = DELRecSFTConfig(output_dir="unused", lora_r=4).peft_config()
    assert lora.r == 4 and lora.target_modules == "all-linear"


def test_script_under_accelerate_two_processes(tiny_folder, tmp_path):
    """DDP on CPU (gloo) with a tiny backbone and teacher: both stages run, rank 0 writes, one table is printed,
    and the saved model, evaluated in one process, reproduces the DELRec row."""
    from pathlib import Path

    from conftest import accelerate_cpu_launch
    from hfrec.methods.delrec.script import main
    from hfrec.trainers.train_sr import main as train_sr
    from tiny_llm import tiny_lm, tiny_tokenizer

    teacher, backbone, out = tmp_path / "teacher", tmp_path / "backbone", tmp_path / "delrec"
    train_sr(["--model", "sasrec", "--dataset", "atomic", "--data_dir", str(tiny_folder), "--output_dir", str(teacher),
              "--num_candidates", "10", "--max_seq_length", "8", "--num_train_epochs", "2", "--disable_tqdm", "true",
              "--model_kwargs", '{"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1}'])
    tiny_lm(seed=1).save_pretrained(backbone)
    tiny_tokenizer().save_pretrained(backbone)
    argv = ["--preset", "cpu", "--dataset", "atomic", "--data_dir", str(tiny_folder), "--backbone", str(backbone),
            "--dtype", "float32", "--teacher_dir", str(teacher), "--output_dir", str(out), "--num_candidates", "10",
            "--eval_users", "12", "--stage1_max_rows", "8", "--stage2_max_rows", "16",
            "--per_device_train_batch_size", "4", "--disable_tqdm", "true"]
    done = accelerate_cpu_launch(Path(__file__).parents[1] / "trainers" / "sft_delrec.py", *argv)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("DELRec on atomic") == 1  # one table per run, not one per process
    assert (out / "adapter_config.json").exists() and (out / "soft_prompt.safetensors").exists()
    records = json.loads((out / "eval_results.json").read_text())
    assert {r["num_processes"] for r in records} == {2}
    recorded = {r["method"]: r["metrics"] for r in records}
    again = main([*argv, "--stages", "eval"])  # one process, the saved adapter + base
    assert again["DELRec"] == pytest.approx(recorded["DELRec"])
    assert set(recorded) >= {"popularity", "DELRec, untrained soft prompt", "DELRec"}


@pytest.mark.parametrize("hints", ["teacher_topk", "none"])
def test_script_rows_for_the_benchmark_table(tiny_folder, tiny_setup, tmp_path, hints):  # noqa: F811
    """The records ``hfrec benchmark`` builds its one table from: baselines marked, every LLM row ranked on the same
    users and candidate lists with its per-user ranks, the cost of each row (0 for untrained rows, both stages for
    DELRec), the zero-shot label saying whether it saw the teacher's hint, and the no-soft-prompt ablation; a rerun
    on the folder re-ranks the saved models with their recorded costs."""
    from hfrec.methods.delrec.script import main

    teacher, backbone = tiny_setup["teacher"], tiny_setup["backbone"]
    out = tmp_path / "delrec"
    argv = ["--preset", "cpu", "--dataset", "atomic", "--data_dir", str(tiny_folder), "--backbone", str(backbone),
            "--dtype", "float32", "--teacher_dir", str(teacher), "--output_dir", str(out), "--num_candidates", "10",
            "--eval_users", "8", "--stage1_max_rows", "4", "--stage2_max_rows", "8", "--per_device_train_batch_size",
            "4", "--zero_shot", "true", "--ablation_no_soft_prompt", "true", "--prompt_hints", hints,
            "--disable_tqdm", "true"]
    main(argv)
    records = {r["method"]: r for r in json.loads((out / "eval_results.json").read_text())}
    zero_shot = "zero-shot LLM (backbone), with SASRec top-3 hint" if hints == "teacher_topk" else "zero-shot LLM (backbone)"
    ablation = "DELRec, stage 2 without soft prompt (LoRA only)"
    assert list(records) == ["popularity", "SASRec (teacher)", zero_shot, "DELRec, untrained soft prompt", "DELRec",
                             ablation]
    assert [bool(r.get("baseline")) for r in records.values()] == [True, True, False, False, False, False]
    assert len({r["rows_fingerprint"] for r in records.values()}) == 1
    for record in records.values():
        assert len(record["ranks"]) == len(record["user_ids"]) == 8
    for label in (zero_shot, "DELRec, untrained soft prompt"):
        assert (records[label]["train_s"], records[label]["train_tokens"]) == (0.0, 0)
    stage1 = json.loads((out / "stage1" / "stage1_done.json").read_text())["cost"]
    cost = json.loads((out / "delrec_training_cost.json").read_text())
    assert cost["stage1"] == stage1 and stage1["train_tokens"] > 0 and cost["stage2"]["train_tokens"] > 0
    assert records["DELRec"]["train_tokens"] == stage1["train_tokens"] + cost["stage2"]["train_tokens"]
    assert records["DELRec"]["train_s"] == pytest.approx(stage1["train_s"] + cost["stage2"]["train_s"], abs=0.11)
    # the ablation trains stage 2 on the same rows, minus the soft prompt's tokens in every prompt
    no_sp = records[ablation]
    assert 0 < no_sp["train_tokens"] < cost["stage2"]["train_tokens"]
    assert (out / "no_soft_prompt" / "adapter_config.json").exists()
    assert json.loads((out / "hfrec_recommender.json").read_text())["prompt_hints"] == hints

    again = {r["method"]: r for r in json.loads((out / "eval_results.json").read_text())} if main(argv) else None
    assert list(again) == ["popularity", "SASRec (teacher)", "DELRec", ablation]  # reloaded, not retrained
    for label in ("DELRec", ablation):
        assert again[label]["ranks"] == records[label]["ranks"]
        assert (again[label]["train_s"], again[label]["train_tokens"]) == (records[label]["train_s"],
                                                                           records[label]["train_tokens"])


# ------------------------------------------------------------------------------------------------ slow: real backbone
@pytest.mark.slow
def test_end_to_end_on_the_offline_backbone(tmp_path):
    """Both stages + the table on ML-100K with SmolLM2-135M-Instruct (cached) and a 1-epoch SASRec teacher."""
    from hfrec.methods.delrec.script import main
    from hfrec.trainers.train_sr import main as train_sr

    teacher = tmp_path / "teacher"
    train_sr(["--model", "sasrec", "--dataset", "ml-100k", "--output_dir", str(teacher), "--num_train_epochs", "1",
              "--disable_tqdm", "true"])
    result = main(["--preset", "cpu", "--teacher_dir", str(teacher), "--output_dir", str(tmp_path / "delrec"),
                   "--eval_users", "6", "--stage1_max_rows", "4", "--stage2_max_rows", "8", "--zero_shot", "true",
                   "--disable_tqdm", "true"])
    assert 0.0 <= result["final"]["HR@1"] <= 1.0
    out = tmp_path / "delrec"
    assert (out / "adapter_config.json").exists() and (out / "config.json").exists()
    records = json.loads((out / "eval_results.json").read_text())
    assert {r["model_type"] for r in records} >= {"popularity", "sasrec", "llm-zero-shot", "delrec-untrained", "delrec"}
    model = AutoModelForCausalLM.from_pretrained(out)
    assert type(model) is DELRecForCausalLM


@pytest.mark.parametrize("max_steps, layers, expect", [
    (-1, None, "use_adalora needs max_steps > 0"),  # AdaLoRA's rank schedule needs the run's length
    (10, None, "AdaLoraConfig"),
])
def test_adalora_needs_the_number_of_steps(max_steps, layers, expect):
    args = DELRecSFTConfig(output_dir="unused", use_adalora=True, max_steps=max_steps)
    if expect.startswith("use_adalora"):
        with pytest.raises(ValueError, match=expect):
            args.peft_config(layers)
    else:
        assert type(args.peft_config(layers)).__name__ == expect


def test_lora_on_the_top_layers_only():
    args = DELRecSFTConfig(output_dir="unused", lora_top_layers=2, lora_target_modules=["q_proj", "v_proj"])
    assert args.peft_config(num_layers=5).layers_to_transform == [3, 4]
    assert args.peft_config(num_layers=2).layers_to_transform is None  # fewer layers than asked: every layer
    with pytest.raises(ValueError, match="num_layers"):
        args.peft_config()
    with pytest.raises(ValueError, match="not 'all-linear'"):
        DELRecSFTConfig(output_dir="unused", lora_top_layers=2).peft_config(num_layers=5)
