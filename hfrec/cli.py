"""`hfrec ...`: a thin dispatcher over the library and the training scripts.

    hfrec data stats ml-100k --json
    hfrec train sr --model sasrec --dataset ml-100k --output-dir runs/sasrec-ml100k
    hfrec evaluate runs/sasrec-ml100k --dataset ml-100k --protocol full --json
    hfrec benchmark                       # the main job: every model on one table
    hfrec recommend runs/delrec --history "Star Wars (1977)" "Fargo (1996)" --top-k 5

Errors of ordinary bad input (a missing file, a corrupt dataset, an unknown option value), as hfrec reports them
(its own error classes, and the sentences its own code raises), print one line, ``hfrec: error: ...``, and exit
with status 2; ``--debug`` shows the traceback. Any other error is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

EXAMPLES = {
    "data stats": "hfrec data stats ml-100k --json",
    "train": "hfrec train sr --model sasrec --dataset ml-100k --output-dir runs/sasrec-ml100k\n"
             "  hfrec train delrec --preset cpu --teacher-dir runs/sasrec-ml100k --output-dir runs/delrec",
    "evaluate": "hfrec evaluate runs/sasrec-ml100k --dataset ml-100k --protocol full --json",
    "benchmark": "hfrec benchmark --output-dir runs/benchmark",
    "recommend": 'hfrec recommend runs/sasrec-ml100k --history "Star Wars (1977)" "Fargo (1996)" --top-k 5',
}

# `hfrec train <method> ...` hands the rest of the command line to that method's script (hfrec.registry); `sr`
# is the SR trainer itself (`--model` picks SASRec, GRU4Rec or Caser).
SR_TRAINER = "hfrec.trainers.train_sr"


def _example(name: str) -> str:
    return f"example:\n  {EXAMPLES[name]}"


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _data_stats(args) -> int:
    from .data import load_benchmark

    ds = load_benchmark(args.name, data_dir=args.data_dir)
    stats = {"dataset": ds.name, "domain": ds.domain, **ds.stats}
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        width = max(map(len, stats))
        for key, value in stats.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _train(args, rest: list[str]) -> int:
    import importlib

    from .registry import METHODS, get_method

    if args.method == "sr":
        importlib.import_module(SR_TRAINER).main(rest)
    elif args.method in METHODS and METHODS[args.method].llm:
        get_method(args.method).run(rest)
    else:
        choices = ["sr", *(name for name, spec in METHODS.items() if spec.llm)]
        raise UserError(f"hfrec train: unknown method {args.method!r}; choose from {choices} "
                        "(SR models: `hfrec train sr --model sasrec|gru4rec|caser`)")
    return 0


def _evaluate(args) -> int:
    from transformers import AutoConfig, AutoModel

    from . import models  # noqa: F401  registers the hfrec model types with the Auto classes
    from .data import load_benchmark
    from .trainers.sr_trainer import evaluate_sr_model

    config = AutoConfig.from_pretrained(args.model_dir)
    if config.model_type not in models.SR_MODELS:
        raise UserError(
            f"hfrec evaluate: {args.model_dir} holds a {config.model_type!r} model; it ranks SR models "
            f"({', '.join(models.SR_MODELS)}). Evaluate DELRec with `hfrec train delrec --stages eval --output-dir DIR`.")
    max_history = getattr(config, "max_seq_length", 50)
    ds = load_benchmark(args.dataset, data_dir=args.data_dir, num_candidates=args.num_candidates, seed=args.seed,
                        max_history=max_history)
    if getattr(config, "num_items", None) != ds.num_items:
        raise UserError(
            f"hfrec evaluate: the model in {args.model_dir} was trained on {getattr(config, 'num_items', '?')} "
            f"items but {ds.name} (as filtered here) has {ds.num_items}. Fix: evaluate on the dataset and "
            "filtering the model was trained with.")
    model = AutoModel.from_pretrained(args.model_dir)
    metrics = evaluate_sr_model(model, ds[args.split], args.protocol, progress=not args.json)
    result = {"model_dir": args.model_dir, "dataset": ds.name, "split": args.split, "protocol": args.protocol,
              "num_candidates": args.num_candidates if args.protocol == "candidates" else None,
              "seed": args.seed, "metrics": metrics}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(f"{k:<8} {v:.4f}" for k, v in metrics.items()))
    return 0


def _benchmark(args) -> int:
    from .benchmark import run_benchmark

    run_benchmark(output_dir=args.output_dir, dataset=args.dataset, seed=args.seed, preset=args.preset,
                  methods=args.methods, data_dir=args.data_dir, eval_users=args.eval_users)
    return 0


def _recommend(args) -> int:
    from transformers import pipeline

    from . import pipelines  # noqa: F401  registers the task

    try:
        recommend = pipeline(pipelines.TASK, model=args.model, dataset=args.dataset, data_dir=args.data_dir,
                             revision=args.revision)
    except OSError as err:
        if os.path.exists(args.model):
            raise
        raise UserError(f"{args.model!r} is not a folder here, and loading it as a Hub model id failed ({err}). Fix: "
                        "pass the folder a `hfrec train` run wrote, or a Hub id (owner/name) that exists and is "
                        "reachable.") from err
    inputs = {"history": args.history}
    if args.candidates:
        inputs["candidates"] = args.candidates
    result = recommend(inputs, top_k=args.top_k)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for rank, item in enumerate(result, 1):
            print(f"{rank:>3}. {item['title'] or item['item_id']}  (item {item['item_id']}, score {item['score']:.4f})")
    return 0


class UserError(Exception):
    """Ordinary bad input: reported as one line, no traceback."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hfrec", description=__doc__, formatter_class=_formatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="inspect benchmarks", epilog=_example("data stats"),
                               formatter_class=_formatter)
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    stats = data_commands.add_parser("stats", help="counts of a benchmark after the shared protocol",
                                     epilog=_example("data stats"), formatter_class=_formatter)
    stats.add_argument("name", help="benchmark name, e.g. ml-100k, ml-1m, amazon-beauty, steam, lastfm, atomic")
    stats.add_argument("--data-dir", default=None, help="folder of RecBole atomic files (default: fetch)")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=_data_stats)

    train = commands.add_parser(
        "train", help="train a model; options after the method go to its script (see `hfrec train sr --help`)",
        epilog=_example("train"), formatter_class=_formatter, add_help=True)
    train.add_argument("method", help="what to train: sr | an LLM method of hfrec.registry (delrec, ...)")
    train.set_defaults(func=_train)

    evaluate = commands.add_parser("evaluate", help="rank a split with a saved SR model, print metrics",
                                   epilog=_example("evaluate"), formatter_class=_formatter)
    evaluate.add_argument("model_dir", help="folder written by `hfrec train sr` (or any saved hfrec SR model)")
    evaluate.add_argument("--dataset", default="ml-100k", help="benchmark the model was trained on")
    evaluate.add_argument("--data-dir", default=None, help="folder of RecBole atomic files (default: fetch)")
    evaluate.add_argument("--protocol", choices=("full", "candidates"), default="full",
                          help="full: rank every item, history masked; candidates: rank the stored lists")
    evaluate.add_argument("--split", choices=("validation", "test"), default="test")
    evaluate.add_argument("--num-candidates", type=int, default=20)
    evaluate.add_argument("--seed", type=int, default=42, help="seed of the stored candidate lists")
    evaluate.add_argument("--json", action="store_true", help="print JSON on stdout")
    evaluate.set_defaults(func=_evaluate)

    bench = commands.add_parser("benchmark", help="the main job: train and compare every model on one table",
                                epilog=_example("benchmark"), formatter_class=_formatter)
    bench.add_argument("--output-dir", default="runs/benchmark", help="where models and the table go")
    bench.add_argument("--dataset", default="ml-100k", help="benchmark name, e.g. ml-100k, ml-1m, or atomic")
    bench.add_argument("--data-dir", default=None, help="folder of RecBole atomic files (default: fetch)")
    bench.add_argument("--seed", type=int, default=42, help="seed of the candidate lists and of every training")
    bench.add_argument("--preset", choices=("cpu", "gpu"), default="cpu",
                       help="cpu: the first 100 test users in every row, each method's CPU preset; gpu: every test "
                            "user, each method's full protocol")
    bench.add_argument("--eval-users", type=int, default=None,
                       help="rank the first N test users in every row instead of the preset's (0: every test user)")
    bench.add_argument("--methods", default=None,
                       help="comma-separated subset of rows: popularity and registered methods (default: all of them)")
    bench.set_defaults(func=_benchmark)

    rec = commands.add_parser("recommend", help="ranked next items for a history, from a trained folder or Hub id",
                              epilog=_example("recommend"), formatter_class=_formatter)
    rec.add_argument("model", help="folder written by `hfrec train ...`, or a Hub repo id")
    rec.add_argument("--history", nargs="+", required=True, help="past items, oldest first: ids or exact titles")
    rec.add_argument("--candidates", nargs="+", default=None,
                     help="items to rank (default: the whole catalogue for SR models; an LLM method reranks its "
                          "SR teacher's top items)")
    rec.add_argument("--top-k", type=positive_int, default=10, help="how many items to print")
    rec.add_argument("--dataset", default=None, help="dataset of the items (default: the one the model was trained on)")
    rec.add_argument("--data-dir", default=None, help="folder of RecBole atomic files of that dataset")
    rec.add_argument("--revision", default=None, help="Hub revision")
    rec.add_argument("--json", action="store_true", help="print JSON")
    rec.set_defaults(func=_recommend)

    _add_optional_commands(commands)
    return parser


