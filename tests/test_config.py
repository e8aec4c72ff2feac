"""Settings: presets round-trip and train, overrides are checked, every setting is validated up
front with an error naming it and its value, the documented tables match the code."""

import re
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from planted import planted_corpus

from bert4rec.config import (
    PRESETS,
    SECTIONS,
    Settings,
    allowed_values,
    auto_choice,
    field_defaults,
    preset,
)
from bert4rec.errors import SettingsError
from bert4rec.training.loop import TrainingRun
from bert4rec.training.runtime import Runtime

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_plain_dicts(name):
    settings = preset(name)
    assert Settings.from_dict(settings.to_dict()) == settings


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_takes_a_training_step_with_a_finite_loss(name):
    corpus = planted_corpus(n_users=40)
    run = TrainingRun(corpus, preset(name).override({"loop.device": "cpu"}),
                      Runtime(torch.device("cpu")), show_progress=False)
    inputs, labels = next(iter(run.loader))
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    assert torch.isfinite(run.step(inputs, labels))
    assert any(not torch.equal(before[k], v) for k, v in run.model.state_dict().items())


def test_override_changes_one_field_and_keeps_the_rest():
    changed = preset("fast").override({"model.hidden": 128, "optim.schedule": "step"})
    assert changed.model.hidden == 128 and changed.optim.schedule == "step"
    assert changed.masking == preset("fast").masking and changed.loop == preset("fast").loop


def test_unknown_settings_sections_and_presets_are_named():
    with pytest.raises(SettingsError, match=r"unknown setting 'model\.hiden'"):
        preset("fast").override({"model.hiden": 1})
    with pytest.raises(SettingsError, match=r"unknown masking settings \['prob'\]"):
        Settings.from_dict({"masking": {"prob": 0.1}})
    with pytest.raises(SettingsError, match=r"unknown settings sections \['train'\]"):
        Settings.from_dict({"train": {}})
    with pytest.raises(KeyError, match="choose one of"):
        preset("bert")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("model.hidden", 0, r"model\.hidden must be in \[1, 65536\], got 0"),
    ("model.heads", 0, r"model\.heads must be in \[1, 1024\], got 0"),
    ("model.layers", -1, r"model\.layers must be in \[1, 1024\], got -1"),
    ("model.max_len", 1, r"model\.max_len must be in \[2, 65536\], got 1"),
    ("model.ff_mult", 0, r"model\.ff_mult must be in \[1, 64\], got 0"),
    ("model.dropout", 1.0, r"model\.dropout must be in \[0, 1\), got 1\.0"),
    ("model.attention_dropout", -0.1, r"model\.attention_dropout must be in \[0, 1\), got -0\.1"),
    ("model.hidden", 64.0, r"model\.hidden must be a whole number, got 64\.0"),
    ("masking.mask_prob", 2, r"masking\.mask_prob must be in \(0, 1\], got 2"),
    ("masking.mask_prob", 0.0, r"masking\.mask_prob must be in \(0, 1\], got 0\.0"),
    ("masking.last_item_share", 1.5, r"masking\.last_item_share must be in \[0, 1\], got 1\.5"),
    ("masking.last_item_prefix", -1, r"masking\.last_item_prefix must be in \[0, 1\], got -1"),
    ("masking.windows_per_sequence", 0, r"masking\.windows_per_sequence must be >= 1, got 0"),
    ("masking.window_shift", -2, r"masking\.window_shift must be >= 0, got -2"),
    ("optim.lr", 0.0, r"optim\.lr must be > 0, got 0\.0"),
    ("optim.lr", float("nan"), r"optim\.lr must be a finite number, got nan"),
    ("optim.weight_decay", -0.01, r"optim\.weight_decay must be >= 0, got -0\.01"),
    ("optim.beta2", 1.0, r"optim\.beta2 must be in \[0, 1\), got 1\.0"),
    ("optim.step_epochs", 0, r"optim\.step_epochs must be >= 1, got 0"),
    ("optim.step_gamma", 0.0, r"optim\.step_gamma must be > 0, got 0\.0"),
    ("optim.warmup_fraction", 1.5, r"optim\.warmup_fraction must be in \[0, 1\], got 1\.5"),
    ("optim.clip_norm", -1.0, r"optim\.clip_norm must be >= 0, got -1\.0"),
    ("optim.negatives", 0, r"optim\.negatives must be >= 1, got 0"),
    ("optim.schedule", "cosine", r"optim\.schedule must be one of \(.*'step'.*\), got 'cosine'"),
    ("loop.epochs", 0, r"loop\.epochs must be >= 1, got 0"),
    ("loop.batch_size", -8, r"loop\.batch_size must be in \[1, 1048576\], got -8"),
    ("loop.eval_batch_size", 0, r"loop\.eval_batch_size must be in \[1, 1048576\], got 0"),
    ("loop.patience", -1, r"loop\.patience must be >= 0, got -1"),
    ("loop.metric", "ndcg@10", r"loop\.metric must be one of \(.*'NDCG@10'.*\), got 'ndcg@10'"),
    ("loop.metric", "NDCG@50", r"loop\.metric must be one of .*, got 'NDCG@50'"),
    ("loop.seed", -1, r"loop\.seed must be >= 0, got -1"),
    ("loop.device", "gpu", r"loop\.device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("loop.time_budget", -5.0, r"loop\.time_budget must be >= 0, got -5\.0"),
    ("loop.epochs", True, r"loop\.epochs must be a whole number, got True"),
])
def test_an_invalid_setting_is_refused_up_front_naming_the_field_and_value(key, value, message):
    with pytest.raises(SettingsError, match=message):
        preset("fast").override({key: value})


