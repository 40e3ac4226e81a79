"""hfrec.methods.common.generation.CachedGenerator on tiny random Llama / T5 models built here (no network)."""

import uuid

import datasets
import pytest
import torch
from transformers import LlamaForCausalLM, T5Config, T5ForConditionalGeneration

from hfrec.methods.common.generation import CachedGenerator
from tiny_llm import tiny_lm, tiny_tokenizer  # tests/tiny_llm.py

PROMPTS = [f"user {i} watched " + "abc" * (i % 4) for i in range(10)]  # lengths differ: batches are left-padded
_TOK = tiny_tokenizer()
# printable ASCII bytes only: every generated token shows in the text (no "\ufffd" hiding which byte came)
NOT_ASCII = [i for i in range(len(_TOK)) if not (len(s := _TOK.decode([i])) == 1 and s.isascii() and s.isprintable())]
GREEDY = {"max_new_tokens": 6, "do_sample": False, "suppress_tokens": NOT_ASCII}
SAMPLED = {"max_new_tokens": 6, "do_sample": True, "suppress_tokens": NOT_ASCII}


class CountingModel:
    """A real model behind a thin wrapper that counts ``generate`` calls and can crash on the n-th one."""

    def __init__(self, model, crash_on_call: int | None = None):
        self._model = model
        self.calls = 0
        self.crash_on_call = crash_on_call

    def generate(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.crash_on_call:
            raise RuntimeError("simulated crash in the middle of a run")
        return self._model.generate(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)


def lively_lm(seed=0, **kwargs):
    """tiny_lm with larger initial weights: at the default scale greedy decoding repeats one byte for every prompt,
    which would make "batched equals unbatched" hold trivially."""
    config = tiny_lm(**kwargs).config
    config.initializer_range = 0.2
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def lively_t5(seed=0):
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=258, d_model=32, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=256,
                   pad_token_id=256, eos_token_id=257, initializer_factor=5.0)
    return T5ForConditionalGeneration(cfg).eval()


def cache_table(folder) -> datasets.Dataset:
    return datasets.concatenate_datasets([datasets.load_from_disk(str(p)) for p in sorted(folder.glob("shard-*"))])


@pytest.fixture(scope="module")
def tok():
    return _TOK


@pytest.fixture(scope="module")
def lm():
    return lively_lm()


def test_cached_prompts_are_never_generated_again(lm, tok, tmp_path):
    spy = CountingModel(lm)
    gen = CachedGenerator(spy, tok, tmp_path, GREEDY, "v1", batch_size=3)
    first = gen.generate(PROMPTS + PROMPTS[:2], progress=False)  # duplicates are generated once
    assert spy.calls == 4 and len(gen) == len(PROMPTS)
    assert first[-2:] == first[:2]
    assert gen.generate(PROMPTS[::-1], progress=False) == first[: len(PROMPTS)][::-1]
    assert spy.calls == 4
    reopened = CachedGenerator(spy, tok, tmp_path, GREEDY, "v1", batch_size=3)  # read back from the disk shards
    assert reopened.generate(PROMPTS, progress=False) == first[: len(PROMPTS)]
    assert spy.calls == 4
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]  # token-id prompts: same keys
    assert reopened.generate(ids, progress=False) == first[: len(PROMPTS)] and spy.calls == 4


