"""hfrec models. Importing this package registers every model with the transformers Auto classes.

- `AutoConfig` / `AutoModel` know the model types "sasrec", "gru4rec" and "caser" while hfrec is imported;
- each config/model class is also registered for its auto class, so `save_pretrained` copies the model's
  self-contained code next to the weights and `AutoModel.from_pretrained(path, trust_remote_code=True)`
  works in an environment without hfrec.

`SR_MODELS` maps a model type to its `(config_class, model_class)` pair for trainers and the CLI.
"""

from transformers import AutoConfig, AutoModel

from ..hub import enable_card_push

from .caser import CaserConfig, CaserModel, CaserPreTrainedModel
from .delrec import DELRecConfig, DELRecForCausalLM, DELRecModel, SoftPromptConfig, SoftPromptEncoder
from .gru4rec import GRU4RecConfig, GRU4RecModel, GRU4RecPreTrainedModel
from .p2rec import P2RecConfig, PreferenceParserLM
from .peapod import PeaPODConfig, PersonalizedPromptLM
from .sasrec import SASRecConfig, SASRecModel, SASRecPreTrainedModel, SequentialRecommenderOutput


SR_MODELS = {
    "sasrec": (SASRecConfig, SASRecModel),
    "gru4rec": (GRU4RecConfig, GRU4RecModel),
    "caser": (CaserConfig, CaserModel),
}

for _model_type, (_config_class, _model_class) in SR_MODELS.items():
    AutoConfig.register(_model_type, _config_class, exist_ok=True)
    AutoModel.register(_config_class, _model_class, exist_ok=True)
    _config_class.register_for_auto_class()
    _model_class.register_for_auto_class("AutoModel")
    enable_card_push(_model_class)  # `model.push_to_hub(repo)` also uploads the generated model card
del _model_type, _config_class, _model_class
enable_card_push(DELRecForCausalLM)
enable_card_push(PreferenceParserLM)
enable_card_push(PersonalizedPromptLM)


__all__ = [
    "SR_MODELS",
    "DELRecConfig",
    "DELRecForCausalLM",
    "P2RecConfig",
    "PreferenceParserLM",
    "PeaPODConfig",
    "PersonalizedPromptLM",
    "DELRecModel",
    "SoftPromptConfig",
    "SoftPromptEncoder",
    "SequentialRecommenderOutput",
    "SASRecConfig",
    "SASRecModel",
    "SASRecPreTrainedModel",
    "GRU4RecConfig",
    "GRU4RecModel",
    "GRU4RecPreTrainedModel",
    "CaserConfig",
    "CaserModel",
    "CaserPreTrainedModel",
]
