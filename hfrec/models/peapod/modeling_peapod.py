"""PeaPOD: a language model with a personalized soft prompt composed from a shared prompt pool.

Layout (transformers/llava style):

* :class:`PersonalizedPromptPool` - ``prompt_values="pool"``: ``num_prompt_components`` learnable components (each
  ``component_length`` vectors of the backbone's width) with one learnable key each. A user's interest vector,
  projected to the hidden size, is the query of a multi-head attention over the keys; head ``h``'s weights mix the
  ``h``-th slice of the components, so each head composes its part of the prompt from its own choice of components.
  ``prompt_values="similar_users"`` (the released code's form): keys and values are projections of the user's
  ``num_similar_users`` most similar users' interest vectors, and the attended vector, projected to
  ``component_length`` embeddings, is the prompt: user information flows into the prompt, not only into weights.
* :class:`PersonalizedPromptModel` - the backbone (``language_model``), the pool, the task prompts and the frozen
  interest table (``user_interests``, row 0 = the cold-start user). Wherever the placeholder token appears in
  ``input_ids`` its embedding is replaced by ``[personalized prompt][task prompt]`` of that row's user and task
  (placeholder merge as in llava), *inside the backbone's forward*: TRL's ``SFTTrainer`` computes its loss from
  ``model.base_model(...)`` and never calls ``PersonalizedPromptLM.forward``, so this is where the injection lives.
* :class:`PersonalizedPromptLM` - decoder-only backbones: ``model`` (the decoder) + ``lm_head`` + ``GenerationMixin``.
  Encoder-decoder backbones (T5, as in the paper): ``model.language_model`` is the whole seq2seq LM, the prompt goes
  into the encoder's input and ``get_encoder()`` returns an encoder that injects it (so ``generate`` and hfrec's
  seq2seq scoring use it).

Each row names its user with ``user_index`` (1 + hfrec's user id; 0 = a user without an interest vector, who gets the
cold-start prompt composed from the mean interest vector) and its task with ``task`` (``TASKS`` order).

This file is self-contained (single-dot relative imports only): ``save_pretrained`` copies it next to the weights and
``AutoModel.from_pretrained(..., trust_remote_code=True)`` works without hfrec.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForSeq2SeqLM, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_peapod import PeaPODConfig


def _hidden_size(text_config) -> int:
    return getattr(text_config, "hidden_size", None) or text_config.d_model


class PersonalizedPromptPool(nn.Module):
    """Composes one ``(component_length, H)`` prompt per user from a pool of components by multi-head attention."""

    def __init__(self, config: PeaPODConfig):
        super().__init__()
        hidden = _hidden_size(config.text_config)
        self.num_heads = config.num_prompt_heads
        self.values_from = config.prompt_values
        self.component_length = config.component_length
        self.query = nn.Linear(config.interest_dim, hidden)
        self.global_query = nn.Parameter(torch.zeros(config.interest_dim))  # interest_source="none": one for all
        if self.values_from == "pool":
            self.components = nn.Parameter(torch.zeros(config.num_prompt_components, config.component_length,
                                                       hidden))
            self.keys = nn.Parameter(torch.zeros(config.num_prompt_components, hidden))
        else:  # only the modules this form uses: an unused parameter breaks DDP's gradient bookkeeping
            self.key_layer = nn.Linear(config.interest_dim, hidden)
            self.value_layer = nn.Linear(config.interest_dim, hidden)
            self.projector = nn.Linear(hidden, config.component_length * hidden)

    def attention_weights(self, interests: torch.Tensor, neighbours: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, d)`` interest vectors -> ``(B, heads, N)`` weights over the pool, or over the ``N`` neighbours
        ``(B, N, d)`` for ``prompt_values="similar_users"`` (each head sums to 1)."""
        q = self.query(interests.to(self.query.weight.dtype))
        B, heads = q.shape[0], self.num_heads
        q = q.view(B, heads, -1)
        if self.values_from == "pool":
            k = self.keys.view(self.keys.shape[0], heads, -1)
            scores = torch.einsum("bhd,nhd->bhn", q, k)
        else:
            k = self.key_layer(neighbours.to(q.dtype)).view(B, neighbours.shape[1], heads, -1)
            scores = torch.einsum("bhd,bnhd->bhn", q, k)
        return (scores / q.shape[-1] ** 0.5).float().softmax(-1)

    def forward(self, interests: torch.Tensor, neighbours: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, d)`` interest vectors (and ``(B, N, d)`` neighbours' vectors for ``prompt_values="similar_users"``)
        -> ``(B, component_length, H)`` personalized prompts."""
        if self.values_from != "pool" and neighbours is None:
            raise ValueError("prompt_values='similar_users' composes from the neighbours' interest vectors: pass "
                             "neighbours=(B, N, d)")
        weights = self.attention_weights(interests, neighbours)
        if self.values_from == "pool":
            N, length, hidden = self.components.shape
            values = self.components.view(N, length, self.num_heads, hidden // self.num_heads)
            prompts = torch.einsum("bhn,nlhd->blhd", weights.to(values.dtype), values)
            return prompts.reshape(-1, length, hidden)
        B, N = neighbours.shape[:2]
        values = self.value_layer(neighbours.to(self.value_layer.weight.dtype)).view(B, N, self.num_heads, -1)
        context = torch.einsum("bhn,bnhd->bhd", weights.to(values.dtype), values).reshape(B, -1)
        return self.projector(context).view(B, self.component_length, -1)


class PeaPODPreTrainedModel(PreTrainedModel):
    config: PeaPODConfig
    config_class = PeaPODConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = False
    # a few thousand numbers: exact in bf16 runs (cast to the backbone's dtype when injected)
    _keep_in_fp32_modules_strict = ["prompt_pool", "task_prompts", "user_interests"]

    def _init_weights(self, module):
        if isinstance(module, PersonalizedPromptPool):
            std = getattr(self.config.text_config, "initializer_range", None) or 0.02
            linears = [module.query]
            if module.values_from == "pool":
                nn.init.normal_(module.components, std=std)
                nn.init.normal_(module.keys, std=1.0)
            else:
                linears += [module.key_layer, module.value_layer]
                # small user-dependent part on top of the bias (set to vocabulary embeddings by from_backbone)
                nn.init.normal_(module.projector.weight, std=std * module.projector.in_features ** -0.5)
                nn.init.normal_(module.projector.bias, std=std)
            for linear in linears:
                nn.init.normal_(linear.weight, std=linear.in_features ** -0.5)
                nn.init.zeros_(linear.bias)
            nn.init.normal_(module.global_query, std=1.0)
            return
        if isinstance(module, PersonalizedPromptModel):
            std = getattr(self.config.text_config, "initializer_range", None) or 0.02
            nn.init.normal_(module.task_prompts, std=std)
            return
        super()._init_weights(module)


class PersonalizedPromptModel(PeaPODPreTrainedModel):
    """The backbone with the user's and the task's soft prompt injected at the placeholder tokens."""

    def __init__(self, config: PeaPODConfig):
        super().__init__(config)
        if config.is_encoder_decoder:
            self.language_model = AutoModelForSeq2SeqLM.from_config(config.text_config)
        else:
            self.language_model = AutoModel.from_config(config.text_config)
        hidden = _hidden_size(config.text_config)
        self.prompt_pool = PersonalizedPromptPool(config)
        self.task_prompts = nn.Parameter(torch.zeros(3, config.task_prompt_length, hidden))
        # frozen collaborative user embeddings: row 0 = cold start (the mean of the others)
        self.user_interests = nn.Parameter(torch.zeros(config.num_users + 1, config.interest_dim),
                                           requires_grad=False)
        self.register_buffer("similar_users", torch.zeros(config.num_users + 1, config.num_similar_users,
                                                          dtype=torch.long), persistent=True)
        self._no_split_modules = list(getattr(self.language_model, "_no_split_modules", None) or [])
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    # ------------------------------------------------------------------------------------------------ prompts
    def interests_of(self, user_index: torch.LongTensor) -> torch.Tensor:
        """``(B,)`` user indices -> ``(B, d)`` queries by ``config.interest_source``."""
        source = self.config.interest_source
        if source == "none":
            return self.prompt_pool.global_query.expand(user_index.shape[0], -1)
        if user_index is None:
            raise ValueError("The prompt holds a personalized-prompt block but no user was given: pass user_index="
                             "(1 + user id) per row (0 for a user unseen in training) or user_interests=(B, d)")
        if bool(((user_index < 0) | (user_index > self.config.num_users)).any()):
            raise ValueError(f"user_index must lie in [0, {self.config.num_users}] (0 = a user unseen in training); "
                             f"got {user_index.tolist()}")
        table = self.user_interests
        if source == "similar_users":
            group = torch.cat([user_index[:, None], self.similar_users[user_index]], dim=1)  # (B, 1 + k)
            return table[group].mean(1)
        return table[user_index]

    def compose_prompts(self, user_index: torch.LongTensor | None = None, task: torch.LongTensor | None = None,
                        user_interests: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, num_virtual_tokens, H)``: each row's personalized prompt followed by its task's prompt.
        ``user_interests`` ``(B, d)`` replaces the table lookup (a new user's vector from the SR model that built
        the table, e.g. in the pipeline) except for ``interest_source="none"``."""
        if user_interests is not None and self.config.interest_source != "none":
            interests = user_interests.to(self.user_interests.device, self.user_interests.dtype)
        else:
            interests = self.interests_of(user_index)
        neighbours = None
        if self.config.prompt_values == "similar_users":
            if user_interests is not None:  # a user outside the table: its nearest users of the table
                group = nearest_users(self.user_interests[1:], interests, self.config.num_similar_users) + 1
            else:
                group = self.similar_users[user_index]
            neighbours = self.user_interests[group]  # (B, N, d)
        personal = self.prompt_pool(interests, neighbours)
        if self.config.task_prompt_length == 0:
            return personal
        B = personal.shape[0]
        task = (torch.zeros(B, dtype=torch.long, device=personal.device) if task is None
                else task.to(personal.device))
        return torch.cat([personal, self.task_prompts[task].to(personal.dtype)], dim=1)

    def placeholder_mask(self, input_ids: torch.LongTensor) -> torch.Tensor:
        token_id = self.config.prompt_token_id
        if token_id is None:
            return torch.zeros_like(input_ids, dtype=torch.bool)
        return input_ids == token_id

    def embed(self, input_ids: torch.LongTensor, user_index: torch.LongTensor | None = None,
              task: torch.LongTensor | None = None, user_interests: torch.Tensor | None = None) -> torch.Tensor:
        """Input embeddings of ``input_ids`` with each row's placeholder block replaced by its composed prompt
        (the k-th placeholder takes prompt row k; a gather + ``torch.where``, equal to ``masked_scatter``)."""
        mask = self.placeholder_mask(input_ids)
        embed_tokens = self.get_input_embeddings()
        n = self.config.num_virtual_tokens
        if not bool(mask.any()):  # decode steps, prompts without a soft prompt (the "no soft prompt" ablation)
            return embed_tokens(input_ids)
        counts = mask.sum(-1)
        if bool((counts != n).any()):
            raise ValueError(f"Each row needs exactly one block of {n} placeholder tokens "
                             f"({self.config.prompt_token!r}); got per-row counts {counts.tolist()}. Build prompts "
                             "with hfrec's PeaPOD prompter so the block is not truncated.")
        inputs_embeds = embed_tokens(input_ids.masked_fill(mask, 0))  # the placeholder id may be outside the table
        if user_index is not None:
            user_index = user_index.to(input_ids.device)
        prompts = self.compose_prompts(user_index, task, user_interests)
        slot = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, L): prompt row of each placeholder position
        soft = prompts.gather(1, slot[..., None].expand(-1, -1, prompts.shape[-1]))
        return torch.where(mask[..., None], soft.to(inputs_embeds.dtype), inputs_embeds)

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, user_index: torch.LongTensor | None = None,
                task: torch.LongTensor | None = None, user_interests: torch.Tensor | None = None,
                **kwargs) -> BaseModelOutputWithPast:
        """Decoder-only backbones: the decoder's outputs with the prompts injected (what TRL trains through)."""
        if self.config.is_encoder_decoder:
            raise ValueError("An encoder-decoder PeaPOD runs through PersonalizedPromptLM.forward")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, user_index, task, user_interests)
        return self.language_model(attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs)


