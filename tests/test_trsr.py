"""LLM-TRSR on tiny models built here (no network): block segmentation, hierarchical and recurrent summaries through
the cache (hits on rerun, resume after a crash), the yes/no prompt's token layout, training examples, P(yes) scoring
against one forward per candidate, clear errors, and the script end to end under the registry's shared contract."""

import io
import json
import random
import uuid

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, pipeline

import hfrec  # noqa: F401  registers the models and the pipeline task
from hfrec.methods.common.prompts import ItemCatalog
from hfrec.methods.common.scoring import rank_candidates
from hfrec.methods.trsr.config import SummaryMode, TRSRSFTConfig, TRSRSummaryConfig
from hfrec.methods.trsr.data import build_training_examples, item_counts, summary_histories
from hfrec.methods.trsr.prompts import TRSRPrompter
from hfrec.methods.trsr.recommender import YesNoScorer
from hfrec.methods.trsr.script import main as trsr_main
from hfrec.methods.trsr.summaries import TRSRSummarizer, complete_sentences, split_blocks
from hfrec.methods.trsr.trainer import TRSRSFTTrainer, packed_answer_margins
from hfrec.registry import METHODS, MethodSpec
from test_generation import CountingModel, cache_table, lm, tok  # noqa: F401  (lm, tok: its fixtures)
from test_methods import method_argv, tiny_setup  # noqa: F401  the registry's shared flags and tiny run setup
from tiny_llm import tiny_lm, tiny_tokenizer  # tests/tiny_llm.py

N_ITEMS = 30
CATALOG = ItemCatalog.from_items({"item_id": list(range(1, N_ITEMS + 1)),
                                  "title": [f"Film {i} ({1980 + i})" for i in range(1, N_ITEMS + 1)],
                                  "genres": [("Drama", "Comedy", "Horror")[i % 3] for i in range(1, N_ITEMS + 1)],
                                  "year": [str(1980 + i) for i in range(1, N_ITEMS + 1)]})
CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")
HISTORIES = [list(range(1, 13)), [3, 4], list(range(5, 15)), [7, 8, 9, 10, 11, 12, 13]]  # 3, 1, 2, 2 blocks of 5


def config(mode="hierarchical", **kw):
    return TRSRSummaryConfig(mode=mode, block_size=5, max_blocks=3, item_text_tokens=12, max_new_tokens=6,
                             batch_size=3, **kw)


# ------------------------------------------------------------------------------------------------ blocks
@pytest.mark.parametrize("history, max_blocks, expected", [
    ([1, 2, 3], 5, [[1, 2, 3]]),  # shorter than a block: one block
    (list(range(1, 11)), 5, [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]),  # exactly two blocks
    (list(range(1, 13)), 5, [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]),  # only the last block may be short
    (list(range(1, 28)), 2, [[18, 19, 20, 21, 22], [23, 24, 25, 26, 27]]),  # more than max_blocks: the recent ones
    ([0, 0, 4, 5], 5, [[4, 5]]),  # padding ids are not items
])
def test_split_blocks(history, max_blocks, expected):
    assert split_blocks(history, block_size=5, max_blocks=max_blocks) == expected


@pytest.mark.parametrize("text, kept", [
    (" Likes dramas. Also enjoys com", "Likes dramas."),  # cut by the length budget: the unfinished sentence goes
    ("Likes dramas. Enjoys comedies.", "Likes dramas. Enjoys comedies."),
    ("Likes dramas and com", "Likes dramas and com"),  # a single sentence stays, however it ends
    ("Loves noir! Hates musicals? Maybe", "Loves noir! Hates musicals?"),
])
def test_complete_sentences(text, kept):
    assert complete_sentences(text) == kept


def test_split_blocks_refuses_empty_histories_and_bad_sizes():
    with pytest.raises(ValueError, match="Empty history"):
        split_blocks([0, 0])
    with pytest.raises(ValueError, match="block_size and max_blocks must be >= 1"):
        split_blocks([1, 2], block_size=0)


# ------------------------------------------------------------------------------------------------ summaries
def test_hierarchical_summaries_one_per_user_batched_and_cached(lm, tok, tmp_path):
    spy = CountingModel(lm)
    summarizer = TRSRSummarizer(spy, tok, CATALOG, tmp_path, config())
    detailed = summarizer.summarize_detailed(HISTORIES, user_ids=[10, 11, 12, 13], progress=False)
    assert [len(d.blocks) for d in detailed] == [3, 1, 2, 2]
    assert [len(d.steps) for d in detailed] == [3, 1, 2, 2]  # one summary per block
    assert detailed[1].summary == detailed[1].steps[0]  # one block: no merge
    # 8 block prompts (users' blocks batched together: 3 calls of 3), then 3 merges (1 call)
    assert spy.calls == 3 + 1
    summaries = [d.summary for d in detailed]
    assert len(set(summaries)) > 1  # the users' summaries differ: the comparisons below are not trivial
    again = TRSRSummarizer(spy, tok, CATALOG, tmp_path, config())  # a rerun reads the disk cache
    assert again.summarize(HISTORIES, progress=False) == summaries and spy.calls == 4
    keys = set(cache_table(tmp_path)["key"])
    assert {"user 10: block 1", "user 10: merge", "user 11: block 1"} <= keys


