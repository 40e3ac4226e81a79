"""Ranking candidate items with a language model, shared by every LLM method of hfrec.

:func:`score_candidates_by_likelihood` scores each candidate by the log-likelihood of its title (a verbalizer
restricted to the candidates, so every prediction is a valid item). The prompt of a user is encoded **once** and
shared by all of that user's candidates with a *packed* forward:

    [prompt tokens][candidate 1 tokens][candidate 2 tokens] ... [candidate C tokens][padding]

with a block attention mask (every prompt token is causal over the prompt; every candidate token sees the whole
prompt and the earlier tokens of its own candidate, never another candidate) and position ids that restart at
``len(prompt)`` for each candidate. This equals running C separate forwards of ``prompt + candidate`` but costs
one forward over ``P + sum(len(candidate))`` tokens.

Why not KV-cache reuse (prefill the prompt, then expand the cache C times)? On a GPU the expanded cache is C
copies of the prompt's keys/values in every layer (e.g. 20 x 400 tokens x 30 layers for SmolLM2), the decode
step is a second, small, launch-bound forward, and `DynamicCache` concatenates a copy per layer. The packed
forward is a single large batched matmul workload, wastes only the masked-out attention blocks (small next to the
MLPs at these lengths) and needs no cache bookkeeping; it also works unchanged for soft prompts injected in the
backbone. The LM head is applied only at the positions that predict candidate tokens, in chunks, so the
``(tokens x vocab)`` logits of the prompt are never built.

:func:`candidate_answer_probabilities` uses the same packed forward with a fixed question after every candidate
(``[prompt][candidate 1 + suffix][candidate 2 + suffix]...``) and reads P(first answer) from the answer tokens'
logits at each segment's last position: a yes/no recommender scores all of a user's candidates in one forward.

Encoder-decoder models (:func:`seq2seq_candidate_log_likelihoods`) run the encoder once per user and the decoder
over all candidates against the encoder states repeated per candidate; :func:`candidate_log_likelihoods` and
:func:`score_candidates_by_likelihood` dispatch to it from ``config.is_encoder_decoder``.

The decode-and-match baseline of earlier LLM recommenders (``generate_then_match``) lives with text generation
in ``hfrec.methods.common.generation``.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput


__all__ = [
    "answer_logits_at_segment_ends",
    "answer_token_ids",
    "base_model_of",
    "batch_row_inputs",
    "candidate_answer_probabilities",
    "candidate_log_likelihoods",
    "eval_mode",
    "is_encoder_decoder",
    "length_batches",
    "normalize_by_length",
    "pack_batch",
    "pad_token_id",
    "rank_candidates",
    "right_pad",
    "score_candidates_by_likelihood",
    "seq2seq_candidate_log_likelihoods",
    "tokenize_prompt",
]


def base_model_of(model):
    """The transformers model under a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def is_encoder_decoder(model) -> bool:
    return bool(getattr(base_model_of(model).config, "is_encoder_decoder", False))


def _unwrap(model):
    """(causal LM, backbone returning last_hidden_state, output embedding layer) for HF / PEFT models."""
    inner = base_model_of(model)
    backbone = inner.base_model
    if backbone is inner:
        raise ValueError(f"{type(inner).__name__} exposes no backbone (base_model_prefix); pass a causal LM")
    head = inner.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(inner).__name__} has no output embeddings: not a causal LM")
    return inner, backbone, head


def _softcap(inner) -> float | None:
    cfg = inner.config.get_text_config() if hasattr(inner.config, "get_text_config") else inner.config
    return getattr(cfg, "final_logit_softcapping", None) or None


