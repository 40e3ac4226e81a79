"""P2Rec configuration: a causal-LM backbone config + the head that parses a user's preference distribution."""

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

POOLING = ("last", "mean")


@strict
class P2RecConfig(PreTrainedConfig):
    r"""
    Configuration of [`PreferenceParserLM`]: the decoder of any Hugging Face causal LM (``text_config``) read by a
    linear head that maps one pooled hidden state to ``num_categories`` logits (a distribution over the latent item
    categories of P2Rec's information-reconstruction task).

    Args:
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the causal-LM backbone (default: a Llama config). Only its decoder is used (no LM head).
        num_categories (`int`, defaults to 20):
            K, the number of latent categories (k-means clusters of an SR model's item embeddings).
        pooling (`str`, defaults to `"last"`):
            How a sequence becomes one vector: `"last"` = the hidden state of the last non-padding token (in a causal
            LM the only position that has read the whole prompt); `"mean"` = the mean over non-padding tokens.
        backbone_name_or_path (`str`, *optional*): the backbone this model was built from (informative).
    """

    model_type = "p2rec"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    text_config: dict | PreTrainedConfig | None = None
    num_categories: int = 20
    pooling: Literal["last", "mean"] = "last"
    backbone_name_or_path: str | None = None
    tie_word_embeddings: bool = False  # no LM head: nothing to tie

    def validate_architecture(self):
        if self.num_categories < 2:
            raise ValueError(f"num_categories must be >= 2 (a distribution over latent categories), got "
                             f"{self.num_categories}")
        if self.pooling not in POOLING:
            raise ValueError(f"pooling must be one of {POOLING}, got {self.pooling!r}")


__all__ = ["P2RecConfig"]
