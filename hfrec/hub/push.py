"""Publishing a saved model folder with its generated card: :func:`push` and ``model.push_to_hub``."""

from __future__ import annotations

import functools
import os
import tempfile
from typing import Mapping, Sequence

from huggingface_hub import HfApi

from ..utils import atomic_write_json
from .cards import build_model_card, write_model_card
from .folder import ADAPTER_CONFIG_NAME, IGNORE_PATTERNS, ModelFolder, inspect_folder, pickled_files
from .records import EVAL_RESULTS_NAME, load_eval_results


class HubPushError(RuntimeError):
    """A push that did not complete; ``__cause__`` is the client's own error (HTTP or network)."""


def _record_own_base(folder: ModelFolder, repo_id: str) -> None:
    """Names ``repo_id`` as the adapter's base in a folder that bundles its base model (see ``bundles_base``).

    Trainers record the base as a local path (DELRec: its own output folder). Locally ``from_pretrained``
    ignores that path for such a folder, but loaded by repo id it fetches the recorded base, which exists on
    no other machine: naming the repository itself makes ``from_pretrained(repo_id)`` load this base + adapter.
    """
    if not folder.bundles_base or folder.adapter_config.get("base_model_name_or_path") == repo_id:
        return
    folder.adapter_config["base_model_name_or_path"] = repo_id
    atomic_write_json(folder.path / ADAPTER_CONFIG_NAME, folder.adapter_config)


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
    it is written there too so that the repo carries the numbers its card shows. A folder holding a
    model and the adapter trained on it (DELRec) gets ``repo_id`` as the adapter's recorded base.
    Returns the ``CommitInfo`` (``.oid`` is the commit hash, usable as ``revision=`` when pulling).
    Any failure raises (a ``huggingface_hub`` HTTP error, or a network error); a retry resumes:
    files already committed are not sent again.
    """
    folder = inspect_folder(model_dir)
    pickled = pickled_files(folder.files)
    if pickled:
        raise ValueError(
            f"{folder.path} holds pickled files {pickled}: hfrec publishes weights only as safetensors. "
            "Re-save the model with save_pretrained(..., safe_serialization=True) and remove the pickles."
        )
    if not any(f.endswith(".safetensors") for f in folder.files):
        raise ValueError(f"{folder.path} holds no .safetensors weights: nothing to publish")
    if eval_results is not None and not (folder.path / EVAL_RESULTS_NAME).exists():
        records = load_eval_results(eval_results)
        atomic_write_json(folder.path / EVAL_RESULTS_NAME, records if len(records) != 1 else records[0])
    _record_own_base(folder, repo_id)
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


__all__ = ["HubPushError", "enable_card_push", "push"]