def _apply_softcap(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    return torch.tanh(logits / cap) * cap if cap else logits


def _token_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """float32 ``log p(target)`` from ``(..., V)`` logits and ``(...)`` targets."""
    logits = logits.float()
    return logits.gather(-1, targets[..., None])[..., 0] - logits.logsumexp(-1)


def pad_token_id(tokenizer) -> int:
    """Pad id; any id works where padding is masked out, so 0 stands in when the tokenizer has no pad / eos."""
    for pad in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if pad is not None:
            return pad
    return 0


def right_pad(sequences: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, attention_mask)``, each ``(B, L)``, padded on the right (the left-padding twin is
    ``hfrec.evaluation.left_pad``)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def tokenize_prompt(tokenizer, prompt) -> list[int]:
    if isinstance(prompt, str):
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if torch.is_tensor(prompt):
        return prompt.tolist()
    return list(prompt)


def _check_candidate_lists(prompts, candidate_texts) -> None:
    if len(prompts) != len(candidate_texts):
        raise ValueError(f"{len(prompts)} prompts but {len(candidate_texts)} candidate lists")
    for i, cands in enumerate(candidate_texts):
        if len(cands) == 0:
            raise ValueError(f"Prompt {i} has an empty candidate list")


class _CandidateTokenCache:
    """Token ids of a candidate text followed by a fixed ``tail`` (EOS, or a question suffix); each distinct text
    is tokenized once per call (candidate lists repeat titles across users)."""

    def __init__(self, tokenizer, tail: Sequence[int] = ()):
        self.tokenizer = tokenizer
        self.tail = list(tail)
        self.cache: dict[str, list[int]] = {}

    def __call__(self, text: str) -> list[int]:
        ids = self.cache.get(text)
        if ids is None:
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"Candidate text must be a non-empty string, got {text!r}")
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + self.tail
            self.cache[text] = ids
        return ids


def _eos_tail(tokenizer, include_eos: bool) -> list[int]:
    return [tokenizer.eos_token_id] if include_eos and tokenizer.eos_token_id is not None else []


