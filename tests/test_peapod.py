"""PeaPOD on tiny models built here (a tiny Llama and a tiny random T5): the composed prompt, its gradient, scoring
with per-user prompts, trie-constrained generation, cold start, reviews, the script end to end (both backbone
kinds) and bad input."""

import json

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import T5Config, T5ForConditionalGeneration

import hfrec  # noqa: F401  registers the models and the pipeline task
from hfrec.data import load_benchmark, load_reviews
from hfrec.methods.common.generation import ItemTrie, generate_items
from hfrec.methods.common.prompts import ItemCatalog
from hfrec.methods.common.scoring import candidate_log_likelihoods
from hfrec.methods.peapod.data import build_training_examples, user_interest_table
from hfrec.methods.peapod.prompts import TASK_EXPLANATION, TASK_SEQUENTIAL, TASK_TOPN, PeaPODPrompter
from hfrec.methods.peapod.script import main as peapod_main
from hfrec.models.peapod import PersonalizedPromptLM
from test_methods import method_argv, tiny_setup  # noqa: F401  (fixture)
from tiny_llm import tiny_lm, tiny_tokenizer

KINDS = ("causal", "seq2seq")


def tiny_t5(seed: int = 0) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=258, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, pad_token_id=256,
                   eos_token_id=257, decoder_start_token_id=256, dropout_rate=0.0)
    return T5ForConditionalGeneration(cfg).eval()


def build(kind: str, interests=None, **kwargs):
    interests = torch.randn(6, 8, generator=torch.Generator().manual_seed(0)) if interests is None else interests
    backbone = tiny_lm() if kind == "causal" else tiny_t5()
    model, tok = PersonalizedPromptLM.from_backbone(backbone, tiny_tokenizer(), user_interests=interests,
                                                    num_prompt_components=5, component_length=2,
                                                    num_prompt_heads=4, task_prompt_length=1, **kwargs)
    return model.eval(), tok


def catalog(n: int = 12) -> ItemCatalog:
    return ItemCatalog([None] + [f"Film {chr(65 + i)}{i}" for i in range(n)], {})


def block(model) -> list[int]:
    return [model.config.prompt_token_id] * model.config.num_virtual_tokens


@pytest.mark.parametrize("kind", KINDS)
def test_prompts_differ_between_interests_and_match_for_equal_ones(kind):
    interests = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    interests[3] = interests[1]  # users 2 and 4 (indices) have the same interests
    model, _ = build(kind, interests)
    prompts = model.compose_prompts(torch.tensor([1, 2, 4]), torch.tensor([0, 0, 0]))
    assert prompts.shape == (3, model.config.num_virtual_tokens, 32)
    assert not torch.allclose(prompts[0], prompts[1])
    assert torch.equal(prompts[1], prompts[2])
    by_task = model.compose_prompts(torch.tensor([2, 2]), torch.tensor([TASK_SEQUENTIAL, TASK_TOPN]))
    personal = model.config.component_length
    assert torch.equal(by_task[0, :personal], by_task[1, :personal])  # the user's part does not depend on the task
    assert not torch.equal(by_task[0, personal:], by_task[1, personal:])


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_reaches_the_pool_and_the_attention(kind):
    model, _ = build(kind)
    model.set_trainable_prompts(True)
    ids = torch.tensor([block(model) + [65, 66, 67]] * 2)
    labels = torch.tensor([[-100] * (ids.shape[1] - 1) + [68]] * 2) if kind == "causal" else torch.tensor([[68, 257]] * 2)
    model(input_ids=ids, attention_mask=torch.ones_like(ids), user_index=torch.tensor([1, 3]),
          task=torch.tensor([0, 1]), labels=labels).loss.backward()
    pool = model.model.prompt_pool
    for name, param in (("components", pool.components), ("keys", pool.keys), ("query", pool.query.weight),
                        ("task_prompts", model.model.task_prompts)):
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert model.model.user_interests.grad is None  # the collaborative table is frozen


