"""The methods hfrec trains, one line each. ``hfrec train``, ``hfrec benchmark``, the pipeline, the model cards and the
Hub code read this table; adding a method is one folder (``hfrec/methods/<name>/`` + ``hfrec/models/<name>/``) and one
line here.

A method's script module has ``make_parser()`` and ``main(argv) -> dict`` and takes the shared flags
``--preset --dataset --data_dir --teacher_dir --output_dir --split_seed --seed --eval_users --max_steps
--backbone --dtype --disable_tqdm``; its output folder holds ``eval_results.json`` (one record per table row) and,
for the pipeline, ``hfrec_recommender.json``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MethodSpec:
    name: str  # registry key: `hfrec train <name>`, benchmark row
    display_name: str  # how tables and cards name it
    model_types: tuple[str, ...]  # config.model_type of the folders it saves
    script: str  # module with make_parser() / main(argv)
    recommender: str  # "module:function" -> the pipeline's scorer for a loaded folder
    launcher: str | None = None  # the file `accelerate launch` takes
    presets: tuple[str, ...] = ()
    llm: bool = True
    script_args: tuple[str, ...] = ()  # fixed leading arguments of the script (the SR trainer's --model)
    paper: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def script_module(self):
        return importlib.import_module(self.script)

    def load_recommender(self):
        module, _, name = self.recommender.partition(":")
        return getattr(importlib.import_module(module), name)

    def run(self, argv: list[str]) -> dict:
        """Run the method's script in this process (``hfrec train <name> ...``)."""
        return self.script_module().main([*self.script_args, *argv])


METHODS: dict[str, MethodSpec] = {
    "sasrec": MethodSpec("sasrec", "SASRec", ("sasrec",), "hfrec.trainers.train_sr", "hfrec.pipelines:sr_recommender",
                         "trainers/train_sr.py", llm=False, script_args=("--model", "sasrec"),
                         paper="Self-Attentive Sequential Recommendation (Kang & McAuley, 2018)"),
    "gru4rec": MethodSpec("gru4rec", "GRU4Rec", ("gru4rec",), "hfrec.trainers.train_sr", "hfrec.pipelines:sr_recommender",
                          "trainers/train_sr.py", llm=False, script_args=("--model", "gru4rec"),
                          paper="Session-based Recommendations with Recurrent Neural Networks (Hidasi et al., 2016)"),
    "caser": MethodSpec("caser", "Caser", ("caser",), "hfrec.trainers.train_sr", "hfrec.pipelines:sr_recommender",
                        "trainers/train_sr.py", llm=False, script_args=("--model", "caser"),
                        paper="Personalized Top-N Sequential Recommendation via Convolutional Sequence Embedding "
                              "(Tang & Wang, 2018)"),
    "delrec": MethodSpec("delrec", "DELRec", ("delrec",), "hfrec.methods.delrec.script",
                         "hfrec.methods.delrec.recommender:load_recommender", "trainers/sft_delrec.py",
                         presets=("cpu", "gpu"), tags=("soft-prompt", "lora", "distillation"),
                         paper="DELRec: Distilling Sequential Pattern to Enhance LLMs-based Sequential Recommendation"),
    "trsr": MethodSpec("trsr", "LLM-TRSR", ("trsr",), "hfrec.methods.trsr.script",
                       "hfrec.methods.trsr.recommender:load_recommender", "trainers/sft_trsr.py",
                       presets=("cpu", "gpu"), tags=("summaries", "lora", "yes-no"),
                       paper="Harnessing Large Language Models for Text-Rich Sequential Recommendation"),
    "peapod": MethodSpec("peapod", "PeaPOD", ("peapod",), "hfrec.methods.peapod.script",
                         "hfrec.methods.peapod.recommender:load_recommender", "trainers/sft_peapod.py",
                         presets=("cpu", "gpu"), tags=("personalized-prompt", "prompt-pool", "lora"),
                         paper="Preference Distillation for Personalized Generative Recommendation (PeaPOD: personalized prompt distillation)"),
    # P2Rec's output folder is the enhanced SR model: the SR recommender serves it
    "p2rec": MethodSpec("p2rec", "P2Rec", ("p2rec",), "hfrec.methods.p2rec.script", "hfrec.pipelines:sr_recommender",
                        "trainers/sft_p2rec.py", presets=("cpu", "gpu"), tags=("preference-parsing", "lora"),
                        paper="A Practice-Friendly LLM-Enhanced Paradigm with Preference Parsing for Sequential "
                              "Recommendation"),
}


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; registered: {', '.join(METHODS)}")
    return METHODS[name]


def method_for_model_type(model_type: str) -> MethodSpec:
    for spec in METHODS.values():
        if model_type in spec.model_types:
            return spec
    raise ValueError(f"No hfrec method saves models of type {model_type!r}; known types: "
                     f"{sorted(t for s in METHODS.values() for t in s.model_types)}")


def llm_methods() -> list[MethodSpec]:
    return [spec for spec in METHODS.values() if spec.llm]


__all__ = ["METHODS", "MethodSpec", "get_method", "llm_methods", "method_for_model_type"]