@contextlib.contextmanager
def eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def length_batches(lengths: Sequence[int], batch_size: int, progress: bool, desc: str):
    """Index batches, longest first (similar lengths together: less padding), optionally under a tqdm bar."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=desc, unit="batch")
    return batches


# per-prompt model inputs besides the tokens, e.g. PeaPOD's {"user_index": (B,), "task": (B,)}: a soft-prompt
# method whose prompt depends on the row gets them in the backbone's (or encoder's) forward
RowInputs = Mapping[str, torch.Tensor] | None


def batch_row_inputs(row_inputs: RowInputs, rows: Sequence[int], device) -> dict[str, torch.Tensor]:
    """The entries of ``row_inputs`` for the prompts ``rows`` of one batch, on ``device``."""
    if not row_inputs:
        return {}
    index = torch.as_tensor(list(rows), dtype=torch.long)
    return {name: torch.as_tensor(value)[index].to(device) for name, value in row_inputs.items()}


def _check_row_inputs(row_inputs: RowInputs, n: int) -> None:
    for name, value in (row_inputs or {}).items():
        if len(value) != n:
            raise ValueError(f"row_inputs[{name!r}] has {len(value)} entries for {n} prompts: give one per prompt")


class _Packed(NamedTuple):
    input_ids: torch.Tensor  # (B, T)
    mask: torch.Tensor  # (B, 1, T, T) additive block mask
    position_ids: torch.Tensor  # (B, T)
    src: torch.Tensor  # (B, N) position whose output predicts the n-th candidate token
    tgt: torch.Tensor  # (B, N) the n-th candidate token
    cid: torch.Tensor  # (B, N) its candidate index (max_c for padding)
    last: torch.Tensor  # (B, max_c) position of each candidate's last token, -1 where the row has no such candidate


def pack_batch(prompt_ids: list[list[int]], cand_ids: list[list[list[int]]], pad_id: int, dtype, device,
                max_c: int) -> _Packed:
    """Build the packed inputs of one batch.

    Row layout: ``[prompt (P)][candidate 0][candidate 1]...``. For the j-th candidate token of a row (j over the
    concatenated candidates) the logits come from position ``P + j - 1``, except a candidate's first token, which
    is predicted from the prompt's last position ``P - 1``. Built with numpy per row: a per-token Python loop
    costs several times more host time per batch."""
    rows = []
    for p, cands in zip(prompt_ids, cand_ids):
        if not len(p):
            raise ValueError("Empty prompt: every prompt needs at least one token")
        lens = np.fromiter((len(ids) for ids in cands), dtype=np.int64, count=len(cands))
        flat = np.fromiter((t for ids in cands for t in ids), dtype=np.int64, count=int(lens.sum()))
        rows.append((np.asarray(p, dtype=np.int64), lens, flat))
    B = len(rows)
    T = max(len(p) + len(flat) for p, _, flat in rows)
    N = max(max(len(flat) for _, _, flat in rows), 1)
    input_ids = np.full((B, T), pad_id, dtype=np.int64)
    seg = np.full((B, T), -2, dtype=np.int64)
    pos = np.zeros((B, T), dtype=np.int64)
    src = np.zeros((B, N), dtype=np.int64)
    tgt = np.zeros((B, N), dtype=np.int64)
    cid = np.full((B, N), max_c, dtype=np.int64)  # max_c = a dump column for padding entries
    last = np.full((B, max_c), -1, dtype=np.int64)
    for i, (p, lens, flat) in enumerate(rows):
        P, m = len(p), len(flat)
        c_of = np.repeat(np.arange(len(lens)), lens)  # candidate index of each candidate token
        starts = np.cumsum(lens) - lens  # offset of each candidate inside `flat`
        j = np.arange(m)
        within = j - starts[c_of]  # token index inside its candidate
        input_ids[i, :P], input_ids[i, P : P + m] = p, flat
        seg[i, :P], seg[i, P : P + m] = -1, c_of
        pos[i, :P], pos[i, P : P + m] = np.arange(P), P + within
        src[i, :m] = np.where(within == 0, P - 1, P + j - 1)
        tgt[i, :m], cid[i, :m] = flat, c_of
        last[i, : len(lens)] = P + starts + lens - 1
    input_ids, seg_t, pos_t = (torch.from_numpy(x).to(device) for x in (input_ids, seg, pos))
    idx = torch.arange(T, device=device)
    causal = idx[None, :] <= idx[:, None]  # (T, T): key j <= query i
    sq, sk = seg_t[:, :, None], seg_t[:, None, :]
    allowed = causal[None] & ((sk == -1) | (sk == sq)) & (sk != -2)
    allowed |= torch.eye(T, dtype=torch.bool, device=device)[None]  # padding rows see themselves: no NaN rows
    mask = torch.zeros((B, 1, T, T), dtype=dtype, device=device)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    src_t, tgt_t, cid_t, last_t = (torch.from_numpy(x).to(device) for x in (src, tgt, cid, last))
    return _Packed(input_ids, mask, pos_t, src_t, tgt_t, cid_t, last_t)


def _packed_scores(model, tokenizer, prompts, cand_ids: list[list[list[int]]], batch_size: int, progress: bool,
                   desc: str, score_batch: Callable, row_inputs: RowInputs = None) -> tuple[torch.Tensor, ...]:
    """The packed forward over all users, shared by the scoring functions of causal LMs.

    ``score_batch(hidden, packed, head, softcap)`` turns the backbone's ``(b, T, H)`` hidden states of one batch
    into a tuple of ``(b, C_max)`` tensors; they are gathered into ``(B, C_max)`` CPU tensors in prompt order.
    ``row_inputs`` go to the backbone, each batch taking its rows (:func:`batch_row_inputs`)."""
    if is_encoder_decoder(model):
        raise ValueError(f"{desc} packs candidates after the prompt of a causal LM; "
                         f"{type(base_model_of(model)).__name__} is an encoder-decoder model")
    inner, backbone, head = _unwrap(model)
    attn_impl = getattr(inner.config, "_attn_implementation", None) or ""
    if "flash" in attn_impl:
        raise ValueError(
            f"{desc} needs a 4D block attention mask, which {attn_impl!r} does not take; "
            "load the model with attn_implementation='sdpa' or 'eager'"
        )
    cap = _softcap(inner)
    device = head.weight.device
    dtype = head.weight.dtype if head.weight.dtype.is_floating_point else torch.float32
    pad_id = pad_token_id(tokenizer)
    p_ids = [tokenize_prompt(tokenizer, p) for p in prompts]
    C = max(len(c) for c in cand_ids)
    done: list[tuple[list[int], tuple[torch.Tensor, ...]]] = []  # kept on the device: no sync per batch, so the
    # next batch is packed on the host while the accelerator still works on this one
    lengths = [len(p) + sum(len(x) for x in c) for p, c in zip(p_ids, cand_ids)]
    with eval_mode(model):
        for bidx in length_batches(lengths, batch_size, progress, desc):
            packed = pack_batch([p_ids[i] for i in bidx], [cand_ids[i] for i in bidx], pad_id, dtype, device, C)
            hidden = backbone(input_ids=packed.input_ids, attention_mask=packed.mask,
                              position_ids=packed.position_ids, use_cache=False,
                              **batch_row_inputs(row_inputs, bidx, device))
            hidden = hidden.last_hidden_state if hasattr(hidden, "last_hidden_state") else hidden[0]
            done.append((bidx, score_batch(hidden, packed, head, cap)))
    outs = tuple(torch.empty(len(prompts), C) for _ in done[0][1])
    for bidx, results in done:
        for out, res in zip(outs, results):
            out[bidx] = res.float().cpu()
    return outs


def normalize_by_length(sums: torch.Tensor, counts: torch.Tensor, length_normalize: bool | float = True) -> torch.Tensor:
    """Candidate scores from summed token log-probs and token counts (:func:`candidate_log_likelihoods`):
    ``True`` = mean, ``False`` = sum, a float ``a`` = ``sum / n**a``; empty entries (count 0) score ``-inf``."""
    alpha = 1.0 if length_normalize is True else 0.0 if length_normalize is False else float(length_normalize)
    scores = sums / counts.clamp(min=1) ** alpha
    return scores.masked_fill(counts == 0, float("-inf"))


def score_candidates_by_likelihood(
    model,
    tokenizer,
    prompts: Sequence[str | Sequence[int]],
    candidate_texts: Sequence[Sequence[str]],
    batch_size: int = 8,
    length_normalize: bool | float = True,
    include_eos: bool = True,
    head_chunk_size: int = 4096,
    progress: bool = False,
    row_inputs: RowInputs = None,
) -> torch.Tensor:
    """Score every candidate of every prompt by ``log p(candidate text + EOS | prompt)``.

    Args:
        model: a causal LM (any ``*ForCausalLM``, a ``DELRecForCausalLM`` whose soft prompt is injected from the
            placeholder tokens in the prompt ids, or a PEFT model wrapping one), or an encoder-decoder model
            (``config.is_encoder_decoder``, e.g. T5), scored by :func:`seq2seq_candidate_log_likelihoods`.
        tokenizer: its tokenizer (``eos_token_id`` ends each candidate when ``include_eos``).
        prompts: B prompts, as text or as token ids (e.g. built by ``hfrec.prompts`` with a chat template).
        candidate_texts: for each prompt, its C candidate texts (titles). Lists may differ in length; missing
            entries score ``-inf``.
        batch_size: prompts per packed forward.
        length_normalize: ``True`` = mean token log-prob, ``False`` = sum, a float ``a`` = sum / n**a.
        include_eos: also score the end-of-sequence token after the title, so a prefix of a longer title does
            not win by being short.
        head_chunk_size: positions projected through the LM head at once.
        progress: show a tqdm bar.
        row_inputs: per-prompt model inputs besides the tokens (``{"user_index": (B,)}`` for PeaPOD's
            personalized prompts), passed to the backbone (the encoder of an encoder-decoder model).

    Returns:
        ``(B, C_max)`` float32 tensor on the CPU; higher is better.
    """
    sums, counts = candidate_log_likelihoods(model, tokenizer, prompts, candidate_texts, batch_size=batch_size,
                                             include_eos=include_eos, head_chunk_size=head_chunk_size,
                                             progress=progress, row_inputs=row_inputs)
    return normalize_by_length(sums, counts, length_normalize)


@torch.no_grad()
def candidate_log_likelihoods(
    model,
    tokenizer,
    prompts: Sequence[str | Sequence[int]],
    candidate_texts: Sequence[Sequence[str]],
    batch_size: int = 8,
    include_eos: bool = True,
    head_chunk_size: int = 4096,
    progress: bool = False,
    row_inputs: RowInputs = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sums, counts)``, each ``(B, C_max)`` on the CPU: the summed token log-probs of each candidate text
    (+ EOS) given its prompt, and its token count (0 for missing entries). One packed forward per batch; any length
    normalisation (:func:`normalize_by_length`) can then be applied without running the model again. Arguments as
    in :func:`score_candidates_by_likelihood`; encoder-decoder models go to
    :func:`seq2seq_candidate_log_likelihoods`."""
    if is_encoder_decoder(model):
        return seq2seq_candidate_log_likelihoods(model, tokenizer, prompts, candidate_texts, batch_size=batch_size,
                                                 include_eos=include_eos, head_chunk_size=head_chunk_size,
                                                 progress=progress, row_inputs=row_inputs)
    _check_candidate_lists(prompts, candidate_texts)
    _check_row_inputs(row_inputs, len(prompts))
    if len(prompts) == 0:
        return torch.empty(0, 0), torch.empty(0, 0)
    cand_tok = _CandidateTokenCache(tokenizer, _eos_tail(tokenizer, include_eos))
    c_ids = [[cand_tok(t) for t in cands] for cands in candidate_texts]

    def sums_and_counts(hidden, packed, head, cap):
        C = packed.last.shape[1]
        h = hidden.gather(1, packed.src[..., None].expand(-1, -1, hidden.shape[-1]))  # (b, N, H)
        flat_h, flat_t = h.reshape(-1, h.shape[-1]), packed.tgt.reshape(-1)
        logp = torch.empty(flat_t.shape[0], dtype=torch.float32, device=hidden.device)
        for s in range(0, flat_t.shape[0], head_chunk_size):
            logits = _apply_softcap(head(flat_h[s : s + head_chunk_size].to(head.weight.dtype)).float(), cap)
            logp[s : s + head_chunk_size] = _token_log_probs(logits, flat_t[s : s + head_chunk_size])
        logp = logp.view(packed.tgt.shape)
        b = logp.shape[0]
        sums = torch.zeros(b, C + 1, device=logp.device).scatter_add_(1, packed.cid, logp)
        cnts = torch.zeros(b, C + 1, device=logp.device).scatter_add_(1, packed.cid, torch.ones_like(logp))
        return sums[:, :C], cnts[:, :C]

    return _packed_scores(model, tokenizer, prompts, c_ids, batch_size, progress, "scoring candidates",
                          sums_and_counts, row_inputs)


