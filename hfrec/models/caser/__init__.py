"""Caser: convolutional sequence embedding (RecBole defaults, no user embedding) as a transformers model."""

from .configuration_caser import CaserConfig
from .modeling_caser import CaserModel, CaserPreTrainedModel, SequentialRecommenderOutput


__all__ = ["CaserConfig", "CaserModel", "CaserPreTrainedModel", "SequentialRecommenderOutput"]
