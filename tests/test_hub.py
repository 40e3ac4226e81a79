"""Hub round trips over real HTTP on loopback: push with the real huggingface_hub client to the test hub
(tests/hub_server.py), pull back with the real client (from the test hub and through Olah), and compare the
reloaded models' outputs on fixed inputs bit for bit. Cards are parsed back and their model-index checked
against the evaluation JSON, and each card's loading code is checked (DELRec's is run against the test hub).
Failure cases: a server crashing mid-push, a missing file, a missing revision,
an adapter on the wrong base model, pickled weights.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from safetensors.torch import save_file
from transformers import AutoModel, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from hfrec import hub
from hfrec.hub.folder import pickled_files
from hfrec.metrics import ranking_metrics

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "hfrec-tests"
NUM_ITEMS = 30
SEQ = 8
VOCAB = 64


# ------------------------------------------------------------------------------------------------------
# the table of model types
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelCase:
    name: str
    kind: str  # "sr": predict_scores; "lm": logits
    auto: str  # the Auto class that loads it
    method: str  # the method tag its card must carry
    build: Callable[[], tuple]  # -> (model, inputs, extra_save(model, folder) | None)


def _sr(model_type: str):
    def build():
        from hfrec.models import SR_MODELS

        sizes = {
            "sasrec": dict(hidden_size=16, intermediate_size=32, num_attention_heads=2),
            "gru4rec": dict(embedding_size=16, hidden_size=16),
            "caser": dict(embedding_size=16, num_vertical_filters=2, num_horizontal_filters=4, window_size=3),
        }[model_type]
        config_class, model_class = SR_MODELS[model_type]
        torch.manual_seed(0)
        model = model_class(config_class(num_items=NUM_ITEMS, max_seq_length=SEQ, **sizes)).eval()
        inputs = torch.tensor([[0, 0, 0, 3, 5, 7, 9, 11], [1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 29, 30]])
        return model, inputs, None

    return build


def _tiny_llama_config(**kw) -> LlamaConfig:
    return LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64, **kw)


def _llama(seed: int = 0):
    def build():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(_tiny_llama_config()).eval()
        return model, torch.tensor([[1, 5, 9, 13, 2, 7], [3, 3, 4, 60, 61, 62]]), None

    return build


def _delrec():
    from hfrec.models.delrec import DELRecConfig, DELRecForCausalLM

    torch.manual_seed(0)
    config = DELRecConfig(text_config=_tiny_llama_config().to_dict(), num_virtual_tokens=3, soft_prompt_token_id=VOCAB,
                          teacher_name="SASRec", backbone_name_or_path=f"{NAMESPACE}/llama")
    model = DELRecForCausalLM(config).eval()
    inputs = torch.tensor([[1, VOCAB, VOCAB, VOCAB, 5, 9], [2, 3, VOCAB, VOCAB, VOCAB, 4]])

    def extra_save(m, folder):  # the distilled soft prompt travels as its own safetensors file, and the tokenizer
        if hasattr(m, "save_soft_prompt"):
            m.save_soft_prompt(folder)
        tiny_tokenizer().save_pretrained(folder)

    return model, inputs, extra_save


def _peapod():
    from hfrec.models.peapod import PeaPODConfig, PersonalizedPromptLM

    torch.manual_seed(0)
    config = PeaPODConfig(text_config=_tiny_llama_config().to_dict(), num_users=4, interest_dim=8,
                          num_prompt_components=3, component_length=2, num_prompt_heads=2, task_prompt_length=1,
                          prompt_token_id=VOCAB, backbone_name_or_path=f"{NAMESPACE}/llama")
    model = PersonalizedPromptLM(config).eval()
    return model, torch.tensor([[1, 5, 9, 13, 2, 7], [3, 3, 4, 60, 61, 62]]), None  # no prompt block: no user needed


def tiny_tokenizer():
    """A word-level tokenizer over VOCAB words plus DELRec's placeholder token (id VOCAB)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, **{f"w{i}": i for i in range(1, VOCAB)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    tok.add_tokens(["<|soft_prompt|>"], special_tokens=True)
    return tok


CASES = {c.name: c for c in [
    ModelCase("sasrec", "sr", "AutoModel", "sasrec", _sr("sasrec")),
    ModelCase("gru4rec", "sr", "AutoModel", "gru4rec", _sr("gru4rec")),
    ModelCase("caser", "sr", "AutoModel", "caser", _sr("caser")),
    ModelCase("delrec", "lm", "AutoModelForCausalLM", "delrec", _delrec),
    ModelCase("peapod", "lm", "AutoModelForCausalLM", "peapod", _peapod),
    ModelCase("llama", "lm", "AutoModelForCausalLM", "llama", _llama(0)),
]}
SR_CASES = [n for n, c in CASES.items() if c.kind == "sr"]


