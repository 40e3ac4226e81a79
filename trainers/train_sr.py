"""Launchable script: `python trainers/train_sr.py ...` or `accelerate launch trainers/train_sr.py ...`.

The logic lives in `hfrec.trainers.train_sr` so `hfrec train sr` runs the same code; `--help` lists every
option.

    accelerate launch trainers/train_sr.py --model sasrec --dataset ml-100k --output_dir runs/sasrec-ml100k
"""

from hfrec.trainers.train_sr import main, make_parser
from hfrec.utils import run_script

__all__ = ["main", "make_parser"]

if __name__ == "__main__":
    run_script(main)
