"""RePaint's schedule options jump2/jump3, start_resampling and n_sample (issue 26, item 2).

The expected point lists come from the official ``get_schedule_jump`` (andreas128/RePaint),
run outside this repository by ``benchmarks/repaint_official/schedule_fixture.py`` and
committed as ``tests/fixtures/repaint_schedule_jump.json`` (its header says how)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from zoo.diffusion import count_steps, jump_points
from zoo.errors import ZooError

FIXTURE = Path(__file__).parent / "fixtures" / "repaint_schedule_jump.json"


def _cases() -> tuple[list[str], list[list]]:
    doc = json.loads(FIXTURE.read_text())
    return doc["columns"], doc["cases"]


def test_points_equal_the_official_function_on_the_whole_grid():
    columns, cases = _cases()
    names = columns[:9]
    assert len(cases) > 600
    for case in cases:
        settings = dict(zip(names, case[:9]))
        points = jump_points(**settings)
        length, down, up, digest = case[9:13]
        assert (len(points), count_steps(points).down, count_steps(points).up) == (length, down, up), settings
        assert hashlib.sha256(json.dumps(points).encode()).hexdigest() == digest, settings
        if len(case) > 13:
            assert points == case[13], settings


def test_grid_exercises_every_option():
    """The fixture is not all plain schedules: each option alone changes some lists."""
    _, cases = _cases()
    digests = {tuple(c[:9]): c[12] for c in cases}
    plain = (1, 1, 1, 1, None, 1)  # jump2 length/count, jump3 length/count, start_resampling, n_sample
    groups = {"jump2": (0, 1), "jump3": (2, 3), "start_resampling": (4,), "n_sample": (5,)}
    for name, where in groups.items():
        changed = 0
        for key, digest in digests.items():
            rest = key[3:]
            if all(rest[i] == plain[i] for i in range(6) if i not in where) and any(rest[i] != plain[i] for i in where):
                changed += digests[key[:3] + plain] != digest
        assert changed > 5, name


def test_published_setting_and_the_official_test_setting():
    assert count_steps(jump_points(250, 10, 10)) == count_steps(jump_points(250, 10, 10, start_resampling=250))
    # resampling only from level 100 down: fewer undo steps, same start and end
    late = jump_points(250, 10, 10, start_resampling=100)
    assert late[0] == 249 and late[-1] == -1
    assert all(b == a - 1 for a, b in zip(late, late[1:]) if a > 100)
    assert count_steps(late).up < count_steps(jump_points(250, 10, 10)).up


RNG = random.Random(26)
RANDOM_SETTINGS = [
    {"t_T": RNG.randint(1, 40), "jump_length": RNG.randint(1, 8), "jump_n_sample": RNG.randint(1, 4), "jump2_length": RNG.randint(1, 4),
     "jump2_n_sample": RNG.randint(1, 3), "jump3_length": RNG.randint(1, 3), "jump3_n_sample": RNG.randint(1, 3),
     "start_resampling": RNG.choice([None, RNG.randint(-2, 45)]), "n_sample": RNG.randint(1, 3)}
    for _ in range(60)
]


@pytest.mark.parametrize("settings", RANDOM_SETTINGS, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_schedule_properties(settings):
    points = jump_points(**settings)
    t_T, start = settings["t_T"], settings["start_resampling"]
    assert points[0] == t_T - 1 and points[-1] == -1
    assert all(abs(a - b) == 1 for a, b in zip(points, points[1:]))
    assert max(points) <= t_T - 1
    counts = count_steps(points)
    assert counts.down - counts.up == t_T  # every undo step is denoised again
    if start is not None:  # above start_resampling the walk only goes down
        assert all(b == a - 1 for a, b in zip(points, points[1:]) if a > start + 1)
    # one-level resamplings (n_sample) and the three tiers only add steps
    plain = jump_points(t_T, settings["jump_length"], settings["jump_n_sample"], start_resampling=start)
    assert counts.down >= count_steps(plain).down


def test_defaults_are_the_plain_schedule_and_bad_values_are_one_line():
    assert jump_points(30, 3, 2) == jump_points(30, 3, 2, 1, 1, 1, 1, None, 1)
    with pytest.raises(ZooError, match="jump2_length"):
        jump_points(30, 3, 2, jump2_length=0)


def test_sampling_walks_the_configured_schedule_and_named_modes_refuse_the_options():
    import dataclasses

    import torch

    from zoo.config import apply_overrides
    from zoo_plugins.repaint.config import PRESETS, RepaintConfig
    from zoo_plugins.repaint.model import RepaintPrior
    from zoo_plugins.repaint.sample import sample

    cfg = apply_overrides(RepaintConfig(), {**PRESETS["tiny"], "t_T": 6, "jump_length": 3, "jump_n_sample": 2, "jump2_length": 1,
                                            "jump2_n_sample": 2, "start_resampling": 4, "n_sample": 2})
    model = RepaintPrior(cfg).eval()
    images, holes = torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    holes[..., 8:20, 8:20] = 1
    out = sample(model, cfg, images, holes, torch.Generator().manual_seed(0), progress=False)
    expected = count_steps(jump_points(6, 3, 2, jump2_length=1, jump2_n_sample=2, start_resampling=4, n_sample=2))
    assert (out.info["nfe"], out.info["undo_steps"]) == (expected.down, expected.up)
    assert expected.down > count_steps(jump_points(6, 3, 2)).down
    assert "jump2_n_sample=2" in out.info["schedule"] and "start_resampling=4" in out.info["schedule"]
    with pytest.raises(ZooError, match="jump2_n_sample, start_resampling, n_sample: only with sampling=custom"):
        sample(model, dataclasses.replace(cfg, sampling="published"), images, holes, torch.Generator().manual_seed(0), progress=False)
    with pytest.raises(ZooError, match="schedule_alignment=diffusers has only jump_length"):
        sample(model, dataclasses.replace(cfg, schedule_alignment="diffusers"), images, holes, torch.Generator().manual_seed(0), progress=False)
