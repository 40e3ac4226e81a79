"""Launchable script: `python trainers/sft_trsr.py ...` or `accelerate launch trainers/sft_trsr.py ...`.

Runs LLM-TRSR end to end (SR teacher, cached block summaries, a LoRA yes/no recommender per summary mode, ranking
table). The logic lives in `hfrec.methods.trsr.script` so `hfrec train trsr` runs the same code; `--help` lists
every option.

    python trainers/sft_trsr.py --preset cpu --teacher_dir runs/sasrec --output_dir runs/trsr-cpu
    accelerate launch --config_file hfrec/trainers/accelerate_configs/single_gpu.yaml \
        trainers/sft_trsr.py --preset gpu --teacher_dir runs/sasrec --output_dir runs/trsr-gpu
"""

from hfrec.methods.trsr.script import main, make_parser
from hfrec.utils import run_script

__all__ = ["main", "make_parser"]

if __name__ == "__main__":
    run_script(main)
