"""P2Rec on tiny models built here (no network): target distributions, k-means categories, the preference parser
(loss, gradients, save/load, Auto registration), the item-embedding table and its cache, SR models taking the table,
errors, and the script end to end with the registry's shared flags (train, save, rerun reproduces the metrics)."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoConfig, AutoModel, pipeline

import hfrec  # noqa: F401  registers the SR models and the pipeline task
import hfrec.models.p2rec  # noqa: F401  registers "p2rec" with the Auto classes
from hfrec.benchmark import add_method_records
from hfrec.benchmark_table import BenchmarkTable
from hfrec.data import load_benchmark
from hfrec.methods.common.prompts import ItemCatalog
from hfrec.methods.p2rec import embeddings as embeddings_module
from hfrec.methods.p2rec.categories import (category_frequencies, latent_categories, next_item_targets,
                                             preference_targets, teacher_category_distributions,
                                             teacher_item_categories)
from hfrec.methods.p2rec.config import PreferenceParserSFTConfig
from hfrec.methods.p2rec.data import (DistributionCollator, SFTLevel, build_parser_examples, level_counts,
                                       reconstruction_units, uncapped_cost)
from hfrec.methods.p2rec.embeddings import (item_embedding_table, load_enhanced_embeddings, pooled_states, read_table,
                                             resolve_embedding_mode, shared_prefix_length, spread)
from hfrec.methods.p2rec.prompts import PreferencePrompter
from hfrec.methods.p2rec.script import load_parser, main as p2rec_main, make_parser
from hfrec.methods.p2rec.sr_models import train_sr_job
from hfrec.methods.p2rec.trainer import PreferenceParserTrainer
from hfrec.models import SR_MODELS
from hfrec.models.p2rec import P2RecConfig, PreferenceParserLM
from hfrec.trainers.sr_config import SRTrainingConfig
from hfrec.trainers.sr_trainer import SRTrainer
# the registry-wide test's tiny teacher + backbone, and its shared flags exactly as it passes them
from test_methods import method_argv, tiny_setup  # noqa: F401  (tiny_setup is a fixture)
from tiny_llm import tiny_lm, tiny_tokenizer

N_ITEMS, K = 12, 3
# items 1-4 -> category 0, 5-8 -> 1, 9-12 -> 2
CATEGORIES = np.array([-1] + [0] * 4 + [1] * 4 + [2] * 4)
CATALOG = ItemCatalog.from_items({i: f"item {i}" for i in range(1, N_ITEMS + 1)})
# users who mostly stay in one block of items: a learnable reconstruction task
SEQUENCES = [[1, 2, 3, 5], [5, 6, 7, 8, 6], [9, 10, 11, 1], [2, 4, 3, 1, 2, 9], [12, 11, 10], [6, 5, 7, 9],
             [3, 3, 2], [10, 9, 12, 12, 5]]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads on a busy 2-core machine (as in test_sr_models.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_parser(seed=0, k=K, **kw):
    return PreferenceParserLM.from_backbone(tiny_lm(seed), tiny_tokenizer(), num_categories=k, **kw)


def prompter(tokenizer, catalog=CATALOG, max_history=4):
    return PreferencePrompter(tokenizer, catalog, domain="item", max_history=max_history, item_max_tokens=None)


def tiny_sr(model_type="sasrec", num_items=N_ITEMS, seed=0):
    config_class, model_class = SR_MODELS[model_type]
    torch.manual_seed(seed)
    sizes = {"sasrec": dict(hidden_size=16, intermediate_size=32), "gru4rec": dict(embedding_size=16, hidden_size=16),
             "caser": dict(embedding_size=16, num_vertical_filters=2, num_horizontal_filters=4, window_size=3)}
    return model_class(config_class(num_items=num_items, max_seq_length=6, **sizes[model_type]))


class FixedTeacher(torch.nn.Module):
    """SR-contract stand-in whose next-item scores are the same for every history."""

    def __init__(self, scores):
        super().__init__()
        self.scores = torch.as_tensor(scores, dtype=torch.float32)
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.config = type("C", (), {"max_seq_length": 6})()

    def predict_scores(self, input_ids):
        return self.scores.expand(input_ids.shape[0], -1).clone()


def parser_config(tmp_path, **kw):
    defaults = dict(output_dir=str(tmp_path / "sft"), per_device_train_batch_size=4, max_steps=1, use_cpu=True,
                    learning_rate=5e-3, warmup_steps=0, logging_steps=1, save_strategy="no", disable_tqdm=True, seed=0)
    return PreferenceParserSFTConfig(**{**defaults, **kw})


def parser_trainer(tmp_path, model, tok, examples, **kw):
    return PreferenceParserTrainer(model=model, args=parser_config(tmp_path, **kw),
                                   train_dataset=Dataset.from_list(examples), processing_class=tok)


def examples_for(tok, sequences=SEQUENCES, **kw):
    return build_parser_examples(sequences, prompter(tok), CATEGORIES, K, **kw)


@torch.no_grad()
def mean_kl(model, tok, examples):
    batch = DistributionCollator(tok.pad_token_id)(examples)
    model.eval()
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 labels=batch["labels"]).loss.item()


# ---------------------------------------------------------------------------------------------- targets


def test_targets_are_distributions_matching_hand_counts():
    targets = preference_targets([[1, 5, 6, 9, 5], [12], [2, 3, 7, 8]], CATEGORIES, K)
    np.testing.assert_allclose(targets, [[1 / 5, 3 / 5, 1 / 5], [0, 0, 1], [2 / 4, 2 / 4, 0]])
    np.testing.assert_allclose(targets.sum(1), 1.0)
    # the prompt shows the last max_history items, and the target counts exactly those
    np.testing.assert_allclose(preference_targets([[1, 5, 6, 9, 5]], CATEGORIES, K, max_history=2), [[0, 1 / 2, 1 / 2]])
    # the teacher's predicted distribution, summed per category, mixed in with weight teacher_mix
    scores = torch.full((N_ITEMS + 1,), float("-inf"))
    scores[1:] = torch.tensor([0.0] * 4 + [np.log(3.0)] * 4 + [0.0] * 4)  # category 1 is 3x as likely per item
    teacher = FixedTeacher(scores)
    np.testing.assert_allclose(teacher_category_distributions(teacher, [[1], [2, 3]], CATEGORIES, K),
                               [[0.2, 0.6, 0.2]] * 2, atol=1e-6)
    mixed = preference_targets([[12]], CATEGORIES, K, teacher=teacher, teacher_mix=0.25)
    np.testing.assert_allclose(mixed, [[0.25 * 0.2, 0.25 * 0.6, 0.75 + 0.25 * 0.2]], atol=1e-6)
    np.testing.assert_allclose(mixed.sum(1), 1.0, atol=1e-6)
    # instance level: the next item's category, one-hot, mixed with the teacher's distribution after the prefix
    np.testing.assert_allclose(next_item_targets([[1], [2, 3]], [5, 12], CATEGORIES, K), [[0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(next_item_targets([[1]], [12], CATEGORIES, K, teacher=teacher, teacher_mix=0.5),
                               [[0.1, 0.3, 0.6]], atol=1e-6)


def test_user_level_has_one_example_per_user_instance_level_one_per_prefix():
    seqs = [[4, 5, 9], [], [1], [2, 6, 10, 3]]
    assert [(u.user, u.items, u.next_item) for u in reconstruction_units(seqs)] == [
        (0, [4, 5, 9], None), (2, [1], None), (3, [2, 6, 10, 3], None)]
    # instance level: every prefix with the item that followed it (the SR training rows); [1] has none
    assert [(u.user, u.items, u.next_item) for u in reconstruction_units(seqs, "instance")] == [
        (0, [4], 5), (0, [4, 5], 9), (3, [2], 6), (3, [2, 6], 10), (3, [2, 6, 10], 3)]
    assert level_counts(seqs, SFTLevel.USER) == [1, 0, 1, 1] and level_counts(seqs, "instance") == [2, 0, 0, 3]
    tok = tiny_tokenizer()
    users = examples_for(tok)
    prefixes = examples_for(tok, level="instance")
    assert len(users) == len(SEQUENCES) and len(prefixes) == sum(len(s) - 1 for s in SEQUENCES) == 26
    assert users[0]["target"] == pytest.approx([3 / 4, 1 / 4, 0])  # [1, 2, 3, 5]: category frequencies
    # the prefix [1, 2, 3] is followed by item 5 (category 1): a one-hot target
    assert prefixes[2]["target"] == [0.0, 1.0, 0.0] and prefixes[2]["input_ids"] == prompter(tok).prompt_ids([1, 2, 3])
    assert [e["user"] for e in prefixes[:4]] == [0, 0, 0, 1]
    # the same uncapped set, counted exactly
    assert uncapped_cost(prefixes, SEQUENCES, "instance") == {
        "examples": 26, "prompt_tokens": sum(len(e["input_ids"]) for e in prefixes), "exact": True}


def test_prefix_and_user_caps_are_seeded_and_keep_the_same_users():
    tok = tiny_tokenizer()
    prefixes = examples_for(tok, level="instance")
    capped = examples_for(tok, level="instance", max_prefixes_per_user=2, seed=3)
    assert Counter(e["user"] for e in capped) == {u: min(2, len(s) - 1) for u, s in enumerate(SEQUENCES)}
    assert capped == examples_for(tok, level="instance", max_prefixes_per_user=2, seed=3)
    assert all(example in prefixes for example in capped)
    assert any(examples_for(tok, level="instance", max_prefixes_per_user=2, seed=s) != capped for s in range(4, 8))
    # a user's sample depends on the seed and the user only, not on the other users
    first_two = reconstruction_units(SEQUENCES[:2], "instance", max_prefixes_per_user=2, seed=3)
    assert first_two == reconstruction_units(SEQUENCES, "instance", max_prefixes_per_user=2, seed=3)[:len(first_two)]
    assert reconstruction_units(SEQUENCES, "instance", max_prefixes_per_user=99) == \
        reconstruction_units(SEQUENCES, "instance")
    # the uncapped estimate: each user's uncapped count x the mean length of their sampled prompts
    lengths = {u: [len(e["input_ids"]) for e in capped if e["user"] == u] for u in range(len(SEQUENCES))}
    estimate = sum((len(s) - 1) * np.mean(lengths[u]) for u, s in enumerate(SEQUENCES))
    assert uncapped_cost(capped, SEQUENCES, "instance") == {"examples": 26, "prompt_tokens": int(round(estimate)),
                                                           "exact": False}
    # max_users: a seeded subset of users, the same at both levels (so the levels train on the same data)
    users = examples_for(tok, max_users=3, seed=4)
    chosen = [e["user"] for e in users]
    assert len(users) == 3 and users == examples_for(tok, max_users=3, seed=4)
    instance = examples_for(tok, level="instance", max_users=3, seed=4)
    assert sorted(set(e["user"] for e in instance)) == chosen
    assert len(instance) == sum(len(SEQUENCES[u]) - 1 for u in chosen)
    with pytest.raises(ValueError, match=r"sft_level 'prefix' is unknown; use one of \['user', 'instance'\]"):
        examples_for(tok, level="prefix")
    with pytest.raises(ValueError, match="max_prefixes_per_user must be >= 1"):
        reconstruction_units(SEQUENCES, "instance", max_prefixes_per_user=0)


def test_target_errors_name_the_problem():
    with pytest.raises(ValueError, match="at least one item"):
        category_frequencies([], CATEGORIES, K)
    with pytest.raises(ValueError, match="pass the teacher"):
        preference_targets([[1]], CATEGORIES, K, teacher_mix=0.5)
    with pytest.raises(ValueError, match=r"teacher_mix must be in \[0, 1\]"):
        preference_targets([[1]], CATEGORIES, K, teacher=FixedTeacher(torch.zeros(N_ITEMS + 1)), teacher_mix=2.0)
    with pytest.raises(ValueError, match="outside 0..1"):
        preference_targets([[1]], CATEGORIES, 2)
    with pytest.raises(ValueError, match="2 prefixes but 1 next items"):
        next_item_targets([[1], [2]], [3], CATEGORIES, K)
    with pytest.raises(ValueError, match=r"item ids 13..13 outside the catalogue 1..12"):
        next_item_targets([[1]], [13], CATEGORIES, K)
    model, _ = tiny_parser()
    with pytest.raises(ValueError, match="distributions"):
        model(input_ids=torch.tensor([[1, 2]]), labels=torch.tensor([[0.5, 0.2, 0.1]]))


# ---------------------------------------------------------------------------------------------- categories


def blobs(seed=0, per_blob=10, dim=4):
    rng = np.random.default_rng(seed)
    centres = np.array([[8.0, 0, 0, 0], [0, 8.0, 0, 0], [0, 0, 8.0, 0]])
    return np.concatenate([c + rng.normal(size=(per_blob, dim)) for c in centres])


def test_kmeans_categories_are_deterministic_under_a_seed_and_one_per_item():
    points = blobs()
    first = latent_categories(points, 3, seed=7, n_init=2)
    assert first.shape == (31,) and first[0] == -1 and set(first[1:]) == {0, 1, 2}
    np.testing.assert_array_equal(first, latent_categories(points, 3, seed=7, n_init=2))
    # each blob is one category, numbered by size then first item: here blob order
    assert first[1:].tolist() == [0] * 10 + [1] * 10 + [2] * 10
    uneven = latent_categories(points[5:], 3, seed=1, n_init=2)  # the first blob is the smallest now
    assert uneven[1:].tolist() == [2] * 5 + [0] * 10 + [1] * 10
    teacher = tiny_sr()
    np.testing.assert_array_equal(teacher_item_categories(teacher, 4, seed=3, n_init=2),
                                  latent_categories(teacher.item_representations()[1:], 4, seed=3, n_init=2))
    with pytest.raises(ValueError, match="between 2 and the number of items"):
        latent_categories(points, 31)
    bad = points.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"row 4 \(item 5\) is not finite"):
        latent_categories(bad, 3)


# ---------------------------------------------------------------------------------------------- the parser


def test_reconstruction_loss_decreases_on_a_tiny_model(tmp_path):
    model, tok = tiny_parser()
    examples = examples_for(tok)
    before = mean_kl(model, tok, examples)
    assert before == pytest.approx(float(np.mean([
        sum(t * np.log(t * K) for t in e["target"] if t > 0) for e in examples])), rel=1e-5)  # zero head: uniform
    trainer = parser_trainer(tmp_path, model, tok, examples, max_steps=40, per_device_train_batch_size=8,
                             learning_rate=5e-3, lr_scheduler_type="constant")
    trainer.train()
    after = mean_kl(trainer.model, tok, examples)
    assert after < 0.5 * before, (before, after)
    assert trainer.tokens_trained == 40 * sum(len(e["input_ids"]) for e in examples)


def test_lora_and_head_get_gradients_and_the_backbone_does_not(tmp_path):
    model, tok = tiny_parser()
    trainer = parser_trainer(tmp_path, model, tok, examples_for(tok))
    trainer.train()  # one step: the zero head moves, so gradient reaches the adapter from now on
    peft_model = trainer.model
    batch = DistributionCollator(tok.pad_token_id)(examples_for(tok)[:4])
    peft_model.train()
    peft_model.zero_grad()
    trainer.compute_loss(peft_model, batch).backward()
    named = dict(peft_model.named_parameters())
    lora = [n for n in named if "lora_" in n]
    head = [n for n in named if "score.modules_to_save" in n]
    assert lora and len(head) == 2  # weight and bias of the head, in full
    for name in lora[1::2] + head:  # lora_B (zero at start) gets gradient first; the head always
        assert named[name].requires_grad and named[name].grad is not None and named[name].grad.abs().sum() > 0, name
    frozen = [n for n, p in named.items() if "lora_" not in n and "modules_to_save" not in n]
    assert frozen and not any(named[n].requires_grad or named[n].grad is not None for n in frozen)
    # lora_r=0: a linear probe, only the head trains
    probe, tok = tiny_parser()
    parser_trainer(tmp_path, probe, tok, examples_for(tok), lora_r=0)
    assert {n for n, p in probe.named_parameters() if p.requires_grad} == {"score.weight", "score.bias"}


def test_parser_saves_and_reloads_identically_and_auto_classes_know_it(tmp_path):
    model, tok = tiny_parser(pooling="mean")
    with torch.no_grad():
        model.score.weight.normal_()  # a non-trivial head
    batch = DistributionCollator(tok.pad_token_id)(examples_for(tok)[:3])
    model.eval()
    expected = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    model.save_pretrained(tmp_path / "parser")
    assert type(AutoConfig.from_pretrained(tmp_path / "parser")) is P2RecConfig
    loaded = AutoModel.from_pretrained(tmp_path / "parser").eval()
    assert type(loaded) is PreferenceParserLM and loaded.config.pooling == "mean"
    got = loaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert torch.equal(got.logits, expected.logits) and torch.equal(got.pooled_hidden_states,
                                                                    expected.pooled_hidden_states)
    config = json.loads((tmp_path / "parser" / "config.json").read_text())
    assert config["auto_map"]["AutoModel"].endswith("PreferenceParserLM")  # trust_remote_code copies the code
    assert (tmp_path / "parser" / "modeling_p2rec.py").is_file()
    # base + adapter (LoRA and the trained head) through the script's loader
    model, tok = tiny_parser()
    model.name_or_path = str(tmp_path / "tuned")
    model.save_pretrained(tmp_path / "tuned")
    tok.save_pretrained(tmp_path / "tuned")
    trainer = parser_trainer(tmp_path, model, tok, examples_for(tok), max_steps=3)
    trainer.train()
    trainer.model.save_pretrained(tmp_path / "tuned")
    trainer.model.eval()
    reloaded, _ = load_parser(tmp_path / "tuned", "float32")
    with torch.no_grad():
        a = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        b = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert a.abs().sum() > 0 and torch.equal(a, b)


def test_last_token_pooling_ignores_padding_on_either_side():
    model, _ = tiny_parser()
    model.eval()
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        alone = model(input_ids=ids).pooled_hidden_states
        right = model(input_ids=torch.tensor([[5, 6, 7, 256, 256]]),
                      attention_mask=torch.tensor([[1, 1, 1, 0, 0]])).pooled_hidden_states
    torch.testing.assert_close(right, alone, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- item embeddings


def test_item_table_has_one_row_per_item_in_id_order_and_is_cached(tmp_path, monkeypatch):
    model, tok = tiny_parser()
    p = prompter(tok)
    table = item_embedding_table(model, p, N_ITEMS, cache_dir=tmp_path, batch_size=5, progress=False)
    assert table.shape == (N_ITEMS, 32) and table.dtype == np.float32
    for item in (1, 7, N_ITEMS):  # row k-1 is item k's one-item prompt, computed alone
        alone = pooled_states(model, [p.item_prompt_ids(item)], tok.pad_token_id, progress=False)[0]
        np.testing.assert_allclose(table[item - 1], alone, atol=1e-5)
    # mean pooling takes the unpacked path; its rows are each prompt alone too
    mean_model, _ = tiny_parser(pooling="mean")
    mean_table = item_embedding_table(mean_model, p, N_ITEMS, batch_size=5, progress=False)
    alone = pooled_states(mean_model, [p.item_prompt_ids(7)], tok.pad_token_id, progress=False)[0]
    np.testing.assert_allclose(mean_table[6], alone, atol=1e-5)
    assert shared_prefix_length([[1, 2, 3], [1, 2, 4, 5], [1, 2, 3, 6]]) == 2
    assert shared_prefix_length([[1, 2], [1, 2]]) == 1  # every prompt keeps a token of its own
    saved = list(tmp_path.glob("item-embeddings-*"))
    assert len(saved) == 1
    assert Dataset.load_from_disk(str(saved[0]))["item_id"][:] == list(range(1, N_ITEMS + 1))

    def fail(*args, **kwargs):
        raise AssertionError("the cached table was recomputed")

    monkeypatch.setattr(embeddings_module, "pooled_states", fail)
    np.testing.assert_array_equal(item_embedding_table(model, p, N_ITEMS, cache_dir=tmp_path), table)
    monkeypatch.undo()
    # another text of item 7: another cache key, and only row 7 changes
    titles = list(CATALOG.titles)
    titles[7] = "a rather different title"
    other = item_embedding_table(model, prompter(tok, ItemCatalog(titles)), N_ITEMS, cache_dir=tmp_path,
                                 batch_size=5, progress=False)
    assert len(list(tmp_path.glob("item-embeddings-*"))) == 2
    changed = ~np.isclose(other, table, atol=1e-5).all(axis=1)
    assert changed.nonzero()[0].tolist() == [6]
    # other weights: another key
    with torch.no_grad():
        model.score.bias.add_(1.0)
    item_embedding_table(model, p, N_ITEMS, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("item-embeddings-*"))) == 3
    with pytest.raises(ValueError, match=f"not 1..{N_ITEMS + 1} in order"):
        read_table(saved[0], N_ITEMS + 1)


@pytest.mark.parametrize("model_type, width, mode", [("sasrec", 32, "init"), ("gru4rec", 8, "fuse"),
                                                    ("caser", 16, "init")])
def test_sr_model_loads_the_table_at_its_own_scale_and_trains(model_type, width, mode, tmp_path):
    model = tiny_sr(model_type)
    own = spread(model.item_representations()[1:].detach())
    assert own == pytest.approx(float(model.item_representations()[1:].detach().std()), rel=0.1)  # ~ the init std
    table = 50 * torch.randn(N_ITEMS, width, generator=torch.Generator().manual_seed(0))  # LLM-sized values
    model, info = load_enhanced_embeddings(model, table)  # mode "auto"
    assert (info["mode"], info["project"]) == (mode, mode == "init" and width != 16)
    assert model.config.pretrained_item_embedding_dim == width
    contributed = model.item_representations()[1:].detach()
    if mode == "fuse":
        contributed = contributed - model.item_embedding.weight[1:].detach()
    assert spread(contributed) == pytest.approx(own, rel=1e-4)
    unscaled, _ = load_enhanced_embeddings(tiny_sr(model_type), table, scale="none")
    assert spread(unscaled.item_representations()[1:].detach()) > 10 * own
    # it trains through the SR trainer the script uses: the training loss falls
    rows = [{"user_id": u, "history": seq[:t], "target": seq[t]} for u, seq in enumerate(SEQUENCES)
            for t in range(1, len(seq))]
    config = SRTrainingConfig(output_dir=str(tmp_path), num_train_epochs=20, per_device_train_batch_size=8,
                              learning_rate=3e-2, eval_strategy="no", save_strategy="no", logging_strategy="epoch",
                              load_best_model_at_end=False, use_cpu=True, disable_tqdm=True)
    trainer = SRTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows))
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < 0.9 * losses[0], losses


def test_table_errors_name_the_mismatch():
    with pytest.raises(ValueError, match=f"the table has {N_ITEMS - 2} rows but the model has num_items={N_ITEMS}"):
        load_enhanced_embeddings(tiny_sr(), torch.randn(N_ITEMS - 2, 32))
    with pytest.raises(ValueError, match="cannot widen it: width 8"):  # "init" without a learned projection
        load_enhanced_embeddings(tiny_sr(), torch.randn(N_ITEMS, 8), mode="init")
    with pytest.raises(ValueError, match="width must equal SASRecConfig.hidden_size=16, got width 8"):
        tiny_sr().load_item_embeddings(torch.randn(N_ITEMS, 8), mode="init")
    with pytest.raises(ValueError, match="embedding mode 'mean' is unknown"):
        resolve_embedding_mode("mean", 8, 16)
    with pytest.raises(ValueError, match="zero spread"):
        load_enhanced_embeddings(tiny_sr(), torch.ones(N_ITEMS, 32))


# ---------------------------------------------------------------------------------------------- the script


def test_script_trains_saves_and_a_rerun_reproduces_the_metrics(tiny_setup, monkeypatch):
    out = tiny_setup["root"] / "run"
    argv = method_argv(tiny_setup, out)
    result = p2rec_main(argv)
    records = json.loads((out / "eval_results.json").read_text())
    assert {r["num_users"] for r in records} == {8}
    # one method label per model with both protocols (how hfrec benchmark reads an LLM run's records)
    by_key = {(r["method"], r["protocol"]): r for r in records}
    assert len(by_key) == len(records) == 6
    enhanced = by_key["SASRec + P2Rec embeddings (seed 2020)", "candidates"]
    assert enhanced["model_type"] == "p2rec"
    parser = enhanced["parser"]
    assert parser["level"] == "user" and parser["examples"] == 60  # one per user
    assert parser["steps"] == 2 and parser["train_s"] > 0  # --max_steps caps the parser SFT
    assert parser["uncapped"] == {"examples": 60, "prompt_tokens": parser["prompt_tokens"], "exact": True}
    assert by_key["SASRec from scratch (seed 2020)", "full"]["num_candidates"] is None
    assert by_key["SASRec + P2Rec embeddings (seed 2020)", "full"]["model_type"] == "p2rec"
    assert {r["model_type"] for r in records} == {"popularity", "sasrec", "p2rec"}
    assert result["final"] == enhanced["metrics"]
    # the folder is an ordinary SASRec with the table's trace in its config; its scratch twin beside it
    model = AutoModel.from_pretrained(out)
    scratch = AutoModel.from_pretrained(out / "scratch")
    assert model.config.model_type == scratch.config.model_type == "sasrec"
    assert (model.config.pretrained_item_embedding_dim, scratch.config.pretrained_item_embedding_dim) == (32, 0)
    assert not torch.equal(model.item_representations()[1:], scratch.item_representations()[1:])
    info = json.loads((out / "hfrec_recommender.json").read_text())
    assert info["method"] == "p2rec" and info["item_embeddings"]["mode"] == "fuse"  # 32-wide LLM, 64-wide SASRec
    categories = json.loads((out / "parser" / "categories.json").read_text())
    assert len(categories["categories"]) == 51 and sum(categories["sizes"]) == 50
    assert (out / "parser" / "adapter_model.safetensors").is_file() and not (out / "parser_training").exists()
    assert len(list((out / "item_embeddings").glob("item-embeddings-*"))) == 1
    # the pipeline serves the enhanced SR model (the registry's recommender for p2rec is the SR one)
    recommend = pipeline("next-item-recommendation", model=str(out))
    ranked = recommend({"history": [3, 4, 5], "candidates": [1, 2, 6, 9]}, top_k=4)
    assert sorted(r["item_id"] for r in ranked) == [1, 2, 6, 9]
    assert len(recommend({"history": [3, 4, 5]}, top_k=3)) == 3
    # a rerun reloads everything and re-ranks: the same metrics, nothing trained
    monkeypatch.setattr(PreferenceParserTrainer, "train", lambda *a, **k: pytest.fail("retrained the parser"))
    monkeypatch.setattr("hfrec.trainers.sr_trainer.SRTrainer.train", lambda *a, **k: pytest.fail("retrained SR"))
    again = p2rec_main(argv)
    for record in records:
        label = record["method"] + (", full ranking" if record["protocol"] == "full" else "")
        assert again[label] == pytest.approx(record["metrics"], abs=1e-6)
    with pytest.raises(ValueError, match="other training settings.*num_categories"):
        p2rec_main([*argv, "--num_categories", "5"])
    # hfrec benchmark's table reads these records: one row per model with its full ranking, the baselines left out
    ds = load_benchmark("atomic", data_dir=str(tiny_setup["data"]), num_candidates=10)
    table = BenchmarkTable.for_rows(ds["test"].select(range(8)), ds.name, 10, 42)
    rows = {row.label: row for row in add_method_records(table, "p2rec", records)}
    assert sorted(rows) == ["P2Rec: SASRec + P2Rec embeddings (seed 2020)", "P2Rec: SASRec from scratch (seed 2020)"]
    row = rows["P2Rec: SASRec + P2Rec embeddings (seed 2020)"]
    assert row.metrics() == pytest.approx(enhanced["metrics"], abs=1e-6)
    assert row.full_metrics() == pytest.approx(by_key["SASRec + P2Rec embeddings (seed 2020)", "full"]["metrics"],
                                               abs=1e-6)
    assert row.train_s > parser["train_s"] and row.train_tokens == parser["tokens_trained"]  # SR + parser SFT
    assert 0 < rows["P2Rec: SASRec from scratch (seed 2020)"].train_s < row.train_s


def test_script_instance_level_two_sr_models_seeds_and_the_sft_cost_comparison(tiny_setup):
    out = tiny_setup["root"] / "seeds"
    argv = [*method_argv(tiny_setup, out), "--sft_level", "instance", "--max_prefixes_per_user", "3", "--max_users",
            "20", "--sr_model", "sasrec,gru4rec", "--sr_seeds", "1,2", "--sr_epochs", "2", "--num_categories", "4",
            "--sr_model_kwargs", '{"hidden_size": 16}', "--compare_sft_levels", "true", "--sr_workers", "2"]
    result = p2rec_main(argv)
    records = {(r["method"], r["protocol"]): r for r in json.loads((out / "eval_results.json").read_text())}
    parser = records["SASRec + P2Rec embeddings (seed 1)", "candidates"]["parser"]
    assert parser["level"] == "instance" and parser["examples"] == 60  # 3 prefixes of each of 20 users
    for sr_name in ("SASRec", "GRU4Rec"):
        for kind in ("from scratch", "+ P2Rec embeddings"):
            for protocol in ("candidates", "full"):
                mean = records[f"{sr_name} {kind} (mean of 2 seeds)", protocol]
                seeds = [records[f"{sr_name} {kind} (seed {s})", protocol]["metrics"] for s in (1, 2)]
                assert mean["metrics"]["NDCG@10"] == pytest.approx(np.mean([m["NDCG@10"] for m in seeds]))
                assert mean["metrics_std"]["NDCG@10"] == pytest.approx(np.std([m["NDCG@10"] for m in seeds], ddof=1))
    for folder in (out, out / "scratch", out / "seed-2", out / "seed-2" / "scratch", out / "gru4rec",
                   out / "gru4rec" / "seed-2" / "scratch"):
        assert (folder / "model.safetensors").is_file(), folder
    # 8 SR models trained 2 at a time in worker processes, each timed, none left in training folders
    assert len([k for k in result["timings"] if k.startswith(("sr_sasrec_", "sr_gru4rec_"))]) == 8
    assert not (out / "sr_training").exists()
    # a worker's model is the one in-process training gives (same seed, data and thread count)
    (args,) = make_parser().parse_args_into_dataclasses(args=[*argv, "--output_dir", str(tiny_setup["root"] / "alone")])
    args.apply_preset()
    ds = load_benchmark("atomic", data_dir=str(tiny_setup["data"]), num_candidates=10, seed=42, max_history=50)
    alone = tiny_setup["root"] / "alone"
    train_sr_job(args, ds, "gru4rec", 2, alone, None, alone)
    worker, here = AutoModel.from_pretrained(out / "gru4rec" / "seed-2" / "scratch"), AutoModel.from_pretrained(alone)
    assert all(torch.equal(a, b) for a, b in zip(worker.state_dict().values(), here.state_dict().values()))
    # one table for both: PCA to SASRec's 16 ("init"), fused into GRU4Rec's wider 64 ("fuse")
    assert AutoModel.from_pretrained(out / "seed-2").config.pretrained_item_embedding_mode == "init"
    assert AutoModel.from_pretrained(out / "gru4rec").config.pretrained_item_embedding_mode == "fuse"
    # the cost comparison: the same 20 users at user level, measured on a fresh parser
    cost = json.loads((out / "sft_cost.json").read_text())
    assert cost == result["sft_cost"] and cost["first_measured"] == "instance"
    user, instance = cost["levels"]["user"], cost["levels"]["instance"]
    assert user["examples"] == 20 and instance["examples"] == parser["examples"]
    train_rows = len(load_benchmark("atomic", data_dir=str(tiny_setup["data"]), num_candidates=10)["train"])
    assert user["uncapped"]["examples"] == 60 and instance["uncapped"]["examples"] == train_rows  # one per SR row
    assert cost["instance_over_user"]["uncapped_examples"] == round(train_rows / 60, 2)
    assert user["tokens_trained"] > 0 and user["steps"] == 2 and user["estimated_uncapped_train_s"] > 0
    assert not (out / "parser_sft_user").exists()
