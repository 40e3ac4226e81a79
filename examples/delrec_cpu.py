"""DELRec's CPU preset end to end with a trained SR teacher: stage 1 (soft prompt), stage 2 (LoRA) and the table.

    python examples/train_sasrec.py --output-dir runs/sasrec
    python examples/delrec_cpu.py --teacher-dir runs/sasrec --output-dir runs/delrec

Any other option of the DELRec script can follow (`python trainers/sft_delrec.py --help`).
"""

import argparse

from hfrec.methods.delrec.script import main as delrec

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--teacher-dir", required=True, help="a folder written by `hfrec train sr`")
parser.add_argument("--output-dir", default="runs/delrec")
args, rest = parser.parse_known_args()

result = delrec(["--preset", "cpu", "--teacher_dir", args.teacher_dir, "--output_dir", args.output_dir, *rest])
print("DELRec HR@1:", round(result["final"]["HR@1"], 4), "seconds:", result["timings"]["total_s"])
