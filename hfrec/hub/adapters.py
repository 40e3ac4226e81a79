"""PEFT adapters: refuse one whose recorded base model is not the base model given."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

from .folder import ADAPTER_CONFIG_NAME


class AdapterBaseMismatchError(ValueError):
    """An adapter was asked to load onto a base model other than the one it was trained on."""


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
        cfg = path / ADAPTER_CONFIG_NAME
        if not cfg.is_file():
            raise FileNotFoundError(f"{path} has no adapter_config.json: not a PEFT adapter folder")
        return json.loads(cfg.read_text(encoding="utf-8")), str(path)
    from huggingface_hub import hf_hub_download

    try:
        local = hf_hub_download(str(adapter), ADAPTER_CONFIG_NAME, revision=revision, token=token, cache_dir=cache_dir)
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


__all__ = ["AdapterBaseMismatchError", "check_adapter_base", "load_adapter"]
