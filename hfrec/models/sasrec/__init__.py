"""SASRec: self-attentive sequential recommendation (RecBole defaults) as a transformers model."""

from .configuration_sasrec import SASRecConfig
from .modeling_sasrec import SASRecModel, SASRecPreTrainedModel, SequentialRecommenderOutput


__all__ = ["SASRecConfig", "SASRecModel", "SASRecPreTrainedModel", "SequentialRecommenderOutput"]
