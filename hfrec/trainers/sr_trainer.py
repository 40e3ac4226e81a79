"""`SRTrainer`: transformers' Trainer for sequential recommenders, with ranking evaluation.

Training data are users' whole training sequences cut into windows of `max_seq_length + 1` items; the
model predicts every next item of a window in one forward pass (SASRec's own training scheme), which is
far cheaper than RecBole's one-sample-per-prefix augmentation. Evaluation ranks validation users' next
items (full catalogue with history masked, or the stored candidates) and reports HR/NDCG/MRR@{1,5,10}.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import Dataset
from transformers import EarlyStoppingCallback, Trainer

from ..data import training_sequences
from ..evaluation import evaluate_scorer, left_pad, ranks_of, sr_model_scorer
from ..metrics import metrics_from_ranks
from .sr_config import SRTrainingConfig


class SequenceWindows(Dataset):
    """Windows of `window` + 1 items covering every training target exactly once."""

    def __init__(self, sequences: list[list[int]], window: int):
        if window < 1:
            raise ValueError(f"window={window} must be at least 1 (the model's max_seq_length).")
        self.windows = []
        for seq in sequences:
            end = len(seq)
            while end > 1:  # a window ending at `end` predicts seq[start+1:end] from seq[start:end-1]
                start = max(0, end - window - 1)
                self.windows.append(seq[start:end])
                end = start + 1
        if not self.windows:
            raise ValueError("No training windows: every user's training sequence has fewer than 2 items.")

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, index):
        return self.windows[index]


def collate_windows(windows: list[list[int]]) -> dict[str, torch.Tensor]:
    """Left-padded inputs and next-item labels (0 = padding = ignored)."""
    return {"input_ids": left_pad([w[:-1] for w in windows]), "labels": left_pad([w[1:] for w in windows])}


class SRTrainer(Trainer):
    """Trainer whose evaluation is ranking (`eval_<metric>` keys), with early stopping built in.

    Args:
        model: an hfrec SR model (`predict_scores` / `score_candidates` contract).
        args: `SRTrainingConfig`.
        train_dataset: the `train` split of `hfrec.data.load_benchmark` (prefix rows).
        eval_dataset: the `validation` split (rows with `full_history` and `candidates`).
    """

    def __init__(self, model, args: SRTrainingConfig, train_dataset, eval_dataset=None, callbacks=None, **kwargs):
        windows = SequenceWindows(training_sequences(train_dataset), model.config.max_seq_length)
        callbacks = list(callbacks or [])
        if args.early_stopping_patience and eval_dataset is not None:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=args.early_stopping_patience))
        super().__init__(model=model, args=args, train_dataset=windows, eval_dataset=eval_dataset,
                         data_collator=collate_windows, callbacks=callbacks, **kwargs)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        rows = eval_dataset if eval_dataset is not None else self.eval_dataset
        start = time.time()
        # Each process ranks its share of users; ranks_of gathers them so every process sees the same metrics.
        model = self.accelerator.unwrap_model(self.model)
        ranks, invalid = ranks_of(sr_model_scorer(model), rows, self.args.eval_protocol,
                                  batch_size=self.args.per_device_eval_batch_size, progress=False, return_invalid=True)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in metrics_from_ranks(ranks, invalid=invalid).items()}
        if bool(invalid.any()):
            metrics[f"{metric_key_prefix}_invalid_score_rows"] = int(invalid.sum())
        metrics[f"{metric_key_prefix}_runtime"] = round(time.time() - start, 4)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def evaluate_sr_model(model, rows, protocol: str, batch_size: int = 512, progress: bool = True) -> dict[str, float]:
    """HR/NDCG/MRR@{1,5,10} of an SR model on a split, by `protocol` ('full' or 'candidates')."""
    return evaluate_scorer(sr_model_scorer(model), rows, protocol, batch_size=batch_size, progress=progress,
                           desc=model.config.model_type)


__all__ = ["SRTrainer", "SequenceWindows", "collate_windows", "evaluate_sr_model"]
