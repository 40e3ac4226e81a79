"""Publishing and fetching hfrec models on the Hugging Face Hub.

Everything goes through the ordinary ``huggingface_hub`` client, so any Hub-compatible endpoint works
(``HF_ENDPOINT``, read by ``huggingface_hub`` when it is imported):

- :func:`push` uploads a saved model folder (an hfrec model, DELRec, or a PEFT adapter) with
  ``HfApi.create_repo`` + ``HfApi.upload_folder``, after writing a generated model card as README.md
  (replacing a boilerplate card such as PEFT's; a README written by a person is kept). Weights must be
  safetensors: a folder holding pickled weights is refused before anything is sent.
- :func:`build_model_card` renders ``templates/model_card.md`` with ``huggingface_hub.ModelCard``.
  Its ``model-index`` metrics are read from the run's ``eval_results.json`` (see docs/CONTRACTS.md),
  never typed by hand; :func:`metrics_from_card` reads them back.
- :func:`pull` downloads a repository (``snapshot_download``; pickle files are never fetched) and
  optionally places it in ``local_dir`` atomically: on any error nothing is left there.
- :func:`check_adapter_base` / :func:`load_adapter` refuse an adapter whose recorded base model
  differs from the base model given.
- :func:`enable_card_push` makes ``model.push_to_hub(repo_id)`` of a model class upload the card too.
- :func:`add_push_parser` / :func:`add_pull_parser` add ``hfrec push`` / ``hfrec pull`` to a CLI.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RevisionNotFoundError

from .utils import atomic_write_text

__all__ = [
    "AdapterBaseMismatchError",
    "HubPushError",
    "CARD_MARKER",
    "EVAL_RESULTS_NAME",
    "PICKLE_PATTERNS",
    "add_pull_parser",
    "add_push_parser",
    "build_model_card",
    "check_adapter_base",
    "enable_card_push",
    "load_adapter",
    "load_eval_results",
    "metrics_from_card",
    "pull",
    "pull_command",
    "push",
    "push_command",
    "write_model_card",
]

EVAL_RESULTS_NAME = "eval_results.json"
TEMPLATE_PATH = Path(__file__).parent / "templates" / "model_card.md"
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
#: file formats that are (or may be) Python pickles: never uploaded, never downloaded.
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.joblib")
#: trainer leftovers that are not part of a published model.
IGNORE_PATTERNS = (
    ".git/*", ".cache/*", "__pycache__/*", "*.pyc", "checkpoint-*/*", "*/checkpoint-*/*", "runs/*", "*.tmp", "*.lock",
    "stage1/*", "stage2/*",  # DELRec's per-stage working folders; the final soft prompt and adapter sit at the top
    "training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth",
)
_REQUIRED_EVAL_KEYS = ("dataset", "split", "protocol", "metrics")
_SR_MODEL_TYPES = ("sasrec", "gru4rec", "caser")
_LLM_MODEL_TYPES = ("delrec", "trsr", "llm_trsr", "peapod", "p2rec")
_DATASET_NAMES = {
    "ml-100k": "MovieLens-100K",
    "ml-1m": "MovieLens-1M",
    "steam": "Steam",
    "beauty": "Amazon Beauty",
    "games": "Amazon Games",
    "lastfm": "LastFM",
}
_METHOD_NAMES = {
    "sasrec": "SASRec",
    "gru4rec": "GRU4Rec",
    "caser": "Caser",
    "delrec": "DELRec",
    "trsr": "LLM-TRSR",
    "llm_trsr": "LLM-TRSR",
    "peapod": "PeaPOD",
    "p2rec": "P2Rec",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class AdapterBaseMismatchError(ValueError):
    """An adapter was asked to load onto a base model other than the one it was trained on."""


class HubPushError(RuntimeError):
    """A push that did not complete; ``__cause__`` is the client's own error (HTTP or network)."""


