"""hfrec: LLM-enhanced sequential recommendation on the Hugging Face stack.

Importing hfrec registers its model types with transformers' Auto classes.
"""

__version__ = "0.1.0"

from .data import BENCHMARKS, load_benchmark, load_items
from .metrics import ranking_metrics
from .models import (
    SR_MODELS,
    CaserConfig,
    CaserModel,
    GRU4RecConfig,
    GRU4RecModel,
    SASRecConfig,
    SASRecModel,
    SequentialRecommenderOutput,
)

__all__ = [
    "BENCHMARKS", "SR_MODELS", "CaserConfig", "CaserModel", "GRU4RecConfig", "GRU4RecModel", "SASRecConfig",
    "SASRecModel", "SequentialRecommenderOutput", "load_benchmark", "load_items", "ranking_metrics",
]