@pytest.mark.parametrize("kind", KINDS)
def test_packed_scores_with_per_user_prompts_equal_separate_forwards(kind):
    model, tok = build(kind)
    prompts = [block(model) + [65, 66], block(model) + [70, 71, 72]]
    users, texts = torch.tensor([2, 5]), [["ab", "c"], ["de", "fgh"]]
    sums, counts = candidate_log_likelihoods(model, tok, prompts, texts, row_inputs={"user_index": users})
    for row, (prompt, cands) in enumerate(zip(prompts, texts)):
        for col, text in enumerate(cands):
            target = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            with torch.no_grad():
                if kind == "causal":
                    ids = torch.tensor([prompt + target])
                    logits = model(input_ids=ids, user_index=users[row : row + 1]).logits[0, len(prompt) - 1 : -1]
                else:
                    logits = model(input_ids=torch.tensor([prompt]), user_index=users[row : row + 1],
                                   labels=torch.tensor([target])).logits[0]
            want = logits.float().log_softmax(-1).gather(-1, torch.tensor(target)[:, None]).sum()
            assert sums[row, col].item() == pytest.approx(want.item(), abs=1e-4)
            assert counts[row, col] == len(target)
    other, _ = candidate_log_likelihoods(model, tok, prompts, texts, row_inputs={"user_index": users.flip(0)})
    assert not torch.allclose(sums, other)  # the scores depend on whose prompt it is


@pytest.mark.parametrize("kind", KINDS)
def test_constrained_generation_never_emits_an_invalid_item(kind):
    items = catalog()
    tok = tiny_tokenizer()
    ids = {i: tok(items.title(i), add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for i in range(1, 13)}
    trie = ItemTrie(ids)
    draws = 0
    for seed in range(6):  # random models and prompts: whatever they prefer, every answer is an item
        model, tok = build(kind, torch.randn(6, 8, generator=torch.Generator().manual_seed(seed)))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)) * 0.5)
        prompts = [block(model) + list(range(60 + seed, 64 + seed + k)) for k in range(3)]
        result = generate_items(model, tok, prompts, trie, num_beams=5, batch_size=2,
                                row_inputs={"user_index": torch.tensor([0, 1, 5])})
        assert result.valid_ratio == 1.0
        for answer in result.items:
            assert answer and all(1 <= i <= 12 for i in answer) and len(answer) == len(set(answer))
            draws += len(answer)
    assert draws >= 6 * 3 * 2


def test_item_trie_shared_identifiers_and_lookup():
    trie = ItemTrie({3: [5, 6, 9], 1: [5, 7, 9], 2: [5, 6, 9]})  # items 2 and 3 are spelled alike
    assert sorted(trie.allowed([5])) == [6, 7] and trie.allowed([5, 8]) == []
    assert trie.item_of([5, 6, 9, 0, 0], stop_ids=[9]) == 2 and trie.item_of([5, 8, 9], stop_ids=[9]) == -1
    assert (trie.canonical(3), trie.canonical(1), trie.num_shared) == (2, 1, 1)
    with pytest.raises(ValueError, match="empty identifier"):
        ItemTrie({1: []})


@pytest.mark.parametrize("kind", KINDS)
def test_cold_start_and_new_users_get_a_prompt_and_bad_input_is_named(kind):
    model, _ = build(kind)
    table = model.model.user_interests
    assert torch.allclose(table[0], table[1:].mean(0))  # row 0: the mean interest vector
    cold = model.compose_prompts(torch.tensor([0]))
    assert torch.allclose(cold, model.compose_prompts(user_interests=table[1:].mean(0, keepdim=True)))
    ids = torch.tensor([block(model) + [65]])
    with pytest.raises(ValueError, match=r"user_index must lie in \[0, 6\]"):
        model(input_ids=ids, user_index=torch.tensor([9]), labels=torch.tensor([[65]]))
    with pytest.raises(ValueError, match="no user was given"):
        model(input_ids=ids, labels=torch.tensor([[65]]))
    with pytest.raises(ValueError, match="exactly one block of 3 placeholder tokens"):
        model(input_ids=ids[:, 1:], user_index=torch.tensor([1]), labels=torch.tensor([[65]]))
    with pytest.raises(ValueError, match="needs user_interests"):
        PersonalizedPromptLM.from_backbone(tiny_lm(), tiny_tokenizer())