# --------------------------------------------------------------------------------------------------
# reading a model folder
# --------------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict | list | None:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_eval_results(source: str | os.PathLike | Mapping | Sequence[Mapping] | None) -> list[dict]:
    """The evaluation records of a run, as a list (``eval_results.json`` may hold one object or a list).

    ``source`` is a path to the JSON file, a model folder holding ``eval_results.json``, an already
    loaded dict/list, or None (no evaluation: an empty list). Each record needs ``dataset``,
    ``split``, ``protocol`` and ``metrics`` (docs/CONTRACTS.md); a missing key raises ValueError.
    """
    if source is None:
        return []
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            path = path / EVAL_RESULTS_NAME
        if not path.is_file():
            raise FileNotFoundError(f"No evaluation results at {path}")
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        origin = str(path)
    else:
        data, origin = source, "eval_results"
    records = [data] if isinstance(data, Mapping) else list(data)
    out = []
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise ValueError(f"{origin}: entry {i} is a {type(record).__name__}, expected an object")
        missing = [k for k in _REQUIRED_EVAL_KEYS if k not in record]
        if missing:
            raise ValueError(f"{origin}: entry {i} lacks {missing} (docs/CONTRACTS.md lists the fields)")
        if not isinstance(record["metrics"], Mapping) or not record["metrics"]:
            raise ValueError(f"{origin}: entry {i} has no metrics")
        for name, value in record["metrics"].items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"{origin}: metric {name!r} of entry {i} is {value!r}, not a number")
        out.append(dict(record))
    return out


def _protocol_label(record: Mapping) -> str:
    if record["protocol"] == "candidates":
        return f"candidates-{record.get('num_candidates', '?')}"
    return str(record["protocol"])


@dataclass
class _ModelFolder:
    path: Path
    config: dict
    adapter_config: dict
    files: list[str]

    @property
    def is_adapter(self) -> bool:
        return bool(self.adapter_config)


def _list_files(model_dir: Path) -> list[str]:
    files = []
    for root, dirs, names in os.walk(model_dir):
        dirs[:] = sorted(d for d in dirs if d not in (".git", ".cache", "__pycache__"))
        for name in sorted(names):
            rel = (Path(root) / name).relative_to(model_dir).as_posix()
            if not any(fnmatch.fnmatch(rel, pat) for pat in IGNORE_PATTERNS):
                files.append(rel)
    return files


def _inspect(model_dir: str | os.PathLike) -> _ModelFolder:
    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder (expected a folder written by save_pretrained)")
    config = _read_json(path / "config.json") or {}
    adapter_config = _read_json(path / "adapter_config.json") or {}
    if not config and not adapter_config:
        raise ValueError(f"{path} holds neither config.json nor adapter_config.json: not a saved model or adapter")
    return _ModelFolder(path, config, adapter_config, _list_files(path))


def _pickles(files: Iterable[str]) -> list[str]:
    return [f for f in files if any(fnmatch.fnmatch(Path(f).name, pat) for pat in PICKLE_PATTERNS)]


def _first(*values):
    for value in values:
        if value not in (None, "", [], {}):
            return value
    return None


# --------------------------------------------------------------------------------------------------
# model cards
# --------------------------------------------------------------------------------------------------
def _method(folder: _ModelFolder, records: list[dict]) -> str:
    config = folder.config
    method = _first(config.get("hfrec_method"), config.get("model_type"),
                    *(r.get("model_type") for r in records))
    if folder.is_adapter and not config:
        method = _first(*(r.get("model_type") for r in records), str(folder.adapter_config.get("peft_type", "lora")).lower())
    return str(method or "model").lower()


def _base_model(folder: _ModelFolder, records: list[dict]) -> str | None:
    candidates = (
        *(r.get("base_model") for r in records),
        folder.config.get("hfrec_base_model"),
        folder.adapter_config.get("base_model_name_or_path"),
        folder.config.get("base_model_name_or_path"),
        folder.config.get("backbone_name_or_path"),
        folder.config.get("llm_name_or_path"),
    )
    # A local folder (e.g. a DELRec folder that is its own adapter base) names no model others can fetch.
    return _first(*(c for c in candidates if c and not os.path.isabs(str(c)) and not str(c).startswith(".")))


