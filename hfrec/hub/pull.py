"""Fetching a model repository: :func:`pull` (safetensors only), optionally placed in a folder atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from huggingface_hub import HfApi
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RevisionNotFoundError

from .folder import PICKLE_PATTERNS, pickled_files


def _place_atomically(src: Path, local_dir: Path, files: Sequence[str] | None = None) -> Path:
    """Copies ``src`` (only ``files``, relative paths, when given) into ``local_dir``; a failure leaves it as it was.

    The copy is staged in a hidden sibling folder and renamed into place, the folder form of hfrec.utils'
    temp-file + rename writers.
    """
    local_dir = local_dir.resolve()
    if local_dir.exists() and any(local_dir.iterdir()):
        raise FileExistsError(f"{local_dir} exists and is not empty; choose an empty or new folder")
    local_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{local_dir.name}.", suffix=".partial", dir=local_dir.parent))
    try:
        if files is None:
            files = [p.relative_to(src).as_posix() for p in sorted(src.rglob("*")) if not p.is_dir()]
        for rel in files:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile((src / rel).resolve(), staging / rel)  # resolve: cache snapshots hold symlinks to blobs
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
            refused = pickled_files(filenames)
            if refused:
                raise ValueError(f"hfrec never downloads pickled files: {refused}; ask for the .safetensors files")
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
    return _place_atomically(snapshot, Path(local_dir), files=filenames or None)


__all__ = ["pull"]