def _add_optional_commands(commands) -> None:
    """Commands whose modules register themselves (the Hub commands)."""
    try:
        from . import hub
    except ImportError:
        return
    for name in ("add_push_parser", "add_pull_parser"):
        if hasattr(hub, name):
            getattr(hub, name)(commands)


PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
INPUT_ERRORS = (ValueError, KeyError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


def is_input_error(err: BaseException) -> bool:
    """Whether ``err`` reports bad input (one line) rather than a bug (a traceback): hfrec's own error classes, and
    the standard input errors that hfrec's own code raised with a sentence that says what is wrong. The same class
    raised inside another library, or without a message (``{}["key"]``), is not hfrec's report of bad input."""
    from .data import CorruptDataError, DataSourceError

    if isinstance(err, (UserError, CorruptDataError, DataSourceError)):
        return True
    if not isinstance(err, INPUT_ERRORS) or not err.args or not isinstance(err.args[0], str) or " " not in err.args[0]:
        return False
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(PACKAGE_DIR + os.sep)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = make_parser()
    try:
        # `hfrec train METHOD ...`: everything after METHOD belongs to the method's own parser.
        if len(argv) >= 2 and argv[0] == "train" and not argv[1].startswith("-"):
            args = parser.parse_args(argv[:2])
            return args.func(args, argv[2:])
        args = parser.parse_args(argv)
        return args.func(args)
    except Exception as err:
        if debug or not is_input_error(err):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"hfrec: error: {message}", file=sys.stderr)
        print("hfrec: (run with --debug for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