@pytest.mark.parametrize("kind", KINDS)
def test_released_form_attends_over_the_neighbours_projected_vectors(kind):
    """prompt_values="similar_users" follows the released code's append_prompt: Q from the user's vector, K and V
    from its most similar users' vectors, heads split, softmax, the attended vector projected to the prompt."""
    interests = torch.randn(6, 8, generator=torch.Generator().manual_seed(3))
    model, _ = build(kind, interests, prompt_values="similar_users", num_similar_users=3)
    inner, pool = model.model, model.model.prompt_pool
    length, heads = model.config.component_length, model.config.num_prompt_heads
    got = model.compose_prompts(torch.tensor([1, 4]))[:, :length]
    for row, user in enumerate((1, 4)):
        group = inner.similar_users[user]
        assert user not in group.tolist() and len(group) == 3  # never oneself
        table = inner.user_interests
        with torch.no_grad():
            q = pool.query(table[user]).view(heads, 1, -1)
            k = pool.key_layer(table[group]).view(3, heads, -1).transpose(0, 1)
            v = pool.value_layer(table[group]).view(3, heads, -1).transpose(0, 1)
            att = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).softmax(-1)
            want = pool.projector((att @ v).reshape(-1)).view(length, -1)
        assert torch.allclose(got[row], want, atol=1e-6)
    with torch.no_grad():  # a neighbour's own vector reaches the prompt (the pool form only reads the user's)
        inner.user_interests[inner.similar_users[1][0]] += 1.0
    assert not torch.allclose(model.compose_prompts(torch.tensor([1]))[0, :length], got[0])
    new_user = model.compose_prompts(user_interests=interests[:1] + 0.01)  # outside the table: nearest users
    assert new_user.shape == (1, model.config.num_virtual_tokens, 32)
    model.set_trainable_prompts(True)
    ids = torch.tensor([block(model) + [65, 66, 67]] * 2)
    labels = (torch.tensor([[-100] * (ids.shape[1] - 1) + [68]] * 2) if kind == "causal" else
              torch.tensor([[68, 257]] * 2))
    model(input_ids=ids, attention_mask=torch.ones_like(ids), user_index=torch.tensor([1, 3]),
          task=torch.tensor([0, 1]), labels=labels).loss.backward()
    for name in ("query", "key_layer", "value_layer", "projector"):
        grad = getattr(pool, name).weight.grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert not hasattr(pool, "components")  # no unused parameters (DDP would stall on them)
    with pytest.raises(StrictDataclassClassValidationError, match="global prompt"):  # the config's validator
        build(kind, prompt_values="similar_users", interest_source="none")


def test_global_variant_composes_one_prompt_for_everyone():
    model, _ = build("causal", interest_source="none")
    prompts = model.compose_prompts(torch.tensor([1, 2, 0]))
    assert torch.equal(prompts[0], prompts[1]) and torch.equal(prompts[0], prompts[2])


def test_similar_users_variant_averages_the_neighbours():
    interests = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    model, _ = build("causal", interests, interest_source="similar_users", num_similar_users=1)
    neighbours = model.model.similar_users
    assert neighbours[1].tolist() == [2] and neighbours[3].tolist() == [4]  # 1 + user id, never oneself
    want = model.model.prompt_pool(interests[[0, 1]].mean(0, keepdim=True))
    got = model.compose_prompts(torch.tensor([1]))[:, : model.config.component_length]
    assert torch.allclose(got, want)


@pytest.fixture(scope="module")
def review_folder(tmp_path_factory):
    """A tiny benchmark with review text: 30 users on a ring of 40 items, each interaction with a short review."""
    folder = tmp_path_factory.mktemp("reviews")
    lines = ["user_id:token\titem_id:token\ttimestamp:float\treview_text:token_seq"]
    for user in range(30):
        for t in range(8):
            item = (user + t) % 40
            lines.append(f"u{user}\ti{item}\t{1000 + t}\tgreat story number {item}, loved the cast")
    (folder / "rev.inter").write_text("\n".join(lines) + "\n")
    (folder / "rev.item").write_text("item_id:token\ttitle:token_seq\n" +
                                     "\n".join(f"i{i}\tBook {i}" for i in range(40)) + "\n")
    return folder


