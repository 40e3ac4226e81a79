"""Training configuration for the SR teachers (SASRec, GRU4Rec, Caser) on transformers' Trainer."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy, SchedulerType


@dataclass
class SRTrainingConfig(TrainingArguments):
    """`TrainingArguments` with defaults for sequential recommenders.

    Defaults that differ from `TrainingArguments` (all in one place, as TRL's configs do):
    epochs 200 with early stopping (patience 10) on validation NDCG@10 over the full catalogue, evaluation
    and checkpoints every epoch, the best checkpoint restored at the end, batch 128 sequences, learning rate
    1e-3 constant (RecBole's Adam setting), no weight decay, no report_to, at most 2 checkpoints kept, no pinned memory.
    """

    output_dir: str | None = field(default=None, metadata={"help": "Where the model, checkpoints and eval_results.json go."})
    num_train_epochs: float = field(default=200, metadata={"help": "Upper bound; early stopping usually ends sooner."})
    per_device_train_batch_size: int = field(default=128, metadata={"help": "Sequences (windows) per device per step."})
    per_device_eval_batch_size: int = field(default=512, metadata={"help": "Users per ranking batch."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate (RecBole's default)."})
    lr_scheduler_type: SchedulerType | str = field(default="constant", metadata={"help": "Learning-rate schedule."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    eval_strategy: IntervalStrategy | str = field(default="epoch", metadata={"help": "When to rank the validation users."})
    save_strategy: SaveStrategy | str = field(default="epoch", metadata={"help": "When to write a checkpoint."})
    logging_strategy: IntervalStrategy | str = field(default="epoch", metadata={"help": "When to log the training loss."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept (the best one always)."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Restore the best validation checkpoint."})
    metric_for_best_model: str | None = field(default="NDCG@10", metadata={"help": "Validation metric for early stopping."})
    greater_is_better: bool | None = field(default=True, metadata={"help": "Higher metric is better."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Experiment trackers (none by default)."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep our collated columns."})
    dataloader_pin_memory: bool = field(default=False, metadata={"help": "Pin batches (they are tiny id tensors)."})

    # hfrec's own settings
    early_stopping_patience: int = field(default=10, metadata={"help": "Evaluations without improvement before stopping (0: off)."})
    eval_protocol: str = field(default="full", metadata={"help": "Validation protocol for model selection: full | candidates."})


__all__ = ["SRTrainingConfig"]
