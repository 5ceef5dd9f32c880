"""The cost benchmark's measuring instruments (not its timings, which are benchmarks)."""

import subprocess
import sys

import torch

from experiment import cost, models

SPEC = {"kind": "tiny", "architecture": "llama"}


def test_subjects_share_the_base_weights_and_training_leaves_them_unchanged():
    base = cost.build(SPEC, "cpu")
    before = {k: v.clone() for k, v in base.state_dict().items()}
    subjects = [cost.Subject(name, base, "cpu") for name in (cost.BASE_TRAIN, "full_finetune", "lora", "prefix_tuning_plus")]
    ids = torch.randint(10, base.config.vocab_size, (2, 8))
    for subject in subjects:
        subject.train_step(ids)
    frozen = subjects[0].model.model.layers[0].mlp.up_proj.weight
    full = subjects[1].model.model.layers[0].mlp.up_proj.weight
    assert full.data_ptr() == frozen.data_ptr() == base.model.layers[0].mlp.up_proj.weight.data_ptr()  # one copy in memory
    assert full.requires_grad and not frozen.requires_grad  # flags are per subject
    for key, value in base.state_dict().items():
        assert torch.equal(value, before[key]), key  # learning rate 0: the optimizer's work, no change
    tied = subjects[1].model
    assert tied.lm_head.weight is tied.model.embed_tokens.weight or not base.config.tie_word_embeddings


def test_peak_memory_is_the_childs_own_not_its_parents():
    """ru_maxrss survives exec on Linux; VmHWM does not. A child of a process holding ~400 MiB
    must report far less than that."""
    ballast = torch.ones(100 * 2**20)  # 400 MiB resident in this process
    child = subprocess.run([sys.executable, "-c", "from experiment import cost; print(cost.peak_resident_mib())"],
                           capture_output=True, text=True, check=True, cwd=models.__file__.rsplit("/experiment/", 1)[0])
    assert float(child.stdout.strip()) < 350, child.stdout
    assert ballast.sum() > 0
