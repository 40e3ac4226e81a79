"""SR teachers/baselines (SASRec, GRU4Rec, Caser): one table of tiny models, the whole contract."""

import inspect
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel

from hfrec.models import (
    SR_MODELS,
    CaserConfig,
    CaserModel,
    GRU4RecConfig,
    GRU4RecModel,
    SASRecConfig,
    SASRecModel,
)


NUM_ITEMS = 30
SEQ = 8
MODEL_TYPES = list(SR_MODELS)

TINY = {
    "sasrec": dict(hidden_size=16, intermediate_size=32, num_attention_heads=2),
    "gru4rec": dict(embedding_size=16, hidden_size=16),
    "caser": dict(embedding_size=16, num_vertical_filters=2, num_horizontal_filters=4, window_size=3),
}
LOW_DROPOUT = {
    "sasrec": dict(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1),
    "gru4rec": dict(dropout_prob=0.1),
    "caser": dict(dropout_prob=0.1, reg_weight=0.0),
}


def tiny(model_type, seed=0, table_mode=None, **overrides):
    """A tiny model; with `table_mode`, an item table (see `item_table`) is loaded in that mode."""
    config_class, model_class = SR_MODELS[model_type]
    torch.manual_seed(seed)
    config = config_class(num_items=NUM_ITEMS, max_seq_length=SEQ, **{**TINY[model_type], **overrides})
    model = model_class(config)
    if table_mode is not None:
        model.load_item_embeddings(item_table(model, table_mode), mode=table_mode)
    return model


TABLE_MODES = ["init", "frozen", "fuse"]
TABLE_DIM = 24  # != the tiny models' item embedding size (16): "frozen"/"fuse" must learn a projection


def item_size(model):
    return getattr(model.config, model.item_embedding_size_field)


def item_table(model, mode, rows=NUM_ITEMS, seed=5):
    """A stand-in for P2Rec's LLM item table: one row per item in id order ("init" needs the model's width)."""
    width = item_size(model) if mode == "init" else TABLE_DIM
    return torch.randn(rows, width, generator=torch.Generator().manual_seed(seed))


def left_pad(rows, length, value=0):
    return torch.tensor([[value] * (length - len(row)) + list(row) for row in rows], dtype=torch.long)


def successor_batch(generator, batch, length=SEQ):
    """The toy pattern: item i is followed by item i + 1 (30 wraps to 1). Random starts and lengths."""
    inputs, labels = [], []
    for _ in range(batch):
        start = int(torch.randint(1, NUM_ITEMS + 1, (1,), generator=generator))
        size = int(torch.randint(2, length + 1, (1,), generator=generator))
        seq = [(start + j - 1) % NUM_ITEMS + 1 for j in range(size + 1)]
        inputs.append(seq[:-1])
        labels.append(seq[1:])
    return left_pad(inputs, length), left_pad(labels, length, value=-100)