@torch.no_grad()
def score(model, kind: str, inputs: torch.Tensor) -> torch.Tensor:
    if kind == "sr":
        return model.predict_scores(inputs)
    return model(input_ids=inputs).logits


def eval_records(name: str, scores: torch.Tensor, kind: str) -> list[dict]:
    """An eval_results.json computed from the model's own scores with hfrec.metrics (never typed by hand)."""
    from hfrec.evaluation import evaluation_record

    last = scores[:, -1, :] if kind == "lm" else scores
    items = last[:, 1:NUM_ITEMS + 1] if kind == "sr" else last[:, :NUM_ITEMS]
    targets = torch.arange(len(items)) % items.shape[1]
    records = [evaluation_record(ranking_metrics(items, targets), dataset="ml-100k", split="test", protocol="full",
                                 num_candidates=20, seed=42, model_type=name, num_users=len(items),
                                 command=f"hfrec train {name} --dataset ml-100k --output-dir runs/{name}")]
    cand = items[:, :5]
    records.append(evaluation_record(ranking_metrics(cand, targets % 5, ks=(1, 5)), dataset="ml-100k", split="test",
                                     protocol="candidates", num_candidates=5, seed=42, model_type=name,
                                     num_users=len(items), command=records[0]["command"]))
    return records


@dataclass
class Published:
    case: ModelCase
    repo_id: str
    sha: str
    folder: Path
    model_class: type
    inputs: torch.Tensor
    scores: torch.Tensor
    records: list


@pytest.fixture(scope="session")
def hub_published(hub_server, tmp_path_factory):
    """Builds a tiny model of a case, saves it with its eval_results.json and pushes it (once per session)."""
    done: dict[str, Published] = {}
    base = tmp_path_factory.mktemp("published")

    def publish(name: str) -> Published:
        if name in done:
            return done[name]
        case = CASES[name]
        try:
            model, inputs, extra_save = case.build()
        except ImportError as err:  # a model type that has not landed yet
            pytest.skip(f"{name} is not available: {err}")
        scores = score(model, case.kind, inputs)
        folder = base / name
        model.save_pretrained(folder)
        if extra_save is not None:
            extra_save(model, folder)
        records = eval_records(name, scores, case.kind)
        (folder / hub.EVAL_RESULTS_NAME).write_text(json.dumps(records, indent=2))
        info = hub.push(folder, f"{NAMESPACE}/{name}")
        done[name] = Published(case, f"{NAMESPACE}/{name}", info.oid, folder, type(model), inputs, scores, records)
        return done[name]

    return publish


def assert_card_matches(card: ModelCard, records: list, method: str, library: str = "transformers",
                        command: str | None = None):
    data = card.data
    assert data.library_name == library
    assert {"hfrec", "recommendation", method} <= set(data.tags)
    assert data.pipeline_tag in ("other", "text-generation")
    assert data.datasets == ["ml-100k"]
    got = hub.metrics_from_card(card)
    assert len(got) == len(records)
    for g, r in zip(got, records):
        assert (g["dataset"], g["split"], g["protocol"], g["seed"]) == (r["dataset"], r["split"], r["protocol"], r["seed"])
        assert g["metrics"] == r["metrics"]  # exact floats, as written by the evaluation
        if r["protocol"] == "candidates":
            assert g["num_candidates"] == r["num_candidates"]
    text = str(card)
    assert hub.CARD_MARKER in text
    assert (command or records[0]["command"]) in text  # the training command
    assert "How to load" in text and "candidates" in text and "seed" in text.lower()


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)


# ------------------------------------------------------------------------------------------------------
# round trips
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_each_model_type(name, hub_published, tmp_path):
    pub = hub_published(name)
    case = pub.case
    import hfrec.models  # noqa: F401  registers the hfrec types with the Auto classes

    # hfrec's class, pinned to the pushed commit
    model = pub.model_class.from_pretrained(pub.repo_id, revision=pub.sha, cache_dir=tmp_path / "c1").eval()
    assert _equal(score(model, case.kind, pub.inputs), pub.scores)
    # the Auto class, at the branch
    auto_class = {"AutoModel": AutoModel, "AutoModelForCausalLM": AutoModelForCausalLM}[case.auto]
    model = auto_class.from_pretrained(pub.repo_id, revision="main", cache_dir=tmp_path / "c2").eval()
    assert type(model) is pub.model_class
    assert _equal(score(model, case.kind, pub.inputs), pub.scores)
    # hfrec.hub.pull into a folder: exactly the files that were pushed, card included
    local = hub.pull(pub.repo_id, revision=pub.sha, local_dir=tmp_path / "local", cache_dir=tmp_path / "c3")
    pushed_files = sorted(p.relative_to(pub.folder).as_posix() for p in pub.folder.rglob("*") if p.is_file())
    pulled_files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    assert [f for f in pulled_files if f != ".gitattributes"] == pushed_files
    for rel in pushed_files:
        assert (local / rel).read_bytes() == (pub.folder / rel).read_bytes(), rel
    model = auto_class.from_pretrained(local).eval()
    assert _equal(score(model, case.kind, pub.inputs), pub.scores)
    # weights only as safetensors
    repo_files = HfApi().list_repo_files(pub.repo_id)
    assert any(f.endswith(".safetensors") for f in repo_files)
    assert not pickled_files(repo_files)
    # the card, as the Hub serves it
    card = ModelCard.load(pub.repo_id)
    assert_card_matches(card, pub.records, case.method)
    if name == "delrec":
        from transformers import AutoTokenizer

        assert "soft_prompt.safetensors" in repo_files
        assert "SASRec" in str(card)  # the teacher
        tok = AutoTokenizer.from_pretrained(pub.repo_id, revision=pub.sha, cache_dir=tmp_path / "c1")
        text = "w1 <|soft_prompt|> w5 w9"
        assert tok(text)["input_ids"] == tiny_tokenizer()(text)["input_ids"] == [1, VOCAB, 5, 9]
    if case.kind == "sr":
        assert "trust_remote_code=True" in str(card)


