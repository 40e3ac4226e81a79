"""Generate the model cards of the models this project trains, from their benchmark run folders.

Each run folder is what a training script wrote: the model (``config.json`` + safetensors) or a PEFT
adapter (``adapter_config.json``), and the ``eval_results.json`` of its evaluation. The card is built by
``hfrec.hub.build_model_card`` -- the same code ``hfrec push`` uses -- so its metrics are the run's own,
never typed by hand. Cards land in ``model_cards/<run name>/README.md``; run folders are not modified.

    python model_cards/generate.py runs/benchmark                 # every run folder found under it
    python model_cards/generate.py runs/benchmark/sasrec-ml100k   # one run
    python model_cards/generate.py runs/benchmark --check         # exit 1 if a card is missing or stale

A folder is a run when it holds ``eval_results.json`` and ``config.json`` or ``adapter_config.json``;
other folders are searched (three levels deep) for runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def is_run(folder: Path) -> bool:
    return (folder / "eval_results.json").is_file() and (
        (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file())


def find_runs(paths: list[Path], depth: int = 3) -> list[Path]:
    runs: list[Path] = []

    def visit(folder: Path, level: int) -> None:
        if is_run(folder):
            runs.append(folder)
            return
        if level >= depth:
            return
        for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "checkpoint-"))):
            visit(child, level + 1)

    for path in paths:
        if not path.is_dir():
            raise SystemExit(f"generate.py: {path} is not a folder")
        visit(path, 0)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, or folders holding run folders")
    parser.add_argument("--out", type=Path, default=HERE, help="where the cards go (default: model_cards/)")
    parser.add_argument("--namespace", default="hfrec", help="Hub namespace of the repos the cards describe")
    parser.add_argument("--check", action="store_true", help="write nothing; fail if a card is missing or stale")
    args = parser.parse_args(argv)

    from hfrec.hub import build_model_card
    from hfrec.utils import atomic_write_text

    runs = find_runs(args.runs)
    if not runs:
        print("generate.py: no run folder (eval_results.json + config.json/adapter_config.json) found", file=sys.stderr)
        return 1
    stale = []
    for run in runs:
        name = run.name
        card = str(build_model_card(run, repo_id=f"{args.namespace}/{name}"))
        target = args.out / name / "README.md"
        if args.check:
            if not target.is_file() or target.read_text(encoding="utf-8") != card:
                stale.append(str(target))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, card)
        print(f"{run} -> {target}")
    if stale:
        print("generate.py: missing or stale cards (re-run without --check):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
