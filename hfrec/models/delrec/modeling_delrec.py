"""DELRec: an LLM with a soft prompt distilled from a sequential-recommendation (SR) teacher.

Layout (transformers/llava style):

* :class:`SoftPromptEncoder` - ``num_virtual_tokens`` trainable vectors with their own small config
  (:class:`SoftPromptConfig`); saved alone as safetensors + json after stage 1.
* :class:`DELRecModel` - the backbone (any ``AutoModel``) + the soft prompt. Wherever the placeholder token
  appears in ``input_ids`` its embedding is replaced by the soft prompt (placeholder merge as in llava), *inside the
  backbone forward*: TRL's ``SFTTrainer`` computes its loss from ``model.base_model(...)`` (fused LM head) and
  never calls ``DELRecForCausalLM.forward``, so this is where the injection must live.
* :class:`DELRecForCausalLM` - backbone + LM head (+ ``GenerationMixin``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_delrec import DELRecConfig

SOFT_PROMPT_WEIGHTS_NAME = "soft_prompt.safetensors"
SOFT_PROMPT_CONFIG_NAME = "soft_prompt_config.json"


@dataclass
class SoftPromptConfig:
    """Config of a stand-alone soft prompt (what stage 1 produces)."""

    num_virtual_tokens: int = field(default=100, metadata={"help": "Number of virtual tokens."})
    hidden_size: int = field(default=0, metadata={"help": "Embedding width of the backbone it was trained on."})
    backbone_model_type: str | None = field(default=None, metadata={"help": "model_type of that backbone."})
    backbone_vocab_size: int | None = field(default=None, metadata={"help": "vocab_size of that backbone."})
    backbone_num_layers: int | None = field(default=None, metadata={"help": "num_hidden_layers of that backbone."})
    backbone_name_or_path: str | None = field(default=None, metadata={"help": "Name/path of that backbone."})
    teacher_name: str | None = field(default=None, metadata={"help": "The SR teacher it was distilled from."})
    domain: str | None = field(default=None, metadata={"help": "Prompt domain it was trained with."})

    @classmethod
    def from_backbone_config(cls, text_config, num_virtual_tokens: int, **kwargs) -> "SoftPromptConfig":
        return cls(
            num_virtual_tokens=num_virtual_tokens,
            hidden_size=text_config.hidden_size,
            backbone_model_type=getattr(text_config, "model_type", None),
            backbone_vocab_size=getattr(text_config, "vocab_size", None),
            backbone_num_layers=getattr(text_config, "num_hidden_layers", None),
            **kwargs,
        )

    def check_compatible(self, text_config, num_virtual_tokens: int | None = None) -> None:
        """Raise a ValueError naming the mismatch when this soft prompt was built for another backbone."""
        problems = []
        if self.hidden_size != text_config.hidden_size:
            problems.append(f"hidden_size {self.hidden_size} != backbone hidden_size {text_config.hidden_size}")
        for ours, attr in (
            (self.backbone_model_type, "model_type"),
            (self.backbone_vocab_size, "vocab_size"),
            (self.backbone_num_layers, "num_hidden_layers"),
        ):
            theirs = getattr(text_config, attr, None)
            if ours is not None and theirs is not None and ours != theirs:
                problems.append(f"{attr} {ours!r} != backbone {attr} {theirs!r}")
        if num_virtual_tokens is not None and num_virtual_tokens != self.num_virtual_tokens:
            problems.append(f"num_virtual_tokens {self.num_virtual_tokens} != model's {num_virtual_tokens}")
        if problems:
            raise ValueError(
                f"This soft prompt was built for another backbone ({self.backbone_name_or_path or 'unknown'}): "
                + "; ".join(problems)
                + ". A soft prompt only works on the backbone it was trained on; rerun stage 1 on this backbone."
            )


class SoftPromptEncoder(nn.Module):
    """``num_virtual_tokens`` trainable vectors (peft ``PromptEmbedding`` style, without the projection)."""

    def __init__(self, config: SoftPromptConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.num_virtual_tokens, config.hidden_size)

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding.weight

    def forward(self) -> torch.Tensor:
        return self.embedding.weight

    @torch.no_grad()
    def init_from_embeddings(self, embeddings: torch.Tensor, how: str = "vocab", seed: int = 0) -> None:
        """Initialise from a backbone's input-embedding table: ``vocab`` copies random rows, ``random`` draws noise
        at the table's scale."""
        gen = torch.Generator().manual_seed(seed)
        n = self.config.num_virtual_tokens
        table = embeddings.detach().float().cpu()
        if how == "vocab":
            idx = torch.randint(0, table.shape[0], (n,), generator=gen)
            init = table[idx]
        elif how == "random":
            init = torch.randn(n, table.shape[1], generator=gen) * table.std()
        else:
            raise ValueError(f"soft_prompt_init must be 'vocab' or 'random', got {how!r}")
        self.embedding.weight.copy_(init.to(self.embedding.weight.dtype))

    def save_pretrained(self, save_directory: str | os.PathLike, weight: torch.Tensor | None = None) -> Path:
        """Write ``soft_prompt.safetensors`` + ``soft_prompt_config.json`` (each through a temp file + rename).
        ``weight`` replaces the module's own (e.g. the full tensor gathered from FSDP shards)."""
        from safetensors.torch import save_file

        weight = self.embedding.weight if weight is None else weight
        if tuple(weight.shape) != (self.config.num_virtual_tokens, self.config.hidden_size):
            raise ValueError(f"Soft prompt of shape {tuple(weight.shape)} does not match its config "
                             f"({self.config.num_virtual_tokens}, {self.config.hidden_size})")
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        tmp_w = save_directory / f".{SOFT_PROMPT_WEIGHTS_NAME}.tmp"
        save_file({"soft_prompt": weight.detach().float().cpu().contiguous()}, str(tmp_w))
        os.replace(tmp_w, save_directory / SOFT_PROMPT_WEIGHTS_NAME)
        tmp_c = save_directory / f".{SOFT_PROMPT_CONFIG_NAME}.tmp"
        tmp_c.write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        os.replace(tmp_c, save_directory / SOFT_PROMPT_CONFIG_NAME)
        return save_directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "SoftPromptEncoder":
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / SOFT_PROMPT_CONFIG_NAME).exists():
            raise FileNotFoundError(f"No soft prompt in {directory}: {SOFT_PROMPT_CONFIG_NAME} is missing")
        config = SoftPromptConfig(**json.loads((directory / SOFT_PROMPT_CONFIG_NAME).read_text()))
        weight = load_file(str(directory / SOFT_PROMPT_WEIGHTS_NAME))["soft_prompt"]
        if tuple(weight.shape) != (config.num_virtual_tokens, config.hidden_size):
            raise ValueError(
                f"Soft prompt weights of shape {tuple(weight.shape)} do not match their config "
                f"({config.num_virtual_tokens}, {config.hidden_size})"
            )
        enc = cls(config)
        with torch.no_grad():
            enc.embedding.weight.copy_(weight)
        return enc


