"""PeaPOD (personalized prompt distillation): config, the personalized-prompt LM, Auto registration."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_peapod import PeaPODConfig, TASKS
from .modeling_peapod import (PeaPODPreTrainedModel, PersonalizedPromptLM, PersonalizedPromptModel,
                              PersonalizedPromptPool)

AutoConfig.register("peapod", PeaPODConfig, exist_ok=True)
AutoModel.register(PeaPODConfig, PersonalizedPromptLM, exist_ok=True)
AutoModelForCausalLM.register(PeaPODConfig, PersonalizedPromptLM, exist_ok=True)
# save_pretrained copies the code next to the weights: trust_remote_code=True works without hfrec
PeaPODConfig.register_for_auto_class()
PersonalizedPromptLM.register_for_auto_class("AutoModel")

__all__ = ["PeaPODConfig", "PeaPODPreTrainedModel", "PersonalizedPromptLM", "PersonalizedPromptModel",
           "PersonalizedPromptPool", "TASKS"]
