#!/usr/bin/env python3
"""Reference numbers: RecBole 1.2.1's SASRec on MovieLens-100K (leave-one-out).

Run this with the *RecBole* environment's python (never hfrec's .venv), e.g.::

    /work/recbole-venv/bin/python bench/recbole_sasrec.py --seed 2020 --device cpu \
        --epochs 3 --out bench/results/recbole_sasrec_seed2020_cpu.json

It reproduces ``recbole.quick_start.run_recbole`` step by step (same calls, same
order, same seeding, FLOPs probe included so the RNG stream is the same), but
without importing ``recbole.quick_start`` (which imports ``ray``), and it times
every training epoch and every evaluation.  RecBole's own files (``log/``,
``log_tensorboard/``, ``saved/``) go to ``--workdir`` (default under /tmp).

Protocol: RecBole's defaults for SASRec (and for ml-100k, which RecBole ships in
``recbole/dataset_example/ml-100k/``), with CE loss, no negative sampling,
leave-one-out split in time order grouped by user, full ranking, Hit/NDCG/MRR
@1/5/10, model selection on valid NDCG@10.

Run-time compatibility shims (they do not change what RecBole computes):
  * ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``: torch>=2.6 defaults ``torch.load`` to
    ``weights_only=True``; RecBole 1.2.1 pickles its Config into the checkpoint
    and reloads it for the test evaluation.
  * numpy>=2 only: RecBole's ``Config.compatibility_settings`` reads
    ``np.float_``/``np.complex_``/``np.unicode_`` (removed in numpy 2); we
    re-add them as aliases of float64/complex128/str_ before RecBole runs.
"""
import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def _numpy_compat():
    import numpy as np

    if int(np.__version__.split(".")[0]) >= 2:
        for name, val in (("float_", np.float64), ("complex_", np.complex128),
                          ("unicode_", np.str_)):
            if not hasattr(np, name):
                setattr(np, name, val)
        return True
    return False