class PromptedEncoder(nn.Module):
    """The encoder of an encoder-decoder PeaPOD: embeds with the prompts injected, then runs the backbone's encoder.
    ``generate`` and hfrec's seq2seq scoring call it with the rows' ``user_index`` / ``task``."""

    def __init__(self, model: PersonalizedPromptModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, user_index=None, task=None,
                user_interests=None, **kwargs):
        if inputs_embeds is None:
            inputs_embeds = self.model.embed(input_ids, user_index, task, user_interests)
        encoder = self.model.language_model.get_encoder()
        return encoder(attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs)


class PersonalizedPromptLM(PeaPODPreTrainedModel, GenerationMixin):
    """PeaPOD: a language model whose prompt starts with a personalized soft prompt (and a task prompt)."""

    def __init__(self, config: PeaPODConfig):
        super().__init__(config)
        self.model = PersonalizedPromptModel(config)
        if not config.is_encoder_decoder:
            tc = config.text_config
            self.lm_head = nn.Linear(_hidden_size(tc), tc.vocab_size, bias=False)
            if config.tie_word_embeddings:
                emb = self.model.language_model.get_input_embeddings().weight
                name = next(n for n, p in self.model.language_model.named_parameters() if p is emb)
                self._tied_weights_keys = {"lm_head.weight": f"model.language_model.{name}"}
        self._no_split_modules = list(self.model._no_split_modules)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self):
        if self.config.is_encoder_decoder:
            return self.model.language_model.get_output_embeddings()
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        if self.config.is_encoder_decoder:
            self.model.language_model.set_output_embeddings(new_embeddings)
        else:
            self.lm_head = new_embeddings

    def get_encoder(self, *args, **kwargs):
        if not self.config.is_encoder_decoder:
            raise AttributeError("A decoder-only PeaPOD has no encoder")
        return PromptedEncoder(self.model)

    def get_decoder(self):
        return self.model.language_model.get_decoder() if self.config.is_encoder_decoder else self.model

    def compose_prompts(self, user_index: torch.LongTensor | None = None, task: torch.LongTensor | None = None,
                        user_interests: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.compose_prompts(user_index, task, user_interests)

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                user_index: torch.LongTensor | None = None, task: torch.LongTensor | None = None,
                user_interests: torch.Tensor | None = None, logits_to_keep: int | torch.Tensor = 0, **kwargs):
        r"""
        Args:
            input_ids, attention_mask, labels: as in the backbone (encoder side for an encoder-decoder backbone).
            user_index (`torch.LongTensor` of shape `(batch_size,)`): 1 + the row's user id; 0 = cold start.
            task (`torch.LongTensor` of shape `(batch_size,)`, *optional*): the row's task (``TASKS`` order).
            user_interests (`torch.FloatTensor` of shape `(batch_size, interest_dim)`, *optional*): interest vectors
                used instead of the table's (a user unseen in training, from the SR model that built the table).
        """
        if self.config.is_encoder_decoder:
            if kwargs.get("encoder_outputs") is None and inputs_embeds is None:
                inputs_embeds = self.model.embed(input_ids, user_index, task, user_interests)
            return self.model.language_model(attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                             labels=labels, **kwargs)
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                             user_index=user_index, task=task, user_interests=user_interests, **kwargs)
        hidden_states = outputs.last_hidden_state
        slice_indices = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, slice_indices, :])
        cap = getattr(self.config.text_config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size,
                                      **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=outputs.cache,
                                      hidden_states=outputs.hidden_states, attentions=outputs.attentions)

    # ------------------------------------------------------------------------------------------------ building
    @classmethod
    def from_backbone(cls, backbone=None, tokenizer=None, user_interests: torch.Tensor | None = None,
                      dtype: torch.dtype | str = "auto", kind: str = "causal", seed: int = 0, **config_kwargs):
        """Wrap a language model (an instance with its ``tokenizer``, a Hub id / folder, or ``None`` = the offline
        SmolLM2-135M-Instruct) with a prompt pool. ``user_interests`` is the ``(num_users, d)`` table of
        collaborative user embeddings (row u = hfrec user id u); the cold-start row 0 becomes their mean.
        Returns ``(model, tokenizer)``; the tokenizer gains the placeholder token (never looked up: overwritten)."""
        if backbone is None or isinstance(backbone, (str, os.PathLike)):
            try:  # a try block keeps transformers' remote-code import check from demanding hfrec
                from hfrec.methods.common.backbones import load_backbone  # noqa: PLC0415 - only needed here
            except ImportError as err:
                raise ImportError("PersonalizedPromptLM.from_backbone(name) needs the hfrec package (pip install "
                                  "hfrec), or pass a loaded model and its tokenizer") from err
            config_kwargs.setdefault("backbone_name_or_path", str(backbone or "SmolLM2-135M-Instruct"))
            backbone, loaded_tokenizer = load_backbone(backbone, dtype=dtype, kind=kind)
            tokenizer = loaded_tokenizer if tokenizer is None else tokenizer
        if tokenizer is None:
            raise ValueError("from_backbone needs the backbone's tokenizer when the backbone is given as a model")
        if user_interests is None:
            raise ValueError("from_backbone needs user_interests: a (num_users, d) table of collaborative user "
                             "embeddings (hfrec.methods.peapod.data.user_interest_table builds it from an SR model)")
        user_interests = torch.as_tensor(user_interests, dtype=torch.float32)
        if user_interests.dim() != 2 or len(user_interests) < 1:
            raise ValueError(f"user_interests must be a (num_users, d) table, got shape {tuple(user_interests.shape)}")
        config_kwargs.setdefault("backbone_name_or_path", getattr(backbone.config, "_name_or_path", None) or None)
        # no more neighbours than other users: the stored neighbour table's width is part of the config
        config_kwargs["num_similar_users"] = min(config_kwargs.get("num_similar_users", 10), len(user_interests) - 1)
        token = config_kwargs.pop("prompt_token", "<|user_prompt|>")
        tokenizer.add_tokens([token], special_tokens=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        config = PeaPODConfig(text_config=backbone.config, num_users=len(user_interests),
                              interest_dim=user_interests.shape[1], prompt_token=token,
                              prompt_token_id=tokenizer.convert_tokens_to_ids(token), **config_kwargs)
        config._attn_implementation = backbone.config._attn_implementation
        torch.manual_seed(seed)
        with torch.device("meta"):
            model = cls(config)
        encoder_decoder = config.is_encoder_decoder
        inner = model.model
        if encoder_decoder:
            inner.language_model = backbone
        else:
            inner.language_model = backbone.get_decoder() if hasattr(backbone, "get_decoder") else backbone.base_model
            model.lm_head = backbone.get_output_embeddings()
        ref = inner.language_model.get_input_embeddings().weight
        hidden = ref.shape[1]
        inner.prompt_pool = PersonalizedPromptPool(config).to(device=ref.device)
        inner.task_prompts = nn.Parameter(torch.empty(3, config.task_prompt_length, hidden, device=ref.device))
        inner.user_interests = nn.Parameter(interest_table(user_interests).to(ref.device), requires_grad=False)
        inner.similar_users = most_similar_users(inner.user_interests.detach(), config.num_similar_users)
        model._init_weights(inner.prompt_pool)
        with torch.no_grad():  # components and task prompts start as vocabulary embeddings (prompt-tuning default)
            gen = torch.Generator().manual_seed(seed)
            table = ref.detach().float().cpu()
            pool = inner.prompt_pool
            starts = [pool.components if config.prompt_values == "pool" else
                      pool.projector.bias.view(config.component_length, hidden), inner.task_prompts]
            for target in starts:
                rows = torch.randint(0, table.shape[0], target.shape[:-1], generator=gen)
                target.copy_(table[rows].to(target.device))
        if backbone.generation_config is not None:
            model.generation_config = backbone.generation_config
        if encoder_decoder and model.generation_config.decoder_start_token_id is None:
            model.generation_config.decoder_start_token_id = backbone.config.pad_token_id
        left = [name for name, p in model.named_parameters() if p.device.type == "meta"]
        if left:
            raise RuntimeError(f"from_backbone left parameters on the meta device: {left[:5]}")
        return model, tokenizer

    def set_trainable_prompts(self, trainable: bool = True) -> "PersonalizedPromptLM":
        """The pool, its attention and the task prompts train (the interest table stays frozen)."""
        for p in self.model.prompt_pool.parameters():
            p.requires_grad_(trainable)
        self.model.task_prompts.requires_grad_(trainable)
        return self


def interest_table(user_interests: torch.Tensor) -> torch.Tensor:
    """``(U, d)`` -> ``(U + 1, d)`` with the cold-start row 0 = the mean interest vector."""
    return torch.cat([user_interests.mean(0, keepdim=True), user_interests], dim=0)


def nearest_users(table: torch.Tensor, vectors: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, k)`` rows of ``table`` (``(U, d)``) most cosine-similar to each of ``vectors`` (``(B, d)``)."""
    sims = F.normalize(vectors.float(), dim=-1) @ F.normalize(table.float(), dim=-1).T
    return sims.topk(min(k, len(table)), dim=-1).indices


def most_similar_users(table: torch.Tensor, k: int) -> torch.Tensor:
    """``(U + 1, k)`` indices of each user's k most cosine-similar other users (row 0, cold start: its own
    nearest users); users are compared in chunks so a large table never builds the full U x U matrix at once."""
    normed = F.normalize(table.float(), dim=-1)
    k = min(k, len(table) - 2) if len(table) > 2 else 0
    out = torch.zeros(len(table), max(k, 0), dtype=torch.long, device=table.device)
    if k <= 0:
        return out
    for start in range(0, len(table), 4096):
        sims = normed[start : start + 4096] @ normed[1:].T  # against real users only (not the cold-start row)
        rows = torch.arange(start, min(start + 4096, len(table)), device=table.device)
        own = rows - 1
        sims[(own >= 0).nonzero()[:, 0], own[own >= 0]] = float("-inf")  # not oneself
        out[start : start + 4096] = sims.topk(k, dim=-1).indices + 1
    return out


__all__ = [
    "PeaPODPreTrainedModel",
    "PersonalizedPromptLM",
    "PersonalizedPromptModel",
    "PersonalizedPromptPool",
    "PromptedEncoder",
    "interest_table",
    "most_similar_users",
    "nearest_users",
]