HISTORIES = [[3, 7, 1], [5, 6, 7, 8, 9, 10, 11, 12], [30], [2, 2, 4, 9, 1]]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine OpenMP threads fighting for
    cores made the training fixture 15x slower; run this module single-threaded and restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(one_thread):
    """Each tiny model trained 60 Adam steps on the successor pattern (shared by the tests that need it)."""
    models, losses = {}, {}
    for model_type in MODEL_TYPES:
        model = tiny(model_type, **LOW_DROPOUT[model_type])
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
        generator = torch.Generator().manual_seed(1)
        history = []
        model.train()
        for _ in range(60):
            input_ids, labels = successor_batch(generator, 32)
            loss = model(input_ids, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append(loss.item())
        models[model_type] = model.eval()
        losses[model_type] = history
    return models, losses


@pytest.fixture(scope="module")
def trained_with_table(one_thread):
    """Each tiny model x table mode: an item table loaded, then 10 Adam steps on one fixed small batch; the loss on
    that batch in eval mode (no dropout) is recorded before and after."""
    input_ids, labels = successor_batch(torch.Generator().manual_seed(2), 16)
    runs = {}
    for model_type in MODEL_TYPES:
        for mode in TABLE_MODES:
            model = tiny(model_type, **LOW_DROPOUT[model_type])
            table = item_table(model, mode)
            model.load_item_embeddings(table, mode=mode)
            before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
            with torch.no_grad():
                loss_before = model.eval()(input_ids, labels=labels).loss.item()
            model.train()
            for _ in range(10):
                loss = model(input_ids, labels=labels).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                loss_after = model.eval()(input_ids, labels=labels).loss.item()
            runs[model_type, mode] = dict(model=model, table=table, before=before, loss_before=loss_before,
                                          loss_after=loss_after)
    return runs


# ---------------------------------------------------------------------------------------------- learning


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_loss_finite_decreases_and_learns_the_pattern(trained, model_type):
    models, losses = trained
    history = losses[model_type]
    assert all(torch.isfinite(torch.tensor(history)))
    assert history[0] > 3.0  # about log(30) at init
    assert sum(history[-5:]) / 5 < 0.5 * history[0], history
    model = models[model_type]
    input_ids, _ = successor_batch(torch.Generator().manual_seed(99), 64)
    last = input_ids[:, -1]
    expected = last % NUM_ITEMS + 1
    with torch.no_grad():
        predicted = model.predict_scores(input_ids).argmax(dim=1)
        top1 = model.top_k(input_ids, 1)[:, 0]
    assert torch.equal(predicted, top1)
    accuracy = (predicted == expected).float().mean().item()
    assert accuracy >= 0.9, f"{model_type} top-1 accuracy on the successor pattern: {accuracy:.2f}"


@pytest.mark.parametrize("table_mode", [None, *TABLE_MODES])
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_loss_is_cross_entropy_over_items_at_labelled_positions(model_type, table_mode):
    model = tiny(model_type, table_mode=table_mode).eval()
    input_ids = left_pad(HISTORIES, SEQ)
    labels = torch.full_like(input_ids, -100)
    labels[0, -1], labels[1, 3], labels[1, 6], labels[3, -2] = 4, 13, 1, 30
    labels[2, -1] = 0  # 0 is ignored like -100
    with torch.no_grad():
        out = model(input_ids, labels=labels, return_logits=True)
    valid = labels > 0
    expected = F.cross_entropy(out.logits[valid][:, 1:], labels[valid] - 1)
    if model_type == "caser":
        expected = expected + model.config.reg_weight * model.regularization_loss()
    torch.testing.assert_close(out.loss, expected)
    assert out.hidden_states.shape[:2] == input_ids.shape
    assert model(input_ids, labels=labels).logits is None  # logits only when asked


@pytest.mark.parametrize("table_mode", [None, *TABLE_MODES])
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_chunked_loss_matches_full_loss_and_gradients(model_type, table_mode):
    input_ids, labels = successor_batch(torch.Generator().manual_seed(3), 6)
    runs = []
    for chunk in (None, 5):
        model = tiny(model_type, table_mode=table_mode, loss_chunk_size=chunk).eval()
        loss = model(input_ids, labels=labels).loss
        loss.backward()
        runs.append((loss.detach(), {name: param.grad.clone() for name, param in model.named_parameters()}))
    torch.testing.assert_close(runs[0][0], runs[1][0])
    assert runs[0][1].keys() == runs[1][1].keys()
    for name, grad in runs[0][1].items():
        torch.testing.assert_close(grad, runs[1][1][name], msg=name)


# ---------------------------------------------------------------------------------------------- inference


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_predict_scores_shape_and_padding_column(model_type):
    model = tiny(model_type).eval()
    with torch.no_grad():
        scores = model.predict_scores(left_pad(HISTORIES, SEQ))
    assert scores.shape == (len(HISTORIES), NUM_ITEMS + 1)
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()


@pytest.mark.parametrize("table_mode", [None, *TABLE_MODES])
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_score_candidates_equals_gathered_predict_scores(model_type, table_mode):
    model = tiny(model_type, table_mode=table_mode).eval()
    input_ids = left_pad(HISTORIES, SEQ)
    candidates = torch.randint(1, NUM_ITEMS + 1, (len(HISTORIES), 20), generator=torch.Generator().manual_seed(0))
    candidates[0, -1] = 0  # a padding candidate scores -inf
    with torch.no_grad():
        scores = model.score_candidates(input_ids, candidates)
        full = model.predict_scores(input_ids)
    assert scores.shape == candidates.shape
    torch.testing.assert_close(scores, full.gather(1, candidates))


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_top_k_excludes_given_ids(trained, model_type):
    model = trained[0][model_type]
    input_ids = left_pad([[1, 2, 3], [10, 11]], SEQ)
    with torch.no_grad():
        best = model.top_k(input_ids, 5)
        exclude = torch.tensor([[4, best[0, 1].item(), 0], [12, 0, 0]])
        filtered = model.top_k(input_ids, 5, exclude=exclude)
    assert best[0, 0] == 4 and best[1, 0] == 12
    assert filtered.shape == (2, 5)
    for row, banned in zip(filtered.tolist(), exclude.tolist()):
        assert not set(row) & set(banned)
    assert (filtered > 0).all()


@pytest.mark.parametrize("pad_row", ["zero", "random"])
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_left_padding_does_not_change_scores(model_type, pad_row):
    model = tiny(model_type).eval()
    if pad_row == "random":
        # an item table set from outside (e.g. P2Rec's LLM embeddings) may have a non-zero padding row; the
        # bias-free GRU is only padding-proof by accident with a zero row, so this case tests the real handling
        with torch.no_grad():
            model.item_embedding.weight[0] = torch.randn(model.item_embedding.weight.shape[1])
    with torch.no_grad():
        for history in HISTORIES:
            unpadded = torch.tensor([history])
            reference = model.predict_scores(unpadded)[:, 1:]
            for length in (SEQ, 20):  # 20 > max_seq_length: the last 8 columns are kept
                padded = left_pad([history], length)
                torch.testing.assert_close(model.predict_scores(padded)[:, 1:], reference, rtol=0, atol=1e-6)
                logits = model(padded).logits[0, -len(history):, 1:]
                torch.testing.assert_close(logits, model(unpadded).logits[0, :, 1:], rtol=0, atol=1e-6)
            # a batch mixing lengths gives each row its own unpadded result
            batch = model.predict_scores(left_pad(HISTORIES, SEQ))[HISTORIES.index(history), 1:]
            torch.testing.assert_close(batch[None], reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_one_pass_over_positions_equals_each_prefix(model_type):
    """Causality: the output at step t depends on items 0..t only (no look-ahead in one-pass training)."""
    model = tiny(model_type).eval()
    history = [4, 9, 9, 1, 22, 30, 7, 5]
    with torch.no_grad():
        logits = model(torch.tensor([history])).logits[0]
        for t in range(len(history)):
            prefix = model.predict_scores(torch.tensor([history[: t + 1]]))[0]
            torch.testing.assert_close(logits[t, 1:], prefix[1:], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------- saving


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_save_pretrained_then_auto_model_is_bit_identical(trained, model_type, tmp_path):
    model = trained[0][model_type]
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert (tmp_path / f"modeling_{model_type}.py").exists()
    assert (tmp_path / f"configuration_{model_type}.py").exists()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == model_type and config["num_items"] == NUM_ITEMS
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel"}
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    input_ids = left_pad(HISTORIES, SEQ)
    candidates = torch.arange(1, 21).repeat(len(HISTORIES), 1)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids).logits, model(input_ids).logits)
        assert torch.equal(loaded.predict_scores(input_ids), model.predict_scores(input_ids))
        assert torch.equal(loaded.score_candidates(input_ids, candidates), model.score_candidates(input_ids, candidates))


REMOTE_LOAD = textwrap.dedent(
    """
    import json, sys

    class BlockHfrec:  # hfrec is installed (editable) in this venv: make it unimportable
        def find_spec(self, name, path=None, target=None):
            if name == "hfrec" or name.startswith("hfrec."):
                raise ImportError("hfrec is blocked in this process")

    sys.meta_path.insert(0, BlockHfrec())
    import torch
    from transformers import AutoModel

    torch.set_num_threads(1)  # like the parent (float sums depend on the thread split)
    results = {}
    for model_type, path in json.loads(sys.argv[1]).items():
        model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        input_ids = torch.tensor([[0, 0, 3, 7, 1], [5, 6, 7, 8, 9]])
        with torch.no_grad():
            results[model_type] = model.predict_scores(input_ids)[:, 1:].tolist()
    assert not any(name == "hfrec" or name.startswith("hfrec.") for name in sys.modules)
    try:
        import hfrec  # noqa: F401
        raise SystemExit("hfrec was importable")
    except ImportError:
        pass
    print(json.dumps(results))
    """
)


def test_trust_remote_code_load_without_hfrec(trained, trained_with_table, tmp_path):
    # the plain models, and the ones whose item embeddings come from a frozen table (extra buffer + projection)
    models = dict(trained[0])
    models.update({f"{t}-{mode}": run["model"] for (t, mode), run in trained_with_table.items() if mode != "init"})
    paths, expected = {}, {}
    input_ids = torch.tensor([[0, 0, 3, 7, 1], [5, 6, 7, 8, 9]])
    for model_type, model in models.items():
        paths[model_type] = str(tmp_path / model_type)
        model.save_pretrained(paths[model_type])
        with torch.no_grad():
            expected[model_type] = model.predict_scores(input_ids)[:, 1:].tolist()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(tmp_path / "modules")
    env["HF_HUB_OFFLINE"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD, json.dumps(paths)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for model_type in models:
        assert results[model_type] == expected[model_type], model_type


def test_auto_classes_know_the_model_types():
    for model_type, (config_class, model_class) in SR_MODELS.items():
        config = AutoConfig.for_model(model_type, num_items=7)
        assert type(config) is config_class
        assert type(AutoModel.from_config(config)) is model_class


# ---------------------------------------------------------------------------------------------- item tables
# P2Rec (and any method with its own item embeddings) hands an SR model a table with one row per item.


@pytest.mark.parametrize("rows", [NUM_ITEMS, NUM_ITEMS + 1], ids=["N-rows", "N+1-rows"])
@pytest.mark.parametrize("mode", TABLE_MODES)
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_row_of_item_k_in_the_table_is_item_k(model_type, mode, rows):
    model = tiny(model_type).eval()
    table = item_table(model, mode, rows=rows)
    given = table.clone()
    # a NumPy table shares memory with `table`: loading it must not zero the caller's row 0 in place
    model.load_item_embeddings(table.numpy() if rows == NUM_ITEMS + 1 else table, mode=mode)
    assert torch.equal(table, given)
    first = rows - NUM_ITEMS  # the table row of item 1 (with N+1 rows, row 0 is padding)
    stored = model.item_embedding.weight if mode == "init" else model.pretrained_item_embedding
    assert torch.equal(stored[1:], table[first:])  # "init" copies the rows as they are
    assert not stored[0].any() and not model.item_representations()[0].any()  # padding stays zero
    item = 17
    histories = left_pad([[1, 2, 3], [5, 6]], SEQ)  # item 17 is in neither history
    perturbed = table.clone()
    # a random change: a constant one is orthogonal to SASRec's LayerNorm output (zero-mean), so scores would not move
    perturbed[item - 1 + first] += torch.randn(table.shape[1], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model.predict_scores(histories)
        model.load_item_embeddings(perturbed, mode=mode)  # same width and mode: only the table is replaced
        scores = model.predict_scores(histories)
    changed = ~torch.isclose(scores, reference, rtol=0, atol=1e-6)
    assert changed.any(dim=0).nonzero().flatten().tolist() == [item] and changed[:, item].all()


@pytest.mark.parametrize("mode", TABLE_MODES)
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_model_with_item_table_trains_and_a_frozen_table_never_changes(trained_with_table, model_type, mode):
    run = trained_with_table[model_type, mode]
    model, before, after = run["model"], run["before"], run["model"].state_dict()
    assert run["loss_after"] < 0.9 * run["loss_before"], (run["loss_before"], run["loss_after"])
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert (model.config.pretrained_item_embedding_dim, model.config.pretrained_item_embedding_mode) == (
        run["table"].shape[1], mode)
    if mode == "init":  # nothing but the initial values differ from a plain model
        assert not any(name.startswith("pretrained_item") for name in after)
        assert "item_embedding.weight" in changed
        return
    assert torch.equal(after["pretrained_item_embedding"][1:], run["table"])
    assert "pretrained_item_embedding" not in trainable  # a buffer: no optimizer or requires_grad_ reaches it
    assert {"pretrained_item_projection.weight", "pretrained_item_projection.bias"} <= changed
    assert ("item_embedding.weight" in changed) == (mode == "fuse")
    assert ("item_embedding.weight" in after) == (mode == "fuse")  # "frozen" has no unused item_embedding


@pytest.mark.parametrize("mode", TABLE_MODES)
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_item_table_model_save_load_round_trip_is_bit_identical(trained_with_table, model_type, mode, tmp_path):
    model = trained_with_table[model_type, mode]["model"]
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert (loaded.config.pretrained_item_embedding_dim, loaded.config.pretrained_item_embedding_mode) == (
        model.config.pretrained_item_embedding_dim, mode)
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[name], loaded_state[name]) for name in state)
    assert {name for name, _ in loaded.named_buffers()} == {name for name, _ in model.named_buffers()}
    input_ids = left_pad(HISTORIES, SEQ)
    candidates = torch.arange(1, 21).repeat(len(HISTORIES), 1)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids).logits, model(input_ids).logits)
        assert torch.equal(loaded.predict_scores(input_ids), model.predict_scores(input_ids))
        assert torch.equal(loaded.score_candidates(input_ids, candidates), model.score_candidates(input_ids, candidates))
        assert torch.equal(loaded.top_k(input_ids, 5), model.top_k(input_ids, 5))


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_init_with_project_reduces_a_wider_table_by_pca(model_type):
    model = tiny(model_type)
    size = item_size(model)
    scales = torch.linspace(3.0, 0.1, TABLE_DIM)  # distinct variances: well-defined principal directions
    table = torch.randn(NUM_ITEMS, TABLE_DIM, generator=torch.Generator().manual_seed(0)) * scales + 1.0
    model.load_item_embeddings(table, mode="init", project=True)
    weight = model.item_embedding.weight.detach().double()
    assert weight.shape == (NUM_ITEMS + 1, size) and not weight[0].any()
    centred = table.double() - table.double().mean(dim=0)
    top = torch.linalg.eigvalsh(centred.T @ centred).flip(0)[:size]
    # PCA coordinates: centred, uncorrelated, with the top-`size` variances of the table
    torch.testing.assert_close(weight[1:].mean(dim=0), torch.zeros(size, dtype=torch.float64), rtol=0, atol=1e-5)
    torch.testing.assert_close(weight[1:].T @ weight[1:], torch.diag(top), rtol=1e-4, atol=1e-3)
    again = tiny(model_type, seed=1).load_item_embeddings(table, mode="init", project=True)
    assert torch.equal(again.item_embedding.weight, model.item_embedding.weight)  # deterministic (signs fixed)
    assert model.config.pretrained_item_embedding_dim == TABLE_DIM


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_load_item_embeddings_switches_modes_and_records_them_in_the_config(model_type):
    model = tiny(model_type)
    plain = {name for name, _ in model.named_parameters()}
    projection = {"pretrained_item_projection.weight", "pretrained_item_projection.bias"}
    table = item_table(model, "fuse")

    def state():
        config = model.config
        names = {name for name, _ in model.named_parameters()}
        buffers = {name for name, _ in model.named_buffers()}
        return names, buffers, (config.pretrained_item_embedding_dim, config.pretrained_item_embedding_mode)

    assert model.load_item_embeddings(table, mode="fuse") is model
    assert state() == (plain | projection, {"pretrained_item_embedding"}, (TABLE_DIM, "fuse"))
    learned = model.pretrained_item_projection
    model.load_item_embeddings(table, mode="frozen")
    frozen = plain - {"item_embedding.weight"} | projection
    assert state() == (frozen, {"pretrained_item_embedding"}, (TABLE_DIM, "frozen"))
    assert model.pretrained_item_projection is learned  # same width: the learned projection is kept
    model.load_item_embeddings(table)  # mode=None: the config's mode
    assert state()[2] == (TABLE_DIM, "frozen")
    model.load_item_embeddings(item_table(model, "init"), mode="init")
    assert state() == (plain, set(), (item_size(model), "init"))
    # a config that already names a table builds its modules up front (zero table), as from_pretrained needs
    built = tiny(model_type, pretrained_item_embedding_dim=TABLE_DIM, pretrained_item_embedding_mode="fuse")
    assert not built.pretrained_item_embedding.any()
    learned = built.pretrained_item_projection
    built.load_item_embeddings(table)
    assert built.pretrained_item_projection is learned and built.pretrained_item_embedding.any()


