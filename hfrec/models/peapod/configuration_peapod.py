"""PeaPOD configuration: a language-model backbone config (decoder-only or encoder-decoder) + the personalized
soft prompt composed from a shared prompt pool."""

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

INTEREST_SOURCES = ("user", "similar_users", "none")
PROMPT_VALUES = ("pool", "similar_users")
TASKS = ("sequential", "topn", "explanation")  # the order of the task prompts (a row's `task` index)


@strict
class PeaPODConfig(PreTrainedConfig):
    r"""
    Configuration of [`PersonalizedPromptLM`]: any Hugging Face causal LM or encoder-decoder LM (``text_config``)
    plus a personalized soft prompt. A shared pool of ``num_prompt_components`` learnable components, each
    ``component_length`` vectors long, is weighted per user by multi-head attention whose query is the user's
    interest vector (collaborative user embeddings, ``interest_dim`` wide); the weighted sum is the user's prompt.
    ``task_prompt_length`` learnable vectors per task follow it. Both are injected wherever the placeholder token
    appears in ``input_ids`` (llava-style placeholder merge), so lengths and labels never shift.

    Args:
        text_config (`dict` or `PreTrainedConfig`, *optional*): the backbone's config (default: a Llama config).
        num_users (`int`): users with an interest vector; row 0 of the table is the cold-start user.
        interest_dim (`int`): width of the interest vectors.
        num_prompt_components (`int`, defaults to 20): size of the shared pool (the released code: 20).
        component_length (`int`, defaults to 3): vectors per component = length of the personalized prompt.
        num_prompt_heads (`int`, defaults to 4): attention heads of the composition (must divide the hidden size).
        task_prompt_length (`int`, defaults to 3): task-specific vectors after the personalized prompt (0: none).
        interest_source (`str`, defaults to `"user"`): the query of the composition. `"user"`: the user's own
            interest vector; `"similar_users"`: the mean of the user's and its ``num_similar_users`` most similar
            users' vectors (the released code's variant, which composes from neighbours); `"none"`: one learned
            query for everyone (a global soft prompt: the ablation).
        num_similar_users (`int`, defaults to 10): neighbours used by `"similar_users"` (either field).
        prompt_values (`str`, defaults to `"pool"`): what the attention mixes. `"pool"`: learned components (the
            user's vector only chooses weights); `"similar_users"`: projections of the user's ``num_similar_users``
            most similar users' interest vectors, the attended vector projected to ``component_length``
            embeddings (the released code's form: user information enters the prompt itself).
        prompt_token (`str`), prompt_token_id (`int`): the placeholder token and its id in the tokenizer.
        backbone_name_or_path (`str`, *optional*), domain (`str`), item_identifier (`str`): informative.
    """

    model_type = "peapod"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    text_config: dict | PreTrainedConfig | None = None
    num_users: int = 1
    interest_dim: int = 64
    num_prompt_components: int = 20
    component_length: int = 3
    num_prompt_heads: int = 4
    task_prompt_length: int = 3
    interest_source: Literal["user", "similar_users", "none"] = "user"
    num_similar_users: int = 10
    prompt_values: Literal["pool", "similar_users"] = "pool"
    prompt_token: str = "<|user_prompt|>"
    prompt_token_id: int | None = None
    backbone_name_or_path: str | None = None
    domain: str = "movie"
    item_identifier: Literal["title", "id"] = "title"
    tie_word_embeddings: bool = False
    is_encoder_decoder: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.is_encoder_decoder = bool(getattr(self.text_config, "is_encoder_decoder", False))
        if getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True
        if self.is_encoder_decoder:  # generate() reads these from the top-level config
            for name in ("decoder_start_token_id", "pad_token_id", "eos_token_id"):
                if getattr(self, name, None) is None:
                    setattr(self, name, getattr(self.text_config, name, None))

    @property
    def num_virtual_tokens(self) -> int:
        """Placeholder tokens of one prompt block: the personalized prompt, then the task prompt."""
        return self.component_length + self.task_prompt_length

    def validate_architecture(self):
        for name in ("num_users", "interest_dim", "num_prompt_components", "component_length", "num_prompt_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.task_prompt_length < 0:
            raise ValueError(f"task_prompt_length must be >= 0, got {self.task_prompt_length}")
        if self.interest_source not in INTEREST_SOURCES:
            raise ValueError(f"interest_source must be one of {INTEREST_SOURCES}, got {self.interest_source!r}")
        if self.prompt_values not in PROMPT_VALUES:
            raise ValueError(f"prompt_values must be one of {PROMPT_VALUES}, got {self.prompt_values!r}")
        if self.prompt_values == "similar_users" and self.interest_source == "none":
            raise ValueError("prompt_values='similar_users' composes from a user's neighbours; the global prompt "
                             "(interest_source='none') has no user: use prompt_values='pool' for it")
        hidden = getattr(self.text_config, "hidden_size", None) or getattr(self.text_config, "d_model", None)
        if hidden is not None and hidden % self.num_prompt_heads:
            raise ValueError(f"num_prompt_heads={self.num_prompt_heads} must divide the backbone's hidden size "
                             f"{hidden}")


__all__ = ["INTEREST_SOURCES", "PROMPT_VALUES", "PeaPODConfig", "TASKS"]
