"""hfrec.scoring on tiny random Llama / T5 models and a byte-level tokenizer built here (no network)."""

import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from hfrec.methods.common.generation import generate_then_match, match_title
from hfrec.methods.common.scoring import (candidate_answer_probabilities, candidate_log_likelihoods,
                                          normalize_by_length, rank_candidates, score_candidates_by_likelihood,
                                          seq2seq_candidate_log_likelihoods)
from tiny_llm import tiny_lm, tiny_tokenizer  # tests/tiny_llm.py


PROMPTS = ["user likes apples and", "history: x y z -> ", "q"]
CANDS = [["apple pie", "banana", "cherry tart!"], ["zzz", "a", "bb cc"], ["one", "two", "three"]]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def lm():
    return tiny_lm()


def reference_scores(lm, tok, prompts, cands, normalize):
    """One separate forward per (prompt, candidate): what the packed forward must reproduce."""
    out = []
    for p, cs in zip(prompts, cands):
        row = []
        for c in cs:
            pi = tok(p, add_special_tokens=False)["input_ids"]
            ci = tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            with torch.no_grad():
                lp = lm(torch.tensor([pi + ci])).logits.float().log_softmax(-1)[0]
            v = sum(float(lp[len(pi) - 1 + k, t]) for k, t in enumerate(ci))
            row.append(v / len(ci) if normalize else v)
        out.append(row)
    return torch.tensor(out)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_packed_scores_equal_separate_forwards(lm, tok, normalize, batch_size):
    got = score_candidates_by_likelihood(lm, tok, PROMPTS, CANDS, batch_size=batch_size, length_normalize=normalize)
    want = reference_scores(lm, tok, PROMPTS, CANDS, normalize)
    assert got.shape == (3, 3)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_eager_attention_and_untied_head_agree():
    tok = tiny_tokenizer()
    lm = tiny_lm(seed=3, tie=False)
    lm.set_attn_implementation("eager")
    got = score_candidates_by_likelihood(lm, tok, PROMPTS, CANDS, batch_size=3)
    torch.testing.assert_close(got, reference_scores(lm, tok, PROMPTS, CANDS, True), atol=1e-4, rtol=1e-4)


def test_token_id_prompts_and_ragged_candidate_lists(lm, tok):
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    ragged = [CANDS[0], CANDS[1][:2], CANDS[2][:1]]
    got = score_candidates_by_likelihood(lm, tok, ids, ragged, batch_size=2)
    assert got.shape == (3, 3)
    assert torch.isinf(got[1, 2]) and torch.isinf(got[2, 1:]).all()
    full = score_candidates_by_likelihood(lm, tok, PROMPTS, CANDS, batch_size=2)
    torch.testing.assert_close(got[0], full[0])
    torch.testing.assert_close(got[1, :2], full[1, :2])


def test_length_normalisation_power(lm, tok):
    s0 = score_candidates_by_likelihood(lm, tok, PROMPTS, CANDS, length_normalize=False)
    s1 = score_candidates_by_likelihood(lm, tok, PROMPTS, CANDS, length_normalize=1.0)
    lens = torch.tensor([[len(tok(c, add_special_tokens=False)["input_ids"]) + 1 for c in cs] for cs in CANDS])
    torch.testing.assert_close(s1, s0 / lens, atol=1e-5, rtol=1e-5)
    s_half = score_candidates_by_likelihood(lm, tok, PROMPTS, CANDS, length_normalize=0.5)
    torch.testing.assert_close(s_half, s0 / lens.float().sqrt(), atol=1e-4, rtol=1e-4)


def test_sums_and_counts_give_every_normalisation_from_one_forward(lm, tok):
    sums, counts = candidate_log_likelihoods(lm, tok, PROMPTS, [CANDS[0], CANDS[1][:2], CANDS[2]], batch_size=2)
    lens = torch.tensor([[len(tok(c, add_special_tokens=False)["input_ids"]) + 1 for c in cs] for cs in CANDS])
    assert counts[1, 2] == 0 and torch.equal(counts[0], lens[0].float())
    for a in (True, False, 0.5):
        got = normalize_by_length(sums, counts, a)
        assert torch.isinf(got[1, 2])
        want = score_candidates_by_likelihood(lm, tok, PROMPTS, CANDS, batch_size=2, length_normalize=a)
        torch.testing.assert_close(got[[0, 2]], want[[0, 2]])


