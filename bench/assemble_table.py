"""The one benchmark table from LLM methods' ``eval_results.json`` files alone (e.g. copied back from a GPU machine
whose run folders, SR models included, stayed there).

    python bench/assemble_table.py --out results/gpu-ml100k delrec=runs/delrec/eval_results.json \\
        peapod=runs/peapod/eval_results.json p2rec=runs/p2rec/eval_results.json

Popularity and the SASRec teacher come from the first file's baseline records (each method's script ranks them on
its own users); every row goes through ``BenchmarkTable``, which refuses rows ranked on other users or candidate
lists. Rows the benchmark ranks itself (GRU4Rec, Caser, full-catalogue columns of the baselines) are not in these
files: ``hfrec benchmark`` on the machine that holds the models gives them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hfrec.benchmark import add_method_records
from hfrec.benchmark_table import BenchmarkRow, BenchmarkTable

BASELINES = {"popularity": "Popularity", "SASRec (teacher)": "SASRec"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for results.md / results.json / results.png")
    parser.add_argument("--description", default="", help="a sentence on where the rows were run")
    parser.add_argument("runs", nargs="+", help="METHOD=PATH of an eval_results.json (METHOD: its registry name)")
    args = parser.parse_args()
    runs = [(name, json.loads(Path(path).read_text())) for name, path in (r.split("=", 1) for r in args.runs)]
    first = [r for r in runs[0][1] if r.get("baseline") and r["method"] in BASELINES]
    if len(first) != len(BASELINES):
        raise SystemExit(f"{runs[0][0]}: its records lack the baseline rows {sorted(BASELINES)}")
    ref = first[0]
    table = BenchmarkTable(ref["dataset"], ref["num_candidates"], ref["seed"], ref["user_ids"], ref["rows_fingerprint"],
                           teacher="SASRec", description=args.description)
    for record in first:
        table.add(BenchmarkRow(BASELINES[record["method"]], record["model_type"], record["ranks"], record["user_ids"],
                               record["rows_fingerprint"], source=runs[0][0], eval_s=record.get("eval_s"),
                               peak_memory_mb=record.get("peak_memory_mb")))
    for name, records in runs:
        add_method_records(table, name, records, where=name)
    print(table.save(args.out, sources=[r for r in args.runs]))


if __name__ == "__main__":
    main()