def _teacher(folder: _ModelFolder, records: list[dict]) -> str | None:
    config = folder.config
    return _first(
        *(r.get("teacher") for r in records),
        config.get("hfrec_teacher"), config.get("teacher"), config.get("teacher_name_or_path"), config.get("teacher_name"),
        config.get("teacher_model"), config.get("teacher_model_type"),
    )


def _command(folder: _ModelFolder, records: list[dict], command: str | None) -> str | None:
    return _first(
        command,
        folder.config.get("hfrec_command"),
        *(r.get("train_command") for r in records),
        *(r.get("command") for r in records),
    )


def _pipeline_tag(folder: _ModelFolder, method: str) -> str:
    if folder.is_adapter or method in _LLM_MODEL_TYPES:
        return "text-generation"
    archs = folder.config.get("architectures") or []
    if any(a.endswith("ForCausalLM") for a in archs):
        return "text-generation"
    return "other"  # the Hub has no recommendation task: "other" is its catch-all pipeline tag


def _loading_snippet(folder: _ModelFolder, repo_id: str, method: str, base_model: str | None) -> str:
    rev = ', revision="main"'
    if folder.is_adapter:
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
    archs = folder.config.get("architectures") or []
    causal = any(a.endswith("ForCausalLM") for a in archs)
    auto = "AutoModelForCausalLM" if causal else "AutoModel"
    lines = [
        "import hfrec  # registers hfrec's configs and models with the Auto classes",
        f"from transformers import {auto}",
        "",
        f'model = {auto}.from_pretrained("{repo_id}"{rev})',
    ]
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
    folder = _inspect(model_dir)
    if eval_results is None and (folder.path / EVAL_RESULTS_NAME).is_file():
        eval_results = folder.path / EVAL_RESULTS_NAME
    records = load_eval_results(eval_results)
    method = _method(folder, records)
    # A run may also rank its baselines (DELRec's table: popularity, teacher, zero-shot LLM): only the
    # records of this model's own type describe it; the others are comparisons, not its metrics.
    baselines = [r for r in records if r.get("model_type") not in (None, method)]
    records = [r for r in records if r.get("model_type") in (None, method)]
    method_name = _METHOD_NAMES.get(method, method)
    name = repo_id.split("/")[-1] if repo_id else folder.path.resolve().name
    repo_for_snippet = repo_id or f"<user>/{name}"
    base_model = _base_model(folder, records)
    teacher = _teacher(folder, records)
    train_command = _command(folder, records, command)
    datasets = sorted({str(r["dataset"]) for r in records})

    results = []
    for record in records:
        label = _protocol_label(record)
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
        card_tags += ["peft", str(folder.adapter_config.get("peft_type", "lora")).lower()]
    card_tags += list(tags or [])
    card_data = ModelCardData(
        library_name="peft" if folder.is_adapter else "transformers",
        base_model=base_model if base_model and _HUB_ID.match(base_model) and not Path(base_model).exists() else None,
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
            "label": _protocol_label(record),
            "seed": record.get("seed", "n/a"),
            "num_users": record.get("num_users", "n/a"),
            "date": record.get("date", "n/a"),
            "values": [record["metrics"].get(m) for m in metric_names],
        })
    weight_files = [f for f in folder.files if f.endswith(".safetensors")]
    template_kwargs = dict(
        marker=CARD_MARKER,
        name=name,
        method=method,
        method_name=method_name,
        is_adapter=folder.is_adapter,
        peft_type=folder.adapter_config.get("peft_type"),
        lora_r=folder.adapter_config.get("r"),
        target_modules=folder.adapter_config.get("target_modules"),
        architectures=", ".join(folder.config.get("architectures") or []) or None,
        num_items=folder.config.get("num_items"),
        max_seq_length=folder.config.get("max_seq_length"),
        base_model_text=base_model,
        teacher=teacher,
        command=train_command,
        protocol_rows=protocol_rows,
        metric_names=metric_names,
        load_snippet=_loading_snippet(folder, repo_for_snippet, method, base_model),
        files=[f for f in folder.files if f != "README.md"],
        weight_files=weight_files,
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
        from hfrec import __version__

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


# --------------------------------------------------------------------------------------------------
# push
# --------------------------------------------------------------------------------------------------
def push(
    model_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    eval_results: str | os.PathLike | Mapping | Sequence[Mapping] | None = None,
    command: str | None = None,
    tags: Sequence[str] | None = None,
    endpoint: str | None = None,
):
    """Uploads a saved model or adapter folder to ``repo_id`` with its generated model card.

    Steps: refuse pickled files; write README.md (see :func:`write_model_card`; a hand-written README
    is kept); ``create_repo(exist_ok=True)``; ``create_branch`` when ``revision`` names a branch
    other than main; ``upload_folder`` (trainer leftovers such as ``checkpoint-*/`` are skipped).
    If ``eval_results`` is given (path, dict or list) and the folder has no ``eval_results.json``,
    it is written there too so that the repo carries the numbers its card shows.
    Returns the ``CommitInfo`` (``.oid`` is the commit hash, usable as ``revision=`` when pulling).
    Any failure raises (a ``huggingface_hub`` HTTP error, or a network error); a retry resumes:
    files already committed are not sent again.
    """
    folder = _inspect(model_dir)
    pickled = _pickles(folder.files)
    if pickled:
        raise ValueError(
            f"{folder.path} holds pickled files {pickled}: hfrec publishes weights only as safetensors. "
            "Re-save the model with save_pretrained(..., safe_serialization=True) and remove the pickles."
        )
    if not any(f.endswith(".safetensors") for f in folder.files):
        raise ValueError(f"{folder.path} holds no .safetensors weights: nothing to publish")
    if eval_results is not None and not (folder.path / EVAL_RESULTS_NAME).exists():
        records = load_eval_results(eval_results)
        atomic_write_text(folder.path / EVAL_RESULTS_NAME, json.dumps(records if len(records) != 1 else records[0], indent=2) + "\n")
    card = build_model_card(folder.path, eval_results=eval_results, command=command, repo_id=repo_id, tags=tags)
    write_model_card(folder.path, card)

    api = HfApi(endpoint=endpoint, token=token)
    stage = "validating the card's metadata"
    try:
        # The Hub checks README metadata on commit; upload_folder's streamed path does not ask first, so ask
        # here (as create_commit does) and fail before anything is created.
        validate = getattr(api, "_validate_yaml", None)
        if validate is not None:
            validate(str(card), repo_type="model")
        stage = "creating the repository"
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision and revision != "main" and not revision.startswith("refs/"):
            stage = f"creating branch {revision!r}"
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        stage = "uploading and committing the files"
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder.path,
            revision=revision,
            commit_message=commit_message or f"Upload {card.data.model_name} with hfrec",
            ignore_patterns=list(IGNORE_PATTERNS),
        )
    except ValueError:  # invalid card metadata: the Hub's own message says what is wrong
        raise
    except Exception as err:
        raise HubPushError(
            f"Pushing {folder.path} to {repo_id}@{revision or 'main'} at {api.endpoint} failed while {stage}: "
            f"{type(err).__name__}: {err}\nNo commit was made by this push. Re-run the same push to retry: files "
            "the repository already holds unchanged are skipped."
        ) from err