def test_rank_candidates_is_a_permutation(lm, tok):
    scores = score_candidates_by_likelihood(lm, tok, PROMPTS, CANDS)
    cands = torch.tensor([[5, 6, 7], [8, 9, 10], [11, 12, 13]])
    ranked = rank_candidates(scores, cands)
    for r, c, s in zip(ranked, cands, scores):
        assert sorted(r.tolist()) == sorted(c.tolist())
        assert r[0] == c[s.argmax()]
    with pytest.raises(ValueError, match="differ in shape"):
        rank_candidates(scores, cands[:, :2])


def test_scoring_bad_inputs(lm, tok):
    with pytest.raises(ValueError, match="candidate lists"):
        score_candidates_by_likelihood(lm, tok, PROMPTS, CANDS[:2])
    with pytest.raises(ValueError, match="empty candidate list"):
        score_candidates_by_likelihood(lm, tok, ["a"], [[]])
    with pytest.raises(ValueError, match="non-empty string"):
        score_candidates_by_likelihood(lm, tok, ["a"], [["ok", "  "]])
    with pytest.raises(ValueError, match="Empty prompt"):
        score_candidates_by_likelihood(lm, tok, [[]], [["x"]])
    assert score_candidates_by_likelihood(lm, tok, [], []).numel() == 0


