"""hfrec.scoring on tiny random Llama models and a byte-level tokenizer built here (no network)."""

import pytest
import torch

from hfrec.methods.common.scoring import (candidate_log_likelihoods, generate_then_match, match_title, normalize_by_length,
                           rank_candidates, score_candidates_by_likelihood)
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