def test_reviews_are_read_in_hfrec_ids_and_become_explanation_examples(review_folder):
    ds = load_benchmark("atomic", data_dir=str(review_folder), num_candidates=5, seed=1)
    reviews = load_reviews(ds, str(review_folder))
    assert len(reviews) == 30 * 8
    row = ds["test"][0]
    original = int(ds.item_table[row["target"] - 1]["original_id"][1:])
    assert reviews[(row["user_id"], row["target"])] == f"great story number {original}, loved the cast"
    model, tok = build("causal")
    prompter = PeaPODPrompter(tok, ItemCatalog.from_items(ds.item_table), num_virtual_tokens=3, domain="product",
                              explanation_tokens=8)
    examples, counts = build_training_examples(ds["train"], prompter, reviews, 1, 1, None, seed=0)
    assert counts == {"sequential": 30, "topn": 30, "explanation": 30 * 5}  # training interactions only
    explain = [e for e in examples if e["task"] == TASK_EXPLANATION]
    assert all(sum(1 for x in e["labels"] if x != -100) == 9 for e in explain)  # 8 review tokens + EOS
    assert {e["user_index"] for e in examples} == set(range(1, 31))
    other_lists = load_benchmark("atomic", data_dir=str(review_folder), num_candidates=8, seed=3)
    assert load_reviews(other_lists, str(review_folder)) == reviews  # ids do not depend on the candidate lists


def test_interest_table_reads_only_training_histories(tiny_setup):  # noqa: F811
    from transformers import AutoModel

    ds = load_benchmark("atomic", data_dir=str(tiny_setup["data"]), num_candidates=10, seed=42)
    teacher = AutoModel.from_pretrained(tiny_setup["teacher"]).eval()
    table = user_interest_table(teacher, ds["validation"], ds.num_users)
    assert table.shape == (ds.num_users, teacher.config.hidden_size)
    with pytest.raises(ValueError, match="one validation row for each"):
        user_interest_table(teacher, ds["validation"].select(range(5)), ds.num_users)


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("t5")
    tiny_t5(seed=2).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind, values", [("causal", "pool"), ("seq2seq", "pool"), ("causal", "similar_users")])
def test_script_trains_saves_reloads_identically_and_evaluates(kind, values, tiny_setup, t5_folder,  # noqa: F811
                                                               tmp_path):
    out = tmp_path / "peapod"
    argv = method_argv(tiny_setup, out) + ["--variants", "personalized,none", "--generative_users", "3",
                                           "--num_beams", "3", "--topn_candidates", "20", "--topn_users", "4",
                                           "--prompt_values", values]
    if kind == "seq2seq":
        argv = [*argv, "--backbone", str(t5_folder), "--backbone_kind", "seq2seq"]
    result = peapod_main(argv)
    records = json.loads((out / "eval_results.json").read_text())
    # the benchmark contract: baselines marked, the cpu preset's zero-shot row, every LLM row on the eval users
    # with its normalisation chosen on as many validation users, trained rows with their cost
    assert [r["model_type"] for r in records if r.get("baseline")] == ["popularity", "sasrec"]
    llm = [r for r in records if not r.get("baseline")]
    assert [r["model_type"] for r in llm] == ["llm-zero-shot", "peapod", "peapod"]
    for record in llm:
        selection = record["length_normalize_selection"]
        assert selection["split"] == "validation" and selection["users"] == record["num_users"] == 8
        best = max(selection["validation_metrics"].items(), key=lambda kv: kv[1]["HR@1"])
        assert selection["validation_metrics"][str(record["length_normalize"])]["HR@1"] == best[1]["HR@1"]
        assert record["task"] == "sequential" and len(record["ranks"]) == 8
    own = [r for r in records if r["model_type"] == "peapod"]
    assert [r["variant"] for r in own] == ["personalized", "none"]
    assert all(r["train_s"] > 0 and r["train_tokens"] > 0 for r in own)
    assert all(r["reload_max_abs_diff"] == 0.0 for r in own)  # saved, reloaded, scored the same
    assert (out / "config.json").exists() and (out / "variants" / "none" / "config.json").exists()
    saved = json.loads((out / "hfrec_recommender.json").read_text())
    assert saved["length_normalize"] == own[0]["length_normalize"]  # the pipeline scores as this row was ranked
    assert json.loads((out / "config.json").read_text())["prompt_values"] == values
    topn = json.loads((out / "eval_results_topn.json").read_text())
    assert {r["num_candidates"] for r in topn} == {20} and {r["num_users"] for r in topn} == {4}
    assert {r["task"] for r in topn} == {"topn"}
    generative = json.loads((out / "eval_results_generative.json").read_text())
    assert [g["metrics"]["valid_ratio"] for g in generative] == [1.0, 1.0, 1.0]
    again = peapod_main(argv)  # the saved variants are reloaded, not retrained: the same rows, the same cost
    for record in own:
        assert again[record["method"]] == pytest.approx(record["metrics"], abs=1e-6)
    reloaded = [r for r in json.loads((out / "eval_results.json").read_text()) if r["model_type"] == "peapod"]
    assert [(r["reloaded"], r["train_s"]) for r in reloaded] == [(True, r["train_s"]) for r in own]
    assert result["final"] == own[0]["metrics"]


