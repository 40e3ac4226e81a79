"""DELRec configuration: a causal-LM backbone config + the soft prompt distilled from an SR teacher."""

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

DOMAINS = ("movie", "game", "product", "music", "item")  # "item": generic wording for any other catalogue


@strict
class DELRecConfig(PreTrainedConfig):
    r"""
    Configuration of [`DELRecForCausalLM`]: any Hugging Face causal LM (``text_config``) plus a soft prompt of
    ``num_virtual_tokens`` vectors that is injected wherever the placeholder token ``soft_prompt_token`` appears
    in ``input_ids`` (llava style: placeholder tokens + ``masked_scatter``, so lengths and labels never shift).

    Args:
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the causal-LM backbone (default: a Llama config).
        num_virtual_tokens (`int`, defaults to 100):
            Number of soft-prompt vectors (the paper uses 100).
        soft_prompt_token (`str`, defaults to `"<|soft_prompt|>"`):
            The placeholder token added to the tokenizer; each soft prompt occupies `num_virtual_tokens` of them.
        soft_prompt_token_id (`int`, *optional*):
            Its id in the tokenizer (set by `DELRecForCausalLM.from_backbone`). It may lie outside the backbone's
            embedding table: placeholders are never looked up, they are overwritten by the soft prompt.
        soft_prompt_init (`str`, defaults to `"vocab"`):
            `"vocab"`: copies of randomly drawn vocabulary embeddings (prompt-tuning default); `"random"`: normal
            noise at the scale of the embedding table.
        backbone_name_or_path (`str`, *optional*): the backbone this model was built from (informative).
        teacher_name (`str`, defaults to `"SASRec"`): the SR model named in the prompts.
        teacher_top_k (`int`, defaults to 10): how many of the teacher's recommendations the prompts show.
        num_candidates (`int`, defaults to 20): candidate-list size of the recommendation task.
        max_history (`int`, defaults to 10): history items shown in a prompt.
        domain (`str`, defaults to `"movie"`): prompt template variant: movie, game, product, music.
    """

    model_type = "delrec"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    text_config: dict | PreTrainedConfig | None = None
    num_virtual_tokens: int = 100
    soft_prompt_token: str = "<|soft_prompt|>"
    soft_prompt_token_id: int | None = None
    soft_prompt_init: Literal["vocab", "random"] = "vocab"
    backbone_name_or_path: str | None = None
    teacher_name: str = "SASRec"
    teacher_top_k: int = 10
    num_candidates: int = 20
    max_history: int = 10
    domain: str = "movie"
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True

    def validate_architecture(self):
        if self.num_virtual_tokens < 1:
            raise ValueError(f"num_virtual_tokens must be >= 1, got {self.num_virtual_tokens}")
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {self.domain!r}")
        if self.teacher_top_k < 0:
            raise ValueError(f"teacher_top_k must be >= 0, got {self.teacher_top_k}")


__all__ = ["DELRecConfig"]
