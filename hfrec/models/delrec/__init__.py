"""DELRec (soft prompts distilled from an SR teacher): config, model, Auto registration."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_delrec import DELRecConfig
from .modeling_delrec import (
    DELRecForCausalLM,
    DELRecModel,
    DELRecPreTrainedModel,
    SoftPromptConfig,
    SoftPromptEncoder,
)

AutoConfig.register("delrec", DELRecConfig, exist_ok=True)
AutoModel.register(DELRecConfig, DELRecModel, exist_ok=True)
AutoModelForCausalLM.register(DELRecConfig, DELRecForCausalLM, exist_ok=True)
# save_pretrained copies the code next to the weights: trust_remote_code=True works without hfrec
DELRecConfig.register_for_auto_class()
DELRecForCausalLM.register_for_auto_class("AutoModelForCausalLM")

__all__ = [
    "DELRecConfig",
    "DELRecForCausalLM",
    "DELRecModel",
    "DELRecPreTrainedModel",
    "SoftPromptConfig",
    "SoftPromptEncoder",
]