def test_settings_that_only_fail_together_name_both_fields():
    with pytest.raises(SettingsError, match=r"model\.hidden \(64\) must divide by model\.heads"):
        preset("fast").override({"model.heads": 3})
    with pytest.raises(SettingsError, match=r"mask_token_share \(0\.8\) \+ .*random_token_share"
                       r" \(0\.3\) must be <= 1"):
        preset("seed").override({"masking.random_token_share": 0.3})


def test_every_validation_metric_a_run_reports_is_accepted():
    for metric in ("NDCG@1", "HR@5", "NDCG@20", "MRR"):
        assert preset("fast").override({"loop.metric": metric}).loop.metric == metric


def documented_rows(heading: str) -> dict[str, list[str]]:
    """`section.field` -> the other cells of its row, in the table under `heading`."""
    text = DOC.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+\.\w+)` \|(.*)\|$", text, re.M)
    return {key: [cell.strip() for cell in cells.split(" | ")] for key, cells in rows}


def settings_fields() -> list[tuple[str, object]]:
    return [(f"{name}.{f.name}", f) for name, section in SECTIONS.items()
            for f in fields(section)]


def test_documented_defaults_and_presets_equal_the_code():
    table = documented_rows("Settings")
    assert sorted(table) == sorted(key for key, _ in settings_fields()), \
        "docs/configuration.md lists other settings"
    for name, section in SECTIONS.items():
        for field_name, default in field_defaults(section).items():
            cells = table[f"{name}.{field_name}"][:1 + len(PRESETS)]
            in_presets = [getattr(getattr(PRESETS[p], name), field_name) for p in PRESETS]
            assert cells == [f"`{v}`" for v in [default, *in_presets]], f"{name}.{field_name}"


def test_documented_allowed_values_equal_the_code():
    table = documented_rows("Allowed values")
    assert {key: cells[0] for key, cells in table.items()} == {
        key: allowed_values(f) for key, f in settings_fields()}


def test_a_retired_setting_loads_when_off_and_is_refused_when_on():
    stored = preset("fast").to_dict()
    stored["optim"]["ema_decay"] = 0.0  # as config.json files written before 2026-12-04 hold it
    assert Settings.from_dict(stored) == preset("fast")
    stored["optim"]["ema_decay"] = 0.9
    with pytest.raises(SettingsError, match=r"optim\.ema_decay was retired .*\(0\.9\)"):
        Settings.from_dict(stored)
    with pytest.raises(SettingsError, match=r"unknown setting 'optim\.ema_decay'"):
        preset("fast").override({"optim.ema_decay": 0.0})


@pytest.mark.parametrize(("interactions", "users", "items", "expected", "why"), [
    (198_502, 22_363, 12_101, "short", "8.9 interactions per user, fewer than 20"),
    (48_562, 609, 6_298, "small", "48,562 interactions, fewer than 300,000"),
    (1_000_209, 6_040, 3_416, "causal",
     "1,000,209 interactions, at least 300,000, over 3,416 items, at most 10,000"),
    (9_938_767, 138_488, 26_744, "large",
     "9,938,767 interactions, at least 300,000, over 26,744 items, more than 10,000"),
    (10, 0, 5, "short", "10.0 interactions per user, fewer than 20"),
])
def test_auto_reads_the_sequence_length_then_the_size_then_the_catalogue(interactions, users,
                                                                         items, expected, why):
    assert auto_choice(interactions, users, items) == (expected, why)


def test_loop_refit_is_retired_for_the_final_fit():
    """config.json files written before 2026-12-04 hold `refit: false`: they still load; a
    refit run is refused, and the setting is gone from the presets and the flags."""
    stored = preset("fast").to_dict()
    stored["loop"]["refit"] = False
    assert Settings.from_dict(stored) == preset("fast")
    stored["loop"]["refit"] = True
    with pytest.raises(SettingsError, match=r"loop\.refit was retired .*\(True\)"):
        Settings.from_dict(stored)
    with pytest.raises(SettingsError, match=r"unknown setting 'loop\.refit'"):
        preset("fast").override({"loop.refit": False})
