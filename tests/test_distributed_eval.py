"""Evaluation split across processes: two CPU processes (gloo, `accelerate launch`) each score a share of the users,
every user exactly once, and the gathered metrics equal a one-process run with the same scorer."""

import json
import subprocess
import sys

from conftest import accelerate_cpu_launch

SCRIPT = '''
import json, sys
import torch
from accelerate import PartialState
from hfrec.data import load_benchmark
from hfrec.evaluation import evaluate_scorer, process_rank_and_count
from hfrec.utils import run_script

PartialState()  # joins the process group that `accelerate launch` set up (gloo on CPU)
rank, processes = process_rank_and_count()
data_dir, out = sys.argv[1], sys.argv[2]
ds = load_benchmark("atomic", data_dir=data_dir, num_candidates=10, seed=42)
scored = []

def scorer(batch, protocol):  # deterministic, not trivial: the rank of a user never depends on the process
    scored.extend(int(u) for u in batch["user_id"])
    users = torch.as_tensor(batch["user_id"])[:, None]
    items = torch.as_tensor(batch["candidates"]) if protocol == "candidates" else torch.arange(ds.num_items + 1)
    return ((users * 31 + items * 17) % 13).float().expand(len(users), -1)

def main():
    result = {p: evaluate_scorer(scorer, ds["test"], p, batch_size=7, progress=False) for p in ("full", "candidates")}
    with open(f"{out}/rank{rank}.json", "w") as handle:
        json.dump({"scored": scored, "metrics": result, "processes": processes}, handle)

run_script(main)  # leaves the gloo group cleanly, as the launchable scripts do
'''


def test_two_processes_split_the_users_and_match_one_process(tiny_folder, tmp_path):
    script = tmp_path / "evaluate.py"
    script.write_text(SCRIPT)
    done = accelerate_cpu_launch(script, tiny_folder, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    parts = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert {p["processes"] for p in parts} == {2}

    from hfrec.data import load_benchmark

    test = load_benchmark("atomic", data_dir=str(tiny_folder), num_candidates=10, seed=42)["test"]
    users = [int(u) for u in test["user_id"]]
    for protocol_share in range(2):  # each protocol scores every user once, split between the processes
        shares = [p["scored"][protocol_share * len(p["scored"]) // 2:(protocol_share + 1) * len(p["scored"]) // 2]
                  for p in parts]
        assert shares[0] and shares[1] and not set(shares[0]) & set(shares[1])
        assert sorted(shares[0] + shares[1]) == sorted(users)
    assert parts[0]["metrics"] == parts[1]["metrics"]  # every process returns the gathered metrics

    one = tmp_path / "one"
    one.mkdir()
    done = subprocess.run([sys.executable, str(script), str(tiny_folder), str(one)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    single = json.loads((one / "rank0.json").read_text())
    assert single["processes"] == 1 and sorted(single["scored"]) == sorted(users + users)
    assert single["metrics"] == parts[0]["metrics"]