def test_push_to_hub_method_uploads_card_to_a_branch(hub_server, tmp_path, monkeypatch):
    from hfrec.models import SASRecModel

    monkeypatch.setattr(SASRecModel, "push_to_hub", SASRecModel.push_to_hub)  # restored after the test
    hub.enable_card_push(SASRecModel)
    model, inputs, _ = _sr("sasrec")()
    scores = score(model, "sr", inputs)
    records = eval_records("sasrec", scores, "sr")
    repo = f"{NAMESPACE}/sasrec-method"
    url = model.push_to_hub(repo, revision="v1", eval_results=records, command="hfrec train sr --model sasrec")
    assert url.startswith(hub_server.endpoint)
    pulled = SASRecModel.from_pretrained(repo, revision="v1", cache_dir=tmp_path / "c").eval()
    assert _equal(score(pulled, "sr", inputs), scores)
    card = ModelCard.load(hf_hub_download(repo, "README.md", revision="v1", cache_dir=tmp_path / "c"))
    assert_card_matches(card, records, "sasrec", command="hfrec train sr --model sasrec")
    # main was left alone: only the repository's initial commit is there
    assert HfApi().list_repo_files(repo) == [".gitattributes"]


def test_transformers_push_to_hub_works_against_the_test_hub(hub_server, tmp_path):
    """Plain transformers `push_to_hub` (create_repo, ModelCard.load -> EntryNotFound, create_commit)."""
    model, inputs, _ = _llama(1)()
    scores = score(model, "lm", inputs)
    model.push_to_hub(f"{NAMESPACE}/plain-push")
    pulled = AutoModelForCausalLM.from_pretrained(f"{NAMESPACE}/plain-push", cache_dir=tmp_path / "c").eval()
    assert _equal(score(pulled, "lm", inputs), scores)


# ------------------------------------------------------------------------------------------------------
# adapters
# ------------------------------------------------------------------------------------------------------
def test_adapter_round_trip_and_wrong_base(hub_published, tmp_path):
    from peft import AutoPeftModelForCausalLM, LoraConfig, PeftModel, get_peft_model

    base_repo = hub_published("llama").repo_id
    base = AutoModelForCausalLM.from_pretrained(base_repo, cache_dir=tmp_path / "c").eval()
    torch.manual_seed(1)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False)).eval()
    inputs = torch.tensor([[1, 5, 9, 13, 2, 7]])
    scores = score(peft_model, "lm", inputs)
    folder = tmp_path / "adapter"
    peft_model.save_pretrained(folder)
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == base_repo
    records = eval_records("delrec", scores, "lm")
    info = hub.push(folder, f"{NAMESPACE}/llama-lora", eval_results=records)
    repo = f"{NAMESPACE}/llama-lora"

    # onto the right base, three ways
    fresh = lambda: AutoModelForCausalLM.from_pretrained(base_repo, cache_dir=tmp_path / "c").eval()  # noqa: E731
    assert _equal(score(hub.load_adapter(fresh(), repo, revision=info.oid).eval(), "lm", inputs), scores)
    assert _equal(score(PeftModel.from_pretrained(fresh(), repo).eval(), "lm", inputs), scores)
    auto = AutoPeftModelForCausalLM.from_pretrained(repo, revision=info.oid, cache_dir=tmp_path / "c").eval()
    assert _equal(score(auto, "lm", inputs), scores)

    card = ModelCard.load(repo)
    assert_card_matches(card, records, "delrec", library="peft")
    assert card.data.base_model == base_repo
    assert {"peft", "lora"} <= set(card.data.tags)

    # onto another base model: refused before the base model is touched
    other_repo = f"{NAMESPACE}/llama-other"
    other_model, _, _ = _llama(7)()
    other_model.push_to_hub(other_repo)
    wrong = AutoModelForCausalLM.from_pretrained(other_repo, cache_dir=tmp_path / "c").eval()
    before = {k: v.clone() for k, v in wrong.state_dict().items()}
    with pytest.raises(hub.AdapterBaseMismatchError) as err:
        hub.load_adapter(wrong, repo)
    assert base_repo in str(err.value) and other_repo in str(err.value)
    assert not any("lora" in n for n, _ in wrong.named_modules())
    assert all(torch.equal(before[k], v) for k, v in wrong.state_dict().items())
    with pytest.raises(ValueError, match="was trained on base model"):
        hub.check_adapter_base(folder, other_repo)
    assert hub.check_adapter_base(folder, base_repo) == base_repo
    # a copy of the right base in a local folder is accepted (same model name)
    local_base = tmp_path / "llama"
    fresh().save_pretrained(local_base)
    assert hub.check_adapter_base(repo, str(local_base)) == base_repo

    # PEFT's own push_to_hub works against the same protocol
    peft_model.push_to_hub(f"{NAMESPACE}/llama-lora-peft")
    again = PeftModel.from_pretrained(fresh(), f"{NAMESPACE}/llama-lora-peft").eval()
    assert _equal(score(again, "lm", inputs), scores)


