# Figures that show the protocol held: every method's loss curve against the stopping rule's
# target, and dev accuracy against learning rate for every sweep (the choice inside its grid).


rule plot_loss_curves:
    input:
        expand(f"{RUN}/train.json", model=MODELS, method=METHODS, task=TASKS, seed=SEEDS),
    output:
        report(f"{FIGURES}/loss_curves.png", caption="../report/loss_curves.rst", category="Protocol"),
    params:
        target_loss=config["train"]["target_loss"],
    log:
        f"{LOGS}/plot_loss_curves.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/plot_loss_curves.py"


rule plot_lr_sweep:
    input:
        expand(f"{SWEEP}/chosen.json", model=MODELS, method=METHODS, task=TASKS),
    output:
        report(f"{FIGURES}/lr_sweep.png", caption="../report/lr_sweep.rst", category="Protocol"),
    log:
        f"{LOGS}/plot_lr_sweep.log",
    conda:
        SUITE_ENV
    script:
        "../scripts/plot_lr_sweep.py"
