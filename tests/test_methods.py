"""Every method of the registry through one contract, on tiny models built here (no network):

* each LLM method's script trains two steps on a tiny backbone and a tiny SASRec teacher, saves, ranks through the
  shared evaluation, and a rerun on the same folder reloads the saved model and reproduces its row exactly;
* the ``next-item-recommendation`` pipeline and ``hfrec recommend`` answer from any trained folder;
* the CLI reports ordinary bad input in one line;
* the scripts in ``examples/`` run.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import pipeline

import hfrec  # noqa: F401  registers the models and the pipeline task
from hfrec.cli import main as cli_main
from hfrec.registry import METHODS, get_method, llm_methods, method_for_model_type
from tiny_llm import tiny_lm, tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]
LLM_METHODS = [spec.name for spec in llm_methods()]


@pytest.fixture(scope="module")
def tiny_setup(tiny_folder, tmp_path_factory):
    """A tiny SASRec teacher trained on the tiny atomic benchmark, and a tiny causal LM saved as a folder."""
    from hfrec.trainers.train_sr import main as train_sr

    root = tmp_path_factory.mktemp("methods")
    teacher, backbone = root / "teacher", root / "backbone"
    train_sr(["--model", "sasrec", "--dataset", "atomic", "--data_dir", str(tiny_folder), "--output_dir", str(teacher),
              "--num_candidates", "10", "--max_seq_length", "8", "--num_train_epochs", "2", "--disable_tqdm", "true",
              "--model_kwargs", '{"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1}'])
    tiny_lm(seed=1).save_pretrained(backbone)
    tiny_tokenizer().save_pretrained(backbone)
    return {"data": tiny_folder, "teacher": teacher, "backbone": backbone, "root": root}


def method_argv(setup, out) -> list[str]:
    """The flags every LLM method's script takes (hfrec.registry), at tiny sizes."""
    return ["--preset", "cpu", "--dataset", "atomic", "--data_dir", str(setup["data"]), "--backbone",
            str(setup["backbone"]), "--dtype", "float32", "--teacher_dir", str(setup["teacher"]), "--output_dir",
            str(out), "--num_candidates", "10", "--eval_users", "8", "--max_steps", "2", "--disable_tqdm", "true"]


@pytest.fixture(scope="module")
def trained(tiny_setup):
    """name -> (output folder, the script's result, its argv) for every LLM method of the registry."""
    runs = {}
    for name in LLM_METHODS:
        out = tiny_setup["root"] / name
        argv = method_argv(tiny_setup, out)
        runs[name] = (out, get_method(name).run(argv), argv)
    return runs


def test_registry_is_consistent():
    for name, spec in METHODS.items():
        assert spec.name == name
        assert method_for_model_type(spec.model_types[0]) is spec
        module = spec.script_module()
        assert callable(module.main) and callable(module.make_parser)
        assert callable(spec.load_recommender())
        if spec.launcher:
            assert (REPO / spec.launcher).is_file()
    with pytest.raises(ValueError, match="Unknown method 'bert4rec'"):
        get_method("bert4rec")


@pytest.mark.parametrize("name", LLM_METHODS)
def test_method_trains_saves_reloads_and_ranks(name, trained):
    spec = get_method(name)
    out, result, argv = trained[name]
    records = json.loads((out / "eval_results.json").read_text())
    own = [r for r in records if r["model_type"] in spec.model_types]
    assert own, f"{name} wrote no row of its own model type"
    assert {r["num_users"] for r in records} == {8}  # every row ranks the same users
    assert {r["model_type"] for r in records} >= {"popularity", "sasrec"}
    for record in own:
        assert set(record["metrics"]) >= {"HR@1", "HR@5", "NDCG@5", "HR@10", "NDCG@10"}
        assert 0.0 <= record["metrics"]["HR@1"] <= 1.0
    # rerunning on the trained folder reloads the saved model and ranks the same users identically (a model's
    # records may share its method label, one per protocol)
    spec.run(argv)
    again = {(r["method"], r["protocol"]): r["metrics"] for r in json.loads((out / "eval_results.json").read_text())}
    for record in own:
        assert again[record["method"], record["protocol"]] == pytest.approx(record["metrics"], abs=1e-6)


@pytest.mark.parametrize("name", LLM_METHODS)
def test_pipeline_ranks_given_candidates_and_retrieves_without(name, trained, tiny_setup):
    out = trained[name][0]
    from hfrec.data import load_benchmark

    ds = load_benchmark("atomic", data_dir=str(tiny_setup["data"]), num_candidates=10, seed=42)
    row = ds["test"][0]
    recommend = pipeline("next-item-recommendation", model=str(out))
    ranked = recommend({"history": row["history"], "candidates": row["candidates"]}, top_k=10)
    assert sorted(r["item_id"] for r in ranked) == sorted(row["candidates"])
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    titles = [ds.item_titles[i] for i in row["history"]]  # titles work as well as ids
    assert recommend({"history": titles, "candidates": row["candidates"]}, top_k=10) == ranked
    retrieved = recommend({"history": row["history"]}, top_k=3)  # reranks the teacher's top items
    assert len(retrieved) == 3 and not {r["item_id"] for r in retrieved} & set(row["history"])