def answer_token_ids(tokenizer, answer_texts: Sequence[str]) -> list[int]:
    """The first token id of each answer text; errors for fewer than two answers, empty ones, or shared tokens."""
    if isinstance(answer_texts, str) or len(answer_texts) < 2:
        raise ValueError(f"answer_texts needs at least two answers (e.g. ('Yes', 'No')), got {answer_texts!r}")
    ids = []
    for text in answer_texts:
        toks = tokenizer(text, add_special_tokens=False)["input_ids"] if isinstance(text, str) else []
        if not toks:
            raise ValueError(f"Answer text {text!r} is empty (no tokens); pass non-empty strings such as 'Yes'")
        ids.append(toks[0])
    for i, a in enumerate(ids):
        for j in range(i):
            if ids[j] == a:
                raise ValueError(
                    f"Answer texts {answer_texts[j]!r} and {answer_texts[i]!r} start with the same token {a} "
                    f"({tokenizer.convert_ids_to_tokens(a)!r}): their probabilities cannot be told apart; "
                    "choose answers whose first tokens differ")
    return ids


def answer_logits_at_segment_ends(hidden: torch.Tensor, packed, head, answer_ids: Sequence[int],
                                  cap: float | None = None) -> torch.Tensor:
    """``(b, C, A)`` float32 logits of the answer tokens ``answer_ids`` at the last position of each packed candidate
    segment (``packed.last``; rows of missing candidates read position 0: mask them with ``packed.last < 0``),
    soft-capped as the model caps its logits. Shared by the yes/no ranking and LLM-TRSR's listwise training loss,
    so both read the same logits."""
    h = hidden.gather(1, packed.last.clamp(min=0)[..., None].expand(-1, -1, hidden.shape[-1]))  # (b, C, H)
    rows = torch.tensor(list(answer_ids), device=h.device)
    if type(head) is torch.nn.Linear:  # only the answer rows of the head: (b, C, A), never (b, C, V)
        # in float32: two bf16 logits give P(yes) a few hundred distinct values, and the ties that follow
        # count against the target
        bias = head.bias[rows].float() if head.bias is not None else None
        logits = torch.nn.functional.linear(h.float(), head.weight[rows].float(), bias)
    else:  # a wrapped or quantized head (LoRA on lm_head, 4-bit): run it whole on these b*C rows only
        logits = head(h.to(head.weight.dtype if head.weight.dtype.is_floating_point else h.dtype))[..., rows]
    return _apply_softcap(logits.float(), cap)