# ------------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------------
def test_cli_push_and_pull(hub_published, tmp_path, capsys):
    from hfrec.cli import main

    pub = hub_published("gru4rec")
    for command in ("push", "pull"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        help_text = capsys.readouterr().out
        assert "examples:" in help_text and f"hfrec {command} " in help_text
    assert main(["push", str(pub.folder), f"{NAMESPACE}/gru4rec-cli", "--private", "--revision", "exp"]) == 0
    out = capsys.readouterr().out
    sha = out.split("commit ")[1].split()[0]
    assert main(["pull", f"{NAMESPACE}/gru4rec-cli", "--revision", "exp", "--local-dir", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out.strip() == str((tmp_path / "out").resolve())
    model = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert _equal(score(model, "sr", pub.inputs), pub.scores)
    info = HfApi().model_info(f"{NAMESPACE}/gru4rec-cli", revision="exp")
    assert info.sha == sha and info.private is True
    with pytest.raises(RepositoryNotFoundError):  # --private: invisible without a token
        HfApi(token=False).model_info(f"{NAMESPACE}/gru4rec-cli", revision="exp")
    assert HfApi(token=False).model_info(pub.repo_id).private is False


# ------------------------------------------------------------------------------------------------------
# failures
# ------------------------------------------------------------------------------------------------------
def test_pull_errors_are_clear_and_leave_nothing_behind(hub_published, tmp_path):
    pub = hub_published("sasrec")
    target = tmp_path / "target"
    with pytest.raises(EntryNotFoundError, match="nope.json"):
        hub.pull(pub.repo_id, filenames=["config.json", "nope.json"], local_dir=target, cache_dir=tmp_path / "c")
    assert not target.exists()
    with pytest.raises(RevisionNotFoundError, match="no-such-branch"):
        hub.pull(pub.repo_id, revision="no-such-branch", local_dir=target, cache_dir=tmp_path / "c")
    assert not target.exists()
    with pytest.raises(RepositoryNotFoundError):
        hub.pull(f"{NAMESPACE}/does-not-exist", local_dir=target, cache_dir=tmp_path / "c")
    assert not target.exists()
    assert not list(tmp_path.glob(".target.*"))  # no staging folder left over
    # a file that is there: only it is fetched
    got = hub.pull(pub.repo_id, filenames=["config.json"], local_dir=target, cache_dir=tmp_path / "c")
    assert sorted(p.name for p in got.iterdir()) == ["config.json"]
    # the same errors through from_pretrained
    with pytest.raises(OSError, match="no-such-branch"):
        pub.model_class.from_pretrained(pub.repo_id, revision="no-such-branch", cache_dir=tmp_path / "c2")
    weightless = f"{NAMESPACE}/weightless"
    HfApi().create_repo(weightless)
    HfApi().upload_file(path_or_fileobj=str(pub.folder / "config.json"), path_in_repo="config.json", repo_id=weightless)
    with pytest.raises(OSError, match="model.safetensors"):
        pub.model_class.from_pretrained(weightless, cache_dir=tmp_path / "c2")


def test_push_refuses_pickles_and_sends_nothing(hub_published, tmp_path):
    pub = hub_published("caser")
    folder = tmp_path / "pickled"
    folder.mkdir()
    for f in pub.folder.iterdir():
        if f.is_file():
            (folder / f.name).write_bytes(f.read_bytes())
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="pickled"):
        hub.push(folder, f"{NAMESPACE}/pickled")
    assert not HfApi().repo_exists(f"{NAMESPACE}/pickled")
    # trainer leftovers are skipped, not refused
    (folder / "pytorch_model.bin").unlink()
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "optimizer.pt").write_bytes(b"\x80\x04")
    (folder / "training_args.bin").write_bytes(b"\x80\x04")
    hub.push(folder, f"{NAMESPACE}/with-leftovers")
    files = HfApi().list_repo_files(f"{NAMESPACE}/with-leftovers")
    assert "model.safetensors" in files and not pickled_files(files) and not any("checkpoint" in f for f in files)


def test_card_metadata_is_validated_before_anything_is_created(hub_server):
    api = HfApi()
    api._validate_yaml("---\nlibrary_name: transformers\ntags: [hfrec]\n---\n# ok\n")  # accepted
    with pytest.raises(ValueError, match="model-index"):
        api._validate_yaml("---\nmodel-index: {name: x}\n---\n# broken\n")
    with pytest.raises(ValueError, match="Invalid YAML"):
        api._validate_yaml("---\ntags: [unclosed\n---\n")


def _run(script: str, args: list[str], env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], env=env, cwd=str(REPO_ROOT), capture_output=True,
                          text=True, timeout=timeout)


