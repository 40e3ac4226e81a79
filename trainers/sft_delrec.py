"""Launchable script: `python trainers/sft_delrec.py ...` or `accelerate launch trainers/sft_delrec.py ...`.

Runs DELRec end to end (SR teacher, stage 1 soft-prompt distilling, stage 2 LoRA, ranking table). The logic
lives in `hfrec.methods.delrec.script` so `hfrec train delrec` runs the same code; `--help` lists every option.

    python trainers/sft_delrec.py --preset cpu --output_dir runs/delrec-cpu
    accelerate launch --config_file hfrec/trainers/accelerate_configs/multi_gpu_ddp.yaml \
        trainers/sft_delrec.py --preset gpu --output_dir runs/delrec-gpu
"""

from hfrec.methods.delrec.script import main, make_parser
from hfrec.utils import run_script

__all__ = ["main", "make_parser"]

if __name__ == "__main__":
    run_script(main)
