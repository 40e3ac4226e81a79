"""Launchable script: `python trainers/sft_p2rec.py ...` or `accelerate launch trainers/sft_p2rec.py ...`.

Runs P2Rec end to end (SR teacher, latent categories, preference-parser SFT, LLM item embeddings, the SR model from
scratch and with them, ranking table). The logic lives in `hfrec.methods.p2rec.script` so `hfrec train p2rec` runs
the same code; `--help` lists every option.

    python trainers/sft_p2rec.py --preset cpu --output_dir runs/p2rec-cpu
    accelerate launch --config_file hfrec/trainers/accelerate_configs/single_gpu.yaml \
        trainers/sft_p2rec.py --preset gpu --output_dir runs/p2rec-gpu
"""

from hfrec.methods.p2rec.script import main, make_parser
from hfrec.utils import run_script

__all__ = ["main", "make_parser"]

if __name__ == "__main__":
    run_script(main)
