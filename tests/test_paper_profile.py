"""What the paper profile (config/paper.yaml) needs beyond the local profiles: the hub reachable,
pinned revisions, prompts longer than lm-eval's default window, figures per model, full
fine-tuning weights kept only on request, one GPU per job, mixed precision. Its whole DAG is
rehearsed on CPU in tests/test_paper_rehearsal.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run_snakemake
from fake_hub import save_datasets

from experiment import data, jobs

REPO = Path(__file__).resolve().parent.parent


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {**env, **extra}


# ---------------------------------------------------------------- defect 1: the hub reachable
def test_importing_the_job_code_leaves_the_hub_reachable():
    """Offline mode is the profile's choice (config key hub), not a side effect of importing
    the evaluation code that every job imports."""
    code = ("import experiment.jobs, experiment.evaluation, experiment.length_sweep\n"
            "from experiment import hub\nprint(hub.offline_state())")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean_env(), capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "{'hub': False, 'datasets': False}"


def write_profile(tmp_path, base="smoke", **changes):
    config = yaml.safe_load((REPO / "config" / f"{base}.yaml").read_text())
    config.update(changes)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.parametrize("changes, message", [
    ({"models": {"m": {"kind": "pretrained", "path": "meta-llama/Llama-2-7b-chat-hf"}}}, r"'revision' is a required property"),
    ({"models": {"m": {"kind": "pretrained", "path": "meta-llama/Llama-2-7b-chat-hf", "revision": "abc"}}},
     r"config key 'hub' is false \(jobs run offline\) but these come from the hub: models.m.path meta-llama/Llama-2-7b-chat-hf"),
    ({"task_sources": {"mnli": {"path": "/data"}}}, r"config key 'task_sources': unknown \['mnli'\]"),
])
def test_hub_sources_are_pinned_and_allowed_by_the_profile(tmp_path, changes, message):
    import re

    result = run_snakemake("-n", "--configfile", write_profile(tmp_path, **changes), check=False)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr), result.stdout + result.stderr


def test_paper_profile_plans_without_the_hub():
    """Planning reads no model or dataset: it works with the hub unreachable."""
    env = clean_env(HF_ENDPOINT="http://127.0.0.1:9")  # connection refused, at once
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", "config/paper.yaml", "--", "all", "analyses"],
                            cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sweep_learning_rate" in result.stdout


# ---------------------------------------------------------------- defect 7: revisions, Banking77's parquet, GoEmotions' count
def test_every_hub_source_of_the_paper_profile_is_pinned():
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    for name, spec in config["models"].items():
        assert len(spec["revision"]) == 40, name  # a commit, not a branch
    for task in config["tasks"] + [config["analyses"]["iid_ood"]["ood_task"]]:
        source = data.load_spec(task)["source"]
        if source["kind"] == "datasets":
            assert source["revision"], task
    # Banking77's default revision has been a loading script, which datasets 5 does not run.
    assert data.load_spec("banking77")["source"]["revision"] == "refs/convert/parquet"


def test_a_hub_dataset_without_a_revision_is_refused():
    with pytest.raises(data.DataError, match=r"banking77.yaml: source.revision is required for the hub dataset 'PolyAI/banking77'"):
        data.load_spec("banking77", {"revision": ""})


def test_hub_datasets_load_from_local_parquet_with_their_schemas(tmp_path):
    """The three hub datasets through the same datasets call, from folders in the hub's
    parquet layout: ClassLabel names become labels, multi-label GoEmotions rows are dropped and
    counted, and task.json records where the data came from."""
    folders = save_datasets(tmp_path / "hub", per_class=3, multi_label=5)
    meta = jobs.prepare_task("go_emotions", None, tmp_path / "go", dev_size=10, test_size=20, seed=0,
                             source_overrides={"path": str(folders["go_emotions"])})
    assert meta["dropped_multi_label"] == 5
    assert len(meta["labels"]) == 28 and meta["labels"][0] == "admiration"
    assert sum(meta["sizes"].values()) == 28 * 3
    assert meta["source"] == {"kind": "datasets", "path": str(folders["go_emotions"]), "revision": "refs/convert/parquet",
                              "data_files": {"test": "simplified/test/*.parquet"}, "commit": None}
    assert json.loads((tmp_path / "go/task.json").read_text())["dropped_multi_label"] == 5
    for task, classes in (("dbpedia_14", 14), ("banking77", 77)):
        meta = jobs.prepare_task(task, None, tmp_path / task, dev_size=5, test_size=10, seed=0,
                                 source_overrides={"path": str(folders[task])})
        assert len(meta["labels"]) == classes and meta["dropped_multi_label"] == 0


# ---------------------------------------------------------------- defect 5: no silent left truncation
def write_split(path, prompts):
    rows = [{"id": f"r{i}", "text": "t", "label": "yes", "prompt": p} for i, p in enumerate(prompts)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_a_prompt_longer_than_2048_tokens_reaches_the_model_whole(tmp_path):
    """The length sweep's 3,072-token point: lm-eval's default window (2,048) cut such prompts
    from the left, instruction and options first."""
    from experiment import evaluation, models, prompts

    model, tokenizer = models.tiny_model("llama", max_position_embeddings=4096)
    prompt = "Classify.\n" + "neutral words " * 230 + "\nAnswer:"
    tokens = len(prompts.encode(tokenizer, prompt))  # as the model is given it: chat template included
    assert tokens > 3000
    widths = []
    model.register_forward_pre_hook(lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    result = evaluation.evaluate(model, tokenizer, "long", write_split(tmp_path / "test.jsonl", [prompt]), ["yes"], batch_size=1)
    assert widths[0] == tokens  # the prefill saw every prompt token
    assert result["lm_eval"]["max_length"] == 4096 and result["lm_eval"]["longest_prompt_tokens"] == tokens


def test_a_prompt_longer_than_the_model_context_fails_loudly(tmp_path):
    from experiment import evaluation, models, prompts

    model, tokenizer = models.tiny_model("llama", max_position_embeddings=2048)
    split = write_split(tmp_path / "test.jsonl", ["short", "x" * 2100])
    tokens, bound = len(prompts.encode(tokenizer, "x" * 2100)), evaluation.generation_bound(split)
    with pytest.raises(evaluation.PromptTooLong,
                       match=rf"test.jsonl: a prompt of {tokens} tokens plus {bound} to generate exceeds the model's context of 2048"):
        evaluation.evaluate(model, tokenizer, "long", split, ["yes"], batch_size=1)


# ---------------------------------------------------------------- defect 6: figures per model
def test_length_sweep_figure_has_one_series_per_model(tmp_path):
    import pandas as pd

    from experiment import figures

    accuracy = pd.DataFrame([{"model": model, "method": method, "seed": seed, "context_tokens": n, "accuracy": 0.5}
                             for model in ("llama", "qwen") for method in ("lora", "prefix_tuning") for seed in (0, 1) for n in (0, 3072)])
    alpha = pd.DataFrame([{"model": model, "method": "prefix_tuning", "task": "t", "seed": 0, "context_tokens": n, "layer": layer, "share": 0.1}
                          for model, layers in (("llama", 32), ("qwen", 36)) for n in (0, 3072) for layer in range(layers)])
    figures.length_sweep(accuracy, alpha, tmp_path / "sweep.png")
    panels = figures.series(tmp_path / "sweep.png")
    assert panels[0] == ["llama: lora", "llama: prefix_tuning", "qwen: lora", "qwen: prefix_tuning"]
    assert len(panels) == 3  # accuracy, then each model's attention share


def test_cost_pareto_pairs_each_model_with_its_own_cost(tmp_path, monkeypatch):
    import pandas as pd

    from experiment import figures

    methods = ["lora", "prefix_tuning_plus"]
    cost = pd.DataFrame([{"model": "llama", "method": m, "train_step_s_vs_base": 1 + i, "peak_memory_mib": 100 + i} for i, m in enumerate(methods)])
    accuracy = pd.DataFrame([{"model": model, "task": task, "method": m, "mean": acc}
                             for model, acc in (("llama", 40.0), ("qwen", 80.0)) for task in ("a", "b") for m in methods])
    plotted = []
    real_scatter = figures.plt.Axes.scatter
    monkeypatch.setattr(figures.plt.Axes, "scatter", lambda ax, x, y, **kw: plotted.append(list(y)) or real_scatter(ax, x, y, **kw))
    figures.cost_pareto(cost, accuracy, tmp_path / "one.png")
    assert figures.series(tmp_path / "one.png")[0] == ["llama", "Pareto front (llama)"]
    assert plotted[0] == [40.0, 40.0]  # Llama's accuracy, not the mean of Llama's and Qwen's
    both = pd.concat([cost, cost.assign(model="qwen")])
    figures.cost_pareto(both, accuracy, tmp_path / "two.png")
    assert figures.series(tmp_path / "two.png")[0] == ["llama", "Pareto front (llama)", "qwen", "Pareto front (qwen)"]


# ---------------------------------------------------------------- defect 9: full fine-tuning's weights on request
def test_full_finetune_weights_are_kept_only_on_request(tmp_path):
    from experiment import adapters

    task_dir = tmp_path / "task"
    jobs.prepare_task("topic_tiny", data.EVALS_DIR / "fixtures/topic_tiny.jsonl", task_dir, dev_size=6, test_size=8, seed=0)
    keep = adapters.keeps_weights("full_finetune", {"keep_full_finetune_weights": False})
    assert not keep and adapters.keeps_weights("lora", {})
    record = jobs.train_run(model_name="tiny", model_spec={"kind": "tiny"}, method="full_finetune", overrides={}, task="topic_tiny",
                            task_dir=task_dir, seed=0, learning_rate=1e-3, train_config={"max_steps": 1, "target_loss": 0.05, "batch_size": 3},
                            adapter_dir=tmp_path / "adapter", record_path=tmp_path / "train.json", eval_path=tmp_path / "eval.json",
                            keep_weights=keep)
    assert record["status"] == "ok" and record["weights_kept"] is False
    assert not (tmp_path / "adapter" / adapters.WEIGHTS).exists()
    assert json.loads((tmp_path / "eval.json").read_text())["status"] == "ok"  # scored in the job all the same
    from experiment import models

    with pytest.raises(FileNotFoundError, match="weights of this run were not kept"):
        adapters.load(models.load({"kind": "tiny"})[0], tmp_path / "adapter")


def test_analyses_that_reload_full_finetune_need_its_weights(tmp_path):
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    config["keep_full_finetune_weights"] = False
    config["analyses"]["attention_maps"]["methods"] = ["full_finetune"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake("-n", "--configfile", str(path), check=False)
    assert result.returncode != 0 and "analyses.attention_maps.methods (full fine-tuning's weights are kept only" in result.stdout + result.stderr
    del config["analyses"]["attention_maps"]
    path.write_text(yaml.safe_dump(config))
    planned = run_snakemake("-n", "--forceall", "analyses", "--configfile", str(path)).stdout
    assert "ood_evaluate" in planned and "iid_ood/tiny-llama/full_finetune" not in planned


# ---------------------------------------------------------------- defect 4: mixed precision for every method alike
SHOTS = [{"prompt": f"Classify the topic.\nInput: {text}\nAnswer:", "label": label}
         for text, label in [("goals galore", "sports"), ("stocks fell", "business"), ("a new comet", "science")]]


def train_tiny(method, precision, steps=20, lr=3e-5, dtype="bfloat16", checkpointing=False):
    import torch

    import methods
    from experiment import models, training

    training.seed_everything(0)
    base, tokenizer = models.load({"kind": "tiny"})
    base = base.to(getattr(torch, dtype))
    model = methods.get(method).apply(base, methods.make_config(method, {}))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    # A target no run reaches: every run takes all its steps.
    config = training.TrainConfig(max_steps=steps, target_loss=1e-9, batch_size=3, precision=precision,
                                  gradient_checkpointing=checkpointing)
    record = training.train(model, tokenizer, SHOTS, config, lr, seed=0)
    after = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    return before, after, record


def changed_fraction(before, after):
    changed = sum(int((before[n] != after[n]).sum()) for n in before)
    return changed / sum(t.numel() for t in before.values())


def test_bf16_mixed_keeps_small_updates_that_pure_bf16_loses():
    """Full fine-tuning of a bf16 model at the sweep's low rate: in pure bf16 most AdamW steps
    are below the weights' resolution and vanish; with float32 master weights they add up."""
    import torch

    before, after, _ = train_tiny("full_finetune", "fp32")  # a bf16 model, trained as loaded: pure bf16
    pure = changed_fraction(before, after)
    before, after, _ = train_tiny("full_finetune", "bf16-mixed")
    mixed = changed_fraction(before, after)
    assert pure < 0.5 < 0.8 < mixed, (pure, mixed)  # norm scales (1.0) need more steps than 20 to move in bf16
    assert all(t.dtype == torch.bfloat16 for t in after.values())  # back in the model's dtype, as saved


