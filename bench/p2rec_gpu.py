"""P2Rec on one GPU, in one run: the enhanced-vs-scratch comparison at full scale and the SFT cost claim.

    python bench/p2rec_gpu.py --out results/p2rec_gpu          # on an H100/H200, offline
    python bench/p2rec_gpu.py --out /tmp/smoke --teacher_epochs 1 --sr_epochs 1 --sr_seeds 1,2 --max_users 8 \\
        --max_steps 2 --eval_users 20 --item_max_tokens 8 --max_history 10 --sr_workers 2 \\
        --max_prefixes_per_user 2                               # a CPU smoke run of the same path

One call of the P2Rec script (``hfrec.methods.p2rec.script``, ``--preset gpu``) does it all: the SASRec teacher
(trained unless ``--teacher_dir``), k-means categories, user-level parser SFT and the item table once, then SASRec and
GRU4Rec from scratch and with the table over the preset's three seeds (full ranking over every item and the 20 stored
candidates, mean and standard deviation over the seeds), then instance-level SFT (one example per interaction prefix
-> the next item's category) on a fresh parser with the same settings, capped at ``--max_prefixes_per_user`` seeded
prefixes per user (all ~97k prefixes would take about 100x the user level's time); each level's record gives
examples, tokens and wall time, and the uncapped instance-level set's size and estimated time.

Any other flag goes to the P2Rec script (``python trainers/sft_p2rec.py --help``). Models go to ``--work_dir``; only
JSON goes to ``--out``: ``p2rec_gpu.json`` (environment, command, timings, the comparison summary, the SFT cost) and
``eval_results.json`` (every table row).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

# 12 SR models (2 types x 2 kinds x 3 seeds), 4 at a time: one small model alone leaves an H200 mostly idle
DEFAULTS = ["--preset", "gpu", "--sr_model", "sasrec,gru4rec", "--sr_workers", "4", "--compare_sft_levels", "true",
            "--max_prefixes_per_user", "4", "--disable_tqdm", "true"]
SUMMARY_METRICS = {"candidates": ("HR@1", "HR@5", "NDCG@5"), "full": ("NDCG@10", "HR@10")}


def environment() -> dict:
    import peft
    import torch
    import transformers
    import trl

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU: {platform.processor() or 'cpu'}"
    return {"device": device, "torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl.__version__, "peft": peft.__version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}


def summary(records: list[dict]) -> dict:
    """{label: {protocol: {metric: [mean, std]}}} of the mean-over-seeds rows (the single seed's row with one seed)."""
    means = [r for r in records if "metrics_std" in r] or [r for r in records if "train_seed" in r]
    out: dict = {}
    for record in means:
        std = record.get("metrics_std", {})
        out.setdefault(record["method"], {})[record["protocol"]] = {
            k: [round(record["metrics"][k], 4), round(std[k], 4) if k in std else None]
            for k in SUMMARY_METRICS[record["protocol"]]}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Other flags go to the P2Rec script.")
    parser.add_argument("--out", required=True, help="folder for the JSON results")
    parser.add_argument("--work_dir", default="/tmp/p2rec_gpu_run", help="folder for the models (emptied first)")
    args, passed = parser.parse_known_args(argv)
    from hfrec.methods.p2rec.script import main as p2rec_main

    shutil.rmtree(args.work_dir, ignore_errors=True)  # a fresh run: nothing reused, every stage timed
    script_argv = [*DEFAULTS, *passed, "--output_dir", args.work_dir]  # later flags win
    t0 = time.time()
    result = p2rec_main(script_argv)
    wall = round(time.time() - t0, 1)
    work, out = Path(args.work_dir), Path(args.out)
    records = json.loads((work / "eval_results.json").read_text(encoding="utf-8"))
    report = {"command": "python bench/p2rec_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "script_argv": script_argv, "environment": environment(), "wall_s": wall,
              "timings": result["timings"], "comparison": summary(records), "sft_cost": result["sft_cost"]}
    from hfrec.utils import atomic_write_json

    atomic_write_json(out / "p2rec_gpu.json", report)
    atomic_write_json(out / "eval_results.json", records)
    print(json.dumps({k: report[k] for k in ("wall_s", "comparison")}, indent=1))
    return report


if __name__ == "__main__":
    main()
