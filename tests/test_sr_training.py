"""Training SR models end to end through the script and the CLI, on a tiny benchmark folder made here."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hfrec.cli import main as cli_main
from hfrec.trainers.sr_trainer import SequenceWindows
from hfrec.trainers.train_sr import main as train_sr
from conftest import accelerate_cpu_launch

TINY_MODEL = {
    "sasrec": '{"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1}',
    "gru4rec": '{"embedding_size": 16, "hidden_size": 16}',
    "caser": '{"embedding_size": 16, "num_horizontal_filters": 4, "num_vertical_filters": 2}',
}


def _train_args(folder, out, model="sasrec", epochs=4, extra=()):
    return ["--model", model, "--dataset", "atomic", "--data_dir", str(folder), "--output_dir", str(out),
            "--num_candidates", "10", "--max_seq_length", "8", "--model_kwargs", TINY_MODEL[model],
            "--num_train_epochs", str(epochs), "--per_device_train_batch_size", "16", "--early_stopping_patience",
            "0", "--disable_tqdm", "true", "--seed", "3", "--learning_rate", "5e-3", *extra]


def test_windows_cover_every_target_once():
    windows = SequenceWindows([list(range(1, 12)), [5, 6]], window=4).windows
    targets = sorted(t for w in windows for t in w[1:])
    assert targets == sorted(list(range(2, 12)) + [6])
    assert all(len(w) <= 5 for w in windows)


@pytest.mark.parametrize("model", sorted(TINY_MODEL))
def test_train_script_writes_model_and_both_protocols(model, tiny_folder, tmp_path):
    epochs = {"caser": 20}.get(model, 6)  # Caser's convolutions learn the ring more slowly
    metrics = train_sr(_train_args(tiny_folder, tmp_path / model, model, epochs=epochs))
    records = json.loads((tmp_path / model / "eval_results.json").read_text())
    assert [r["protocol"] for r in records] == ["full", "candidates"]
    assert records[1]["metrics"] == metrics["candidates"]
    assert (tmp_path / model / "model.safetensors").is_file()
    assert not (tmp_path / model / "training_args.bin").exists()
    # The ring pattern is learnable: far better than the 1-in-10 of a random ranking.
    assert metrics["candidates"]["HR@1"] > 0.3, metrics


def test_resumed_run_after_a_kill_matches_an_uninterrupted_run(tiny_folder, tmp_path):
    straight = train_sr(_train_args(tiny_folder, tmp_path / "straight", epochs=4))

    # Kill the process hard (no cleanup) right after the checkpoint of epoch 2 is written.
    killer = (
        "import os, sys\n"
        "from transformers import TrainerCallback\n"
        "from hfrec.trainers import sr_trainer\n"
        "class Kill(TrainerCallback):\n"
        "    def on_save(self, args, state, control, **kw):\n"
        "        if state.epoch >= 2: os._exit(17)\n"
        "init = sr_trainer.SRTrainer.__init__\n"
        "def patched(self, *a, callbacks=None, **k): init(self, *a, callbacks=[Kill()], **k)\n"
        "sr_trainer.SRTrainer.__init__ = patched\n"
        "from hfrec.trainers.train_sr import main\n"
        "main(sys.argv[1:])\n"
    )
    out = tmp_path / "killed"
    done = subprocess.run([sys.executable, "-c", killer, *_train_args(tiny_folder, out, epochs=4)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 17, done.stderr[-2000:]
    assert not (out / "eval_results.json").exists()
    assert any(p.name.startswith("checkpoint-") for p in out.iterdir())

    resumed = train_sr(_train_args(tiny_folder, out, epochs=4, extra=("--resume_from_checkpoint", "true")))
    assert resumed == straight


def test_cli_train_then_evaluate_json(tiny_folder, tmp_path, capsys):
    out = tmp_path / "cli"
    cli_main(["train", "sr", *_train_args(tiny_folder, out, epochs=2)])
    capsys.readouterr()
    cli_main(["evaluate", str(out), "--dataset", "atomic", "--data-dir", str(tiny_folder), "--protocol",
              "candidates", "--num-candidates", "10", "--json"])
    printed = json.loads(capsys.readouterr().out)
    recorded = json.loads((out / "eval_results.json").read_text())[1]["metrics"]
    assert printed["metrics"] == pytest.approx(recorded)


def test_evaluate_refuses_a_model_of_another_dataset(tiny_folder, tmp_path, capsys):
    out = tmp_path / "other"
    train_sr(_train_args(tiny_folder, out, epochs=1))
    assert cli_main(["evaluate", str(out), "--dataset", "ml-100k"]) == 2
    err = capsys.readouterr().err
    assert "hfrec: error:" in err and re.search("trained on 50 items but ml-100k .* has 1682", err)


def test_evaluate_refuses_a_model_that_is_not_an_sr_model(tmp_path, capsys):
    from transformers import LlamaConfig

    LlamaConfig(num_hidden_layers=1, hidden_size=8, intermediate_size=8, num_attention_heads=2).save_pretrained(tmp_path)
    assert cli_main(["evaluate", str(tmp_path), "--dataset", "ml-100k"]) == 2
    assert "holds a 'llama' model; it ranks SR models" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--model", "bert4rec"], "Unknown SR model 'bert4rec'"),
    (["--model_kwargs", "{hidden"], "not valid JSON"),
    (["--model_kwargs", '{"hidden_size": 10, "num_attention_heads": 3}'], "hidden_size"),
])
def test_bad_training_options(argv, message, tiny_folder, tmp_path):
    args = _train_args(tiny_folder, tmp_path / "bad", epochs=1)
    for flag, value in zip(argv[::2], argv[1::2]):
        args[args.index(flag) + 1] = value
    with pytest.raises(ValueError, match=message):
        train_sr(args)


def test_help_has_an_example(capsys):
    for argv in (["data", "stats", "--help"], ["evaluate", "--help"], ["benchmark", "--help"], ["train", "sr", "--help"]):
        with pytest.raises(SystemExit):
            cli_main(argv)
        assert "example:" in capsys.readouterr().out, argv


def test_accelerate_launch_two_processes_gathers_every_user(tiny_folder, tmp_path, capsys):
    """DDP on CPU (gloo): each process ranks half the users; the reported metrics cover all of them."""
    out = tmp_path / "ddp"
    script = Path(__file__).parents[1] / "trainers" / "train_sr.py"
    done = accelerate_cpu_launch(script, *_train_args(tiny_folder, out, epochs=2))
    assert done.returncode == 0, done.stderr[-3000:]
    recorded = json.loads((out / "eval_results.json").read_text())[0]
    assert recorded["num_processes"] == 2
    # The best validation NDCG@10 was gathered from both processes during training; the saved (best)
    # model ranked by one process over all users must give the same number.
    cli_main(["evaluate", str(out), "--dataset", "atomic", "--data-dir", str(tiny_folder), "--protocol", "full",
              "--split", "validation", "--num-candidates", "10", "--json"])
    single_process = json.loads(capsys.readouterr().out)["metrics"]
    assert recorded["num_users"] == 60
    assert recorded["best_validation"]["NDCG@10"] == pytest.approx(single_process["NDCG@10"])