def build_config_dict(args):
    d = {
        # --- the protocol ---
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [1, 5, 10],
        "valid_metric": "NDCG@10",
        "MAX_ITEM_LIST_LENGTH": 50,
        "seed": args.seed,
        "reproducibility": True,
        "epochs": args.epochs,
        # --- housekeeping only (no effect on the numbers) ---
        "checkpoint_dir": os.path.join(args.workdir, "saved"),
        "show_progress": False,
        "state": "INFO",
    }
    if args.device == "cpu":
        d["use_gpu"] = False
        d["gpu_id"] = ""
    else:
        d["use_gpu"] = True
        d["gpu_id"] = "0"
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--epochs", type=int, default=300, help="RecBole default: 300")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--workdir", default=None,
                    help="where RecBole writes log/, log_tensorboard/, saved/ "
                         "(default /tmp/recbole_sasrec_<device>_<seed>)")
    ap.add_argument("--dump-split", default=None,
                    help="optional JSON: per user (raw ids) RecBole's valid/test "
                         "target item and test history, to check hfrec's split")
    ap.add_argument("--partial-out", default=None,
                    help="optional JSON rewritten after every evaluation (progress so far)")
    args = ap.parse_args()
    if args.partial_out:
        args.partial_out = os.path.abspath(args.partial_out)
    args.out = os.path.abspath(args.out)
    if args.dump_split:
        args.dump_split = os.path.abspath(args.dump_split)
    if args.workdir is None:
        args.workdir = f"/tmp/recbole_sasrec_{args.device}_{args.seed}"
    os.makedirs(args.workdir, exist_ok=True)
    os.chdir(args.workdir)  # RecBole writes ./log and ./log_tensorboard

    t_start = time.time()
    load_before = os.getloadavg()
    numpy_patched = _numpy_compat()

    import numpy as np
    import pandas as pd
    import torch
    import recbole
    from logging import getLogger
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.transform import construct_transform
    from recbole.utils import (init_logger, get_model, get_trainer, init_seed,
                               set_color, get_flops)

    t_import = time.time()
    cfg_dict = build_config_dict(args)

    # ---- exactly run_recbole(), timed ----
    config = Config(model="SASRec", dataset="ml-100k", config_dict=cfg_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)

    t0 = time.time()
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    t_data = time.time() - t0

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    transform = construct_transform(config)
    try:
        flops = get_flops(model, dataset, config["device"], logger, transform)
    except Exception as e:  # thop missing/broken: FLOPs probe is informative only
        flops = f"n/a ({type(e).__name__}: {e})"
    logger.info(set_color("FLOPs", "blue") + f": {flops}")

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    # instrument the trainer (timing only)
    dev = config["device"]

    def _sync():
        if torch.cuda.is_available() and str(dev).startswith("cuda"):
            torch.cuda.synchronize()

    train_times, train_losses, eval_times, valid_hist = [], [], [], []
    train_cpu, eval_cpu = [], []  # process CPU seconds (user+sys, all threads)
    orig_train_epoch, orig_valid_epoch = trainer._train_epoch, trainer._valid_epoch

    def timed_train_epoch(*a, **k):
        _sync(); s = time.time(); c = time.process_time()
        loss = orig_train_epoch(*a, **k)
        _sync(); train_times.append(time.time() - s); train_cpu.append(time.process_time() - c)
        train_losses.append(float(sum(loss) if isinstance(loss, tuple) else loss))
        return loss

    def timed_valid_epoch(*a, **k):
        _sync(); s = time.time(); c = time.process_time()
        score, result = orig_valid_epoch(*a, **k)
        _sync(); eval_times.append(time.time() - s); eval_cpu.append(time.process_time() - c)
        valid_hist.append({"score": float(score), **{k2: float(v) for k2, v in result.items()}})
        if args.partial_out:  # progress so far, for runs that may be cut off
            with open(args.partial_out, "w") as f:
                json.dump({"seed": args.seed, "device": str(dev), "epochs_done": len(train_times),
                           "elapsed_s": time.time() - t_start, "train_epoch_s": train_times,
                           "train_epoch_cpu_s": train_cpu, "eval_s": eval_times,
                           "train_loss": train_losses, "valid_history": valid_hist,
                           "loadavg_now": list(os.getloadavg())}, f, indent=1)
        return score, result

    trainer._train_epoch = timed_train_epoch
    trainer._valid_epoch = timed_valid_epoch

    t_fit0 = time.time()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=True, show_progress=config["show_progress"])
    t_fit = time.time() - t_fit0

    _sync(); t_test0 = time.time()
    test_result = trainer.evaluate(test_data, load_best_model=True,
                                   show_progress=config["show_progress"])
    _sync(); t_test = time.time() - t_test0
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    t_total = time.time() - t_start

    # Secondary, NOT RecBole's protocol: the same best model on the same test
    # samples, but with every item the user interacted with before the test
    # target set to -inf (what "mask the history" full ranking does; RecBole's
    # sequential full ranking masks only the padding item 0).  Done by handing
    # RecBole's own _full_sort_batch_eval a history_index, so the metric code is
    # RecBole's.
    test_result_masked = eval_test_history_masked(trainer, dataset, train_data,
                                                  valid_data, test_data)
    logger.info(set_color("test result (history masked, secondary)", "yellow")
                + f": {test_result_masked}")

    # best epoch as RecBole's early_stopping() picks it: the last epoch whose
    # valid score is >= the running best (ties count as an update)
    best_epoch, best = None, -float("inf")
    for i, h in enumerate(valid_hist):
        if h["score"] >= best:
            best, best_epoch = h["score"], i

    n_train = len(train_data._dataset)
    n_valid = len(valid_data._dataset)
    n_test = len(test_data._dataset)
    try:
        cpu_model = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")][0]
    except Exception:
        cpu_model = platform.processor()
    gpu_name = torch.cuda.get_device_name(0) if str(dev).startswith("cuda") else None

    res = {
        "framework": "RecBole",
        "model": "SASRec",
        "dataset": "ml-100k",
        "seed": args.seed,
        "device": str(dev),
        "gpu_name": gpu_name,
        "versions": {"recbole": recbole.__version__, "torch": torch.__version__,
                     "numpy": np.__version__, "pandas": pd.__version__,
                     "python": platform.python_version(),
                     "numpy2_compat_patch_applied": numpy_patched},
        "host": {"nproc": os.cpu_count(), "nproc_affinity": len(os.sched_getaffinity(0)),
                 "cpu_model": cpu_model,
                 "torch_num_threads": torch.get_num_threads(),
                 "platform": platform.platform(),
                 "loadavg_before": list(load_before),
                 "loadavg_after": list(os.getloadavg())},
        "config": {k: (config[k] if not isinstance(config[k], torch.device) else str(config[k]))
                   for k in ["epochs", "train_batch_size", "eval_batch_size", "learning_rate",
                             "learner", "weight_decay", "stopping_step", "eval_step",
                             "n_layers", "n_heads", "hidden_size", "inner_size",
                             "hidden_dropout_prob", "attn_dropout_prob", "hidden_act",
                             "layer_norm_eps", "initializer_range", "loss_type",
                             "MAX_ITEM_LIST_LENGTH", "eval_args", "metrics", "topk",
                             "valid_metric", "repeatable", "normalize_all", "load_col",
                             "reproducibility", "seed", "train_neg_sample_args"]},
        "data": {"n_users_incl_pad": dataset.user_num, "n_items_incl_pad": dataset.item_num,
                 "n_samples_after_seq_augmentation": int(dataset.inter_num),
                 "n_train_samples": n_train, "n_valid_samples": n_valid,
                 "n_test_samples": n_test},
        "flops": flops if isinstance(flops, (int, float, str)) else str(flops),
        "best_valid_score": float(best_valid_score),
        "best_valid_result": {k: float(v) for k, v in (best_valid_result or {}).items()},
        "test_result": {k: float(v) for k, v in test_result.items()},  # RecBole's protocol
        "test_result_history_masked_secondary": {k: float(v) for k, v in
                                                 test_result_masked.items()},
        "epochs_run": len(train_times),
        "best_epoch": best_epoch,  # 0-based, as RecBole logs it
        "early_stopped": len(train_times) < args.epochs,
        "time": {
            "total_wall_s": t_total,
            "import_s": t_import - t_start,
            "data_prep_s": t_data,
            "fit_s": t_fit,
            "train_epoch_s_mean": float(np.mean(train_times)) if train_times else None,
            "train_epoch_s_median": float(np.median(train_times)) if train_times else None,
            "train_epoch_s_first": train_times[0] if train_times else None,
            "train_epoch_s_mean_excl_first": (float(np.mean(train_times[1:]))
                                              if len(train_times) > 1 else None),
            "eval_s_mean": float(np.mean(eval_times)) if eval_times else None,
            "test_eval_s": t_test,
            "train_epoch_s": train_times,
            "eval_s": eval_times,
            "train_epoch_cpu_s": train_cpu,
            "eval_cpu_s": eval_cpu,
        },
        "train_loss": train_losses,
        "valid_history": valid_hist,
        "argv": sys.argv,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({"seed": args.seed, "device": str(dev), "epochs_run": len(train_times),
                      "best_epoch": best_epoch, "test": res["test_result"],
                      "train_epoch_s_mean": res["time"]["train_epoch_s_mean"],
                      "eval_s_mean": res["time"]["eval_s_mean"],
                      "total_wall_s": t_total}))

    if args.dump_split:
        dump_split(dataset, valid_data, test_data, args.dump_split)