@pytest.mark.parametrize("method", ["full_finetune", "lora", "prefix_tuning", "prefix_tuning_plus"])
def test_bf16_mixed_trains_every_method_with_float32_parameters_and_optimizer_state(method, monkeypatch):
    import torch

    from experiment import training

    seen = []
    real = training.make_optimizer
    monkeypatch.setattr(training, "make_optimizer", lambda params, *a, **k: seen.extend(p.dtype for p in params) or real(params, *a, **k))
    before, after, record = train_tiny(method, "bf16-mixed", steps=2, lr=1e-2)
    assert set(seen) == {torch.float32}
    assert {n: t.dtype for n, t in after.items()} == {n: t.dtype for n, t in before.items()}  # each back in its own dtype
    assert changed_fraction(before, after) > 0.5


@pytest.mark.parametrize("native, dtype, expected", [(True, "float32", "bf16-mixed"), (False, "float32", "fp32"),
                                                     (False, "bfloat16", "bf16-mixed")])
def test_auto_precision_is_bf16_mixed_only_where_the_device_has_bf16_or_the_model_needs_it(native, dtype, expected, monkeypatch):
    """A CPU without bf16 instructions emulates bf16 at several times float32's cost; a bf16 model
    still needs float32 master weights there (pure bf16 loses its updates)."""
    import torch

    from experiment import models, precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    model = models.load({"kind": "tiny"})[0].to(getattr(torch, dtype))
    assert precision.resolve("auto", model) == expected
    assert precision.resolve("fp32", model) == "fp32" and precision.resolve("bf16-mixed", model) == "bf16-mixed"
    with pytest.raises(ValueError, match="train.precision: 'bf16' is not one of fp32, bf16-mixed, auto"):
        precision.resolve("bf16", model)
    with pytest.raises(ValueError, match=r"'auto' is not one of fp32, bf16-mixed \(resolve\(\) first\)"):
        precision.master_weights(list(model.parameters()), "auto")  # training itself never sees auto


