"""What every method's script shares: the shared flags (``MethodScriptArguments``), saving into its run folder
atomically, and a copy of the SR teacher next to the model (the pipeline reranks the teacher's top items and
rebuilds prompts that show them)."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# a teacher's training state, not the model: never copied next to a published model (and pickles are refused there)
TEACHER_IGNORE = ("checkpoint-*", "runs", "*.bin", "*.pt", "*.pth", "*.pkl")


def save_into(folder: Path, write) -> None:
    """``write(tmp)`` saves into a temporary folder inside ``folder``; each file then moves in with an atomic rename,
    so the folder never holds half a weights file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".saving-", dir=folder) as tmp:
        write(Path(tmp))
        for path in Path(tmp).iterdir():
            os.replace(path, folder / path.name)


def copy_teacher(teacher_dir: Path, out: Path, name: str = "teacher") -> Path:
    """``out/<name>``: the SR teacher's model files (weights, config, code), staged and renamed into place."""
    target = Path(out) / name
    if Path(teacher_dir).resolve() == target.resolve():
        return target
    with tempfile.TemporaryDirectory(prefix=".teacher-", dir=out) as tmp:
        staged = Path(tmp) / name
        shutil.copytree(teacher_dir, staged, ignore=shutil.ignore_patterns(*TEACHER_IGNORE))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staged, target)
    return target




def start_run(args, argv: list[str] | None, launcher: str) -> tuple[Path, str]:
    """What every method's ``main`` does first, once its flags are parsed and its preset applied: logging, the seed
    and the run folder. Returns the folder and the command recorded with the results (``python <launcher> ...``)."""
    from transformers import set_seed

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    set_seed(args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out, f"python {launcher} {shlex.join(argv if argv is not None else sys.argv[1:])}"


@dataclass
class MethodScriptArguments:
    """The flags every registered LLM method's script takes (``hfrec.registry``), so the CLI, the benchmark and the
    registry-wide tests drive every method alike. A method's arguments subclass this and add their own."""

    output_dir: str = field(default="runs/method", metadata={"help": "Run folder: models, tables, run info."})
    preset: str = field(default="cpu", metadata={"help": "cpu | gpu | none: defaults for the fields left unset."})
    dataset: str = field(default="ml-100k", metadata={"help": "Benchmark name (hfrec.data.BENCHMARKS)."})
    data_dir: str | None = field(default=None, metadata={"help": "Folder of RecBole atomic files (optional)."})
    num_candidates: int = field(default=20, metadata={"help": "Stored candidates per evaluated user."})
    split_seed: int = field(default=42, metadata={"help": "Seed the stored candidate lists were drawn with."})
    backbone: str | None = field(
        default=None, metadata={"help": "Causal LM: Hub id or folder; unset = offline SmolLM2-135M-Instruct."})
    dtype: str | None = field(
        default=None, metadata={"help": "auto (bf16 only where the GPU/CPU runs it natively, else float32) | float32 "
                                        "| bfloat16 | float16."})
    teacher_dir: str | None = field(
        default=None, metadata={"help": "A trained hfrec SR model folder; unset = train one into OUTPUT/teacher."})
    teacher: str = field(default="sasrec", metadata={"help": "SR model to train when no teacher_dir is given."})
    teacher_epochs: float | None = field(default=None, metadata={"help": "Epoch cap when training the teacher."})
    domain: str | None = field(default=None, metadata={"help": "Prompt wording; unset = the dataset's."})
    max_steps: int = field(default=-1, metadata={"help": "Stop each training stage after N steps (-1: the epochs)."})
    eval_split: str = field(default="test", metadata={"help": "validation | test."})
    eval_users: int | None = field(default=None, metadata={"help": "First N users of the split (unset: the preset's)."})
    per_device_train_batch_size: int | None = field(default=None, metadata={"help": "Training batch per device."})
    gradient_accumulation_steps: int | None = field(default=None, metadata={"help": "Accumulation steps."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_top_layers: int | None = field(
        default=None, metadata={"help": "LoRA on the last N decoder layers only (0: all; unset: the preset's)."})
    resume_from_checkpoint: bool = field(default=False, metadata={"help": "Resume training from the last checkpoint."})
    seed: int = field(default=42, metadata={"help": "Training seed."})
    disable_tqdm: bool = field(default=False, metadata={"help": "No progress bars."})

    def sft_kwargs(self, output_dir, num_train_epochs: float, learning_rate: float, **more) -> dict:
        """The fields of a method's LoRA SFT config that come from these shared flags (batch, steps, seed, LoRA
        rank / alpha / layers, progress bars, and the subclass's comma-separated ``lora_target_modules`` and
        ``lora_dropout`` when it has them); ``more`` adds or overrides fields."""
        kwargs = dict(output_dir=str(output_dir), num_train_epochs=num_train_epochs, learning_rate=learning_rate,
                      per_device_train_batch_size=self.per_device_train_batch_size, max_steps=self.max_steps,
                      gradient_accumulation_steps=self.gradient_accumulation_steps or 1, seed=self.seed,
                      lora_r=self.lora_r, lora_alpha=self.lora_alpha, lora_top_layers=self.lora_top_layers,
                      disable_tqdm=self.disable_tqdm)
        targets = getattr(self, "lora_target_modules", None)
        if targets:
            kwargs["lora_target_modules"] = [m.strip() for m in targets.split(",") if m.strip()]
        if getattr(self, "lora_dropout", None) is not None:
            kwargs["lora_dropout"] = self.lora_dropout
        return {**kwargs, **more}
    compare_with: list[str] | None = field(
        default=None, metadata={"help": "Run folders of other hfrec methods (e.g. a DELRec run) to rank in the same "
                                        "table, on the same users and candidate lists."})


__all__ = ["MethodScriptArguments", "TEACHER_IGNORE", "copy_teacher", "save_into", "start_run"]
