"""P2Rec (preference parsing): config, the preference-parser model, Auto registration."""

from transformers import AutoConfig, AutoModel

from .configuration_p2rec import P2RecConfig
from .modeling_p2rec import P2RecPreTrainedModel, PreferenceParserLM, PreferenceParserOutput

AutoConfig.register("p2rec", P2RecConfig, exist_ok=True)
AutoModel.register(P2RecConfig, PreferenceParserLM, exist_ok=True)
# save_pretrained copies the code next to the weights: trust_remote_code=True works without hfrec
P2RecConfig.register_for_auto_class()
PreferenceParserLM.register_for_auto_class("AutoModel")

__all__ = ["P2RecConfig", "P2RecPreTrainedModel", "PreferenceParserLM", "PreferenceParserOutput"]