@pytest.mark.parametrize("native, expected", [(True, "bf16-mixed"), (False, "fp32")])
def test_a_run_record_names_the_precision_that_ran_not_auto(native, expected, monkeypatch, tmp_path):
    from experiment import data, jobs, precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    task_dir = tmp_path / "topic_tiny"
    jobs.prepare_task("topic_tiny", data.EVALS_DIR / "fixtures/topic_tiny.jsonl", task_dir, dev_size=6, test_size=8, seed=0)
    fit = jobs._fit({"kind": "tiny"}, "lora", {}, task_dir, 0, 1e-3,
                    {"max_steps": 1, "target_loss": 0.05, "batch_size": 2, "precision": "auto"}, "cpu")
    assert fit.record["train_config"]["precision"] == expected
    # The CPU's kind, which decides the bf16 kernels and so the numbers, is in every record's provenance.
    from experiment import records

    assert records.provenance()["hardware"]["bf16_native"] is native


@pytest.mark.parametrize("method", ["full_finetune", "lora", "prefix_tuning", "prefix_tuning_plus"])
def test_gradient_checkpointing_trains_exactly_as_without(method):
    import torch

    _, plain, first = train_tiny(method, "fp32", steps=2, lr=1e-2, dtype="float32")
    _, recomputed, again = train_tiny(method, "fp32", steps=2, lr=1e-2, dtype="float32", checkpointing=True)
    assert first["losses"] == pytest.approx(again["losses"], rel=1e-5)
    assert all(torch.allclose(plain[n], recomputed[n], atol=1e-6) for n in plain)