def test_recurrent_summaries_update_block_by_block_and_share_the_first_step(lm, tok, tmp_path):
    hierarchical = TRSRSummarizer(lm, tok, CATALOG, tmp_path, config()).summarize_detailed(HISTORIES, progress=False)
    spy = CountingModel(lm)
    recurrent = TRSRSummarizer(spy, tok, CATALOG, tmp_path, config("recurrent"))
    detailed = recurrent.summarize_detailed(HISTORIES, progress=False)
    assert [len(d.steps) for d in detailed] == [3, 1, 2, 2] and [d.summary for d in detailed] == \
        [d.steps[-1] for d in detailed]
    # step 1 is the hierarchical block prompt (cached); step 2 updates 3 users (1 call), step 3 one user (1 call)
    assert spy.calls == 2
    assert [d.steps[0] for d in detailed] == [h.steps[0] for h in hierarchical]
    assert detailed[0].steps[1] != hierarchical[0].steps[1]  # an update, not the block alone
    assert TRSRSummarizer(spy, tok, CATALOG, tmp_path, config("recurrent")).summarize(HISTORIES, progress=False) == \
        [d.summary for d in detailed] and spy.calls == 2


@pytest.mark.parametrize("mode", ["hierarchical", "recurrent"])
def test_interrupted_summaries_resume_to_the_uninterrupted_result(lm, tok, tmp_path, mode):
    want = TRSRSummarizer(lm, tok, CATALOG, tmp_path / "full", config(mode)).summarize(HISTORIES, progress=False)
    crashing = CountingModel(lm, crash_on_call=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        TRSRSummarizer(crashing, tok, CATALOG, tmp_path / "run", config(mode)).summarize(HISTORIES, progress=False)
    assert len(cache_table(tmp_path / "run")) == 3  # the first batch was kept
    resumed = CountingModel(lm)
    got = TRSRSummarizer(resumed, tok, CATALOG, tmp_path / "run", config(mode)).summarize(HISTORIES, progress=False)
    assert got == want
    # what the crash left: hierarchical 5 block prompts (2 calls) + the merges; recurrent the 4th first step, then
    # the updates of step 2 and of step 3 (a call each)
    assert resumed.calls == 3


def test_summaries_do_not_depend_on_the_other_users(lm, tok, tmp_path):
    together = TRSRSummarizer(lm, tok, CATALOG, tmp_path / "a", config()).summarize(HISTORIES, progress=False)
    alone = [TRSRSummarizer(lm, tok, CATALOG, tmp_path / "b", config()).summarize([h], progress=False)[0]
             for h in HISTORIES[::-1]]
    assert alone[::-1] == together


def test_summary_throughput_is_measured_into_fresh_caches(lm, tok, tmp_path):
    from hfrec.methods.trsr.script import summary_throughput

    summarizer = TRSRSummarizer(lm, tok, CATALOG, tmp_path, config("recurrent"))
    timings = {}
    summary_throughput(summarizer, HISTORIES, timings)
    assert timings["summary_users_per_s_batched"] > 0 and timings["summary_users_per_s_one_at_a_time"] > 0
    assert not list(tmp_path.iterdir())  # the run's own cache is not touched


def test_summary_bad_input(lm, tok, tmp_path):
    summarizer = TRSRSummarizer(lm, tok, CATALOG, tmp_path, config())
    with pytest.raises(ValueError, match=r"History 1 \(user 8\): Empty history"):
        summarizer.summarize([[1, 2], []], user_ids=[7, 8], progress=False)
    untitled = ItemCatalog.from_items({1: "Film 1", 2: None, 3: "Film 3"})
    with pytest.raises(ValueError, match=r"Item\(s\) \[2\] have no title"):
        TRSRSummarizer(lm, tok, untitled, tmp_path, config()).summarize([[1, 2, 3]], progress=False)
    with pytest.raises(ValueError, match="Unknown summary mode 'tree'"):
        config("tree")
    with pytest.raises(ValueError, match="means no summariser"):
        config("none")
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        TRSRSummaryConfig(block_size=0)


def test_push_cache_and_from_hub(lm, tok, tmp_path, hub_server):
    """The cache travels as a Hub dataset: one parquet file where Dataset.push_to_hub puts it (the loopback test hub
    takes no LFS upload, so the file is committed as a regular one; see test_generation)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    want = TRSRSummarizer(lm, tok, CATALOG, tmp_path / "a", config()).summarize(HISTORIES, progress=False)
    parquet = io.BytesIO()
    cache_table(tmp_path / "a").to_parquet(parquet)
    api, repo_id = HfApi(endpoint=hub_server.endpoint), f"hfrec-tester/trsr-summaries-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id, repo_type="dataset")
    api.create_commit(repo_id, [CommitOperationAdd("data/train-00000-of-00001.parquet", parquet.getvalue())],
                      commit_message="summaries", repo_type="dataset")
    spy = CountingModel(lm)
    pulled = TRSRSummarizer.from_hub(repo_id, spy, tok, CATALOG, tmp_path / "b", config())
    assert pulled.summarize(HISTORIES, progress=False) == want and spy.calls == 0  # same keys: nothing generated
    pushed = []
    pulled.generator.push_to_hub = lambda repo, **kw: pushed.append((repo, kw))
    pulled.push_cache("me/summaries", private=True)
    assert pushed == [("me/summaries", {"private": True})]


# ------------------------------------------------------------------------------------------------ prompts, examples
@pytest.mark.parametrize("chat", [False, True])
def test_example_ids_are_prompt_candidate_suffix_answer(chat):
    tok = tiny_tokenizer()
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    prompter = TRSRPrompter(tok, CATALOG, item_text_tokens=40, recent_items=2)
    prompt = prompter.prompt_ids("Likes dramas.", [1, 2, 3])
    text = tok.decode(prompt)
    assert "Likes dramas." in text and "Film 2 (1982) (genres: Horror)" in text and "Film 1 (" not in text
    assert "year:" not in text  # the title already shows the year
    assert text.startswith("<system>") == chat
    assert tok.decode(prompter.suffix_ids) == ("</user><assistant>" if chat else "\nAnswer: ")
    pos, neg = prompter.examples("Likes dramas.", [1, 2, 3], [7, 9], [True, False])
    yes, no = (tok(a, add_special_tokens=False)["input_ids"][0] for a in ("Yes", "No"))
    for example, item, answer in ((pos, 7, yes), (neg, 9, no)):
        body = prompt + tok(prompter.item_text(item), add_special_tokens=False)["input_ids"] + prompter.suffix_ids
        assert example["input_ids"] == body + [answer]
        assert example["labels"] == [-100] * len(body) + [answer]  # only the answer is learned
    without = tok.decode(prompter.prompt_ids(None, [1, 2, 3]))
    assert "Preference summary" not in without and "Preference summary" in text


def test_prompter_bad_input(tok):
    with pytest.raises(ValueError, match="start with the same token"):
        TRSRPrompter(tok, CATALOG, answers=("Yes", "Yeah"))  # byte tokens: both start with "Y"
    prompter = TRSRPrompter(tok, CATALOG)
    with pytest.raises(ValueError, match="Empty history"):
        prompter.prompt_ids("x", [0])
    with pytest.raises(ValueError, match=r"Unknown item id\(s\) \[99\]"):
        prompter.prompt_ids("x", [1, 99])


def test_training_examples_are_one_positive_one_negative(tok):
    prompter = TRSRPrompter(tok, CATALOG, item_text_tokens=20, recent_items=3)
    rows = [{"user_id": 1, "history": [1, 2, 3], "target": 4}, {"user_id": 1, "history": [1, 2, 3, 4], "target": 5},
            {"user_id": 2, "history": [9, 8], "target": 7}]
    assert summary_histories(rows) == {1: [1, 2, 3], 2: [9, 8]}  # the earliest row: no target of another row
    examples = build_training_examples(rows, prompter, N_ITEMS, {1: "likes low ids", 2: "likes high ids"}, seed=3)
    assert len(examples) == 2 * len(rows)
    answers = [e["labels"][-1] for e in examples]
    assert answers == prompter.answer_ids * len(rows)  # Yes (target), No (negative), per row
    for row, pos, neg in zip(rows, examples[::2], examples[1::2]):
        prompt = prompter.prompt_ids("likes low ids" if row["user_id"] == 1 else "likes high ids", row["history"])
        assert pos["input_ids"][: len(prompt)] == prompt == neg["input_ids"][: len(prompt)]
        negative = tok.decode(neg["input_ids"][len(prompt): -1 - len(prompter.suffix_ids)])
        item = next(i for i in range(1, N_ITEMS + 1) if prompter.item_text(i) == negative)
        assert item not in row["history"] and item != row["target"]
    # negatives avoid every item of the user's rows, as the evaluation candidates avoid every item the user touched
    near_all = [{"user_id": 3, "history": [1], "target": 29},
                {"user_id": 3, "history": list(range(1, 28)), "target": 28}]
    for seed in range(5):
        drawn = build_training_examples(near_all, prompter, N_ITEMS, None, seed=seed)
        negatives = [tok.decode(e["input_ids"][len(prompter.prompt_ids(None, r["history"])): -1 -
                                               len(prompter.suffix_ids)]) for e, r in zip(drawn[1::2], near_all)]
        assert negatives == [prompter.item_text(30)] * 2
    assert build_training_examples(rows, prompter, N_ITEMS, None, seed=3)[0]["input_ids"] != examples[0]["input_ids"]
    with pytest.raises(ValueError, match="No summary for user 2"):
        build_training_examples(rows, prompter, N_ITEMS, {1: "x"})


@pytest.mark.parametrize("num_negatives, popular_share", [(1, 0.0), (3, 0.0), (4, 0.5), (2, 1.0)])
def test_listwise_examples_hold_the_target_first_and_distinct_unseen_negatives(tok, num_negatives, popular_share):
    prompter = TRSRPrompter(tok, CATALOG, item_text_tokens=20, recent_items=2)
    rows = [{"user_id": 1, "history": [1, 2, 3], "target": 4}, {"user_id": 1, "history": [1, 2, 3, 4], "target": 5},
            {"user_id": 2, "history": [9, 8], "target": 7}]
    counts = [0.0] * (N_ITEMS + 1)
    counts[20:26] = [50.0, 40.0, 30.0, 20.0, 10.0, 5.0]  # the "popular" items 20..25, and item 4: user 1's
    # target, so only user 2 may draw it
    counts[4] = 100.0
    by_text = {prompter.item_text(i): i for i in range(1, N_ITEMS + 1)}
    examples = build_training_examples(rows, prompter, N_ITEMS, None, seed=1, num_negatives=num_negatives,
                                       listwise=True, popular_share=popular_share, counts=counts)
    assert len(examples) == len(rows)  # one example per row
    pointwise = build_training_examples(rows, prompter, N_ITEMS, None, seed=1, num_negatives=num_negatives,
                                        popular_share=popular_share, counts=counts)
    assert len(pointwise) == len(rows) * (1 + num_negatives)  # one per candidate
    for row, example, k in zip(rows, examples, range(len(rows))):
        assert example["prompt_ids"] == prompter.prompt_ids(None, row["history"]) and example["positive"] == 0
        items = []
        for ids in example["candidate_ids"]:
            assert ids[-len(prompter.suffix_ids):] == prompter.suffix_ids  # each segment ends with the suffix
            items.append(by_text[tok.decode(ids[: -len(prompter.suffix_ids)])])
        assert items[0] == row["target"] and len(set(items)) == len(items) == 1 + num_negatives
        touched = {i for r in rows if r["user_id"] == row["user_id"] for i in [*r["history"], r["target"]]}
        assert not touched & set(items[1:])  # never an item of the user's rows
        n_popular = round(popular_share * num_negatives)
        assert set(items[1: 1 + n_popular]) <= {4, *range(20, 26)}  # weighted by the counts: only counted items
        # the pointwise examples of the same seed hold the same candidates, answered Yes then No
        point = pointwise[k * (1 + num_negatives): (k + 1) * (1 + num_negatives)]
        assert [e["input_ids"][:-1] for e in point] == [example["prompt_ids"] + c for c in example["candidate_ids"]]
        assert [e["labels"][-1] for e in point] == [prompter.answer_ids[0]] + [prompter.answer_ids[1]] * num_negatives


def test_popularity_weighted_negatives_follow_the_counts(tok):
    prompter = TRSRPrompter(tok, CATALOG, item_text_tokens=20, recent_items=1)
    counts = [0.0] * (N_ITEMS + 1)
    counts[10], counts[11] = 90.0, 10.0
    rows = [{"user_id": u, "history": [1], "target": 2} for u in range(400)]
    drawn = [e["candidate_ids"][1] for e in build_training_examples(rows, prompter, N_ITEMS, None, seed=0,
                                                                    listwise=True, popular_share=1.0, counts=counts)]
    share = drawn.count(prompter.candidate_ids(10) + prompter.suffix_ids) / len(drawn)
    assert 0.85 < share < 0.95  # 90 : 10
    split = Dataset.from_list([{"user_id": 1, "history": [1], "target": 2}, {"user_id": 1, "history": [1, 2], "target": 2}])
    assert item_counts(split, 3) == [0.0, 1.0, 2.0, 0.0]  # per interaction of the rebuilt sequences, as popularity


def test_training_examples_bad_input(tok):
    prompter = TRSRPrompter(tok, CATALOG)
    rows = [{"user_id": 1, "history": [1, 2], "target": 3}]
    with pytest.raises(ValueError, match="num_negatives must be >= 1"):
        build_training_examples(rows, prompter, N_ITEMS, num_negatives=0)
    with pytest.raises(ValueError, match="popular_share must be in"):
        build_training_examples(rows, prompter, N_ITEMS, popular_share=1.5)
    with pytest.raises(ValueError, match="needs the items' training counts"):
        build_training_examples(rows, prompter, N_ITEMS, popular_share=1.0)
    with pytest.raises(ValueError, match="too few items with a count"):
        build_training_examples(rows, prompter, N_ITEMS, num_negatives=2, popular_share=1.0,
                                counts=[0.0] * N_ITEMS + [1.0])
    with pytest.raises(ValueError, match="at least one negative"):
        prompter.listwise_example(None, [1], [2])


# ------------------------------------------------------------------------------------------------ scoring
def test_yes_probabilities_equal_one_forward_per_candidate(tok, lm, tmp_path):
    prompter = TRSRPrompter(tok, CATALOG, item_text_tokens=20, recent_items=2)
    summarizer = TRSRSummarizer(lm, tok, CATALOG, tmp_path, config())
    scorer = YesNoScorer(lm, tok, prompter, summarizer, batch_size=2)
    rows = {"history": HISTORIES, "candidates": [[5, 6, 7], [1, 2, 30], [9, 3, 4], [20, 21, 22]]}
    probs = scorer(rows, "candidates")
    assert probs.shape == (4, 3) and bool(((probs >= 0) & (probs <= 1)).all())
    ranked = rank_candidates(probs, torch.tensor(rows["candidates"]))
    assert [sorted(r) for r in ranked.tolist()] == [sorted(c) for c in rows["candidates"]]
    summaries = summarizer.summarize(HISTORIES, progress=False)
    with torch.no_grad():
        for u, (history, cands) in enumerate(zip(rows["history"], rows["candidates"])):
            for c, item in enumerate(cands):
                ids = prompter.prompt_ids(summaries[u], history) + prompter.candidate_ids(item) + prompter.suffix_ids
                logits = lm(torch.tensor([ids])).logits[0, -1, prompter.answer_ids]
                assert probs[u, c].item() == pytest.approx(logits.softmax(-1)[0].item(), abs=1e-5)
    with pytest.raises(ValueError, match="protocol 'candidates'"):
        scorer(rows, "full")


# ------------------------------------------------------------------------------------------------ training
def test_trainer_adapts_the_attention_projections_and_learns(tok, tmp_path):
    prompter = TRSRPrompter(tok, CATALOG, item_text_tokens=10, recent_items=2)
    rng = random.Random(0)
    rows = [{"user_id": u, "history": [rng.randint(1, 10) for _ in range(3)], "target": rng.randint(1, 10)}
            for u in range(8)]
    examples = build_training_examples(rows, prompter, N_ITEMS, None, seed=0)
    args = TRSRSFTConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-2,
                         use_cpu=True, disable_tqdm=True, save_strategy="no")
    assert args.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"] and args.lora_r == 8
    trainer = TRSRSFTTrainer(tiny_lm(seed=2), args, train_dataset=Dataset.from_list(examples),
                             processing_class=tok)
    trainable = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, p in trainer.model.named_parameters()
                 if p.requires_grad}
    assert trainable == {"q_proj", "k_proj", "v_proj", "o_proj"}
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters() if n in before)
    with pytest.raises(TypeError, match="TRSRSFTConfig"):
        TRSRSFTTrainer(tiny_lm(), args=object(), processing_class=tok)


def test_trained_answer_position_is_the_scored_one_and_the_loss_is_the_answer_alone(tok, tmp_path):
    """On a learnable signal (the "Liked" items are the positives) the answer-token loss falls well below ln 2, the
    trainer's loss is the cross-entropy of the answer token alone (no end-of-turn or prompt token), and the ranking's
    P(yes) is the trained model's softmax over the Yes/No logits at the trained position."""
    catalog = ItemCatalog.from_items({"item_id": list(range(1, 21)),
                                      "title": [f"{'Liked' if i <= 10 else 'Other'} {i}" for i in range(1, 21)]})
    prompter = TRSRPrompter(tok, catalog, item_text_tokens=12, recent_items=1)
    drama, other = list(range(1, 11)), list(range(11, 21))  # the positives, the negatives
    rng = random.Random(0)
    examples = []
    for u in range(32):
        history = [rng.randint(1, 20)]
        examples += prompter.examples(None, history, [rng.choice(drama), rng.choice(other)], [True, False])
    args = TRSRSFTConfig(output_dir=str(tmp_path), max_steps=80, per_device_train_batch_size=8, learning_rate=3e-3,
                         lr_scheduler_type="constant", lora_r=0, use_cpu=True, disable_tqdm=True, save_strategy="no",
                         logging_steps=1, seed=0)  # lora_r=0: the tiny random model learns in full, in a few steps
    trainer = TRSRSFTTrainer(tiny_lm(seed=3), args, train_dataset=Dataset.from_list(examples), processing_class=tok)
    model = trainer.model

    def answer_nll(batch):  # -log p(answer) over the full vocabulary, at the position before the answer
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([e["input_ids"][:-1] for e in batch])).logits[:, -1].float()
        answers = torch.tensor([e["labels"][-1] for e in batch])
        return torch.nn.functional.cross_entropy(logits, answers).item()

    same_length = [e for e in examples if len(e["input_ids"]) == len(examples[0]["input_ids"])][:4]
    batch = trainer.data_collator(same_length)
    model.train()
    assert trainer.compute_loss(model, dict(batch)).item() == pytest.approx(answer_nll(same_length), rel=1e-4)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert sum(losses[-5:]) / 5 < 0.35 < 0.69 < losses[0]  # learned, not just the 1:1 prior (ln 2)
    model.eval()
    scorer = YesNoScorer(model, tok, prompter, None, batch_size=3)
    histories = [[rng.randint(1, 20)] for _ in range(6)]
    candidates = [rng.sample(drama, 2) + rng.sample(other, 3) for _ in histories]
    probs = scorer.scores(histories, candidates)
    with torch.no_grad():
        for h, cands, row in zip(histories, candidates, probs):
            for c, p in zip(cands, row):
                ids = prompter.examples(None, h, [c], [True])[0]["input_ids"][:-1]  # the trained position
                direct = model(input_ids=torch.tensor([ids])).logits[0, -1, prompter.answer_ids].float()
                assert p.item() == pytest.approx(direct.softmax(-1)[0].item(), abs=1e-5)
    assert bool((probs[:, :2].min(1).values > probs[:, 2:].max(1).values).all())  # every liked item above the others