@torch.no_grad()
def candidate_answer_probabilities(
    model,
    tokenizer,
    prompts: Sequence[str | Sequence[int]],
    candidate_texts: Sequence[Sequence[str]],
    suffix: str | Sequence[int],
    answer_texts: Sequence[str] = ("Yes", "No"),
    batch_size: int = 8,
    progress: bool = False,
    row_inputs: RowInputs = None,
) -> torch.Tensor:
    """P(``answer_texts[0]``) for every candidate, read after ``prompt + candidate + suffix`` (a yes/no recommender).

    For each candidate the model reads the prompt, the candidate's tokens and the ``suffix`` tokens (a fixed
    question / answer prefix such as ``"\\nShould the user watch it next? Answer:"``), and the score is the softmax
    over the logits of the first token of each answer text at the last suffix position, taken at the first answer.
    Candidate and suffix are tokenized separately (``add_special_tokens=False``) and concatenated, so a prompt
    built elsewhere for training should join the same token ids.

    The prompt is encoded once per user by the packed forward of :func:`candidate_log_likelihoods` (each
    candidate segment = candidate tokens + suffix tokens), and only the answer rows of the LM head are applied to
    the hidden state at each segment's last position: no full-vocabulary logits are built.

    Args:
        model, tokenizer, prompts, candidate_texts, batch_size, progress: as in
            :func:`score_candidates_by_likelihood` (causal LMs only; soft prompts and PEFT wrappers work).
        suffix: text or token ids appended after every candidate; may be empty (then the answer is read right
            after the candidate's last token).
        answer_texts: two or more answers whose first tokens differ; the first is the one whose probability is
            returned.

    Returns:
        ``(B, C_max)`` float32 tensor on the CPU of probabilities in [0, 1]; missing entries of ragged candidate
        lists are ``-inf`` (as in :func:`score_candidates_by_likelihood`).
    """
    _check_candidate_lists(prompts, candidate_texts)
    _check_row_inputs(row_inputs, len(prompts))
    answer_ids = answer_token_ids(tokenizer, answer_texts)
    if len(prompts) == 0:
        return torch.empty(0, 0)
    suffix_ids = tokenize_prompt(tokenizer, suffix)
    cand_tok = _CandidateTokenCache(tokenizer, suffix_ids)
    c_ids = [[cand_tok(t) for t in cands] for cands in candidate_texts]

    def first_answer_probability(hidden, packed, head, cap):
        probs = answer_logits_at_segment_ends(hidden, packed, head, answer_ids, cap).softmax(-1)[..., 0]
        return (probs.masked_fill(packed.last < 0, float("-inf")),)

    return _packed_scores(model, tokenizer, prompts, c_ids, batch_size, progress, "scoring answers",
                          first_answer_probability, row_inputs)[0]


