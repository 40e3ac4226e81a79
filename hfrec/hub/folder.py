"""What a saved model folder holds: its configs and the files that would be published.

Shared by the card, push and pull modules; not part of ``hfrec.hub``'s public API.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

#: file formats that are (or may be) Python pickles: never uploaded, never downloaded.
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.joblib")
#: trainer leftovers that are not part of a published model.
IGNORE_PATTERNS = (
    ".git/*", ".cache/*", "__pycache__/*", "*.pyc", "checkpoint-*/*", "*/checkpoint-*/*", "runs/*", "*.tmp", "*.lock",
    "stage1/*", "stage2/*",  # DELRec's per-stage working folders; the final soft prompt and adapter sit at the top
    "training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth",
)
ADAPTER_CONFIG_NAME = "adapter_config.json"


@dataclass
class ModelFolder:
    path: Path
    config: dict
    adapter_config: dict
    files: list[str]

    @property
    def is_adapter(self) -> bool:
        return bool(self.adapter_config)

    @property
    def bundles_base(self) -> bool:
        """A model and the adapter trained on it, saved together (DELRec: distilled base + LoRA).

        ``from_pretrained`` of such a folder loads the model next to the adapter as its base, whatever
        base the adapter config records, so the folder (the repository, once pushed) is the base.
        """
        return self.is_adapter and bool(self.config)


def read_json(path: Path) -> dict | list | None:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _list_files(model_dir: Path) -> list[str]:
    files = []
    for root, dirs, names in os.walk(model_dir):
        dirs[:] = sorted(d for d in dirs if d not in (".git", ".cache", "__pycache__"))
        for name in sorted(names):
            rel = (Path(root) / name).relative_to(model_dir).as_posix()
            if not any(fnmatch.fnmatch(rel, pat) for pat in IGNORE_PATTERNS):
                files.append(rel)
    return files


def inspect_folder(model_dir: str | os.PathLike) -> ModelFolder:
    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder (expected a folder written by save_pretrained)")
    config = read_json(path / "config.json") or {}
    adapter_config = read_json(path / ADAPTER_CONFIG_NAME) or {}
    if not config and not adapter_config:
        raise ValueError(f"{path} holds neither config.json nor {ADAPTER_CONFIG_NAME}: not a saved model or adapter")
    return ModelFolder(path, config, adapter_config, _list_files(path))


def pickled_files(files: Iterable[str]) -> list[str]:
    return [f for f in files if any(fnmatch.fnmatch(Path(f).name, pat) for pat in PICKLE_PATTERNS)]


__all__ = ["ADAPTER_CONFIG_NAME", "IGNORE_PATTERNS", "PICKLE_PATTERNS", "ModelFolder", "inspect_folder",
           "pickled_files", "read_json"]