def test_listwise_loss_is_the_softmax_over_one_forward_per_candidate_and_learns(tok, tmp_path):
    """The listwise trainer's margins equal logit(Yes) - logit(No) of a plain forward of prompt + candidate + suffix
    (the position the ranking reads), its loss is the cross-entropy of the target under the row's softmax, and on a
    learnable signal it ranks the liked items first (accuracy = target on top of its row)."""
    catalog = ItemCatalog.from_items({"item_id": list(range(1, 21)),
                                      "title": [f"{'Liked' if i <= 10 else 'Other'} {i}" for i in range(1, 21)]})
    prompter = TRSRPrompter(tok, catalog, item_text_tokens=12, recent_items=1)
    rng = random.Random(0)
    examples = [prompter.listwise_example(None, [rng.randint(1, 20)], [rng.randint(1, 10), *rng.sample(range(11, 21), 2)])
                for _ in range(24)]
    examples[1]["candidate_ids"] = examples[1]["candidate_ids"][:2]  # a shorter row: its missing entry is -inf
    args = TRSRSFTConfig(output_dir=str(tmp_path), max_steps=24, per_device_train_batch_size=6, learning_rate=3e-3,
                         lr_scheduler_type="constant", lora_r=0, use_cpu=True, disable_tqdm=True, save_strategy="no",
                         logging_steps=1, seed=0, ranking_loss="listwise")
    trainer = TRSRSFTTrainer(tiny_lm(seed=3), args, train_dataset=Dataset.from_list(examples), processing_class=tok)
    model = trainer.model
    batch = trainer.data_collator(examples[:3])
    margins, tokens = packed_answer_margins(model, batch["prompt_ids"], batch["candidate_ids"], prompter.answer_ids,
                                            tok.pad_token_id)
    assert tokens == sum(len(e["prompt_ids"]) + sum(map(len, e["candidate_ids"])) for e in examples[:3])
    assert margins[1, 2].item() == float("-inf")
    with torch.no_grad():
        for b, example in enumerate(examples[:3]):
            for c, ids in enumerate(example["candidate_ids"]):
                logits = model(input_ids=torch.tensor([example["prompt_ids"] + ids])).logits[0, -1, prompter.answer_ids]
                assert margins[b, c].item() == pytest.approx((logits[0] - logits[1]).item(), abs=1e-4)
    loss = trainer.compute_loss(model, batch)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(margins, batch["positive"]).item(), rel=1e-5)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.zero_grad()
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs[0]["loss"] > 0.8 and sum(h["loss"] for h in logs[-4:]) / 4 < 0.3  # ln 3 = 1.10 at the start
    assert logs[-1]["mean_token_accuracy"] > 0.8 and logs[-1]["num_tokens"] > 0
    histories = [[rng.randint(1, 20)] for _ in range(5)]
    candidates = [rng.sample(range(1, 11), 2) + rng.sample(range(11, 21), 3) for _ in histories]
    probs = YesNoScorer(model.eval(), tok, prompter, None, batch_size=2).scores(histories, candidates)
    assert bool((probs[:, :2].min(1).values > probs[:, 2:].max(1).values).all())
    with pytest.raises(ValueError, match="needs listwise examples"):
        trainer.data_collator([{"input_ids": [1], "labels": [1]}])
    with pytest.raises(ValueError, match="Unknown ranking_loss 'pairwise'"):
        TRSRSFTConfig(output_dir=str(tmp_path), ranking_loss="pairwise")


