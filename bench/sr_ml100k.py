"""Benchmark: hfrec's SR models on ML-100K (full ranking, leave-one-out), quality and wall/CPU time.

    python bench/sr_ml100k.py --models sasrec --seeds 2020 2021 2022      # SASRec vs RecBole, 3 seeds
    python bench/sr_ml100k.py --models gru4rec caser --seeds 2020

Each run is `hfrec train sr` in a subprocess (so its CPU time is measured alone) with the default
SRTrainingConfig; results go to bench/results/hfrec_<model>_seed<seed>.json. Record figures in RESULTS.md.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def run(model: str, seed: int, out_root: Path, extra: list[str]) -> dict:
    out = out_root / f"{model}-seed{seed}"
    cmd = [sys.executable, "-m", "hfrec.cli", "train", "sr", "--model", model, "--dataset", "ml-100k",
           "--output_dir", str(out), "--seed", str(seed), "--disable_tqdm", "true",
           *extra]
    shutil.rmtree(out, ignore_errors=True)  # a fresh run, not a resumed one
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    records = json.loads((out / "eval_results.json").read_text())
    return {
        "model": model, "seed": seed, "command": " ".join(cmd[1:]),
        "test_full": records[0]["metrics"], "test_candidates": records[1]["metrics"],
        "epochs": records[0]["epochs"], "best_validation": records[0]["best_validation"],
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "nproc": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "device": _device_name(),
    }


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["sasrec"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    parser.add_argument("--out-root", default="/tmp/hfrec-bench")
    parser.add_argument("--results-dir", default=str(HERE / "results"))
    parser.add_argument("--tag", default="", help="suffix of the result files, e.g. '_gpu'")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="passed on to `hfrec train sr` after `--`")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    results_dir = Path(args.results_dir)
    results_dir.mkdir(exist_ok=True)
    for model in args.models:
        for seed in args.seeds:
            result = run(model, seed, Path(args.out_root), extra)
            path = results_dir / f"hfrec_{model}_seed{seed}{args.tag}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=2) + "\n")
            tmp.replace(path)
            print(json.dumps({k: result[k] for k in ("model", "seed", "epochs", "wall_seconds", "cpu_seconds")}
                             | {"NDCG@10": result["test_full"]["NDCG@10"], "HR@10": result["test_full"]["HR@10"]}),
                  flush=True)


if __name__ == "__main__":
    main()