def test_script_explains_with_bleu_and_rouge_on_a_review_dataset(tiny_setup, review_folder, tmp_path):  # noqa: F811
    from hfrec.trainers.train_sr import main as train_sr

    teacher = tmp_path / "teacher"
    train_sr(["--model", "sasrec", "--dataset", "atomic", "--data_dir", str(review_folder), "--output_dir",
              str(teacher), "--num_candidates", "5", "--max_seq_length", "8", "--num_train_epochs", "1",
              "--disable_tqdm", "true", "--model_kwargs", '{"hidden_size": 16, "num_hidden_layers": 1}'])
    result = peapod_main(["--preset", "cpu", "--dataset", "atomic", "--data_dir", str(review_folder), "--backbone",
                          str(tiny_setup["backbone"]), "--dtype", "float32", "--teacher_dir", str(teacher),
                          "--output_dir", str(tmp_path / "out"), "--num_candidates", "5", "--eval_users", "4",
                          "--max_steps", "2", "--disable_tqdm", "true", "--topn_candidates", "10",
                          "--explanation_users", "3", "--domain", "product"])
    explained = {g["method"]: g for g in result["generative"] if g["task"] == "explanation"}
    # the cpu preset's zero-shot backbone explains too: the trained row's reference point
    assert sorted(explained) == ["PeaPOD (personalized prompt pool)", "zero-shot LLM (backbone)"]
    for row in explained.values():
        assert row["num_users"] == 3 and set(row["metrics"]) == {"BLEU-4", "ROUGE-1", "ROUGE-2", "ROUGE-L"}
        assert all(0.0 <= v <= 100.0 for v in row["metrics"].values())


@pytest.mark.parametrize("flags, match", [
    (["--variants", "personal"], "--variants takes a comma list"),
    (["--interest_source", "friends"], "--interest_source must be user or similar_users"),
    (["--backbone_kind", "rnn"], "--backbone_kind must be causal or seq2seq"),
    (["--preset", "tpu"], "Unknown preset 'tpu'"),
    (["--prompt_values", "neighbours"], "--prompt_values must be pool or similar_users"),
    (["--length_normalize", "mean"], "--length_normalize must be a number or auto"),
])
def test_script_bad_flags(flags, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        peapod_main(["--output_dir", str(tmp_path), *flags])


def test_prompter_bad_input():
    tok = tiny_tokenizer()
    with pytest.raises(ValueError, match="does not know the placeholder token"):
        PeaPODPrompter(tok, catalog(), num_virtual_tokens=3)
    prompter = PeaPODPrompter(tok, catalog(), num_virtual_tokens=0)
    with pytest.raises(ValueError, match="Empty history"):
        prompter.sequential_prompt([0, 0])
    with pytest.raises(ValueError, match="Empty review text"):
        prompter.explanation_completion("   ")
    with pytest.raises(ValueError, match="item_identifier must be 'title' or 'id'"):
        PeaPODPrompter(tok, catalog(), num_virtual_tokens=0, item_identifier="sku")
    assert PeaPODPrompter(tok, catalog(), num_virtual_tokens=0, item_identifier="id").item_text(3) == "item 3"