_NAN_TABLE = torch.randn(NUM_ITEMS, 16).index_fill_(0, torch.tensor([4]), float("nan"))


@pytest.mark.parametrize(
    "table, kwargs, message",
    [
        (torch.randn(NUM_ITEMS + 2, 16), {},
         rf"has {NUM_ITEMS + 2} rows but the model has num_items={NUM_ITEMS}.*{NUM_ITEMS} rows \(row k-1 = item k\) or "
         rf"{NUM_ITEMS + 1} rows \(row 0 = padding"),
        (torch.randn(NUM_ITEMS - 1, 16), {}, rf"has {NUM_ITEMS - 1} rows but the model has num_items={NUM_ITEMS}"),
        (torch.randn(NUM_ITEMS * 16), {}, r"must be 2-D \(items, D\) with D >= 1, got shape \(480,\)"),
        (torch.randn(NUM_ITEMS, TABLE_DIM), dict(mode="init"),
         r"width must equal \w+Config\.\w+=16, got width 24; pass project=True to reduce it to 16 dims by PCA, use "
         r"mode='frozen' or 'fuse'"),
        (torch.randn(NUM_ITEMS, 8), dict(mode="init", project=True), r"cannot widen it: width 8 < \w+=16"),
        (torch.randn(NUM_ITEMS, 16), dict(mode="finetune"),
         r"mode='finetune' is unknown; use one of \['init', 'frozen', 'fuse'\]"),
        (torch.randn(NUM_ITEMS, 16), dict(mode="frozen", project=True), r"project=True applies to mode='init' only"),
        (_NAN_TABLE, {}, r"row 4 \(item 5\) of the table is not finite"),
    ],
    ids=["too-many-rows", "too-few-rows", "not-2d", "init-width", "pca-cannot-widen", "unknown-mode",
         "project-outside-init", "nan"],
)
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_bad_item_table_raises_clear_error_and_leaves_the_model_alone(model_type, table, kwargs, message):
    model = tiny(model_type)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        model.load_item_embeddings(table, **kwargs)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[name], after[name]) for name in before)
    assert (model.config.pretrained_item_embedding_dim, model.config.pretrained_item_embedding_mode) == (0, "init")


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_config_builds_without_arguments_but_model_needs_num_items(model_type):
    config_class, model_class = SR_MODELS[model_type]
    config = config_class()  # transformers builds a default config to diff against when saving
    with pytest.raises(ValueError, match="num_items must be >= 1"):
        model_class(config)


