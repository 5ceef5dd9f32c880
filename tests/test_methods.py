"""The four methods on tiny random models (CPU): contract, exactness, decoupling, caching, round trips."""

import dataclasses

import pytest
import torch

import methods
from experiment import adapters, models, training

ALL = methods.available()


def fresh(tiny, method, **overrides):
    torch.manual_seed(0)
    base, tokenizer = tiny()
    model = methods.get(method).apply(base, methods.make_config(method, overrides))
    return model, tokenizer


def randomise(model, std=0.3):
    """Give a method's parameters values a trained adapter might have (zero inits hide bugs)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator) * std)


def test_discovery_lists_the_four_methods():
    assert {"prefix_tuning_plus", "prefix_tuning", "lora", "full_finetune"} <= set(ALL)
    for name in ALL:
        module = methods.get(name)
        assert dataclasses.is_dataclass(module.Config)
        assert module.Config().learning_rate > 0


def test_unknown_method_lists_available():
    with pytest.raises(KeyError, match="available methods: .*prefix_tuning_plus"):
        methods.get("prefix_tuning_plusplus")


@pytest.mark.parametrize(
    "overrides, message",
    [({"rank": 4}, "unknown config key 'rank'"), ({"r": "four"}, "'r' must be int"), ({"dropout": True}, "'dropout' must be float")],
)
def test_config_rejects_bad_overrides(overrides, message):
    with pytest.raises(ValueError, match=message):
        methods.make_config("lora", overrides)


def test_prefix_tuning_plus_config_rejects_unknown_feature_map():
    with pytest.raises(ValueError, match="'feature_map' must be one of 'elu', 'gelu', 'mlp'"):
        methods.make_config("prefix_tuning_plus", {"feature_map": "relu"})


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("query", ["pre_rope", "post_rope"])
def test_zero_memory_is_exactly_the_base_model(tiny, batch, attn, query):
    base, _ = tiny()
    base.set_attn_implementation(attn)
    with torch.no_grad():
        expected = base(batch).logits
    model = methods.get("prefix_tuning_plus").apply(base, methods.make_config("prefix_tuning_plus", {"query": query}))
    assert model.config._attn_implementation == f"prefix_memory_{attn}"
    with torch.no_grad():
        got = model(batch).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    randomise(model)
    with torch.no_grad():
        assert (model(batch).logits - expected).abs().max() > 1e-3  # the memory does act once non-zero


def test_prefix_tuning_plus_on_mistral(batch):
    base, _ = models.tiny_model("mistral")
    model = methods.get("prefix_tuning_plus").apply(base, methods.make_config("prefix_tuning_plus", {}))
    randomise(model)
    assert_cache_matches_recompute(model, batch, 6)


@pytest.mark.parametrize("method", ALL)
def test_one_step_changes_only_the_method_parameters(tiny, method):
    model, tokenizer = fresh(tiny, method)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    examples = [{"prompt": "Input: goals\nAnswer:", "label": "sports"}, {"prompt": "Input: shares\nAnswer:", "label": "business"}]
    training.train(model, tokenizer, examples, training.TrainConfig(max_steps=1, batch_size=2), learning_rate=1e-2, seed=0)
    for name, before in frozen.items():
        assert torch.equal(before, dict(model.named_parameters())[name]), f"frozen {name} changed"
    changed = [n for n, before in trainable.items() if not torch.equal(before, dict(model.named_parameters())[n])]
    assert changed, "no trainable parameter moved"
    if method != "full_finetune":
        assert len(frozen) > 0


def _layer0_attention(model):
    return [m for m in model.modules() if hasattr(m, "o_proj") and getattr(m, "layer_idx", None) == 0][0]


def _o_proj_input(model, ids):
    captured = {}
    handle = _layer0_attention(model).o_proj.register_forward_pre_hook(lambda _m, args: captured.update(x=args[0].detach()))
    with torch.no_grad():
        model(ids)
    handle.remove()
    return captured["x"]


def test_decoupling_prefix_tuning_plus_vs_prefix_tuning(tiny):
    """Changing earlier tokens (same length) changes the base attention at the last position but
    not the Prefix-Tuning+ term there, while the Prefix-Tuning prefix's contribution does change:
    the prefix competes with the input inside the softmax."""
    ids_a = torch.tensor([[40, 41, 42, 43, 44, 45, 50]])
    ids_b = torch.tensor([[90, 91, 92, 93, 94, 95, 50]])  # same last token, different context

    plus, _ = fresh(tiny, "prefix_tuning_plus")
    randomise(plus)
    terms = []
    memory = _layer0_attention(plus).prefix_memory
    handle = memory.register_forward_hook(lambda _m, _i, out: terms.append(out[:, -1].detach()))
    base_a, base_b = (_o_proj_input(plus, ids)[:, -1] for ids in (ids_a, ids_b))
    handle.remove()
    torch.testing.assert_close(terms[0], terms[1], rtol=0, atol=1e-6)
    assert (base_a - base_b).abs().max() > 1e-3

    prefix, _ = fresh(tiny, "prefix_tuning", init="random")
    contributions = []
    for ids in (ids_a, ids_b):
        with_prefix = _o_proj_input(prefix, ids)[:, -1]
        with prefix.disable_adapter():
            without = _o_proj_input(prefix, ids)[:, -1]
        contributions.append(with_prefix - without)
    assert (contributions[0] - contributions[1]).abs().max() > 1e-4


def assert_cache_matches_recompute(model, ids, steps):
    """Greedy generation with the KV cache, checked step by step against a full forward over
    the whole sequence (no cache): the logits of every generated step must agree. Comparing
    logits rather than tokens keeps near-ties of a random model from flipping the test."""
    out = model.generate(ids, max_new_tokens=steps, min_new_tokens=steps, do_sample=False, use_cache=True,
                         output_logits=True, return_dict_in_generate=True)
    cached = torch.stack(out.logits, dim=1)  # [B, steps, vocab]
    with torch.no_grad():
        full = model(input_ids=out.sequences, use_cache=False).logits[:, ids.shape[1] - 1 : -1]
    torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ALL)
def test_generate_with_cache_matches_full_recompute(tiny, batch, method):
    model, _ = fresh(tiny, method)
    randomise(model, std=0.05)
    assert_cache_matches_recompute(model, batch, 8)


@pytest.mark.parametrize("method", ALL)
def test_save_load_round_trip_reproduces_logits(tiny, batch, method, tmp_path):
    model, _ = fresh(tiny, method)
    randomise(model)
    config = methods.make_config(method, {})
    adapters.save(model, tmp_path, method, config, "tiny")
    with torch.no_grad():
        expected = model(batch).logits
    base, _ = tiny()
    loaded = adapters.load(base, tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(batch).logits, expected)


@pytest.mark.parametrize("method", ALL)
def test_save_load_round_trip_reproduces_greedy_generations(tiny, batch, method, tmp_path):
    """What the evaluation reads back from a saved adapter: the same greedy tokens."""
    model, _ = fresh(tiny, method)
    randomise(model, std=0.05)
    adapters.save(model, tmp_path, method, methods.make_config(method, {}), "tiny")
    settings = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False)
    expected = model.generate(batch, **settings)
    base, _ = tiny()
    assert torch.equal(adapters.load(base, tmp_path).generate(batch, **settings), expected)


TRAINING_EXAMPLES = [{"prompt": "Input: goals\nAnswer:", "label": "sports"}, {"prompt": "Input: shares\nAnswer:", "label": "business"}]


@pytest.mark.parametrize("feature_map", ["elu", "mlp"])
def test_every_layer_and_head_of_the_memory_gets_a_gradient_in_the_first_step(tiny, feature_map):
    """M starts at zero; a layer whose M had no gradient in the first step (a tap wired to
    the wrong layer, a detached query) would stay at zero and be the base model there."""
    model, tokenizer = fresh(tiny, "prefix_tuning_plus", feature_map=feature_map, mlp_width=16)
    memories = [layer.prefix_memory for layer in methods.get("prefix_tuning_plus").attention_layers(model)]
    # The loop frees gradients when it ends, so each one is read as backward computes it.
    first = {}

    def keep_first(index):
        def hook(grad):
            first.setdefault(index, grad.flatten(1).abs().sum(dim=1))  # returns None: the gradient is left as it is
        return hook

    for index, memory in enumerate(memories):
        memory.memory.register_hook(keep_first(index))
    training.train(model, tokenizer, TRAINING_EXAMPLES, training.TrainConfig(max_steps=1, batch_size=2), learning_rate=1e-2, seed=0)
    assert len(memories) == model.config.num_hidden_layers == len(first)
    for index, per_head in first.items():
        assert (per_head > 0).all(), f"layer {index}: heads without a gradient on M: {per_head.tolist()}"


def test_mlp_kernel_gets_a_gradient_once_the_memory_is_non_zero(tiny):
    """phi(q) = ReLU(W q + b) reaches the loss only through M, which is zero before the first
    step: W and b get their gradient from the second step on, in every layer."""
    model, tokenizer = fresh(tiny, "prefix_tuning_plus", feature_map="mlp", mlp_width=16)
    layers = methods.get("prefix_tuning_plus").attention_layers(model)
    reached = {}

    def add_up(key):
        def hook(grad):
            reached[key] = reached.get(key, 0.0) + float(grad.abs().sum())  # returns None: the gradient is left as it is
        return hook

    for index, layer in enumerate(layers):
        for name in ("kernel_weight", "kernel_bias"):
            getattr(layer.prefix_memory, name).register_hook(add_up((index, name)))
    training.train(model, tokenizer, TRAINING_EXAMPLES, training.TrainConfig(max_steps=2, target_loss=1e-9, batch_size=2),
                   learning_rate=1e-2, seed=0)
    for index in range(len(layers)):
        assert reached[(index, "kernel_weight")] > 0 and reached[(index, "kernel_bias")] > 0, f"layer {index}"


def closed_form(method, cfg):
    """Trainable parameters of each method with its default Config, from the model shapes alone."""
    layers, hidden, heads, kv = cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = hidden // heads
    defaults = methods.get(method).Config()
    if method == "prefix_tuning_plus":
        return layers * heads * head_dim * head_dim  # one d_head x d_head memory per head
    if method == "prefix_tuning":
        return defaults.num_virtual_tokens * layers * 2 * kv * head_dim
    if method == "lora":
        q = defaults.r * (hidden + heads * head_dim)
        v = defaults.r * (hidden + kv * head_dim)
        return layers * (q + v)
    if method == "full_finetune":
        return None


@pytest.mark.parametrize("method", ALL)
def test_trainable_parameters_match_closed_form(tiny, method):
    model, _ = fresh(tiny, method)
    base, _ = tiny()
    expected = closed_form(method, base.config)
    if expected is None:  # full fine-tuning: every parameter of the base model
        expected = sum(p.numel() for p in base.parameters())
    assert adapters.count_trainable(model) == expected


def test_mlp_kernel_parameter_count(tiny):
    model, _ = fresh(tiny, "prefix_tuning_plus", feature_map="mlp", mlp_width=16)
    cfg = model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    per_head = head_dim * 16 + 16 + 16 * head_dim  # W, b of phi and M
    assert adapters.count_trainable(model) == cfg.num_hidden_layers * cfg.num_attention_heads * per_head


def test_layers_option_limits_where_memory_goes(tiny):
    model, _ = fresh(tiny, "prefix_tuning_plus", layers=[1])
    holders = [m.layer_idx for m in model.modules() if hasattr(m, "prefix_memory")]
    assert holders == [1]
    with pytest.raises(ValueError, match="layers \\[7\\] do not exist"):
        fresh(tiny, "prefix_tuning_plus", layers=[7])


@pytest.mark.parametrize("query, position_free", [("pre_rope", True), ("post_rope", False)])
def test_the_memory_sees_the_query_it_is_configured_for(tiny, query, position_free):
    """Layer 0 sees token embeddings, so one token at two positions has one pre-RoPE query
    (q_i = W_Q x_i) and two rotated ones: the pre-RoPE term must not depend on the position."""
    model, _ = fresh(tiny, "prefix_tuning_plus", query=query)
    randomise(model)
    terms = []
    handle = _layer0_attention(model).prefix_memory.register_forward_hook(lambda _m, _i, out: terms.append(out[0]))
    with torch.no_grad():
        model(torch.tensor([[40, 50, 41, 42, 43, 50]]))
    handle.remove()
    same = torch.allclose(terms[0][1], terms[0][5], rtol=0, atol=1e-6)
    assert same == position_free


def test_the_query_tap_keeps_the_base_model_as_it_was(tiny, batch):
    """pre_rope swaps q_proj's class (no hook): parameter names and the state dict stay the base
    model's, the tapped query is dropped once used, and a q_proj that is not a plain nn.Linear
    is refused with a message that names the way out."""
    base, _ = tiny()
    names = set(base.state_dict())
    model = methods.get("prefix_tuning_plus").apply(base, methods.make_config("prefix_tuning_plus", {}))
    assert {n for n in model.state_dict() if "prefix_memory" not in n} == names
    with torch.no_grad():
        model(batch)
    taps = [m.q_proj for m in model.modules() if hasattr(m, "prefix_memory")]
    assert taps and all(isinstance(t, torch.nn.Linear) and t.query is None for t in taps)
    assert not any(t._forward_hooks for t in taps)

    class QuantisedLinear(torch.nn.Linear):  # as quantisation libraries subclass nn.Linear
        pass

    other, _ = tiny()
    _layer0_attention(other).q_proj.__class__ = QuantisedLinear
    with pytest.raises(TypeError, match="found QuantisedLinear; use query: post_rope"):
        methods.get("prefix_tuning_plus").apply(other, methods.make_config("prefix_tuning_plus", {}))


@pytest.mark.parametrize("feature_map", ["elu", "gelu", "mlp"])
def test_memory_term_is_the_papers_equation_head_by_head(feature_map):
    """PrefixMemory's batched layout equals phi(q_i)^T M_h written out per head and position,
    on q_proj's output viewed per head (the pre-RoPE path) and on the rotated query's strided
    transpose (the post-RoPE path)."""
    from methods.prefix_tuning_plus import Config, PrefixMemory

    torch.manual_seed(0)
    batch, heads, length, head_dim = 2, 3, 5, 8
    memory = PrefixMemory(heads, head_dim, Config(feature_map=feature_map, mlp_width=6, init="normal", init_std=0.5), torch.float32)
    if feature_map == "mlp":
        torch.nn.init.normal_(memory.kernel_bias)
    projected = torch.randn(batch, length, heads * head_dim).view(batch, length, heads, head_dim)
    rotated = torch.randn(batch, heads, length, head_dim).transpose(1, 2)

    def phi(q, h):
        if feature_map == "elu":
            return torch.nn.functional.elu(q)
        if feature_map == "gelu":
            return torch.nn.functional.gelu(q)
        return torch.relu(q @ memory.kernel_weight[h] + memory.kernel_bias[h])

    for query in (projected, rotated):
        expected = torch.stack([
            torch.stack([torch.stack([phi(query[b, t, h], h) @ memory.memory[h] for h in range(heads)]) for t in range(length)])
            for b in range(batch)
        ])
        with torch.no_grad():
            torch.testing.assert_close(memory(query), expected)


def test_apply_that_leaves_nothing_trainable_names_the_file(tmp_path, monkeypatch):
    from experiment import data, jobs

    task_dir = tmp_path / "topic"
    jobs.prepare_task("topic_tiny", data.EVALS_DIR / "fixtures/topic_tiny.jsonl", task_dir, dev_size=4, test_size=4, seed=0)
    monkeypatch.setattr(methods.get("lora"), "apply", lambda model, config: model.requires_grad_(False))
    with pytest.raises(ValueError, match=r"apply\(\) of methods/lora.py returned a model with no trainable parameters"):
        jobs._fit({"kind": "tiny"}, "lora", {}, task_dir, 0, 1e-3, {"max_steps": 1, "target_loss": 0.05, "batch_size": 2}, "cpu")


def test_provenance_counts_an_untracked_method_file_as_dirty(tmp_path):
    from experiment import records

    dropped = methods.METHODS_DIR / "zz_untracked_probe.py"
    try:
        dropped.write_text("# a drop-in the commit does not hold\n")
        state = records.git_state()
        assert state["dirty"] and "methods/zz_untracked_probe.py" in state["untracked"]
    finally:
        dropped.unlink()
