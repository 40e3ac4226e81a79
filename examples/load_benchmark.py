"""Load a benchmark through the shared protocol and look at one test row.

    python examples/load_benchmark.py                       # MovieLens-100K, offline from the recbole wheel
    python examples/load_benchmark.py --dataset atomic --data-dir my_recbole_files/
"""

import argparse

from hfrec import load_benchmark

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--dataset", default="ml-100k")
parser.add_argument("--data-dir", default=None)
args = parser.parse_args()

ds = load_benchmark(args.dataset, data_dir=args.data_dir, num_candidates=20, seed=42)
print(ds)  # train / validation / test splits
print("stats:", ds.stats)
row = ds["test"][0]
titles = ds.item_titles
print("user", row["user_id"], "watched, oldest first:", [titles[i] for i in row["history"][-5:]])
print("next item (target):", titles[row["target"]])
print("its 20 stored candidates:", [titles[i] for i in row["candidates"]])