@pytest.mark.parametrize(
    "config_class, kwargs, field",
    [
        (SASRecConfig, dict(hidden_size=10, num_attention_heads=3), "num_attention_heads"),
        (SASRecConfig, dict(num_items=-1), "num_items"),
        (SASRecConfig, dict(max_seq_length=0), "max_seq_length"),
        (SASRecConfig, dict(hidden_dropout_prob=1.0), "hidden_dropout_prob"),
        (SASRecConfig, dict(attention_probs_dropout_prob=-0.1), "attention_probs_dropout_prob"),
        (SASRecConfig, dict(hidden_act="nope"), "hidden_act"),
        (GRU4RecConfig, dict(num_hidden_layers=0), "num_hidden_layers"),
        (GRU4RecConfig, dict(dropout_prob=1.5), "dropout_prob"),
        (GRU4RecConfig, dict(num_items=-3), "num_items"),
        (CaserConfig, dict(window_size=0), "window_size"),
        (CaserConfig, dict(num_vertical_filters=0, num_horizontal_filters=0), "num_horizontal_filters"),
        (CaserConfig, dict(dropout_prob=1.0), "dropout_prob"),
        (CaserConfig, dict(loss_chunk_size=0), "loss_chunk_size"),
        (SASRecConfig, dict(pretrained_item_embedding_mode="finetune"),
         r"pretrained_item_embedding_mode='finetune' is unknown; use one of \['init', 'frozen', 'fuse'\]"),
        (GRU4RecConfig, dict(pretrained_item_embedding_dim=-1), "pretrained_item_embedding_dim must be >= 0"),
        (CaserConfig, dict(pretrained_item_embedding_mode="Frozen"), "pretrained_item_embedding_mode"),
    ],
)
def test_bad_config_raises_value_error_naming_the_field(config_class, kwargs, field):
    with pytest.raises(ValueError, match=field):
        config_class(**{"num_items": NUM_ITEMS, **kwargs})


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_out_of_range_item_id_raises_clear_error(model_type):
    model = tiny(model_type).eval()
    bad = left_pad([[1, 2, NUM_ITEMS + 1]], SEQ)
    message = rf"item id {NUM_ITEMS + 1} out of range for num_items={NUM_ITEMS}.*trained on a dataset with {NUM_ITEMS} items"
    with pytest.raises(ValueError, match=message):
        model(bad)
    with pytest.raises(ValueError, match=message):
        model.predict_scores(bad)
    with pytest.raises(ValueError, match="out of range"):
        model.score_candidates(left_pad([[1, 2]], SEQ), torch.tensor([[1, 99]]))
    with pytest.raises(ValueError, match="out of range"):
        model.top_k(left_pad([[1, 2]], SEQ), 3, exclude=torch.tensor([[-4]]))


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_right_padding_is_rejected(model_type):
    model = tiny(model_type).eval()
    with pytest.raises(ValueError, match="LEFT-padded"):
        model.predict_scores(torch.tensor([[3, 4, 5, 0, 0]]))


