"""Loading a run's evaluation records (``eval_results.json``, docs/CONTRACTS.md) for its model card."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

EVAL_RESULTS_NAME = "eval_results.json"
_REQUIRED_EVAL_KEYS = ("dataset", "split", "protocol", "metrics")


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


def protocol_label(record: Mapping) -> str:
    """Short name of a record's protocol (``full``, ``candidates-20``): the card's dataset/metric config."""
    if record["protocol"] == "candidates":
        return f"candidates-{record.get('num_candidates', '?')}"
    return str(record["protocol"])


__all__ = ["EVAL_RESULTS_NAME", "load_eval_results", "protocol_label"]
