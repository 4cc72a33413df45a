"""The public API of docs/design.md ("The contract") is reachable from `import advbound` with the
contract's parameters, and `import advbound` alone stays light."""

import inspect
import subprocess
import sys

import pytest

# name -> the parameters the contract gives it, in order (extra keyword arguments are allowed)
CONTRACT = {
    "data.load": ["name", "source", "split", "path", "seed"],
    "models.MnistCNN": ["rngs"],
    "models.WideResNet": ["depth", "width", "num_classes", "rngs"],
    "models.as_logits_fn": ["model"],
    "models.as_embedding_fn": ["model"],
    "models.from_torch": ["module", "input_shape"],
    "models.from_keras": ["model"],
    "models.from_flax": ["model"],
    "models.from_robustbench": ["name", "dataset", "threat_model"],
    "directions.random_orthogonal": ["key", "num", "shape", "both_signs"],
    "boundary.search": ["logits_fn", "x", "directions", "step", "max_distance", "bounds",
                        "method"],
    "boundary.purity": ["adjacent", "num_classes", "k"],
    "boundary.summarize": ["result"],
    "region.classify": ["logits_fn", "key", "x", "radius", "num_samples", "bounds"],
    "region.learn_radius": ["logits_fn", "key", "x", "y", "step", "bounds", "num_samples",
                            "initial"],
    "region.certify": ["logits_fn", "key", "x", "noise", "scale", "num_select", "num_estimate",
                       "alpha", "bounds"],
    "attacks.fgsm": ["logits_fn", "x", "y", "epsilon", "bounds", "targeted"],
    "attacks.pgd": ["logits_fn", "key", "x", "y", "epsilon", "step_size", "num_steps", "bounds",
                    "random_start", "targeted"],
    "attacks.carlini_wagner_l2": ["logits_fn", "x", "y", "bounds", "confidence",
                                  "binary_search_steps", "max_iterations", "learning_rate",
                                  "initial_const", "abort_early", "targeted", "ensemble"],
    "attacks.optmargin": ["logits_fn", "key", "x", "y", "epsilon", "bounds", "num_models"],
    "attacks.deepfool": ["logits_fn", "x", "y", "bounds", "norm", "overshoot", "max_iterations",
                         "candidates"],
    "attacks.jsma": ["logits_fn", "x", "target", "bounds", "theta", "gamma"],
    "attacks.carlini_wagner_l0": ["logits_fn", "x", "y", "bounds", "targeted", "confidence"],
    "attacks.carlini_wagner_linf": ["logits_fn", "x", "y", "bounds", "targeted", "confidence",
                                    "start"],
    "attacks.bim_epsilon_search": ["logits_fn", "x", "y", "epsilons", "step_size", "bounds",
                                   "targeted"],
    "attacks.autoattack": ["logits_fn", "key", "x", "y", "norm", "epsilon", "bounds", "version"],
    "attacks.apgd": ["logits_fn", "key", "x", "y", "epsilon", "bounds", "norm"],
    "attacks.square": ["logits_fn", "key", "x", "y", "epsilon", "bounds", "norm"],
    "attacks.fab": ["logits_fn", "key", "x", "y", "epsilon", "bounds", "norm"],
    "attacks.untargeted": ["targeted_attack", "logits_fn", "x", "y", "num_classes", "norm"],
    "attacks.combine": ["x", "candidates", "norm", "success"],
    "attacks.amplify": ["x", "adversarial", "alpha", "bounds"],
    "metrics.rms": ["delta"], "metrics.l2": ["delta"], "metrics.linf": ["delta"],
    "metrics.l0": ["delta"],
    "stats.proportion": ["successes", "n", "confidence", "method"],
    "stats.judge": ["low", "high", "above", "below"],
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_contract_name_and_parameters(name):
  import advbound
  module, attr = name.split(".")
  obj = getattr(getattr(advbound, module), attr)
  if inspect.isclass(obj):  # nnx modules: the signature is __init__'s
    obj = obj.__init__
  names = [p for p in inspect.signature(obj).parameters if p != "self"]
  # the contract's parameters appear in its order (extra keyword arguments may sit between)
  it = iter(names)
  assert all(p in it for p in CONTRACT[name]), (name, names)


def test_import_advbound_alone_does_not_load_jax():
  code = "import sys, advbound; print('jax' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"


def test_unknown_attribute_is_an_attribute_error():
  import advbound
  with pytest.raises(AttributeError, match="no attribute 'nope'"):
    _ = advbound.nope
