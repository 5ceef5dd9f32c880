# The paper's analyses, on adapters trained by the main grid. `snakemake analyses` runs them all.


rule length_sweep_run:
    input:
        meta=TASK_META,
        test=f"{DATA}/test.jsonl",
        adapter=ADAPTER,
        model=model_inputs,
    output:
        f"{ANALYSES}/length_sweep/{{model}}/{{task}}/{{method}}/seed{{seed}}.json",
    params:
        spec=model_spec,
        settings=ANALYSIS.get("length_sweep", {}),
        batch_size=lambda w: eval_batch_size(w.task),
    threads: MODEL_JOB_THREADS
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/length_sweep/{{model}}/{{task}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/length_sweep/{{model}}/{{task}}/{{method}}/seed{{seed}}.tsv"
    conda:
        SUITE_ENV
    script:
        "../scripts/length_sweep_run.py"


rule length_sweep:
    input:
        lambda w: expand(
            f"{ANALYSES}/length_sweep/{{model}}/{{task}}/{{method}}/seed{{seed}}.json",
            model=MODELS,
            task=ANALYSIS["length_sweep"]["task"],
            method=ANALYSIS["length_sweep"]["methods"],
            seed=ANALYSIS["length_sweep"]["seeds"],
        ),
    output:
        accuracy=f"{ANALYSES}/length_sweep_accuracy.csv",
        alpha=f"{ANALYSES}/length_sweep_alpha.csv",
        figure=report(f"{FIGURES}/length_sweep.png", caption="../report/length_sweep.rst", category="Analyses"),
    log:
        f"{LOGS}/length_sweep.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/length_sweep.py"


rule analyses:
    input:
        analysis_targets(),


rule attention_maps:
    input:
        unpack(lambda w: single_seed_analysis_inputs("attention_maps")),
    output:
        csv=f"{ANALYSES}/attention_maps.csv",
        figure=report(f"{FIGURES}/attention_maps.png", caption="../report/attention_maps.rst", category="Analyses"),
    params:
        spec=model_spec(FIRST_MODEL),
        settings=ANALYSIS.get("attention_maps", {}),
        adapters=lambda w: analysis_adapters("attention_maps"),
    threads: MODEL_JOB_THREADS
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/attention_maps.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/attention_maps.py"


rule expressiveness:
    input:
        unpack(lambda w: single_seed_analysis_inputs("expressiveness")),
    output:
        csv=f"{ANALYSES}/expressiveness.csv",
        figure=report(f"{FIGURES}/expressiveness.png", caption="../report/expressiveness.rst", category="Analyses"),
    params:
        spec=model_spec(FIRST_MODEL),
        settings=ANALYSIS.get("expressiveness", {}),
        adapters=lambda w: analysis_adapters("expressiveness"),
    threads: MODEL_JOB_THREADS
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/expressiveness.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/expressiveness.py"


rule feature_map_run:
    input:
        meta=TASK_META,
        test=f"{DATA}/test.jsonl",
        lr=lambda w: f"{SWEEP}/chosen.json".format(model=w.model, method="prefix_tuning_plus", task=w.task),
        method_code=relative(methods.source_file("prefix_tuning_plus")),
        model=model_inputs,
    output:
        FEATURE_MAP_RUN,
    wildcard_constraints:
        variant="|".join(ANALYSIS.get("feature_map", {}).get("variants", {})) or "(?!)",
    params:
        spec=model_spec,
        overrides=lambda w: ANALYSIS["feature_map"]["variants"][w.variant],
        train=config["train"],
        batch_size=lambda w: eval_batch_size(w.task),
    threads: MODEL_JOB_THREADS
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/feature_map/{{model}}/{{task}}/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/feature_map/{{model}}/{{task}}/{{variant}}/seed{{seed}}.tsv"
    conda:
        SUITE_ENV
    script:
        "../scripts/feature_map_run.py"


rule feature_map:
    input:
        runs=lambda w: expand(FEATURE_MAP_RUN, model=MODELS, task=ANALYSIS["feature_map"]["tasks"],
                              variant=list(ANALYSIS["feature_map"]["variants"]), seed=ANALYSIS["feature_map"]["seeds"]),
        reference=lambda w: expand(f"{RUN}/eval.json", model=MODELS, method="prefix_tuning_plus",
                                   task=ANALYSIS["feature_map"]["tasks"], seed=ANALYSIS["feature_map"]["seeds"]),
    output:
        csv=f"{ANALYSES}/feature_map.csv",
        md=f"{TABLES}/feature_map.md",
        figure=report(f"{FIGURES}/feature_map.png", caption="../report/feature_map.rst", category="Analyses"),
    log:
        f"{LOGS}/feature_map.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/feature_map.py"


rule ood_evaluate:
    input:
        meta=lambda w: TASK_META.format(task=ANALYSIS["iid_ood"]["ood_task"]),
        test=lambda w: f"{DATA}/test.jsonl".format(task=ANALYSIS["iid_ood"]["ood_task"]),
        record=f"{RUN}/train.json",
        adapter=ADAPTER,
        model=model_inputs,
    output:
        OOD_EVAL,
    params:
        spec=model_spec,
        ood_task=lambda w: ANALYSIS["iid_ood"]["ood_task"],
        batch_size=lambda w: eval_batch_size(ANALYSIS["iid_ood"]["ood_task"]),
    threads: MODEL_JOB_THREADS
    resources:
        **JOB_RESOURCES,
    log:
        f"{LOGS}/iid_ood/{{model}}/{{method}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/iid_ood/{{model}}/{{method}}/{{task}}/seed{{seed}}.tsv"
    conda:
        SUITE_ENV
    script:
        "../scripts/ood_evaluate.py"


rule iid_ood:
    # Methods whose weights are not kept (full fine-tuning, unless keep_full_finetune_weights)
    # cannot be scored on the OOD task afterwards and are left out of the figure.
    input:
        ood=lambda w: expand(OOD_EVAL, model=FIRST_MODEL.model, method=ADAPTER_METHODS, task=ANALYSIS["iid_ood"]["train_task"],
                             seed=ANALYSIS["iid_ood"]["seeds"]),
        iid=lambda w: expand(f"{RUN}/eval.json", model=FIRST_MODEL.model, method=ADAPTER_METHODS,
                             task=ANALYSIS["iid_ood"]["train_task"], seed=ANALYSIS["iid_ood"]["seeds"]),
        base=lambda w: expand(BASE_EVAL, model=FIRST_MODEL.model,
                              task=[ANALYSIS["iid_ood"]["train_task"], ANALYSIS["iid_ood"]["ood_task"]]),
    output:
        csv=f"{ANALYSES}/iid_ood.csv",
        figure=report(f"{FIGURES}/iid_ood.png", caption="../report/iid_ood.rst", category="Analyses"),
    log:
        f"{LOGS}/iid_ood.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/iid_ood.py"
