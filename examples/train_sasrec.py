"""Train SASRec on a benchmark and print its test metrics (both protocols land in OUTPUT/eval_results.json).

    python examples/train_sasrec.py --output-dir runs/sasrec-ml100k
    accelerate launch examples/train_sasrec.py ...        # several GPUs: the same script
"""

import argparse
import json
from pathlib import Path

from hfrec.trainers.train_sr import main as train_sr

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--dataset", default="ml-100k")
parser.add_argument("--data-dir", default=None)
parser.add_argument("--output-dir", default="runs/sasrec")
parser.add_argument("--epochs", default="200", help="upper bound: early stopping on validation NDCG@10 ends sooner")
parser.add_argument("--model-kwargs", default="{}", help='JSON, e.g. \'{"hidden_size": 64}\'')
args = parser.parse_args()

train_sr(["--model", "sasrec", "--dataset", args.dataset, "--output_dir", args.output_dir,
          "--num_train_epochs", args.epochs, "--model_kwargs", args.model_kwargs,
          *(["--data_dir", args.data_dir] if args.data_dir else [])])
for record in json.loads((Path(args.output_dir) / "eval_results.json").read_text()):
    print(record["protocol"], {k: round(v, 4) for k, v in record["metrics"].items() if k.endswith("@10")})