def enable_card_push(cls):
    """Class decorator: ``model.push_to_hub(repo_id, ...)`` goes through :func:`push`, card included.

    The patched method saves the model (and ``tokenizer`` if given) into a temporary folder, adds
    ``eval_results`` (path, dict or list) when given, and pushes that folder. Keyword arguments:
    ``private``, ``revision``, ``token``, ``commit_message``, ``eval_results``, ``command``,
    ``tags``, ``tokenizer``, ``max_shard_size``. Returns the commit URL, as transformers does.
    Applied by ``hfrec`` to its own model classes; modelling files need no import of hfrec.
    """
    if getattr(cls.push_to_hub, "_hfrec_card_push", False):
        return cls

    @functools.wraps(cls.push_to_hub)
    def push_to_hub(self, repo_id: str, *, commit_message: str | None = None, private: bool | None = None,
                    token: str | None = None, revision: str | None = None, tags: Sequence[str] | None = None,
                    eval_results=None, command: str | None = None, tokenizer=None,
                    max_shard_size: int | str = "50GB", **kwargs) -> str:
        if kwargs.get("create_pr"):
            raise ValueError("hfrec's push_to_hub does not open pull requests; push to a branch with revision=...")
        with tempfile.TemporaryDirectory(prefix="hfrec-push-") as tmp:
            self.save_pretrained(tmp, max_shard_size=max_shard_size)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            info = push(tmp, repo_id, private=bool(private), revision=revision, token=token,
                        commit_message=commit_message, eval_results=eval_results, command=command, tags=tags)
        return info.commit_url

    push_to_hub._hfrec_card_push = True
    cls.push_to_hub = push_to_hub
    return cls


