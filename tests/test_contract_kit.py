"""The contract kit (zoo.testing) over every method `zoo list` shows: every built-in method,
and any plugin installed beside the zoo, passes it."""

from __future__ import annotations

import pytest

from zoo.plugins import get_manager, reset_manager
from zoo.testing import CHECKS, run_check


def _methods() -> list[str]:
    reset_manager()
    names = sorted(get_manager().methods())
    reset_manager()
    return names


@pytest.fixture(scope="module")
def kit_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("kit")


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("method", _methods())
def test_every_method_passes_the_contract_kit(method, check, kit_dir):
    run_check(method, check, kit_dir / method)


def test_the_kit_fails_an_unseeded_sampler_and_passes_a_seeded_one(kit_dir):
    """Randomness from the global RNG instead of the generator fails; the same fill drawn from the generator passes."""
    import torch

    from zoo import SampleOutput, hookimpl

    class Cheat:
        @hookimpl
        def zoo_sample(self, method, model, config, images, masks, generator):
            if method != "telea":
                return None
            return SampleOutput(torch.rand(images.shape, generator=generator) * 2 - 1, {})

    class Leaky:
        @hookimpl
        def zoo_sample(self, method, model, config, images, masks, generator):
            if method != "telea":
                return None
            noise = torch.rand(images.shape) * 2 - 1  # global RNG: not seeded by the generator
            return SampleOutput(noise, {})

    manager = get_manager()
    manager.register(Leaky(), name="leaky")
    try:
        with pytest.raises(AssertionError, match="same seed|hole content"):
            run_check("telea", "sample", kit_dir / "leaky")
    finally:
        reset_manager()
    manager = get_manager()
    manager.register(Cheat(), name="cheat")
    try:
        run_check("telea", "sample", kit_dir / "cheat")  # seeded random fill: a valid (bad) method
    finally:
        reset_manager()