@torch.no_grad()
def seq2seq_candidate_log_likelihoods(
    model,
    tokenizer,
    prompts: Sequence[str | Sequence[int]],
    candidate_texts: Sequence[Sequence[str]],
    batch_size: int = 8,
    include_eos: bool = True,
    head_chunk_size: int = 4096,
    progress: bool = False,
    row_inputs: RowInputs = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`candidate_log_likelihoods` for an encoder-decoder model (T5, PEFT-wrapped or not): ``(sums, counts)``.

    The encoder runs once per user (prompts right-padded with an attention mask); its states are repeated once per
    candidate along the batch, and the decoder reads ``decoder_start_token + candidate tokens`` (right-padded) to
    score ``candidate tokens (+ EOS)``. The model's own forward computes the logits (T5 rescales decoder outputs
    before its head, so the head is not applied here), at most ``head_chunk_size`` decoder positions at a time.
    Only ``input_ids`` models are supported (no ``inputs_embeds``). String prompts are tokenized without special
    tokens, as for causal LMs; pass token ids to add e.g. T5's closing ``</s>``."""
    _check_candidate_lists(prompts, candidate_texts)
    _check_row_inputs(row_inputs, len(prompts))
    if len(prompts) == 0:
        return torch.empty(0, 0), torch.empty(0, 0)
    inner = base_model_of(model)
    if not is_encoder_decoder(inner):
        raise ValueError(f"{type(inner).__name__} is not an encoder-decoder model; use candidate_log_likelihoods")
    start = inner.config.decoder_start_token_id
    if start is None:
        raise ValueError(f"{type(inner).__name__}.config.decoder_start_token_id is None; set it (T5 uses the pad id)")
    encoder = inner.get_encoder()
    device = inner.get_input_embeddings().weight.device
    pad_id = pad_token_id(tokenizer)
    cand_tok = _CandidateTokenCache(tokenizer, _eos_tail(tokenizer, include_eos))
    p_ids = [tokenize_prompt(tokenizer, p) for p in prompts]
    c_ids = [[cand_tok(t) for t in cands] for cands in candidate_texts]
    if any(len(p) == 0 for p in p_ids):
        raise ValueError("Empty prompt: every prompt needs at least one token")
    C = max(len(c) for c in c_ids)
    sums_out, counts_out = torch.zeros(len(prompts), C), torch.zeros(len(prompts), C)
    lengths = [len(p) + sum(len(x) for x in c) for p, c in zip(p_ids, c_ids)]
    with eval_mode(model):
        for bidx in length_batches(lengths, batch_size, progress, "scoring candidates (seq2seq)"):
            enc_ids, enc_mask = (x.to(device) for x in right_pad([p_ids[i] for i in bidx], pad_id))
            states = encoder(input_ids=enc_ids, attention_mask=enc_mask,
                             **batch_row_inputs(row_inputs, bidx, device)).last_hidden_state
            pairs = [(r, i, c) for r, i in enumerate(bidx) for c in range(len(c_ids[i]))]
            labels, lmask = right_pad([c_ids[i][c] for _, i, c in pairs], pad_id)
            L = labels.shape[1]
            dec_in = torch.cat([torch.full((len(pairs), 1), start, dtype=torch.long), labels[:, :-1]], 1)
            dec_mask = torch.cat([torch.ones((len(pairs), 1), dtype=torch.long), lmask[:, :-1]], 1)
            user = torch.tensor([r for r, _, _ in pairs], device=device)
            labels, lmask, dec_in, dec_mask = (x.to(device) for x in (labels, lmask, dec_in, dec_mask))
            seq_logp = torch.empty(len(pairs), device=device)
            step = max(1, head_chunk_size // L)
            for s in range(0, len(pairs), step):
                u = user[s : s + step]  # the encoder states repeated per candidate, not the encoder re-run
                logits = inner(encoder_outputs=BaseModelOutput(last_hidden_state=states[u]),
                               attention_mask=enc_mask[u], decoder_input_ids=dec_in[s : s + step],
                               decoder_attention_mask=dec_mask[s : s + step], use_cache=False).logits
                logp = _token_log_probs(logits, labels[s : s + step]) * lmask[s : s + step]
                seq_logp[s : s + step] = logp.sum(-1)
            rows = torch.tensor([i for _, i, _ in pairs])
            cols = torch.tensor([c for _, _, c in pairs])
            sums_out[rows, cols] = seq_logp.cpu()
            counts_out[rows, cols] = lmask.sum(-1).float().cpu()
    return sums_out, counts_out


def rank_candidates(scores: torch.Tensor, candidates: torch.Tensor | Sequence[Sequence[int]]) -> torch.Tensor:
    """Candidate ids sorted by score, best first: a permutation of each row of ``candidates`` (stable on ties)."""
    cand = torch.as_tensor(candidates) if not torch.is_tensor(candidates) else candidates
    if cand.shape != scores.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and candidates {tuple(cand.shape)} differ in shape")
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return cand.gather(1, order.to(cand.device))