def test_pipeline_on_an_sr_model_ranks_the_catalogue(tiny_setup):
    from transformers import AutoModel

    from hfrec.evaluation import left_pad

    recommend = pipeline("next-item-recommendation", model=str(tiny_setup["teacher"]))
    history = [3, 4, 5]
    ranked = recommend({"history": history}, top_k=5)
    model = AutoModel.from_pretrained(tiny_setup["teacher"]).eval()
    with torch.no_grad():
        scores = model.predict_scores(left_pad([history])).float()[0]
    scores[[0, *history]] = float("-inf")
    assert [r["item_id"] for r in ranked] == scores.topk(5).indices.tolist()
    assert ranked[0]["title"].startswith("Item number")
    with pytest.raises(ValueError, match="No item titled 'Nope'"):
        recommend({"history": ["Nope"]})


def test_pipeline_input_shapes_and_bad_arguments(tiny_setup, caplog):
    recommend = pipeline("next-item-recommendation", model=str(tiny_setup["teacher"]))
    titles = [recommend.recommender.catalog.titles[i] for i in (3, 4, 5)]
    one = recommend({"history": [3, 4, 5]}, top_k=4)
    assert recommend(titles, top_k=4) == one  # a flat list of titles is one history, as a text pipeline's string
    assert recommend([3, 4, 5], top_k=4) == one
    assert recommend([[3, 4, 5], {"history": titles}], top_k=4) == [one, one]  # lists of histories: a batch
    for bad in (-3, 0, 2.5, True):
        with pytest.raises(ValueError, match="top_k must be a positive"):
            recommend([3, 4], top_k=bad)
    with pytest.raises(ValueError, match="one string"):
        recommend({"history": titles[0]})
    with caplog.at_level("WARNING", logger="hfrec.pipelines"):
        ranked = recommend({"history": [3, 4], "candidates": [7, 7, 8]}, top_k=5)
    assert sorted(r["item_id"] for r in ranked) == [7, 8] and "repeated candidate" in caplog.text


def test_dir_lists_the_lazy_exports():
    import hfrec

    assert {"TRSRSummarizer", "NextItemRecommendationPipeline", "get_method"} <= set(dir(hfrec))
    assert set(hfrec.__all__) <= set(dir(hfrec))


def test_cli_recommend_and_one_line_errors(tiny_setup, tmp_path, capsys):
    assert cli_main(["recommend", str(tiny_setup["teacher"]), "--history", "3", "4", "--top-k", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "empty.inter").write_text("")
    cases = [(["data", "stats", "atomic", "--data-dir", str(empty)], "empty"),
             (["train", "bert4rec"], "unknown method 'bert4rec'"),
             (["recommend", str(tiny_setup["teacher"]), "--history", "999"], "Unknown history item id")]
    for argv, message in cases:
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("hfrec: error:") and message in err and "Traceback" not in err
    with pytest.raises(Exception):
        cli_main(["--debug", *cases[0][0]])  # --debug: the exception itself
    missing = str(tmp_path / "no" / "such-run")
    assert cli_main(["recommend", missing, "--history", "3"]) == 2
    assert f"{missing!r} is not a folder here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["recommend", str(tiny_setup["teacher"]), "--history", "3", "--top-k", "-3"])
    assert "--top-k: must be a positive whole number, got '-3'" in capsys.readouterr().err


def test_cli_shows_the_traceback_of_an_error_hfrec_did_not_raise(monkeypatch):
    """A ValueError from outside hfrec's code is a bug, not bad input: it propagates instead of one line."""
    import hfrec.cli

    def broken(args):
        raise ValueError("an internal failure in another library")

    monkeypatch.setattr(hfrec.cli, "_data_stats", broken)
    with pytest.raises(ValueError, match="internal failure"):
        cli_main(["data", "stats", "ml-100k"])


def run_example(script: str, *args, env=None) -> str:
    done = subprocess.run([sys.executable, str(REPO / "examples" / script), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_examples_run(tiny_setup, tmp_path, hub_server, hub_client_env):
    data = tiny_setup["data"]
    assert "next item (target)" in run_example("load_benchmark.py", "--dataset", "atomic", "--data-dir", data)
    sasrec = tmp_path / "sasrec"
    printed = run_example("train_sasrec.py", "--dataset", "atomic", "--data-dir", data, "--output-dir", sasrec,
                          "--epochs", "1", "--model-kwargs", '{"hidden_size": 16, "num_hidden_layers": 1}')
    assert "full" in printed and (sasrec / "model.safetensors").exists()
    delrec = tmp_path / "delrec"
    printed = run_example("delrec_cpu.py", "--teacher-dir", sasrec, "--output-dir", delrec, "--dataset", "atomic",
                          "--data_dir", data, "--backbone", tiny_setup["backbone"], "--dtype", "float32",
                          "--eval_users", "6", "--max_steps", "1", "--disable_tqdm", "true")
    assert "DELRec HR@1" in printed
    assert len(run_example("recommend.py", delrec, "--history", "3", "4", "5", "--top-k", "3").splitlines()) == 3
    env = hub_client_env(hub_server.endpoint, tmp_path / "hf-home")
    printed = run_example("hub_push_pull.py", sasrec, "tester/sasrec-tiny", env=env)
    assert "model type: sasrec" in printed


@pytest.mark.parametrize("fields, expected", [
    (None, "Toy Story (1995) (genres: Animation)"),  # the year is in the title already: not spent twice
    (["genres", "year"], "Toy Story (1995) (genres: Animation; year: 1995)"),  # asked for explicitly: shown
])
def test_item_text_skips_what_the_title_shows(fields, expected):
    from hfrec.methods.common.prompts import ItemCatalog

    catalog = ItemCatalog([None, "Toy Story (1995)"], {"genres": [None, "Animation"], "year": [None, "1995"]})
    assert catalog.text(1, fields) == expected