# --------------------------------------------------------------------------------------------------
# pull
# --------------------------------------------------------------------------------------------------
def _place_atomically(src: Path, local_dir: Path) -> Path:
    """Copies ``src`` into ``local_dir`` so that a failure leaves ``local_dir`` as it was."""
    local_dir = local_dir.resolve()
    if local_dir.exists() and any(local_dir.iterdir()):
        raise FileExistsError(f"{local_dir} exists and is not empty; choose an empty or new folder")
    local_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{local_dir.name}.", suffix=".partial", dir=local_dir.parent))
    try:
        for item in sorted(src.rglob("*")):
            rel = item.relative_to(src)
            if item.is_dir():
                (staging / rel).mkdir(parents=True, exist_ok=True)
            else:
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(item.resolve(), staging / rel)
        if local_dir.exists():
            local_dir.rmdir()  # empty, checked above
        os.replace(staging, local_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return local_dir


def pull(
    repo_id: str,
    revision: str | None = None,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    filenames: Sequence[str] | None = None,
    endpoint: str | None = None,
) -> Path:
    """Downloads a model repository and returns the folder to pass to ``from_pretrained``.

    Without ``local_dir`` the files stay in the Hugging Face cache (``cache_dir``); with it they are
    copied there only once every file has arrived (nothing is left in ``local_dir`` on error).
    ``filenames`` restricts the download to those files, each of which must exist. Pickle files
    (``*.bin``, ``*.pt``, ...) are never downloaded. Errors are ``huggingface_hub``'s own:
    ``RepositoryNotFoundError``, ``RevisionNotFoundError``, ``EntryNotFoundError``.
    """
    from huggingface_hub import hf_hub_download, snapshot_download

    try:
        if filenames:
            api = HfApi(endpoint=endpoint, token=token)
            sha = api.repo_info(repo_id, revision=revision).sha  # pin every file to one commit
            refused = _pickles(filenames)
            if refused:
                raise ValueError(f"hfrec never downloads pickled files: {refused}")
            paths = [
                hf_hub_download(repo_id, name, revision=sha, cache_dir=cache_dir, token=token, endpoint=endpoint)
                for name in filenames
            ]
            snapshot = Path(paths[0]).parents[len(Path(filenames[0]).parts) - 1]
        else:
            snapshot = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, token=token,
                                              ignore_patterns=list(PICKLE_PATTERNS), endpoint=endpoint))
    except RevisionNotFoundError as err:
        err.append_to_message(f"\nhfrec: revision {revision!r} does not exist in {repo_id}; nothing was written locally.")
        raise
    except EntryNotFoundError as err:
        if isinstance(err, HfHubHTTPError):
            err.append_to_message(f"\nhfrec: {repo_id}@{revision or 'main'} lacks one of {list(filenames or [])}; "
                                  "nothing was written locally.")
        raise
    if local_dir is None:
        return snapshot
    if filenames:
        with tempfile.TemporaryDirectory(prefix="hfrec-pull-") as tmp:
            for name in filenames:
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile((snapshot / name).resolve(), Path(tmp) / name)
            return _place_atomically(Path(tmp), Path(local_dir))
    return _place_atomically(snapshot, Path(local_dir))