def test_server_dies_mid_push_then_retry_succeeds(hub_published, hub_server_factory, tmp_path):
    pub = hub_published("sasrec")
    folder = tmp_path / "model"
    folder.mkdir()
    for f in pub.folder.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    snapshot = {f.name: f.read_bytes() for f in folder.iterdir()}
    root = tmp_path / "crash-root"
    dying = hub_server_factory(root=root, die_on=("commit",))  # crashes when the commit request arrives
    repo = f"{NAMESPACE}/crash"
    # the real client retries the commit with backoff (~25 s), then gives up loudly
    with pytest.raises(hub.HubPushError, match="failed while uploading and committing the files") as err:
        hub.push(folder, repo, endpoint=dying.endpoint)
    assert "Re-run the same push" in str(err.value)
    assert type(err.value.__cause__).__name__ in ("ConnectError", "RemoteProtocolError")
    dying.proc.wait(timeout=10)
    assert dying.proc.returncode == 17  # it really died mid-push
    assert "dying on request" in dying.log_text() and "commit" in dying.log_text()
    # nothing half-written locally: the model files are untouched, the card is complete, no temp files
    for name, data in snapshot.items():
        if name != "README.md":
            assert (folder / name).read_bytes() == data
    assert sorted(p.name for p in folder.iterdir()) == sorted(snapshot)
    assert (folder / "README.md").read_text() == str(hub.build_model_card(folder, repo_id=repo))
    # a fresh server on the same storage: the repository exists (create_repo had succeeded), no commit of ours
    fresh = hub_server_factory(root=root, port=dying.port)
    assert HfApi(endpoint=fresh.endpoint).list_repo_files(repo) == [".gitattributes"]
    info = hub.push(folder, repo, endpoint=fresh.endpoint)  # the retry
    local = hub.pull(repo, revision=info.oid, local_dir=tmp_path / "pulled", cache_dir=tmp_path / "c",
                     endpoint=fresh.endpoint)
    model = pub.model_class.from_pretrained(local).eval()
    assert _equal(score(model, "sr", pub.inputs), pub.scores)
    assert fresh.alive()


# ------------------------------------------------------------------------------------------------------
# loading elsewhere: without hfrec (remote code), through Olah
# ------------------------------------------------------------------------------------------------------
def _write_spec(pubs: list[Published], path: Path) -> Path:
    spec = []
    for pub in pubs:
        tensors = path.parent / f"{pub.case.name}.safetensors"
        save_file({"inputs": pub.inputs.contiguous(), "scores": pub.scores.contiguous()}, str(tensors))
        spec.append({"name": pub.case.name, "repo": pub.repo_id, "sha": pub.sha, "kind": pub.case.kind,
                     "auto": pub.case.auto, "tensors": str(tensors)})
    path.write_text(json.dumps(spec))
    return path


REMOTE_CODE_SCRIPT = """
import importlib.abc, json, sys
class NoHfrec(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "hfrec" or name.startswith("hfrec."):
            raise ModuleNotFoundError(f"hfrec is not installed here ({name})")
sys.meta_path.insert(0, NoHfrec())
import torch, transformers
from safetensors.torch import load_file
bad = []
for case in json.load(open(sys.argv[1])):
    t = load_file(case["tensors"])
    auto = getattr(transformers, case["auto"])
    model = auto.from_pretrained(case["repo"], revision=case["sha"], trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    with torch.no_grad():
        out = model.predict_scores(t["inputs"]) if case["kind"] == "sr" else model(input_ids=t["inputs"]).logits
    print(case["name"], type(model).__module__, torch.equal(out, t["scores"]))
    if not torch.equal(out, t["scores"]):
        bad.append(case["name"])
assert "hfrec" not in sys.modules
sys.exit(1 if bad else 0)
"""


