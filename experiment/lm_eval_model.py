"""An lm-evaluation-harness model type for adapters saved by this suite (any method in
methods/, Prefix-Tuning+ included), the way ``--model hf --model_args peft=...`` serves peft
adapters:

    suite-lm-eval --model suite-adapter \\
        --model_args pretrained=resources/models/smollm2-135m-instruct,adapter=results/default/adapters/<model>/prefix_tuning_plus/<task>/seed0 \\
        --tasks <task> --include_path resources/default/data/<task>

``suite-lm-eval`` is lm-eval's own command line with this module imported first, because
lm-eval discovers models only through its registry (no plug-in entry points).
"""

from __future__ import annotations

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from experiment import adapters


@register_model("suite-adapter")
class AdapterLM(HFLM):
    def __init__(self, pretrained: str, adapter: str, **kwargs):
        super().__init__(pretrained=pretrained, **kwargs)
        self._model = adapters.load(self._model, adapter)


def main() -> None:
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