# ------------------------------------------------------------------------------------------------ script
TRSR_SPEC = MethodSpec("trsr", "LLM-TRSR", ("trsr",), "hfrec.methods.trsr.script",
                       "hfrec.methods.trsr.recommender:load_recommender", "trainers/sft_trsr.py",
                       presets=("cpu", "gpu"))


@pytest.fixture(scope="module")
def registered():
    """The registry line LLM-TRSR will have (hfrec/registry.py is not this method's to edit)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(METHODS, "trsr", TRSR_SPEC)
        yield TRSR_SPEC


@pytest.fixture(scope="module")
def trained(tiny_setup, registered):  # noqa: F811  (tiny_setup is the fixture imported above)
    """The cpu preset with both summary modes (the preset itself trains the hierarchical one only)."""
    out = tiny_setup["root"] / "trsr"
    argv = [*method_argv(tiny_setup, out), "--summary_mode", "hierarchical,recurrent"]
    return {"trsr": (out, trsr_main(argv), argv)}


def test_script_passes_the_registry_contract(trained, tiny_setup, registered):  # noqa: F811
    import test_methods

    test_methods.test_method_trains_saves_reloads_and_ranks("trsr", trained)
    test_methods.test_pipeline_ranks_given_candidates_and_retrieves_without("trsr", trained, tiny_setup)


def test_script_rows_folder_and_summary_cache(trained):
    out, result, argv = trained["trsr"]
    records = json.loads((out / "eval_results.json").read_text())
    own = {r["summary_mode"]: r for r in records if r["model_type"] == "trsr"}
    assert set(own) == {"hierarchical", "recurrent"}
    # the benchmark contract: popularity and the teacher are baselines, the zero-shot row is on, trained rows cost
    assert [r["method"] for r in records if r.get("baseline")] == ["popularity", "SASRec (teacher)"]
    assert [r["model_type"] for r in records if not r.get("baseline")] == ["llm-zero-shot", "trsr", "trsr"]
    for record in own.values():
        assert record["train_s"] > 0 and record["train_tokens"] > 0 and record["ranking_loss"] == "listwise"
        assert len(record["ranks"]) == record["num_users"] == 8 and record["rows_fingerprint"]
    assert {"HR@3", "MRR@3", "MRR@10", "NDCG@5"} <= set(own["recurrent"]["metrics"])
    assert result["final"] == own["hierarchical"]["metrics"]
    info = json.loads((out / "hfrec_recommender.json").read_text())
    assert info["method"] == "trsr" and info["summary_mode"] == "hierarchical" and info["teacher"] == "teacher"
    assert info["modes"] == {"hierarchical": ".", "recurrent": "modes/recurrent"}
    assert (out / "teacher" / "config.json").exists() and (out / "modes" / "recurrent" / "adapter_config.json").exists()
    base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base == str(out.resolve())
    model = AutoModelForCausalLM.from_pretrained(str(out))  # base + adapter from the one folder
    assert hasattr(model, "peft_config")
    shards = sorted(p.name for p in (out / "summaries").glob("shard-*"))
    assert shards and len(cache_table(out / "summaries")) > 0
    again = trsr_main(argv)  # reruns reload the recommenders and read every summary from the cache
    assert sorted(p.name for p in (out / "summaries").glob("shard-*")) == shards
    assert again["final"] == result["final"]
    reloaded = {r["summary_mode"]: r for r in json.loads((out / "eval_results.json").read_text())
                if r["model_type"] == "trsr"}
    assert reloaded["hierarchical"]["train_s"] == own["hierarchical"]["train_s"]  # the marker's recorded cost
    with pytest.raises(ValueError, match="trained with summary mode 'hierarchical', not 'recurrent'"):
        trsr_main([*argv, "--summary_mode", "recurrent,hierarchical"])  # the folder's own adapter is hierarchical


def test_pipeline_scores_equal_the_scripts_model(trained, tiny_setup, registered):  # noqa: F811
    """The pipeline loads the folder (base + adapter through transformers); the script reloads the backbone + the
    adapter with PEFT: the same P(yes)."""
    from peft import PeftModel

    from hfrec.data import load_benchmark

    out, _, _ = trained["trsr"]
    ds = load_benchmark("atomic", data_dir=str(tiny_setup["data"]), num_candidates=10, seed=42)
    row = ds["test"][1]
    shards = sorted((out / "summaries").glob("shard-*"))
    recommend = pipeline("next-item-recommendation", model=str(out))
    scorer = recommend.recommender.scorer
    assert scorer.summarizer.mode == SummaryMode.HIERARCHICAL
    ranked = recommend({"history": row["history"], "candidates": row["candidates"]}, top_k=10)
    assert sorted((out / "summaries").glob("shard-*")) == shards  # the run's summary of this user was found
    script_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_setup["backbone"]), str(out))
    want = YesNoScorer(script_model, scorer.tokenizer, scorer.prompter, scorer.summarizer)(
        {"history": [row["history"]], "candidates": [row["candidates"]]}, "candidates")[0]
    got = {r["item_id"]: r["score"] for r in ranked}
    assert [got[c] for c in row["candidates"]] == pytest.approx(want.tolist(), abs=1e-6)


def test_cpu_preset_is_hierarchical_listwise_on_the_first_100_users():
    from hfrec.methods.trsr.script import TRSRScriptArguments

    args = TRSRScriptArguments().apply_preset()
    assert [m.value for m in args.modes()] == ["hierarchical"] and args.eval_users == 100 and args.zero_shot
    assert (args.ranking_loss, args.num_negatives) == ("listwise", 4)
    gpu = TRSRScriptArguments(preset="gpu").apply_preset()
    assert (gpu.ranking_loss, gpu.num_negatives, gpu.popular_share) == ("pointwise", 1, 0.0)  # the paper's


@pytest.mark.parametrize("flags, match", [
    (["--summary_mode", "tree"], "--summary_mode 'tree'"),
    (["--ranking_loss", "pairwise"], "--ranking_loss 'pairwise'"),
    (["--num_negatives", "0"], "--num_negatives must be >= 1"),
    (["--popular_share", "2"], "--popular_share must be in"),
    (["--preset", "tpu"], "Unknown preset 'tpu'"),
    (["--dtype", "float8"], "Unknown dtype 'float8'"),
    (["--summary_generation_kwargs", "top_p=0.9"], "--summary_generation_kwargs must be a JSON object"),
])
def test_script_bad_flags(flags, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        trsr_main(["--output_dir", str(tmp_path), *flags])


def test_table_shows_the_papers_recall_and_mrr(trained):
    out, _, _ = trained["trsr"]
    header = (out / "results_table.txt").read_text().splitlines()[2]
    for column in ("HR@1", "HR@5", "NDCG@5", "Recall@3", "Recall@5", "Recall@10", "MRR@3", "MRR@5", "MRR@10"):
        assert f"| {column} |" in header


def test_card_names_llm_trsr_and_its_own_rows(trained):
    from hfrec.hub import build_model_card

    out, _, _ = trained["trsr"]
    card = build_model_card(out, repo_id="me/trsr-tiny")
    text = str(card)
    assert "**LLM-TRSR**" in text and "`trsr`" in text and "llama" not in card.data.tags
    assert "trsr" in card.data.tags
    results = card.data.to_dict()["model-index"][0]["results"]
    names = {m["name"] for r in results for m in r["metrics"]}
    assert {"HR@1", "HR@3", "MRR@3", "MRR@10"} <= names
    own = next(r for r in json.loads((out / "eval_results.json").read_text())
               if r.get("summary_mode") == "hierarchical" and r["model_type"] == "trsr")  # not the zero-shot row
    assert sorted(m["value"] for r in results for m in r["metrics"]) == sorted(own["metrics"].values())
    assert "| LLM-TRSR (recurrent summary) |" in text  # the folder's other mode is a comparison row
    assert "from hfrec import LlamaForCausalLM" not in text  # hfrec has no such class: the snippet uses the Auto one


@pytest.fixture(scope="module")
def delrec_run(tiny_setup):  # noqa: F811
    from hfrec.registry import get_method

    out = tiny_setup["root"] / "delrec-for-trsr"
    get_method("delrec").run(method_argv(tiny_setup, out))
    return out


def test_compare_with_ranks_a_saved_delrec_run_on_the_same_rows(trained, delrec_run, tmp_path):
    out, _, argv = trained["trsr"]
    result = trsr_main([*argv, "--compare_with", str(delrec_run)])
    label = f"DELRec ({delrec_run.name})"
    delrec_own = next(r for r in json.loads((delrec_run / "eval_results.json").read_text())
                      if r["method"] == "DELRec")
    assert result[label]["HR@1"] == pytest.approx(delrec_own["metrics"]["HR@1"])  # same users, same candidates
    assert result[label]["NDCG@5"] == pytest.approx(delrec_own["metrics"]["NDCG@5"], abs=1e-6)
    row = next(r for r in json.loads((out / "eval_results.json").read_text()) if r["method"] == label)
    assert row["model_type"] == "delrec" and row["compared_run"] == str(delrec_run)
    assert f"| {label} |" in (out / "results_table.txt").read_text()
    with pytest.raises(ValueError, match="no hfrec_recommender.json"):
        trsr_main([*argv, "--compare_with", str(tmp_path)])
    with pytest.raises(ValueError, match="same --dataset, --split_seed and --num_candidates"):
        trsr_main([*argv, "--compare_with", str(delrec_run), "--split_seed", "7"])
