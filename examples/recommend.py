"""Recommend with any trained hfrec folder (or Hub id) through the `next-item-recommendation` pipeline.

    python examples/recommend.py runs/sasrec --history "Star Wars (1977)" "Fargo (1996)"
    python examples/recommend.py runs/delrec --history 50 100 --candidates 1 2 3 181
"""

import argparse

import hfrec  # noqa: F401  registers the hfrec models and the pipeline task
from transformers import pipeline

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("model", help="trained folder or Hub repo id")
parser.add_argument("--history", nargs="+", required=True, help="item ids or exact titles, oldest first")
parser.add_argument("--candidates", nargs="+", default=None)
parser.add_argument("--top-k", type=int, default=5)
args = parser.parse_args()

recommend = pipeline("next-item-recommendation", model=args.model)
query = {"history": args.history, **({"candidates": args.candidates} if args.candidates else {})}
for item in recommend(query, top_k=args.top_k):
    print(f"{item['score']:9.4f}  {item['item_id']:>5}  {item['title']}")