def test_scoring_through_peft(lm, tok):
    from peft import LoraConfig, get_peft_model

    plain = score_candidates_by_likelihood(lm, tok, PROMPTS, CANDS)
    peft_model = get_peft_model(tiny_lm(), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    wrapped = score_candidates_by_likelihood(peft_model, tok, PROMPTS, CANDS)  # LoRA B = 0: same function
    torch.testing.assert_close(plain, wrapped)


def test_match_title():
    titles = ["Star Wars (1977)", "Star Wars", "Fargo (1996)"]
    assert match_title("Star Wars (1977)", titles) == 0
    assert match_title("  star wars ", titles) == 1
    assert match_title("I recommend Fargo (1996).", titles) == 2
    assert match_title("Titanic", titles) == -1


def test_generate_then_match_reports_valid_ratio(lm, tok):
    res = generate_then_match(lm, tok, PROMPTS, CANDS, batch_size=2, max_new_tokens=4)
    assert res.predictions.shape == (3,) and res.scores.shape == (3, 3)
    assert 0.0 <= res.valid_ratio <= 1.0
    assert res.valid_ratio == float((res.predictions >= 0).float().mean())
    assert len(res.texts) == 3
    # a candidate equal to the greedy output must be matched, making that prompt valid
    cands = [[res.texts[0] or "x", "zzzz"], CANDS[1], CANDS[2]]
    if res.texts[0].strip():
        again = generate_then_match(lm, tok, PROMPTS, cands, batch_size=3, max_new_tokens=4)
        assert again.predictions[0] == 0


# ------------------------------------------------------------------------------------- scored-suffix (yes/no) mode
SUFFIX = "\nShould the user watch it next? Answer:"
RAGGED = [CANDS[0], CANDS[1][:2], CANDS[2][:1]]


def reference_answer_probs(model, tok, prompts, cands, suffix, answers=("Yes", "No")):
    """One full forward per (prompt, candidate): softmax of the answers' first-token logits at the last position."""
    a_ids = [tok(a, add_special_tokens=False)["input_ids"][0] for a in answers]
    s_ids = suffix if isinstance(suffix, list) else tok(suffix, add_special_tokens=False)["input_ids"]
    C = max(len(c) for c in cands)
    out = torch.full((len(prompts), C), float("-inf"))
    for i, (p, cs) in enumerate(zip(prompts, cands)):
        p_ids = p if isinstance(p, list) else tok(p, add_special_tokens=False)["input_ids"]
        for j, c in enumerate(cs):
            ids = p_ids + tok(c, add_special_tokens=False)["input_ids"] + s_ids
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            out[i, j] = logits[a_ids].softmax(-1)[0]
    return out


def lora_lm():
    from peft import LoraConfig, get_peft_model

    model = tiny_lm()
    torch.manual_seed(1)  # init_lora_weights=False: random A and B, so LoRA changes the function
    config = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(model, config).eval()  # get_peft_model leaves the model in training mode


def softcapped_lm():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(5)  # final_logit_softcapping small enough to change the probabilities noticeably
    cfg = Gemma2Config(vocab_size=258, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=8, final_logit_softcapping=0.5, pad_token_id=256,
                       eos_token_id=257, bos_token_id=None)
    return Gemma2ForCausalLM(cfg).eval()


@pytest.mark.parametrize("make_model, cands, suffix, answers, batch_size", [
    (tiny_lm, CANDS, SUFFIX, ("Yes", "No"), 2),
    (tiny_lm, RAGGED, SUFFIX, ("Yes", "No"), 3),
    (tiny_lm, RAGGED, "", ("Yes", "No"), 1),  # empty suffix: the answer follows the candidate directly
    (tiny_lm, CANDS, [10, 20, 30], ("y", "n", "maybe"), 8),  # suffix as ids, three answers
    (lambda: tiny_lm(seed=3, tie=False), RAGGED, SUFFIX, ("yes", "no"), 2),
    (softcapped_lm, CANDS, SUFFIX, ("Yes", "No"), 2),
    (lora_lm, RAGGED, SUFFIX, ("Yes", "No"), 2),
])
def test_answer_probabilities_equal_separate_forwards(tok, make_model, cands, suffix, answers, batch_size):
    model = make_model()
    got = candidate_answer_probabilities(model, tok, PROMPTS, cands, suffix, answers, batch_size=batch_size)
    want = reference_answer_probs(model, tok, PROMPTS, cands, suffix, answers)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert torch.equal(torch.isinf(got), torch.isinf(want))  # missing candidates: -inf
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_answer_probabilities_through_lora_differ_from_the_base(tok):
    base = candidate_answer_probabilities(tiny_lm(), tok, PROMPTS, CANDS, SUFFIX)
    lora = candidate_answer_probabilities(lora_lm(), tok, PROMPTS, CANDS, SUFFIX)
    assert not torch.allclose(base, lora)  # the adapter is applied, not bypassed


def test_answer_probabilities_with_delrec_soft_prompt():
    from hfrec.models.delrec import DELRecForCausalLM

    model, tok = DELRecForCausalLM.from_backbone(tiny_lm(), tiny_tokenizer(), num_virtual_tokens=4)
    with torch.no_grad():
        model.soft_prompt.weight.normal_()  # a soft prompt far from the placeholder's embedding
    slots = model.config.soft_prompt_token * 4
    prompts = ["ab" + slots + " likes:", "history " + slots + "?", slots + "q"]
    got = candidate_answer_probabilities(model, tok, prompts, RAGGED, SUFFIX, batch_size=2)
    torch.testing.assert_close(got, reference_answer_probs(model, tok, prompts, RAGGED, SUFFIX), atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        model.soft_prompt.weight.zero_()
    assert not torch.allclose(got, candidate_answer_probabilities(model, tok, prompts, RAGGED, SUFFIX))


@pytest.mark.parametrize("answers, match", [
    (("Yes", ""), "empty"),
    (("Yes",), "at least two"),
    ("Yes", "at least two"),
    (("Yes", "Yeah"), "same token"),
    ((" yes", " no"), "same token"),  # byte-level: both start with the space byte
])
def test_answer_probabilities_bad_answers(lm, tok, answers, match):
    with pytest.raises(ValueError, match=match):
        candidate_answer_probabilities(lm, tok, PROMPTS, CANDS, SUFFIX, answers)


def test_answer_probabilities_bad_inputs(lm, tok):
    with pytest.raises(ValueError, match="candidate lists"):
        candidate_answer_probabilities(lm, tok, PROMPTS, CANDS[:2], SUFFIX)
    with pytest.raises(ValueError, match="empty candidate list"):
        candidate_answer_probabilities(lm, tok, ["a"], [[]], SUFFIX)
    with pytest.raises(ValueError, match="encoder-decoder"):
        candidate_answer_probabilities(tiny_t5(), tok, ["a"], [["b"]], SUFFIX)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        candidate_answer_probabilities(lm, tok, PROMPTS, CANDS, SUFFIX, batch_size=0)
    assert candidate_answer_probabilities(lm, tok, [], [], SUFFIX).numel() == 0


# ------------------------------------------------------------------------------------------------- encoder-decoder
def tiny_t5(seed=0):
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=258, d_model=32, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=256,
                   pad_token_id=256, eos_token_id=257)
    return T5ForConditionalGeneration(cfg).eval()


def reference_seq2seq(model, tok, prompts, cands, include_eos=True):
    """One full forward per (prompt, candidate): ``model(input_ids=prompt, labels=candidate)``."""
    C = max(len(c) for c in cands)
    sums, counts = torch.zeros(len(prompts), C), torch.zeros(len(prompts), C)
    for i, (p, cs) in enumerate(zip(prompts, cands)):
        p_ids = torch.tensor([tok(p, add_special_tokens=False)["input_ids"]])
        for j, c in enumerate(cs):
            labels = tok(c, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if include_eos else [])
            with torch.no_grad():
                lp = model(input_ids=p_ids, labels=torch.tensor([labels])).logits[0].float().log_softmax(-1)
            sums[i, j] = lp[torch.arange(len(labels)), labels].sum()
            counts[i, j] = len(labels)
    return sums, counts


def lora_t5():
    from peft import LoraConfig, get_peft_model

    model = tiny_t5()
    torch.manual_seed(1)
    config = LoraConfig(r=2, target_modules=["q", "v"], init_lora_weights=False)
    return get_peft_model(model, config).eval()  # eval: T5's dropout would make the reference random


@pytest.mark.parametrize("make_model, cands, include_eos, batch_size, head_chunk_size", [
    (tiny_t5, CANDS, True, 2, 4096),
    (tiny_t5, RAGGED, True, 3, 4096),
    (tiny_t5, RAGGED, False, 1, 4096),
    (tiny_t5, CANDS, True, 8, 8),  # decoder run over several chunks of candidates
    (lora_t5, RAGGED, True, 2, 4096),
])
def test_seq2seq_equals_separate_forwards(tok, make_model, cands, include_eos, batch_size, head_chunk_size):
    model = make_model()
    sums, counts = seq2seq_candidate_log_likelihoods(model, tok, PROMPTS, cands, batch_size=batch_size,
                                                     include_eos=include_eos, head_chunk_size=head_chunk_size)
    want_sums, want_counts = reference_seq2seq(model, tok, PROMPTS, cands, include_eos)
    assert torch.equal(counts, want_counts)
    torch.testing.assert_close(sums, want_sums, atol=1e-4, rtol=1e-4)
    # the generic entry points dispatch on config.is_encoder_decoder (through PEFT too)
    torch.testing.assert_close(score_candidates_by_likelihood(model, tok, PROMPTS, cands, include_eos=include_eos),
                               normalize_by_length(want_sums, want_counts), atol=1e-4, rtol=1e-4)


def test_seq2seq_bad_inputs(lm, tok):
    with pytest.raises(ValueError, match="not an encoder-decoder"):
        seq2seq_candidate_log_likelihoods(lm, tok, PROMPTS, CANDS)
    with pytest.raises(ValueError, match="Empty prompt"):
        seq2seq_candidate_log_likelihoods(tiny_t5(), tok, [[]], [["x"]])
    with pytest.raises(ValueError, match="empty candidate list"):
        score_candidates_by_likelihood(tiny_t5(), tok, ["a"], [[]])
    sums, counts = seq2seq_candidate_log_likelihoods(tiny_t5(), tok, [], [])
    assert sums.numel() == counts.numel() == 0


def test_answer_probabilities_never_build_full_vocabulary_logits(lm, tok):
    calls = []
    hook = lm.lm_head.register_forward_hook(lambda module, args, out: calls.append(out.shape))
    try:
        candidate_answer_probabilities(lm, tok, PROMPTS, CANDS, SUFFIX)
    finally:
        hook.remove()
    assert calls == []  # a plain Linear head: only its answer rows are multiplied