def eval_test_history_masked(trainer, dataset, train_data, valid_data, test_data):
    import torch

    uf, itf = dataset.uid_field, dataset.iid_field
    lf = itf + dataset.config["LIST_SUFFIX"]
    user_items = {}
    for dl in (train_data, valid_data, test_data):
        feat = dl._dataset.inter_feat
        for u, i, first in zip(feat[uf].tolist(), feat[itf].tolist(), feat[lf][:, 0].tolist()):
            user_items.setdefault(u, set()).update((i, first))
    tfeat = test_data._dataset.inter_feat
    hist = {}
    for u, t in zip(tfeat[uf].tolist(), tfeat[itf].tolist()):
        h = user_items[u] - {t}
        assert len(h) == len(user_items[u]) - 1, "test target repeats an earlier item"
        hist[u] = torch.tensor(sorted(h), dtype=torch.long)

    orig = test_data.collate_fn

    def collate_with_history(index):
        inter, _none, pos_u, pos_i = orig(index)
        uids = inter[uf].tolist()
        hu = torch.cat([torch.full((len(hist[u]),), r, dtype=torch.long)
                        for r, u in enumerate(uids)])
        hi = torch.cat([hist[u] for u in uids])
        return inter, (hu, hi), pos_u, pos_i

    test_data.collate_fn = collate_with_history
    try:
        return trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    finally:
        test_data.collate_fn = orig


def dump_split(dataset, valid_data, test_data, path):
    """Per raw user id: RecBole's valid target, test target and test history (raw ids)."""
    uf, itf = dataset.uid_field, dataset.iid_field
    lf = itf + dataset.config["LIST_SUFFIX"]
    lenf = dataset.config["ITEM_LIST_LENGTH_FIELD"]
    out = {}
    for name, dl in (("valid", valid_data), ("test", test_data)):
        feat = dl._dataset.inter_feat
        uids = dataset.id2token(uf, feat[uf].numpy())
        tgts = dataset.id2token(itf, feat[itf].numpy())
        hists = feat[lf].numpy()
        lens = feat[lenf].numpy()
        for u, t, h, n in zip(uids, tgts, hists, lens):
            rec = out.setdefault(str(u), {})
            rec[name + "_target"] = str(t)
            if name == "test":
                rec["test_history"] = [str(x) for x in dataset.id2token(itf, h[:n])]
    with open(path, "w") as f:
        json.dump({"note": "raw ml-100k ids; test_history is RecBole's model input "
                           "(last <=50 items, oldest first) for the test target; "
                           "item_id_order[k] is the raw item id RecBole maps to internal "
                           "id k (0 = [PAD])",
                   "item_id_order": [str(x) for x in dataset.field2id_token[itf]],
                   "user_id_order": [str(x) for x in dataset.field2id_token[uf]],
                   "users": out}, f)


if __name__ == "__main__":
    main()