def test_trust_remote_code_without_hfrec(hub_published, hub_server, tmp_path, hub_client_env):
    pubs = [hub_published(n) for n in (*SR_CASES, "delrec")]
    assert "auto_map" in json.loads((hub_published("delrec").folder / "config.json").read_text())
    spec = _write_spec(pubs, tmp_path / "spec.json")
    result = _run(REMOTE_CODE_SCRIPT, [str(spec)], hub_client_env(hub_server.endpoint, tmp_path / "hf-home"))
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert result.stdout.count("True") == len(pubs)


OLAH_SCRIPT = """
import json, sys, torch, transformers
import hfrec.models, hfrec.models.delrec  # the Auto classes know the hfrec types
from hfrec import hub
from safetensors.torch import load_file
bad = []
for case in json.load(open(sys.argv[1])):
    t = load_file(case["tensors"])
    auto = getattr(transformers, case["auto"])
    if case.get("adapter_base"):
        # Olah answers a missing file at a *branch* with 401 RepoNotFound (at a commit hash: 404 EntryNotFound), and
        # transformers probes adapter_config.json: name the revision so that it is resolved to a commit first.
        base = auto.from_pretrained(case["adapter_base"], revision="main").eval()
        runs = {"adapter": hub.load_adapter(base, case["repo"], revision=case["sha"]).eval()}
    else:
        runs = {"sha": auto.from_pretrained(case["repo"], revision=case["sha"]).eval(),
                "pull-main": auto.from_pretrained(hub.pull(case["repo"], revision="main")).eval()}
    for how, model in runs.items():
        with torch.no_grad():
            out = model.predict_scores(t["inputs"]) if case["kind"] == "sr" else model(input_ids=t["inputs"]).logits
        ok = torch.equal(out, t["scores"])
        print(case["name"], how, ok)
        if not ok:
            bad.append((case["name"], how))
sys.exit(1 if bad else 0)
"""


def test_pull_through_olah(hub_published, hub_olah, tmp_path, hub_client_env):
    from peft import LoraConfig, get_peft_model

    pubs = [hub_published(n) for n in CASES]
    spec_path = _write_spec(pubs, tmp_path / "spec.json")
    spec = json.loads(spec_path.read_text())
    # an adapter too
    base = AutoModelForCausalLM.from_pretrained(hub_published("llama").repo_id, cache_dir=tmp_path / "c").eval()
    torch.manual_seed(3)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False)).eval()
    inputs = torch.tensor([[4, 8, 15, 16, 23, 42]])
    scores = score(peft_model, "lm", inputs)
    peft_model.save_pretrained(tmp_path / "adapter")
    info = hub.push(tmp_path / "adapter", f"{NAMESPACE}/olah-lora", eval_results=eval_records("lora", scores, "lm"))
    save_file({"inputs": inputs, "scores": scores.contiguous()}, str(tmp_path / "lora.safetensors"))
    spec.append({"name": "lora", "repo": f"{NAMESPACE}/olah-lora", "sha": info.oid, "kind": "lm",
                 "auto": "AutoModelForCausalLM", "tensors": str(tmp_path / "lora.safetensors"),
                 "adapter_base": hub_published("llama").repo_id})
    spec_path.write_text(json.dumps(spec))
    result = _run(OLAH_SCRIPT, [str(spec_path)], hub_client_env(hub_olah.endpoint, tmp_path / "hf-home"))
    assert result.returncode == 0, result.stdout + result.stderr[-4000:] + hub_olah.log_text()[-3000:]
    assert result.stdout.count(" True") == 2 * len(pubs) + 1
    # the downloads really went through Olah
    log = hub_olah.log_text()
    assert f"/{NAMESPACE}/sasrec/resolve/" in log and "model.safetensors" in log


@pytest.mark.parametrize("name", ["sasrec", "delrec"])
def test_import_hfrec_is_enough_for_the_auto_classes(name, hub_published, hub_server, tmp_path, hub_client_env):
    pub = hub_published(name)
    script = (
        "import sys, hfrec, transformers\n"
        "m = getattr(transformers, sys.argv[3]).from_pretrained(sys.argv[1], revision=sys.argv[2])\n"
        "assert type(m).__module__.startswith('hfrec.'), type(m).__module__\n"
        "print(type(m).__name__)\n"
    )
    result = _run(script, [pub.repo_id, pub.sha, pub.case.auto],
                  hub_client_env(hub_server.endpoint, tmp_path / "hf-home"))
    assert result.returncode == 0, (
        "`import hfrec` alone must register every hfrec model type with the Auto classes:\n" + result.stderr[-3000:])
    assert result.stdout.strip() == pub.model_class.__name__