@pytest.mark.parametrize("kwargs", [GREEDY, SAMPLED])
@pytest.mark.parametrize("save_every", [1, 100])  # a shard per batch, or only the flush when the error comes
def test_interrupted_run_resumes_to_the_uninterrupted_result(lm, tok, tmp_path, kwargs, save_every):
    want = CachedGenerator(lm, tok, tmp_path / "full", kwargs, "v1", batch_size=3).generate(PROMPTS, progress=False)
    crashing = CountingModel(lm, crash_on_call=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        CachedGenerator(crashing, tok, tmp_path / "run", kwargs, "v1", batch_size=3,
                        save_every=save_every).generate(PROMPTS, progress=False)
    assert len(cache_table(tmp_path / "run")) == 6  # the two batches finished before the crash were kept
    junk = tmp_path / "run" / ".tmp-shard-killed"  # what a kill -9 during save_to_disk leaves behind
    junk.mkdir()
    (junk / "data-00000-of-00001.arrow").write_bytes(b"half a file")
    resumed = CountingModel(lm)
    got = CachedGenerator(resumed, tok, tmp_path / "run", kwargs, "v1", batch_size=3).generate(PROMPTS,
                                                                                               progress=False)
    assert resumed.calls == 2  # only the remaining 4 prompts, in the batches the full run formed
    assert got == want


def test_sampling_depends_on_seed_not_on_global_rng_or_call_order(lm, tok, tmp_path):
    state = torch.get_rng_state()
    a = CachedGenerator(lm, tok, tmp_path / "a", SAMPLED, "v1", batch_size=3, seed=7).generate(PROMPTS,
                                                                                              progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    torch.manual_seed(1234)
    b = CachedGenerator(lm, tok, tmp_path / "b", SAMPLED, "v1", batch_size=3, seed=7).generate(PROMPTS[::-1],
                                                                                              progress=False)
    assert b[::-1] == a
    c = CachedGenerator(lm, tok, tmp_path / "c", SAMPLED, "v1", batch_size=3, seed=8).generate(PROMPTS,
                                                                                              progress=False)
    assert c != a


@pytest.mark.parametrize("model_factory", [lively_lm, lively_t5])
def test_left_padded_batches_equal_batch_size_one(tok, tmp_path, model_factory):
    model = model_factory()
    batched = CachedGenerator(model, tok, tmp_path / "b4", GREEDY, "v1", batch_size=4).generate(PROMPTS,
                                                                                               progress=False)
    single = CachedGenerator(model, tok, tmp_path / "b1", GREEDY, "v1", batch_size=1).generate(PROMPTS,
                                                                                              progress=False)
    assert batched == single
    assert len(set(batched)) >= 5  # the texts differ between prompts: the comparison is not trivial


@pytest.mark.parametrize("change, same_key", [
    ({}, True),
    ({"prompt_version": "v2"}, False),
    ({"generation_kwargs": {**GREEDY, "max_new_tokens": 7}}, False),
    ({"generation_kwargs": SAMPLED}, False),
    ({"model": lively_lm(layers=3)}, False),  # another config
    ({"model": lively_lm(seed=1)}, True),  # same config, other weights: not hashed (documented)
    ({"batch_size": 2, "seed": 3}, True),  # batching does not name the result
])
def test_cache_key_covers_model_prompt_version_and_kwargs(lm, tok, tmp_path, change, same_key):
    args = {"model": lm, "generation_kwargs": GREEDY, "prompt_version": "v1", **change}
    base = CachedGenerator(lm, tok, tmp_path, GREEDY, "v1")
    other = CachedGenerator(args.pop("model"), tok, tmp_path, **args)
    assert (base.cache_key(PROMPTS[0]) == other.cache_key(PROMPTS[0])) is same_key
    assert base.cache_key(PROMPTS[0]) != base.cache_key(PROMPTS[1])


def test_keys_are_stored_next_to_the_texts(lm, tok, tmp_path):
    gen = CachedGenerator(lm, tok, tmp_path, GREEDY, "v1", batch_size=4)
    texts = gen.generate(PROMPTS[:3], keys=["u0", "u1", "u2"], progress=False)
    table = cache_table(tmp_path)
    rows = {r["key"]: r for r in table}
    assert sorted(rows) == ["u0", "u1", "u2"] and table.column_names == ["id", "key", "prompt_version", "text"]
    for i, text in enumerate(texts):
        assert rows[f"u{i}"]["text"] == text and rows[f"u{i}"]["id"] == gen.cache_key(PROMPTS[i])
        assert rows[f"u{i}"]["prompt_version"] == "v1"


@pytest.mark.parametrize("kwargs, match", [
    ({"generation_kwargs": {"do_sample": False}}, "max_new_tokens"),
    ({"generation_kwargs": {"max_new_tokens": 4, "stopping": object()}}, "JSON"),
    ({"generation_kwargs": "greedy"}, "dict"),
    ({"prompt_version": ""}, "prompt_version"),
    ({"batch_size": 0}, "batch_size"),
    ({"save_every": -1}, "save_every"),
])
def test_bad_arguments(lm, tok, tmp_path, kwargs, match):
    args = {"generation_kwargs": GREEDY, "prompt_version": "v1", **kwargs}
    with pytest.raises(ValueError, match=match):
        CachedGenerator(lm, tok, tmp_path, **args)


def test_bad_generate_inputs(lm, tok, tmp_path):
    gen = CachedGenerator(lm, tok, tmp_path, GREEDY, "v1")
    with pytest.raises(ValueError, match="2 prompts but 1 keys"):
        gen.generate(["a", "b"], keys=["k"], progress=False)
    with pytest.raises(ValueError, match="Prompt 1 is empty"):
        gen.generate(["a", ""], progress=False)
    with pytest.raises(ValueError, match="empty: generate something"):
        gen.push_to_hub("hfrec-tester/nothing")
    assert gen.generate([], progress=False) == []


def test_from_hub_fills_the_local_cache(lm, tok, tmp_path, hub_server):
    """Pull through the loopback test hub. The repo is written as ``Dataset.push_to_hub`` lays it out
    (``data/train-*.parquet``) with ``HfApi.upload_file``: the test hub answers every pre-upload "regular",
    while datasets deletes its parquet file after an LFS pre-upload, so ``push_to_hub`` itself cannot run there."""
    from huggingface_hub import HfApi

    texts = CachedGenerator(lm, tok, tmp_path / "a", GREEDY, "v1", batch_size=4).generate(PROMPTS, progress=False)
    repo_id = f"hfrec-tester/gen-cache-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=hub_server.endpoint)
    api.create_repo(repo_id, repo_type="dataset")
    cache_table(tmp_path / "a").to_parquet(tmp_path / "train.parquet")
    api.upload_file(path_or_fileobj=tmp_path / "train.parquet", path_in_repo="data/train-00000-of-00001.parquet",
                    repo_id=repo_id, repo_type="dataset")
    spy = CountingModel(lm)
    local = CachedGenerator(spy, tok, tmp_path / "b", GREEDY, "v1").generate(PROMPTS[:1], progress=False)
    pulled = CachedGenerator.from_hub(repo_id, spy, tok, tmp_path / "b", GREEDY, "v1")
    assert len(pulled) == len(PROMPTS) and spy.calls == 1
    assert pulled.generate(PROMPTS, progress=False) == texts and local == texts[:1]
    assert spy.calls == 1
    assert not list((tmp_path / "b").glob(".tmp-*"))  # the download cache is gone


@pytest.mark.parametrize("asked, expected", [({}, False), ({"use_kernels": True}, True)])
def test_backbones_load_without_hub_kernels_unless_asked(tmp_path, asked, expected):
    """With `kernels` installed transformers turns Hub kernels on and fetches them at the first train() on a GPU,
    which fails offline (seen on the H100): hfrec's backbones leave them off unless the caller asks."""
    pytest.importorskip("kernels")
    from hfrec.methods.common.backbones import load_backbone

    tiny_lm().save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    model, _ = load_backbone(str(tmp_path), dtype="float32", **asked)
    assert model.use_kernels is expected