# --------------------------------------------------------------------------------------------------
# adapters
# --------------------------------------------------------------------------------------------------
def _canonical_model_name(name_or_path: str) -> str:
    """``org/name`` for Hub ids and Hub-cache snapshot folders, the resolved path for other folders."""
    name = str(name_or_path).rstrip("/")
    path = Path(name).expanduser()
    if path.exists():
        resolved = path.resolve()
        parts = resolved.parts
        for i, part in enumerate(parts):
            if part.startswith("models--") and i + 2 < len(parts) and parts[i + 1] == "snapshots":
                return part[len("models--"):].replace("--", "/")
        return str(resolved)
    return name


def _base_name_of(base_model: Any) -> str:
    if isinstance(base_model, (str, os.PathLike)):
        return str(base_model)
    for obj in (base_model, getattr(base_model, "config", None)):
        for attr in ("name_or_path", "_name_or_path"):
            value = getattr(obj, attr, None)
            if value:
                return str(value)
    raise ValueError(f"Cannot tell which model {type(base_model).__name__} is: it records no name_or_path")


def _same_base(recorded: str, given: str) -> bool:
    a, b = _canonical_model_name(recorded), _canonical_model_name(given)
    if a.lower() == b.lower():
        return True
    # A Hub id against a local folder (e.g. the model copied into a cache): compare the model names.
    local_a, local_b = Path(a).is_absolute(), Path(b).is_absolute()
    if local_a != local_b:
        return Path(a).name.lower() == Path(b).name.lower()
    return False


def _adapter_config(adapter: str | os.PathLike, revision: str | None, token: str | None,
                    cache_dir: str | os.PathLike | None = None) -> tuple[dict, str]:
    path = Path(adapter)
    if path.is_dir():
        cfg = path / "adapter_config.json"
        if not cfg.is_file():
            raise FileNotFoundError(f"{path} has no adapter_config.json: not a PEFT adapter folder")
        return json.loads(cfg.read_text(encoding="utf-8")), str(path)
    from huggingface_hub import hf_hub_download

    try:
        local = hf_hub_download(str(adapter), "adapter_config.json", revision=revision, token=token, cache_dir=cache_dir)
    except EntryNotFoundError as err:
        if isinstance(err, HfHubHTTPError):
            err.append_to_message(f"\nhfrec: {adapter} has no adapter_config.json: not a PEFT adapter repository.")
        raise
    return json.loads(Path(local).read_text(encoding="utf-8")), f"{adapter}@{revision or 'main'}"


def check_adapter_base(adapter_dir_or_repo: str | os.PathLike, base_model: Any, revision: str | None = None,
                       token: str | None = None, cache_dir: str | os.PathLike | None = None) -> str:
    """Checks that ``base_model`` is the model the adapter was trained on; returns the recorded name.

    ``base_model`` is a model id, a folder, or a loaded model (its ``name_or_path`` is used). Names
    are compared after resolving Hub-cache folders to their repo id; a Hub id and a local folder
    match when the model names agree. Raises :class:`AdapterBaseMismatchError` (a ValueError)
    naming both models otherwise.
    """
    config, where = _adapter_config(adapter_dir_or_repo, revision, token, cache_dir)
    recorded = config.get("base_model_name_or_path")
    given = _base_name_of(base_model)
    if not recorded:
        raise AdapterBaseMismatchError(
            f"Adapter {where} records no base model (adapter_config.json has no base_model_name_or_path); "
            "refusing to guess. Pass allow_base_mismatch=True to load it anyway.")
    if not _same_base(recorded, given):
        raise AdapterBaseMismatchError(
            f"Adapter {where} was trained on base model {recorded!r}, but the base model given is {given!r}. "
            f"Load it onto {recorded!r} (or use AutoPeftModelForCausalLM.from_pretrained, which loads the recorded "
            "base), or pass allow_base_mismatch=True if the two are the same weights under another name.")
    return recorded


