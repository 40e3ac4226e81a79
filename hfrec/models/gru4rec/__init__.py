"""GRU4Rec: recurrent session-based recommendation (RecBole defaults) as a transformers model."""

from .configuration_gru4rec import GRU4RecConfig
from .modeling_gru4rec import GRU4RecModel, GRU4RecPreTrainedModel, SequentialRecommenderOutput


__all__ = ["GRU4RecConfig", "GRU4RecModel", "GRU4RecPreTrainedModel", "SequentialRecommenderOutput"]