class DELRecPreTrainedModel(PreTrainedModel):
    config: DELRecConfig
    config_class = DELRecConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _skip_keys_device_placement = ["cache"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = False
    _keep_in_fp32_modules_strict = ["soft_prompt"]  # a few thousand numbers: keep them exact in bf16 runs

    def _init_weights(self, module):
        if isinstance(module, SoftPromptEncoder):
            std = getattr(self.config.text_config, "initializer_range", 0.02) or 0.02
            nn.init.normal_(module.embedding.weight, mean=0.0, std=std)
            return
        super()._init_weights(module)


def _soft_prompt_config(config: DELRecConfig) -> SoftPromptConfig:
    return SoftPromptConfig.from_backbone_config(
        config.text_config,
        config.num_virtual_tokens,
        backbone_name_or_path=config.backbone_name_or_path,
        teacher_name=config.teacher_name,
        domain=config.domain,
    )


class DELRecModel(DELRecPreTrainedModel):
    """The backbone (``language_model``) with the soft prompt injected at the placeholder tokens."""

    def __init__(self, config: DELRecConfig):
        super().__init__(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.soft_prompt = SoftPromptEncoder(_soft_prompt_config(config))
        self._no_split_modules = list(getattr(self.language_model, "_no_split_modules", None) or [])
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def placeholder_mask(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """(B, L) bool mask of the soft-prompt placeholder positions."""
        token_id = self.config.soft_prompt_token_id
        if token_id is None:
            return torch.zeros_like(input_ids, dtype=torch.bool)
        return input_ids == token_id

    def embed(self, input_ids: torch.LongTensor, soft_prompts: torch.Tensor | None = None) -> torch.Tensor:
        """Input embeddings of ``input_ids`` with every block of placeholders replaced by a soft prompt.

        ``soft_prompts`` is one prompt for every row ``(n, H)`` (default: this model's ``soft_prompt``) or one per
        row ``(B, n, H)`` (a per-user prompt; per-task views whose gradients a trainer reads apart). The k-th
        placeholder of a block takes prompt row k (llava-style placeholder merge, written as a gather +
        ``torch.where`` instead of ``masked_scatter`` so it needs no host sync and compiles without graph breaks;
        the two are equal). Soft prompts are placed from ``input_ids``: a caller passing ``inputs_embeds`` directly
        gets no injection, so build those with ``embed`` first."""
        mask = self.placeholder_mask(input_ids)
        embed_tokens = self.get_input_embeddings()
        n = self.config.num_virtual_tokens
        if not torch.compiler.is_compiling():
            if not bool(mask.any()):  # decode steps, prompts without a soft prompt
                return embed_tokens(input_ids)
            counts = mask.sum(-1)
            if bool((counts % n).any()):
                raise ValueError(
                    f"Each soft prompt occupies exactly {n} placeholder tokens ({self.config.soft_prompt_token!r}); "
                    f"got per-row counts {counts.tolist()}. Build prompts with hfrec's prompters so the placeholder "
                    "block is not truncated."
                )
        inputs_embeds = embed_tokens(input_ids.masked_fill(mask, 0))  # the placeholder id may be outside the table
        slot = ((mask.cumsum(-1) - 1) % n).clamp(min=0)  # (B, L): row of the soft prompt for each position
        prompts = self.soft_prompt() if soft_prompts is None else soft_prompts
        if prompts.dim() == 2:
            soft = prompts[slot]  # (B, L, H)
        elif prompts.dim() == 3 and prompts.shape[0] == input_ids.shape[0] and prompts.shape[1] == n:
            soft = prompts.gather(1, slot[..., None].expand(-1, -1, prompts.shape[-1]))
        else:
            raise ValueError(f"soft_prompts must be ({n}, H) or (batch={input_ids.shape[0]}, {n}, H), got "
                             f"{tuple(prompts.shape)}")
        return torch.where(mask[..., None], soft.to(inputs_embeds.dtype), inputs_embeds)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        soft_prompts: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """``soft_prompts``: ``(n, H)`` or per-row ``(B, n, H)`` prompts to inject instead of ``soft_prompt``
        (see :meth:`embed`)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, soft_prompts)
        return self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )


class DELRecForCausalLM(DELRecPreTrainedModel, GenerationMixin):
    """DELRec: soft-prompted causal LM. Stage 1 trains only ``model.soft_prompt``; stage 2 adds LoRA."""

    def __init__(self, config: DELRecConfig):
        super().__init__(config)
        self.model = DELRecModel(config)
        tc = config.text_config
        self.lm_head = nn.Linear(tc.hidden_size, tc.vocab_size, bias=False)
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
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def get_decoder(self):
        return self.model

    @property
    def soft_prompt(self) -> SoftPromptEncoder:
        return self.model.soft_prompt

    def _logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(hidden_states)
        cap = getattr(self.config.text_config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        slice_indices = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self._logits(hidden_states[:, slice_indices, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    # ----------------------------------------------------------------------------------------------------------
    # Building from a backbone, soft-prompt I/O, freezing
    # ----------------------------------------------------------------------------------------------------------
    @classmethod
    def from_backbone(
        cls,
        backbone=None,
        tokenizer=None,
        num_virtual_tokens: int = 100,
        soft_prompt_init: str = "vocab",
        seed: int = 0,
        dtype: torch.dtype | str = "auto",
        **config_kwargs,
    ):
        """Wrap a causal LM (an instance, a Hub id / folder, or ``None`` = the offline default SmolLM2-135M-Instruct).

        Returns ``(model, tokenizer)``; the tokenizer gains the placeholder token (the backbone's embedding table
        is not resized: placeholders are overwritten before lookup). The backbone's modules are moved in, not
        copied.
        """
        try:  # a try block keeps transformers' remote-code import check from demanding hfrec
            from hfrec.methods.common.backbones import load_backbone  # noqa: PLC0415 - only needed here
        except ImportError as err:
            raise ImportError("DELRecForCausalLM.from_backbone needs the hfrec package: pip install hfrec") from err

        if backbone is None or isinstance(backbone, (str, os.PathLike)):
            name = backbone
            backbone, loaded_tok = load_backbone(backbone, dtype=dtype)
            tokenizer = tokenizer if tokenizer is not None else loaded_tok
            config_kwargs.setdefault("backbone_name_or_path", str(name) if name is not None else "SmolLM2-135M-Instruct")
        if tokenizer is None:
            raise ValueError("from_backbone needs the backbone's tokenizer when the backbone is given as a model")
        if not hasattr(backbone, "get_output_embeddings") or backbone.get_output_embeddings() is None:
            raise ValueError(f"{type(backbone).__name__} is not a causal LM with an output embedding layer")
        config_kwargs.setdefault("backbone_name_or_path", getattr(backbone.config, "_name_or_path", None) or None)
        token = config_kwargs.pop("soft_prompt_token", "<|soft_prompt|>")
        tokenizer.add_tokens([token], special_tokens=True)
        token_id = tokenizer.convert_tokens_to_ids(token)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        config = DELRecConfig(
            text_config=backbone.config,
            num_virtual_tokens=num_virtual_tokens,
            soft_prompt_token=token,
            soft_prompt_token_id=token_id,
            soft_prompt_init=soft_prompt_init,
            **config_kwargs,
        )
        config._attn_implementation = backbone.config._attn_implementation
        with torch.device("meta"):
            model = cls(config)
        model.model.language_model = backbone.get_decoder() if hasattr(backbone, "get_decoder") else backbone.base_model
        model.lm_head = backbone.get_output_embeddings()
        ref = model.model.language_model.get_input_embeddings().weight
        # the soft prompt stays float32 (it is cast to the backbone's dtype when injected): bf16 Adam steps on a
        # few thousand numbers are cheap to keep exact
        model.model.soft_prompt = SoftPromptEncoder(_soft_prompt_config(config)).to(device=ref.device)
        model.model.soft_prompt.init_from_embeddings(ref, how=soft_prompt_init, seed=seed)
        if backbone.generation_config is not None:
            model.generation_config = backbone.generation_config
        meta = [n for n, p in model.named_parameters() if p.device.type == "meta"]
        if meta:
            raise RuntimeError(f"from_backbone left parameters on the meta device: {meta[:5]}")
        return model, tokenizer

    def load_soft_prompt(self, soft_prompt: "SoftPromptEncoder | str | os.PathLike", allow_other_backbone: bool = False):
        """Replace the soft prompt by a saved one (a folder or an encoder); checks it was built for this backbone."""
        if not isinstance(soft_prompt, SoftPromptEncoder):
            soft_prompt = SoftPromptEncoder.from_pretrained(soft_prompt)
        sp_cfg = soft_prompt.config
        if allow_other_backbone:
            if sp_cfg.hidden_size != self.config.text_config.hidden_size:
                sp_cfg.check_compatible(self.config.text_config)
        else:
            sp_cfg.check_compatible(self.config.text_config, self.config.num_virtual_tokens)
        ref = self.model.soft_prompt.weight
        with torch.no_grad():
            self.model.soft_prompt.embedding.weight.copy_(soft_prompt.weight.to(ref.device, ref.dtype))
        return self

    def save_soft_prompt(self, save_directory: str | os.PathLike, weight: torch.Tensor | None = None) -> Path:
        enc = self.model.soft_prompt
        enc.config = _soft_prompt_config(self.config)
        return enc.save_pretrained(save_directory, weight=weight)

    def freeze_for_stage(self, stage: int) -> "DELRecForCausalLM":
        """Stage 1: only the soft prompt trains. Stage 2: everything here frozen (LoRA adds its own weights)."""
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        for p in self.parameters():
            p.requires_grad_(False)
        if stage == 1:
            self.model.soft_prompt.embedding.weight.requires_grad_(True)
        return self


__all__ = [
    "DELRecForCausalLM",
    "DELRecModel",
    "DELRecPreTrainedModel",
    "SoftPromptConfig",
    "SoftPromptEncoder",
]
