"""Publish a trained folder to a Hub (with a generated model card) and load it back by its repo id.

    HF_TOKEN=... python examples/hub_push_pull.py runs/sasrec me/sasrec-ml100k
    HF_ENDPOINT=http://127.0.0.1:8080 python examples/hub_push_pull.py ...   # a local or test endpoint

HF_ENDPOINT is read when huggingface_hub is imported: set it in the environment, not in code.
"""

import argparse

import hfrec  # noqa: F401  registers the hfrec models and the pipeline task
from hfrec.hub import pull, push
from transformers import AutoConfig

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("folder", help="a folder written by `hfrec train ...`")
parser.add_argument("repo_id")
parser.add_argument("--private", action="store_true")
parser.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT or huggingface.co)")
args = parser.parse_args()

url = push(args.folder, args.repo_id, private=args.private, endpoint=args.endpoint)  # weights, config, card, eval_results.json
print("pushed:", url)
local = pull(args.repo_id, endpoint=args.endpoint)
print("pulled into:", local, "model type:", AutoConfig.from_pretrained(local).model_type)
