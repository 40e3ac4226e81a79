"""Model cards: rendered from ``templates/model_card.md`` with ``huggingface_hub.ModelCard``.

A card's ``model-index`` holds exactly the metrics of the run's evaluation records (``eval_results.json``),
never numbers typed by hand; :func:`metrics_from_card` reads them back.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..utils import atomic_write_text
from .folder import ModelFolder, inspect_folder
from .records import EVAL_RESULTS_NAME, load_eval_results, protocol_label

# The template is package data of ``hfrec`` (pyproject: templates/*.md), one level above this subpackage.
TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "templates" / "model_card.md"
#: first line of the body of every card hfrec generates (such a README.md is regenerated on push).
CARD_MARKER = "<!-- hfrec:model-card -->"
#: text of cards that libraries generate on their own (huggingface_hub's default template, which PEFT fills
#: in, transformers' push_to_hub and Trainer cards): such a README.md is replaced by hfrec's card.
_GENERATED_CARD_SIGNS = (
    CARD_MARKER,
    "<!-- Provide a quick summary of what the model is/does. -->",
    "[More Information Needed]",
    "This model card has been automatically generated.",
    "This model card has been generated automatically according to the information the Trainer had access to.",
)
_DATASET_NAMES = {
    "ml-100k": "MovieLens-100K",
    "ml-1m": "MovieLens-1M",
    "steam": "Steam",
    "beauty": "Amazon Beauty",
    "games": "Amazon Games",
    "lastfm": "LastFM",
}
#: how PEFT's method names are written in prose (its ``peft_type`` values are upper-case enum names).
_PEFT_NAMES = {
    "LORA": "LoRA", "ADALORA": "AdaLoRA", "LOHA": "LoHa", "LOKR": "LoKr", "VERA": "VeRA", "IA3": "IA3",
    "PROMPT_TUNING": "prompt tuning", "P_TUNING": "P-tuning", "PREFIX_TUNING": "prefix tuning",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class MethodFacts(NamedTuple):
    display_name: str
    llm: bool  # an LLM-based method: its card's pipeline tag is text-generation
    pipeline_task: str | None = None  # the transformers pipeline that runs it in one call
    hfrec_method: bool = True  # one of hfrec's own methods: its classes import from ``hfrec``


def method_facts(method: str) -> MethodFacts:
    """What the cards say about a method, by model type: its display name, whether it is LLM-based, its pipeline
    (read from ``hfrec.registry``; a type no hfrec method saves is described by its name alone)."""
    from ..pipelines import TASK
    from ..registry import method_for_model_type

    try:
        spec = method_for_model_type(method)
    except ValueError:
        return MethodFacts(method, llm=False, hfrec_method=False)
    return MethodFacts(spec.display_name, llm=spec.llm, pipeline_task=TASK)


def _first(*values):
    for value in values:
        if value not in (None, "", [], {}):
            return value
    return None


def _is_local_path(name) -> bool:
    return os.path.isabs(str(name)) or str(name).startswith(".")


def _run_info(folder: ModelFolder) -> dict:
    from ..methods.common.ranking import read_recommender_info

    return read_recommender_info(folder.path) or {}


def _method(folder: ModelFolder, records: list[dict]) -> str:
    config = folder.config
    # the run info names the method first: LLM-TRSR saves the backbone's own class (model_type "llama")
    method = _first(_run_info(folder).get("method"), config.get("hfrec_method"), config.get("model_type"),
                    *(r.get("model_type") for r in records))
    if folder.is_adapter and not config:
        method = _first(*(r.get("model_type") for r in records), str(folder.adapter_config.get("peft_type", "lora")).lower())
    return str(method or "model").lower()


def _peft_name(folder: ModelFolder) -> str | None:
    peft_type = folder.adapter_config.get("peft_type")
    return _PEFT_NAMES.get(str(peft_type).upper(), str(peft_type)) if peft_type else None


def _base_model(folder: ModelFolder, records: list[dict]) -> str | None:
    candidates = (
        *(r.get("base_model") for r in records),
        folder.config.get("hfrec_base_model"),
        # a folder that bundles its base is its own adapter base: the backbone below is the model it started from
        None if folder.bundles_base else folder.adapter_config.get("base_model_name_or_path"),
        folder.config.get("base_model_name_or_path"),
        folder.config.get("backbone_name_or_path"),
        folder.config.get("llm_name_or_path"),
    )
    # A local folder names no model others can fetch.
    return _first(*(c for c in candidates if c and not _is_local_path(c)))


def _teacher(folder: ModelFolder, records: list[dict]) -> str | None:
    config = folder.config
    return _first(
        *(r.get("teacher") for r in records),
        config.get("hfrec_teacher"), config.get("teacher"), config.get("teacher_name_or_path"), config.get("teacher_name"),
        config.get("teacher_model"), config.get("teacher_model_type"),
    )


def _command(folder: ModelFolder, records: list[dict], command: str | None) -> str | None:
    return _first(
        command,
        folder.config.get("hfrec_command"),
        *(r.get("train_command") for r in records),
        *(r.get("command") for r in records),
    )


def _pipeline_tag(folder: ModelFolder, method: str) -> str:
    if folder.is_adapter or method_facts(method).llm:
        return "text-generation"
    archs = folder.config.get("architectures") or []
    if any(a.endswith("ForCausalLM") for a in archs):
        return "text-generation"
    return "other"  # the Hub has no recommendation task: "other" is its catch-all pipeline tag


def _adapter_snippet(repo_id: str, base_model: str | None, rev: str) -> str:
    base = base_model or "<base model>"
    return (
        "from transformers import AutoModelForCausalLM\n"
        "from peft import PeftModel\n\n"
        f'base = AutoModelForCausalLM.from_pretrained("{base}")\n'
        f'model = PeftModel.from_pretrained(base, "{repo_id}"{rev})\n\n'
        "# or, refusing an adapter trained on another base model:\n"
        "from hfrec.hub import load_adapter\n"
        f'model = load_adapter(base, "{repo_id}"{rev})'
    )


def _exported_by_hfrec(name: str) -> bool:
    import hfrec

    return hasattr(hfrec, name)  # LLM-TRSR's folder holds a plain LlamaForCausalLM: no hfrec class to name


def _loading_snippet(folder: ModelFolder, repo_id: str, method: str, base_model: str | None) -> str:
    rev = ', revision="main"'
    if folder.is_adapter and not folder.bundles_base:
        return _adapter_snippet(repo_id, base_model, rev)
    facts = method_facts(method)
    archs = folder.config.get("architectures") or []
    auto = "AutoModelForCausalLM" if any(a.endswith("ForCausalLM") for a in archs) else "AutoModel"
    lines = ["import hfrec  # registers hfrec's configs and models with the Auto classes"]
    if facts.pipeline_task:
        lines += [
            "from transformers import pipeline",
            "",
            f'recommend = pipeline("{facts.pipeline_task}", model="{repo_id}")',
            'recommend({"history": [50, 181]}, top_k=10)  # item ids or titles, oldest first',
            "",
        ]
    lines += [f"from transformers import {auto}", ""]
    if folder.bundles_base:
        # Putting the adapter on the bare backbone would drop what was trained into the saved base (DELRec's
        # distilled soft prompt): load this repository, whose model is the adapter's base.
        adapter = _peft_name(folder) or "PEFT"
        lines += [f"# the model saved here is the adapter's base; from_pretrained attaches the {adapter} adapter to it",
                  "# (with peft installed, as hfrec requires)"]
    lines.append(f'model = {auto}.from_pretrained("{repo_id}"{rev})')
    if folder.bundles_base and facts.hfrec_method and archs and _exported_by_hfrec(archs[0]):
        lines += ["", "# the same with hfrec's class", f"from hfrec import {archs[0]}",
                  f'model = {archs[0]}.from_pretrained("{repo_id}"{rev})']
    if folder.config.get("auto_map"):
        lines += [
            "",
            "# without hfrec installed: the modelling code saved next to the weights",
            f'model = {auto}.from_pretrained("{repo_id}"{rev}, trust_remote_code=True)',
        ]
    return "\n".join(lines)


def build_model_card(
    model_dir: str | os.PathLike,
    eval_results: str | os.PathLike | Mapping | Sequence[Mapping] | None = None,
    command: str | None = None,
    repo_id: str | None = None,
    tags: Sequence[str] | None = None,
) -> ModelCard:
    """A model card for a saved model folder, rendered from ``templates/model_card.md``.

    Reads ``config.json`` and/or ``adapter_config.json`` and the evaluation records (``eval_results``
    if given, else ``model_dir/eval_results.json`` when present). The ``model-index`` holds exactly
    the metrics of those records, one result per protocol. ``command`` (else ``config.hfrec_command``,
    else the records' ``train_command``/``command``) is the training command shown on the card.
    """
    folder = inspect_folder(model_dir)
    if eval_results is None and (folder.path / EVAL_RESULTS_NAME).is_file():
        eval_results = folder.path / EVAL_RESULTS_NAME
    records = load_eval_results(eval_results)
    method = _method(folder, records)
    # A run may also rank its baselines (DELRec's table: popularity, teacher, zero-shot LLM): only the
    # records of this model's own type describe it; the others are comparisons, not its metrics.
    # A run that trains several variants (LLM-TRSR's summary modes) names the folder's own row in its run info.
    own_label = _run_info(folder).get("label")

    def own(record):
        return record.get("model_type") in (None, method) and (own_label is None or record.get("method") in
                                                              (None, own_label))

    baselines = [r for r in records if not own(r)]
    records = [r for r in records if own(r)]
    name = repo_id.split("/")[-1] if repo_id else folder.path.resolve().name
    peft_name = _peft_name(folder)
    # an adapter published without records is known only by its PEFT type ("lora"): spell that as prose does
    method_name = (peft_name if peft_name and method == str(folder.adapter_config["peft_type"]).lower()
                   else method_facts(method).display_name)
    base_model = _base_model(folder, records)
    datasets = sorted({str(r["dataset"]) for r in records})

    results = []
    for record in records:
        label = protocol_label(record)
        dataset_args = {"protocol": record["protocol"]}
        for key in ("num_candidates", "seed", "num_users"):
            if record.get(key) is not None:
                dataset_args[key] = record[key]
        for metric, value in record["metrics"].items():
            results.append(EvalResult(
                task_type="other",
                task_name="Sequential recommendation (next item)",
                dataset_type=str(record["dataset"]),
                dataset_name=_DATASET_NAMES.get(str(record["dataset"]), str(record["dataset"])),
                dataset_config=label,
                dataset_split=str(record["split"]),
                dataset_args=dataset_args,
                metric_type=metric.lower(),
                metric_name=metric,
                metric_config=label,
                metric_value=value,
            ))

    card_tags = ["hfrec", "recommendation", "sequential-recommendation", method]
    if folder.is_adapter:
        card_tags += ["peft", str(folder.adapter_config.get("peft_type", "lora")).lower()]  # Hub tags are lower-case
    card_tags += list(tags or [])
    hub_base_model = base_model if base_model and _HUB_ID.match(base_model) and not Path(base_model).exists() else None
    card_data = ModelCardData(
        # a bundle loads through transformers: the Hub's peft snippet would put the adapter on the bare base model
        library_name="peft" if folder.is_adapter and not folder.bundles_base else "transformers",
        base_model=hub_base_model,
        # with adapter_config.json present the Hub would call the repo an adapter of the bare base model
        base_model_relation="finetune" if folder.bundles_base and hub_base_model else None,
        datasets=datasets or None,
        tags=card_tags,
        pipeline_tag=_pipeline_tag(folder, method),
        model_name=name,
        eval_results=results or None,
    )

    metric_names: list[str] = []
    for record in records:
        metric_names += [m for m in record["metrics"] if m not in metric_names]
    protocol_rows = []
    for record in records:
        protocol_rows.append({
            "dataset": _DATASET_NAMES.get(str(record["dataset"]), str(record["dataset"])),
            "split": record["split"],
            "protocol": ("full ranking over all items (history masked)" if record["protocol"] == "full"
                         else f"{record.get('num_candidates', '?')} candidates (target + sampled negatives)"
                         if record["protocol"] == "candidates" else str(record["protocol"])),
            "label": protocol_label(record),
            "seed": record.get("seed", "n/a"),
            "num_users": record.get("num_users", "n/a"),
            "date": record.get("date", "n/a"),
            "values": [record["metrics"].get(m) for m in metric_names],
        })
    template_kwargs = dict(
        marker=CARD_MARKER,
        name=name,
        method=method,
        method_name=method_name,
        is_adapter=folder.is_adapter,
        bundles_base=folder.bundles_base,
        peft_name=peft_name,
        lora_r=folder.adapter_config.get("r"),
        target_modules=folder.adapter_config.get("target_modules"),
        architectures=", ".join(folder.config.get("architectures") or []) or None,
        num_items=folder.config.get("num_items"),
        max_seq_length=folder.config.get("max_seq_length"),
        base_model_text=base_model,
        teacher=_teacher(folder, records),
        command=_command(folder, records, command),
        protocol_rows=protocol_rows,
        metric_names=metric_names,
        load_snippet=_loading_snippet(folder, repo_id or f"<user>/{name}", method, base_model),
        files=[f for f in folder.files if f != "README.md"],
        weight_files=[f for f in folder.files if f.endswith(".safetensors")],
        has_remote_code=bool(folder.config.get("auto_map")),
        training_facts=_training_facts(records),
        hfrec_version=_hfrec_version(),
        baseline_rows=[{"label": r.get("method") or r["model_type"], "num_users": r.get("num_users", "n/a"),
                        "values": [r["metrics"].get(m) for m in metric_names]} for r in baselines],
    )
    return ModelCard.from_template(card_data, template_path=str(TEMPLATE_PATH), **template_kwargs)


def _training_facts(records: list[dict]) -> list[str]:
    """What the run recorded about its training (seed, epochs, time, best validation score), if anything."""
    if not records:
        return []
    first = records[0]
    facts = []
    if first.get("train_seed") is not None:
        facts.append(f"training seed {first['train_seed']}")
    if first.get("epochs") is not None:
        facts.append(f"{first['epochs']:g} epochs" if isinstance(first["epochs"], (int, float)) else f"epochs: {first['epochs']}")
    if isinstance(first.get("train_seconds"), (int, float)):
        facts.append(f"{first['train_seconds']:.0f} s of training")
    best = first.get("best_validation")
    if isinstance(best, Mapping):
        facts += [f"best validation {k} {v:.4f}" for k, v in best.items() if isinstance(v, (int, float))]
    return facts


def _hfrec_version() -> str:
    try:
        from .. import __version__

        return __version__
    except Exception:  # pragma: no cover
        return "unknown"


def metrics_from_card(card: ModelCard | str | os.PathLike) -> list[dict]:
    """The evaluation records in a card's ``model-index``, shaped like ``eval_results.json`` entries.

    Each record has ``dataset``, ``split``, ``protocol``, ``metrics`` (name -> value) and, when the
    card has them, ``num_candidates``, ``seed`` and ``num_users``.
    """
    if not isinstance(card, ModelCard):
        card = ModelCard.load(card)
    grouped: dict[tuple, dict] = {}
    for result in card.data.eval_results or []:
        key = (result.dataset_type, result.dataset_split, result.dataset_config)
        record = grouped.get(key)
        if record is None:
            args = dict(result.dataset_args or {})
            record = {"dataset": result.dataset_type, "split": result.dataset_split,
                      "protocol": args.pop("protocol", result.dataset_config), **args, "metrics": {}}
            grouped[key] = record
        record["metrics"][result.metric_name or result.metric_type] = result.metric_value
    return list(grouped.values())


def write_model_card(model_dir: str | os.PathLike, card: ModelCard | None = None, **card_kwargs) -> Path | None:
    """Writes the generated card to ``model_dir/README.md`` atomically (temporary file + rename).

    A README.md written by a person is left alone and None is returned; one that a library generated
    (hfrec's own, PEFT's or transformers' boilerplate card) is replaced. ``card_kwargs`` go to
    :func:`build_model_card` when ``card`` is None.
    """
    target = Path(model_dir) / "README.md"
    if target.is_file():
        existing = target.read_text(encoding="utf-8", errors="replace")
        if not any(sign in existing for sign in _GENERATED_CARD_SIGNS):
            return None
    if card is None:
        card = build_model_card(model_dir, **card_kwargs)
    atomic_write_text(target, str(card))
    return target


__all__ = ["CARD_MARKER", "TEMPLATE_PATH", "MethodFacts", "build_model_card", "method_facts", "metrics_from_card",
           "write_model_card"]