def shaped(name):
    """A model with a real model's shapes on the meta device: sizes without memory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    shape = json.loads((REPO / f"config/shapes/{name}.json").read_text())
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.for_model(**shape), dtype=torch.bfloat16)


@pytest.mark.parametrize("shape, method, fits_80gb", [("llama-2-7b", "full_finetune", False), ("llama-2-7b", "lora", True),
                                                      ("qwen2.5-3b", "full_finetune", True)])
def test_a_run_that_cannot_fit_the_gpu_is_refused_before_training(shape, method, fits_80gb):
    """Float32 weights, gradients and AdamW moments are 16 bytes per trainable parameter:
    Llama-2-7B's full fine-tuning needs ~100 GiB before activations and is refused on an 80 GB
    GPU up front, naming the numbers; LoRA on it and Qwen2.5-3B's full fine-tuning fit."""
    import torch

    import methods
    from experiment import precision

    model = methods.get(method).apply(shaped(shape), methods.make_config(method, {}))
    params = [p for p in model.parameters() if p.requires_grad]
    precision.fits_or_explain(params, model, torch.device("cpu"))  # CPUs are not checked
    if fits_80gb:
        precision.fits_or_explain(params, model, torch.device("cpu"), capacity=80 * 10**9)
    else:
        with pytest.raises(MemoryError, match=r"needs 100 GiB before activations \(6.74 B trainable parameters"):
            precision.fits_or_explain(params, model, torch.device("cpu"), capacity=80 * 10**9)
        precision.fits_or_explain(params, model, torch.device("cpu"), capacity=141 * 10**9)  # an H200


