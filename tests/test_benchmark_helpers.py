"""The helpers benchmarks share, which live beside them in benchmarks/ (not in the package):
`--set` assignments typed by their field, and the FLOPs of a forward pass."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bert4rec.errors import SettingsError
from bert4rec.model import BERT4Rec, BERT4RecConfig

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark(name: str):
    """benchmarks/NAME.py as a module, as its scripts import it (their folder on the path)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


parse_overrides = benchmark("overrides").parse_overrides
flops_per_sequence = benchmark("train_speed").flops_per_sequence


def test_parse_overrides_types_values_by_field():
    assert parse_overrides(["model.hidden=128", "optim.lr=3e-3", "optim.loss=uniform"]) == {
        "model.hidden": 128, "optim.lr": 0.003, "optim.loss": "uniform"}


@pytest.mark.parametrize(("bad", "message"), [
    ("model.hiden=1", "known field"), ("hidden=1", "known field"), ("model.hidden", "known field"),
    ("model.hidden=1.5", "expected int"), ("optim.lr=fast", "expected float"),
])
def test_parse_overrides_names_bad_pairs(bad, message):
    with pytest.raises(SettingsError, match=message):
        parse_overrides([bad])


@pytest.mark.parametrize(("layers", "ff_mult", "n_targets"), [(2, 4, 10), (4, 4, 10), (1, 2, 37),
                                                               (3, 4, 0)])
def test_flops_per_sequence_equal_pytorchs_own_count_of_a_forward_pass(layers, ff_mult,
                                                                      n_targets):
    config = BERT4RecConfig(vocab_size=1000, max_len=100, hidden=64, layers=layers, heads=2,
                            ff_mult=ff_mult, attention_dropout=0.1, attention_dropout_on="weights")
    model = BERT4Rec(config).train()  # dropout on the weights: the counter sees every matmul
    items = torch.randint(1, 999, (1, 100))
    targets = torch.zeros(1, 100, dtype=torch.bool)
    targets[0, torch.randperm(100)[:n_targets]] = True
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(items, targets)
    assert flops_per_sequence(config, n_targets) == counter.get_total_flops()
