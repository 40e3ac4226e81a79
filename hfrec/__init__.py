"""hfrec: LLM-enhanced sequential recommendation on the Hugging Face stack.

Importing hfrec registers its model types with transformers' Auto classes. The trainers (which import
TRL) load on first use: `from hfrec import SoftPromptSRDistiller` works, `import hfrec` stays light.
"""

__version__ = "0.1.0"

from .data import BENCHMARKS, load_benchmark, load_items
from .metrics import ranking_metrics
from .models import (
    SR_MODELS,
    CaserConfig,
    CaserModel,
    DELRecConfig,
    DELRecForCausalLM,
    DELRecModel,
    GRU4RecConfig,
    GRU4RecModel,
    SASRecConfig,
    SASRecModel,
    SequentialRecommenderOutput,
    SoftPromptConfig,
    SoftPromptEncoder,
)

# name -> module that defines it, imported when the name is first used (PEP 562)
_LAZY = {
    "SoftPromptSRDistiller": ".trainers.delrec_trainer",
    "DELRecSFTTrainer": ".trainers.delrec_trainer",
    "DELRecDistillConfig": ".trainers.delrec_config",
    "DELRecSFTConfig": ".trainers.delrec_config",
    "SRTrainer": ".trainers.sr_trainer",
    "SRTrainingConfig": ".trainers.sr_config",
    "score_candidates_by_likelihood": ".scoring",
    "rank_candidates": ".scoring",
    "generate_then_match": ".scoring",
    "load_backbone": ".llm",
    "offline_backbone_path": ".llm",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'hfrec' has no attribute {name!r}")


__all__ = [
    "BENCHMARKS", "SR_MODELS", "CaserConfig", "CaserModel", "DELRecConfig", "DELRecForCausalLM", "DELRecModel",
    "GRU4RecConfig", "GRU4RecModel", "SASRecConfig", "SASRecModel", "SequentialRecommenderOutput",
    "SoftPromptConfig", "SoftPromptEncoder", "load_benchmark", "load_items", "ranking_metrics", *_LAZY,
]