# ---------------------------------------------------------------- defects 2 and 8: one GPU per job, GPU jobs only on GPUs
def claim_in_process(locks, gpus, hold_s=0.0, wait_s=30.0):
    code = ("import os, sys, time, types\nsys.path.insert(0, 'workflow/scripts')\n"
            "snakemake = types.SimpleNamespace(resources=types.SimpleNamespace(gpu=1))\n"
            f"import _job\nfrom experiment import gpu_slot\nprint(os.environ['CUDA_VISIBLE_DEVICES'], flush=True)\ntime.sleep({hold_s})\n")
    if wait_s != 30.0:
        code = code.replace("import _job\n", f"from experiment import gpu_slot\ngpu_slot.claim(wait_s={wait_s}, poll_s=0.1)\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpus, "SUITE_GPU_LOCKS": str(locks)}
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_gpu_jobs_on_one_machine_each_take_their_own_gpu(tmp_path):
    """Snakemake caps the number of GPU jobs (--resources gpu=N) but does not say which GPU;
    each job's setup (workflow/scripts/_job.py) takes a free one for its whole life."""
    holders = [claim_in_process(tmp_path, "0,1,2", hold_s=20) for _ in range(3)]
    first = [p.stdout.readline().strip() for p in holders]
    assert sorted(first) == ["0", "1", "2"]
    late = claim_in_process(tmp_path, "0,1,2", wait_s=0.5)  # all three taken: waits, then says why
    assert late.wait(timeout=60) != 0 and "no free GPU among ['0', '1', '2']" in late.stderr.read()
    holders[1].kill()
    holders[1].wait()
    again = claim_in_process(tmp_path, "0,1,2")  # a finished (or crashed) job frees its GPU
    assert again.stdout.readline().strip() == first[1]
    for process in holders + [again]:
        process.kill()
        process.wait()


def test_only_model_loading_jobs_ask_for_a_gpu():
    """Every rule that loads a model declares gpu=1 under device: cuda (and goes to the slurm
    profile's GPU partition); aggregation and plotting declare none."""
    import re

    env = clean_env(HF_ENDPOINT="http://127.0.0.1:9")
    planned = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--configfile", "config/paper.yaml", "--", "all", "analyses"],
                             cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
    gpu_rules, other_rules = set(), set()
    for block in planned.split("\nrule ")[1:]:
        name = block.split(":", 1)[0]
        resources = re.search(r"resources: (.*)", block)
        (gpu_rules if resources and "gpu=1" in resources.group(1) else other_rules).add(name)
    assert {"sweep_learning_rate", "run", "evaluate_base", "cost"} <= gpu_rules
    assert {"aggregate", "plot_main", "length_sweep", "cost_pareto", "feature_map", "iid_ood"} <= other_rules
    slurm = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert set(slurm["set-resources"]) == gpu_rules - {"download_distribution"}
    assert all(r["slurm_partition"] == "gpu" for r in slurm["set-resources"].values())
    assert slurm["default-resources"]["slurm_partition"] != "gpu"
    assert "gpus={resources.gpu}" in yaml.safe_load((REPO / "profiles/cluster-generic/config.yaml").read_text())["cluster-generic-submit-cmd"]


def test_make_reproduce_caps_gpu_jobs_at_the_gpus_of_the_machine():
    result = subprocess.run(["make", "-n", "reproduce", "PROFILE=paper", "GPUS=4", "MEM_MB=1000"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "--resources gpu=4 mem_mb=1000" in result.stdout


# Defect 3 (the sweep's model copies): tests/test_sweep.py::test_the_sweep_holds_one_trained_candidate_at_a_time.
