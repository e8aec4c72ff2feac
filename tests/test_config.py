"""Settings: presets round-trip, overrides are checked, the documented table matches the code."""

import re
from dataclasses import fields
from pathlib import Path

import pytest

from bert4rec.config import PRESETS, SECTIONS, Settings, field_defaults, parse_overrides, preset

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_plain_dicts(name):
    settings = preset(name)
    assert Settings.from_dict(settings.to_dict()) == settings


def test_the_seed_and_paper_presets_hold_their_recipes():
    seed, paper = preset("seed"), preset("paper")
    s, p = seed, paper
    assert (s.model.max_len, s.model.layers, s.model.hidden, s.model.heads) == (128, 2, 256, 4)
    m = s.masking
    assert (m.mask_prob, m.mask_token_share, m.random_token_share) == (0.15, 0.8, 0.1)
    o = s.optim
    assert (o.lr, o.schedule, o.step_epochs, s.loop.epochs) == (1e-3, "step", 25, 100)
    assert (p.model.hidden, p.model.heads, p.model.max_len, p.model.dropout) == (64, 2, 200, 0.2)
    assert (p.masking.mask_prob, p.masking.mask_token_share) == (0.2, 1.0)
    o = p.optim
    assert (o.lr, o.weight_decay, o.clip_norm, p.loop.batch_size) == (1e-4, 0.01, 5.0, 256)


def test_override_changes_one_field_and_rejects_unknown_or_invalid_ones():
    changed = preset("fast").override({"model.hidden": 128, "optim.schedule": "step"})
    assert changed.model.hidden == 128 and changed.optim.schedule == "step"
    assert changed.masking == preset("fast").masking
    with pytest.raises(ValueError, match=r"unknown setting 'model\.hiden'"):
        preset("fast").override({"model.hiden": 1})
    with pytest.raises(ValueError, match=r"optim\.schedule must be one of"):
        preset("fast").override({"optim.schedule": "cosine"})
    with pytest.raises(ValueError, match="must divide by heads"):
        preset("fast").override({"model.heads": 3})
    with pytest.raises(ValueError, match="unknown masking settings \\['prob'\\]"):
        Settings.from_dict({"masking": {"prob": 0.1}})
    with pytest.raises(KeyError, match="choose one of"):
        preset("bert")


def documented_table() -> dict[str, list[str]]:
    """`section.field` -> [default, seed, paper, fast] as written in docs/configuration.md."""
    rows = re.findall(r"^\| `(\w+\.\w+)` \| (.+?) \|[^|]*\|$", DOC.read_text(), re.M)
    return {key: re.findall(r"`([^`]*)`", values) for key, values in rows}


def test_documented_defaults_and_presets_equal_the_code():
    table = documented_table()
    in_code = [f"{name}.{f.name}" for name, section in SECTIONS.items() for f in fields(section)]
    assert sorted(table) == sorted(in_code), "docs/configuration.md lists other settings"
    for name, section in SECTIONS.items():
        for field_name, default in field_defaults(section).items():
            documented = table[f"{name}.{field_name}"]
            in_presets = [getattr(getattr(PRESETS[p], name), field_name)
                          for p in ("seed", "paper", "fast")]
            assert documented == [str(v) for v in [default, *in_presets]], f"{name}.{field_name}"


def test_parse_overrides_types_values_by_field_and_names_bad_pairs():
    assert parse_overrides(["model.hidden=128", "optim.lr=3e-3", "optim.loss=uniform"]) == {
        "model.hidden": 128, "optim.lr": 0.003, "optim.loss": "uniform"}
    assert [parse_overrides([f"loop.refit={t}"])["loop.refit"] for t in ("True", "no")] == [
        True, False]
    for bad, message in [("model.hiden=1", "known field"), ("hidden=1", "known field"),
                         ("model.hidden", "known field"), ("model.hidden=1.5", "expected int"),
                         ("loop.refit=maybe", "expected bool")]:
        with pytest.raises(ValueError, match=message):
            parse_overrides([bad])