# ------------------------------------------------------------------------------------------------------
# cards of this project's own runs
# ------------------------------------------------------------------------------------------------------
def _generate_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("model_cards_generate", REPO_ROOT / "model_cards" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_cards_generate_script(hub_published, tmp_path, capsys):
    pub = hub_published("sasrec")
    runs = tmp_path / "runs"
    run = runs / "benchmark" / "sasrec-ml100k"
    run.mkdir(parents=True)
    for f in pub.folder.iterdir():
        if f.name != "README.md":
            (run / f.name).write_bytes(f.read_bytes())
    (run / "checkpoint-5").mkdir()  # trainer leftovers are not runs
    (run / "checkpoint-5" / "config.json").write_text("{}")
    out = tmp_path / "cards"
    generate = _generate_script()
    assert generate.main([str(runs), "--out", str(out), "--namespace", "hfrec"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["sasrec-ml100k"]
    card = ModelCard.load(out / "sasrec-ml100k" / "README.md")
    assert_card_matches(card, pub.records, "sasrec")
    assert "hfrec/sasrec-ml100k" in str(card)
    assert not (run / "README.md").exists()  # the run folder is not modified
    # --check passes on fresh cards and fails on stale ones
    check = [str(runs), "--out", str(out), "--namespace", "hfrec", "--check"]
    assert generate.main(check) == 0
    records = json.loads((run / "eval_results.json").read_text())
    records[0]["metrics"]["HR@1"] = records[0]["metrics"]["HR@1"] + 0.5
    (run / "eval_results.json").write_text(json.dumps(records))
    assert generate.main(check) == 1
    assert "stale" in capsys.readouterr().err


def test_card_keeps_baseline_records_out_of_the_model_index(tmp_path):
    """A run that also ranked baselines (DELRec's table) must not publish their numbers as the model's."""
    from hfrec.hub import build_model_card
    from hfrec.models import SASRecConfig, SASRecModel

    SASRecModel(SASRecConfig(num_items=9, hidden_size=8, intermediate_size=16)).save_pretrained(tmp_path)
    own = {"dataset": "ml-100k", "split": "test", "protocol": "candidates", "num_candidates": 20,
           "model_type": "sasrec", "metrics": {"HR@1": 0.5}, "num_users": 200}
    baseline = dict(own, model_type="popularity", method="popularity", metrics={"HR@1": 0.25})
    card = build_model_card(tmp_path, eval_results=[baseline, own])
    values = [m["value"] for r in card.data.to_dict()["model-index"][0]["results"] for m in r["metrics"]]
    assert values == [0.5]
    assert "| popularity | 200 | 0.2500 |" in str(card)


# ------------------------------------------------------------------------------------------------------
# loading snippets: DELRec's base and adapter live in one repository
# ------------------------------------------------------------------------------------------------------
def _save_delrec_bundle(folder: Path):
    """A DELRec folder as its script writes it: the distilled base (backbone + soft prompt) and, next to it,
    the LoRA adapter trained on that base, which records the folder itself as its base model."""
    from peft import LoraConfig, get_peft_model

    model, inputs, extra_save = _delrec()
    model.name_or_path = str(folder.resolve())
    model.save_pretrained(folder)
    extra_save(model, folder)
    torch.manual_seed(1)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.eval().save_pretrained(folder)
    return inputs, score(peft_model, "lm", inputs)


def _save_delrec(folder: Path):  # stage 1 only: no adapter
    model, _, extra_save = _delrec()
    model.save_pretrained(folder)
    extra_save(model, folder)


def _save_sasrec(folder: Path):
    _sr("sasrec")()[0].save_pretrained(folder)


def _save_lora_adapter(folder: Path):
    from peft import LoraConfig, get_peft_model

    model = _llama(0)()[0]
    model.name_or_path = f"{NAMESPACE}/llama"
    # save_embedding_layers=False: "auto" would look the base model up on the (here absent) Hub
    adapter = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    adapter.save_pretrained(folder, save_embedding_layers=False)


def _card_snippet(card) -> str:
    return str(card).split("## How to load", 1)[1].split("```python\n", 1)[1].split("\n```", 1)[0]


REPO = "me/x"
SNIPPET_CASES = {  # folder kind -> (save, card metadata, the snippet must contain, must not contain)
    "sasrec": (_save_sasrec, {"library_name": "transformers"},
               ["import hfrec", f'AutoModel.from_pretrained("{REPO}"', "trust_remote_code=True",
                f'pipeline("next-item-recommendation", model="{REPO}")'],
               ["PeftModel"]),
    "lora-adapter": (_save_lora_adapter, {"library_name": "peft", "base_model": f"{NAMESPACE}/llama"},
                     [f'base = AutoModelForCausalLM.from_pretrained("{NAMESPACE}/llama")',
                      f'PeftModel.from_pretrained(base, "{REPO}"', "load_adapter(base"],
                     ["pipeline("]),
    "delrec": (_save_delrec, {"library_name": "transformers", "base_model": f"{NAMESPACE}/llama"},
               ["import hfrec", f'AutoModelForCausalLM.from_pretrained("{REPO}"',
                f'pipeline("next-item-recommendation", model="{REPO}")'],
               ["PeftModel", "load_adapter"]),
    # the adapter on the bare backbone would drop the distilled soft prompt: load the repository's own base
    "delrec+lora": (_save_delrec_bundle,
                    {"library_name": "transformers", "base_model": f"{NAMESPACE}/llama",
                     "base_model_relation": "finetune"},
                    ["import hfrec", f'AutoModelForCausalLM.from_pretrained("{REPO}"',
                     f'from hfrec import DELRecForCausalLM\nmodel = DELRecForCausalLM.from_pretrained("{REPO}"',
                     f'pipeline("next-item-recommendation", model="{REPO}")', "LoRA adapter"],
                    ["PeftModel", "load_adapter", f"{NAMESPACE}/llama", "<base model>"]),
}


@pytest.mark.parametrize("kind", list(SNIPPET_CASES))
def test_card_loading_snippet_per_folder_kind(kind, tmp_path):
    save, metadata, present, absent = SNIPPET_CASES[kind]
    save(tmp_path)
    card = hub.build_model_card(tmp_path, repo_id=REPO)
    snippet = _card_snippet(card)
    got = card.data.to_dict()
    assert {k: got.get(k) for k in ("library_name", "base_model", "base_model_relation")} == {
        "base_model": None, "base_model_relation": None, **metadata}
    for text in present:
        assert text in snippet, f"{kind}: {text!r} missing from\n{snippet}"
    for text in absent:
        assert text not in snippet, f"{kind}: {text!r} in\n{snippet}"
    compile(snippet, f"<{kind} snippet>", "exec")  # valid Python, placeholders and all
    prose = re.sub(r"```.*?```|`[^`]*`", "", str(card).split(hub.CARD_MARKER, 1)[1], flags=re.S)
    assert set(re.findall(r"(?i)\blora\b", prose)) <= {"LoRA"}  # tags and identifiers stay lower-case


SNIPPET_SCRIPT = """
import json, sys, torch
from safetensors.torch import load_file
snippet, expected = open(sys.argv[1]).read(), load_file(sys.argv[2])
import hfrec
# this hand-saved folder has no teacher/run info, which the pipeline needs: tests/test_methods.py runs the pipeline
snippet = "\\n".join(line for line in snippet.splitlines() if "pipeline" not in line and "recommend(" not in line)
class Assignments(dict):  # keeps every model the snippet assigns, not only the last one
    models = []
    def __setitem__(self, name, value):
        if name == "model":
            self.models.append(value)
        super().__setitem__(name, value)
exec(snippet, {"__name__": "snippet"}, Assignments())
out = []
for model in Assignments.models:
    with torch.no_grad():
        logits = model.eval()(input_ids=expected["inputs"]).logits
    out.append([type(model).__name__, hasattr(model, "peft_config"), torch.equal(logits, expected["scores"])])
print(json.dumps(out))
"""


def test_delrec_card_snippet_loads_base_and_adapter_from_the_hub(hub_server, tmp_path, hub_client_env):
    """The card's own loading code, run elsewhere: DELRec's soft prompt and LoRA adapter both come back."""
    import shutil

    folder = tmp_path / "delrec-lora"
    inputs, scores = _save_delrec_bundle(folder)
    repo = f"{NAMESPACE}/delrec-lora"
    info = hub.push(folder, repo)
    adapter_config = json.loads(Path(hf_hub_download(repo, "adapter_config.json", revision=info.oid,
                                                     cache_dir=tmp_path / "c")).read_text())
    assert adapter_config["base_model_name_or_path"] == repo  # not the training folder, which no user has
    card = ModelCard.load(hf_hub_download(repo, "README.md", revision=info.oid, cache_dir=tmp_path / "c"))
    (tmp_path / "snippet.py").write_text(_card_snippet(card))
    save_file({"inputs": inputs, "scores": scores.contiguous()}, str(tmp_path / "expected.safetensors"))
    shutil.rmtree(folder)  # the recorded training folder is gone, as on a user's machine
    result = _run(SNIPPET_SCRIPT, [str(tmp_path / "snippet.py"), str(tmp_path / "expected.safetensors")],
                  hub_client_env(hub_server.endpoint, tmp_path / "hf-home"))
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    # the Auto class, hfrec's class, and the remote code: each a DELRec with its adapter, scoring as trained
    assert loaded == [["DELRecForCausalLM", True, True]] * 3
