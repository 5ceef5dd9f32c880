"""The stopping rule: train until the shots are learned, flag the runs that hit the cap."""

from experiment import models, prompts, training

CONFIG = training.TrainConfig(max_steps=10, target_loss=0.5, batch_size=2)


def test_converged_reads_the_last_epochs_mean_loss():
    assert training.converged([2.0, 0.4], CONFIG, steps_per_epoch=1)
    assert not training.converged([2.0, 0.6], CONFIG, steps_per_epoch=1)
    assert not training.converged([2.0, 0.4, 0.7], CONFIG, steps_per_epoch=2)  # the epoch's mean is 0.55
    assert training.converged([2.0, 0.3, 0.6], CONFIG, steps_per_epoch=2)
    later = training.TrainConfig(max_steps=10, target_loss=0.5, min_steps=4)
    assert not training.converged([2.0, 0.1, 0.1], later, steps_per_epoch=1)


def shots():
    return [{"prompt": prompts.render("Classify.", ["pos", "neg"], text), "label": label}
            for text, label in [("good", "pos"), ("bad", "neg")]]


def test_training_stops_once_learned_and_records_the_curve():
    model, tokenizer = models.tiny_model("llama")
    result = training.train(model, tokenizer, shots(), training.TrainConfig(max_steps=200, target_loss=0.5, batch_size=2),
                            learning_rate=1e-2, seed=0)
    assert result["converged"] and result["steps"] == len(result["losses"]) < 200
    assert result["losses"][-1] <= 0.5 < result["losses"][0]


def test_a_run_that_hits_the_cap_is_flagged_not_converged():
    model, tokenizer = models.tiny_model("llama")
    result = training.train(model, tokenizer, shots(), training.TrainConfig(max_steps=3, target_loss=1e-9, batch_size=2),
                            learning_rate=1e-3, seed=0)
    assert not result["converged"] and result["steps"] == 3
    assert all(p.grad is None for p in model.parameters())  # no gradients left on the model


def test_a_run_whose_loss_climbs_stops_as_diverged():
    model, tokenizer = models.tiny_model("llama")
    result = training.train(model, tokenizer, shots(), training.TrainConfig(max_steps=50, target_loss=1e-9, batch_size=2, diverge_factor=1.5),
                            learning_rate=1.0, seed=0)
    assert result["diverged"] and not result["converged"] and result["steps"] < 50
    assert result["losses"][-1] > 1.5 * result["losses"][0]
