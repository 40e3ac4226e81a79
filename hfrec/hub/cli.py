"""``hfrec push`` / ``hfrec pull``: argparse sub-commands over :func:`push` and :func:`pull`."""

from __future__ import annotations

import argparse

from .pull import pull
from .push import push

_PUSH_EXAMPLES = """examples:
  hfrec push runs/sasrec-ml100k me/sasrec-ml100k
  hfrec push runs/delrec-ml100k me/delrec-ml100k --private --revision v1
  hfrec push runs/delrec-lora me/delrec-lora --eval-results runs/delrec-lora/eval_results.json

The folder is what save_pretrained wrote (an hfrec model, DELRec, or a PEFT adapter). A model card
(README.md) is generated from config.json / adapter_config.json and eval_results.json first.
The endpoint is HF_ENDPOINT (default https://huggingface.co); the token is HF_TOKEN or `hf auth login`.
"""

_PULL_EXAMPLES = """examples:
  hfrec pull me/sasrec-ml100k
  hfrec pull me/delrec-ml100k --revision v1 --local-dir models/delrec
  hfrec pull me/delrec-ml100k --revision 0123abcd... --cache-dir /data/hf

Prints the local folder; load it with from_pretrained. Pickled files are never downloaded.
"""


def add_push_parser(subparsers) -> argparse.ArgumentParser:
    """Adds ``push`` to an argparse sub-parser set; ``args.func(args)`` runs it."""
    parser = subparsers.add_parser(
        "push", help="upload a saved model or adapter folder with a generated model card",
        description="Upload a saved hfrec model, DELRec model or PEFT adapter to the Hugging Face Hub.",
        epilog=_PUSH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", metavar="DIR", help="folder written by save_pretrained")
    parser.add_argument("repo_id", metavar="REPO_ID", help="target repository, e.g. me/sasrec-ml100k")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", metavar="BRANCH", default=None, help="branch to push to (created if missing)")
    parser.add_argument("--eval-results", metavar="JSON", default=None,
                        help="evaluation JSON (default: DIR/eval_results.json when present)")
    parser.add_argument("--command", dest="train_command", metavar="CMD", default=None,
                        help="training command to show on the card (default: from the run's records)")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    parser.set_defaults(func=push_command)
    return parser


def push_command(args: argparse.Namespace) -> int:
    info = push(args.model_dir, args.repo_id, private=args.private, revision=args.revision, token=args.token,
                commit_message=args.commit_message, eval_results=args.eval_results, command=args.train_command)
    print(f"pushed {args.model_dir} to {args.repo_id}@{args.revision or 'main'}")
    print(f"commit {info.oid}")
    print(info.commit_url)
    return 0


def add_pull_parser(subparsers) -> argparse.ArgumentParser:
    """Adds ``pull`` to an argparse sub-parser set; ``args.func(args)`` runs it."""
    parser = subparsers.add_parser(
        "pull", help="download a model repository (safetensors only) and print its folder",
        description="Download an hfrec model or adapter repository from the Hugging Face Hub.",
        epilog=_PULL_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo_id", metavar="REPO_ID")
    parser.add_argument("--revision", default=None, help="branch, tag or commit hash (default: main)")
    parser.add_argument("--local-dir", default=None, help="copy the files to this (new or empty) folder")
    parser.add_argument("--cache-dir", default=None, help="Hugging Face cache folder to download into")
    parser.add_argument("--token", default=None)
    parser.set_defaults(func=pull_command)
    return parser


def pull_command(args: argparse.Namespace) -> int:
    path = pull(args.repo_id, revision=args.revision, local_dir=args.local_dir, cache_dir=args.cache_dir,
                token=args.token)
    print(path)
    return 0


__all__ = ["add_pull_parser", "add_push_parser", "pull_command", "push_command"]
