"""A trained Prefix-Tuning+ adapter evaluated from lm-eval's command line (`suite-lm-eval`,
model type `suite-adapter`) gives the same accuracy as the suite's in-process evaluation."""

import json
import subprocess
import sys

import pytest

from experiment import data, evaluation, jobs, models, records


@pytest.mark.slow
def test_lm_eval_command_line_on_a_trained_adapter(tmp_path):
    base_dir = tmp_path / "base"
    model, tokenizer = models.tiny_model("llama")
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    spec = {"kind": "pretrained", "path": str(base_dir)}
    task_dir = tmp_path / "topic_tiny"
    meta = jobs.prepare_task("topic_tiny", data.EVALS_DIR / "fixtures/topic_tiny.jsonl", task_dir, dev_size=6, test_size=8, seed=0)
    jobs.train_run(model_name="tiny", model_spec=spec, method="prefix_tuning_plus", overrides={}, task="topic_tiny",
                   task_dir=task_dir, seed=0, learning_rate=1e-2, train_config={"max_steps": 3, "target_loss": 0.05, "batch_size": 4},
                   adapter_dir=tmp_path / "adapter", record_path=tmp_path / "train.json")
    in_process = jobs.evaluate_run(model_name="tiny", model_spec=spec, task="topic_tiny", task_dir=task_dir, split="test",
                                   batch_size=8, record_path=tmp_path / "eval.json", adapter_dir=tmp_path / "adapter",
                                   train_record=tmp_path / "train.json", method="prefix_tuning_plus", seed=0)
    command = [
        sys.executable, "-m", "experiment.lm_eval_model", "--model", "suite-adapter",
        "--model_args", f"pretrained={base_dir},adapter={tmp_path / 'adapter'}",
        "--tasks", "topic_tiny", "--include_path", str(task_dir), "--batch_size", "8",
        "--output_path", str(tmp_path / "lm_eval_out"), "--log_samples",
        "--apply_chat_template",  # the tiny tokenizer has a chat template, as instruct models do
    ]
    result = subprocess.run(command, capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    written = list((tmp_path / "lm_eval_out").rglob("results_*.json"))
    assert written, result.stdout[-2000:]
    cli = json.loads(written[0].read_text())["results"]["topic_tiny"]
    assert cli[evaluation.METRIC] == pytest.approx(in_process["accuracy"])
    # Same generations, example by example (accuracy alone could agree by chance).
    samples = [json.loads(line) for line in next((tmp_path / "lm_eval_out").rglob("samples_topic_tiny_*.jsonl")).read_text().splitlines()]
    cli_predictions = {s["doc"]["id"]: s["filtered_resps"][0] for s in samples}
    assert cli_predictions == {s["id"]: s["prediction"] for s in in_process["samples"]}
    assert len(set(cli_predictions.values())) >= 1 and all(isinstance(p, str) for p in cli_predictions.values())
    assert records.read_json(task_dir / "task.json")["labels"] == meta["labels"]
