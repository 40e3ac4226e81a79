"""hfrec: LLM-enhanced sequential recommendation on the Hugging Face stack.

Importing hfrec registers its model types with transformers' Auto classes. The trainers (which import
TRL) load on first use: `from hfrec import SoftPromptSRDistiller` works, `import hfrec` stays light.
"""

__version__ = "0.1.0"

from .data import BENCHMARKS, load_benchmark, load_items
from .metrics import ranking_metrics
from . import pipelines  # noqa: F401  registers the "next-item-recommendation" pipeline task
from .models import (
    SR_MODELS,
    CaserConfig,
    CaserModel,
    DELRecConfig,
    DELRecForCausalLM,
    DELRecModel,
    GRU4RecConfig,
    GRU4RecModel,
    P2RecConfig,
    PeaPODConfig,
    PersonalizedPromptLM,
    PreferenceParserLM,
    SASRecConfig,
    SASRecModel,
    SequentialRecommenderOutput,
    SoftPromptConfig,
    SoftPromptEncoder,
)

# name -> module that defines it, imported when the name is first used (PEP 562)
_LAZY = {
    "SoftPromptSRDistiller": ".methods.delrec.trainer",
    "DELRecSFTTrainer": ".methods.delrec.trainer",
    "DELRecDistillConfig": ".methods.delrec.config",
    "DELRecSFTConfig": ".methods.delrec.config",
    "PreferenceParserTrainer": ".methods.p2rec.trainer",
    "PreferenceParserSFTConfig": ".methods.p2rec.config",
    "PeaPODTrainer": ".methods.peapod.trainer",
    "PeaPODSFTConfig": ".methods.peapod.config",
    "TRSRSummarizer": ".methods.trsr.summaries",
    "TRSRSFTTrainer": ".methods.trsr.trainer",
    "TRSRSFTConfig": ".methods.trsr.config",
    "HfrecSFTConfig": ".methods.common.sft",
    "LoRASFTConfig": ".methods.common.sft",
    "HfrecSFTTrainer": ".methods.common.sft",
    "SRTrainer": ".trainers.sr_trainer",
    "SRTrainingConfig": ".trainers.sr_config",
    "score_candidates_by_likelihood": ".methods.common.scoring",
    "rank_candidates": ".methods.common.scoring",
    "generate_then_match": ".methods.common.generation",
    "load_backbone": ".methods.common.backbones",
    "METHODS": ".registry",
    "get_method": ".registry",
    "NextItemRecommendationPipeline": ".pipelines",
    "offline_backbone_path": ".methods.common.backbones",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'hfrec' has no attribute {name!r}")


def __dir__():  # the lazily exported names too, so notebooks and IDEs complete them
    return sorted({*globals(), *__all__})


__all__ = [
    "BENCHMARKS", "SR_MODELS", "CaserConfig", "CaserModel", "DELRecConfig", "DELRecForCausalLM", "DELRecModel",
    "GRU4RecConfig", "GRU4RecModel", "P2RecConfig", "PeaPODConfig", "PersonalizedPromptLM", "PreferenceParserLM",
    "SASRecConfig", "SASRecModel",
    "SequentialRecommenderOutput", "SoftPromptConfig", "SoftPromptEncoder", "load_benchmark", "load_items", "ranking_metrics", *_LAZY,
]