def load_adapter(base_model, adapter_dir_or_repo: str | os.PathLike, revision: str | None = None,
                 token: str | None = None, allow_base_mismatch: bool = False, **kwargs):
    """``PeftModel.from_pretrained(base_model, adapter)`` after :func:`check_adapter_base`.

    The check runs before the base model is touched: on a mismatch it is returned unmodified.
    """
    from peft import PeftModel

    if not allow_base_mismatch:
        check_adapter_base(adapter_dir_or_repo, base_model, revision=revision, token=token,
                           cache_dir=kwargs.get("cache_dir"))
    if revision is not None:
        kwargs["revision"] = revision
    if token is not None:
        kwargs["token"] = token
    return PeftModel.from_pretrained(base_model, str(adapter_dir_or_repo), **kwargs)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
_PUSH_EXAMPLES = """examples:
  hfrec push runs/sasrec-ml100k me/sasrec-ml100k
  hfrec push runs/delrec-ml100k me/delrec-ml100k --private --revision v1
  hfrec push runs/delrec-lora me/delrec-lora --eval-results runs/delrec-lora/eval_results.json

The folder is what save_pretrained wrote (an hfrec model, DELRec, or a PEFT adapter). A model card
(README.md) is generated from config.json / adapter_config.json and eval_results.json first.
The endpoint is HF_ENDPOINT (default https://huggingface.co); the token is HF_TOKEN or `hf auth login`.
"""

_PULL_EXAMPLES = """examples:
  hfrec pull me/sasrec-ml100k
  hfrec pull me/delrec-ml100k --revision v1 --local-dir models/delrec
  hfrec pull me/delrec-ml100k --revision 0123abcd... --cache-dir /data/hf

Prints the local folder; load it with from_pretrained. Pickled files are never downloaded.
"""


def add_push_parser(subparsers) -> argparse.ArgumentParser:
    """Adds ``push`` to an argparse sub-parser set; ``args.func(args)`` runs it."""
    parser = subparsers.add_parser(
        "push", help="upload a saved model or adapter folder with a generated model card",
        description="Upload a saved hfrec model, DELRec model or PEFT adapter to the Hugging Face Hub.",
        epilog=_PUSH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", metavar="DIR", help="folder written by save_pretrained")
    parser.add_argument("repo_id", metavar="REPO_ID", help="target repository, e.g. me/sasrec-ml100k")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", metavar="BRANCH", default=None, help="branch to push to (created if missing)")
    parser.add_argument("--eval-results", metavar="JSON", default=None,
                        help="evaluation JSON (default: DIR/eval_results.json when present)")
    parser.add_argument("--command", dest="train_command", metavar="CMD", default=None,
                        help="training command to show on the card (default: from the run's records)")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    parser.set_defaults(func=push_command)
    return parser


def push_command(args: argparse.Namespace) -> int:
    info = push(args.model_dir, args.repo_id, private=args.private, revision=args.revision, token=args.token,
                commit_message=args.commit_message, eval_results=args.eval_results, command=args.train_command)
    print(f"pushed {args.model_dir} to {args.repo_id}@{args.revision or 'main'}")
    print(f"commit {info.oid}")
    print(info.commit_url)
    return 0


def add_pull_parser(subparsers) -> argparse.ArgumentParser:
    """Adds ``pull`` to an argparse sub-parser set; ``args.func(args)`` runs it."""
    parser = subparsers.add_parser(
        "pull", help="download a model repository (safetensors only) and print its folder",
        description="Download an hfrec model or adapter repository from the Hugging Face Hub.",
        epilog=_PULL_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo_id", metavar="REPO_ID")
    parser.add_argument("--revision", default=None, help="branch, tag or commit hash (default: main)")
    parser.add_argument("--local-dir", default=None, help="copy the files to this (new or empty) folder")
    parser.add_argument("--cache-dir", default=None, help="Hugging Face cache folder to download into")
    parser.add_argument("--token", default=None)
    parser.set_defaults(func=pull_command)
    return parser


def pull_command(args: argparse.Namespace) -> int:
    path = pull(args.repo_id, revision=args.revision, local_dir=args.local_dir, cache_dir=args.cache_dir,
                token=args.token)
    print(path)
    return 0