def test_sasrec_rejects_histories_longer_than_its_positions():
    model = tiny("sasrec").eval()
    too_long = torch.arange(1, SEQ + 2)[None]
    with pytest.raises(ValueError, match="max_seq_length"):
        model(too_long)
    assert model.predict_scores(too_long).shape == (1, NUM_ITEMS + 1)  # predict keeps the last SEQ items


# ---------------------------------------------------------------------------------------------- fidelity


def test_defaults_are_recboles():
    sasrec = SASRecConfig(num_items=5)
    assert (sasrec.num_hidden_layers, sasrec.num_attention_heads, sasrec.hidden_size, sasrec.intermediate_size) == (2, 2, 64, 256)
    assert (sasrec.hidden_dropout_prob, sasrec.attention_probs_dropout_prob, sasrec.hidden_act) == (0.5, 0.5, "gelu")
    assert (sasrec.layer_norm_eps, sasrec.initializer_range, sasrec.max_seq_length) == (1e-12, 0.02, 50)
    gru = GRU4RecConfig(num_items=5)
    assert (gru.embedding_size, gru.hidden_size, gru.num_hidden_layers, gru.dropout_prob) == (64, 128, 1, 0.3)
    caser = CaserConfig(num_items=5)
    assert (caser.window_size, caser.embedding_size, caser.num_horizontal_filters, caser.dropout_prob) == (5, 64, 16, 0.4)
    # RecBole's SASRec parameter names, so its checkpoints load with strict=True
    names = set(SASRecModel(SASRecConfig(num_items=5, num_hidden_layers=1)).state_dict())
    assert {"item_embedding.weight", "position_embedding.weight", "LayerNorm.weight",
            "trm_encoder.layer.0.multi_head_attention.query.weight",
            "trm_encoder.layer.0.feed_forward.dense_1.weight"} <= names
    assert set(GRU4RecModel(GRU4RecConfig(num_items=5)).state_dict()) == {
        "item_embedding.weight", "gru_layers.weight_ih_l0", "gru_layers.weight_hh_l0", "dense.weight", "dense.bias"}
    assert not any("user" in name for name in CaserModel(CaserConfig(num_items=5)).state_dict())


