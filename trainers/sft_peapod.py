"""Launchable script: `python trainers/sft_peapod.py ...` or `accelerate launch trainers/sft_peapod.py ...`.

Runs PeaPOD end to end (SR teacher, interest vectors, PersonalizedPromptLM trained on its tasks, ranking tables).
The logic lives in `hfrec.methods.peapod.script` so `hfrec train peapod` runs the same code; `--help` lists every
option.

    python trainers/sft_peapod.py --preset cpu --teacher_dir runs/sasrec --output_dir runs/peapod-cpu
    accelerate launch --config_file hfrec/trainers/accelerate_configs/single_gpu.yaml \
        trainers/sft_peapod.py --preset gpu --teacher_dir runs/sasrec --output_dir runs/peapod-gpu
"""

from hfrec.methods.peapod.script import main, make_parser
from hfrec.utils import run_script

__all__ = ["main", "make_parser"]

if __name__ == "__main__":
    run_script(main)