def test_sasrec_init_is_normal_0_02_with_zero_padding_row():
    model = SASRecModel(SASRecConfig(num_items=2000))
    weight = model.item_embedding.weight
    assert torch.count_nonzero(weight[0]) == 0
    assert abs(weight[1:].std().item() - 0.02) < 1e-3
    assert abs(model.trm_encoder.layer[0].feed_forward.dense_1.weight.std().item() - 0.02) < 1e-3
    assert torch.count_nonzero(model.trm_encoder.layer[0].feed_forward.dense_1.bias) == 0


def test_shared_contract_code_is_identical_in_the_three_model_files():
    modules = [sys.modules[model_class.__module__] for _, model_class in SR_MODELS.values()]
    for name in ("SequentialRecommenderMixin", "SequentialRecommenderOutput"):
        sources = {inspect.getsource(getattr(module, name)) for module in modules}
        assert len(sources) == 1, f"{name} differs between the model files"
    config_modules = [sys.modules[config_class.__module__] for config_class, _ in SR_MODELS.values()]
    for name in ("PretrainedItemEmbeddingMode", "check_pretrained_item_embedding"):
        sources = {inspect.getsource(getattr(module, name)) for module in config_modules}
        assert len(sources) == 1, f"{name} differs between the configuration files"
    for config_class, _ in SR_MODELS.values():  # same fields, same defaults
        config = config_class()
        assert (config.pretrained_item_embedding_dim, config.pretrained_item_embedding_mode) == (0, "init")


def test_item_table_mode_accepts_the_enum_and_saves_a_plain_string():
    mode = sys.modules[SASRecConfig.__module__].PretrainedItemEmbeddingMode.FUSE
    config = SASRecConfig(num_items=NUM_ITEMS, pretrained_item_embedding_dim=TABLE_DIM,
                          pretrained_item_embedding_mode=mode)
    assert type(config.pretrained_item_embedding_mode) is str
    assert config.to_dict()["pretrained_item_embedding_mode"] == "fuse"
