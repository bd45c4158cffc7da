"""The plugin passes the zoo's contract kit; the fill solves Laplace's equation; the metric."""

import pytest
import torch

from zoo.testing import CHECKS, run_check
from zoo_harmonic.fill import HarmonicConfig, harmonic_fill
from zoo_harmonic.metric import grad_error_hole


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("kit")


@pytest.mark.parametrize("check", CHECKS)
def test_contract(check, workdir):
    run_check("harmonic", check, workdir)


def test_a_linear_ramp_is_filled_exactly():
    """A linear function is harmonic: with it on the boundary the solution is the ramp itself."""
    ramp = torch.linspace(-1, 1, 32).expand(1, 3, 32, 32).contiguous()
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    out = harmonic_fill(ramp * (1 - mask), mask, HarmonicConfig(iterations=3000))
    assert (out - ramp).abs().max() < 1e-3


def test_metric_is_zero_for_the_truth_and_grows_with_blur():
    gt = torch.rand(1, 3, 32, 32) * 2 - 1
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    assert grad_error_hole(gt, gt, mask).item() == 0
    flat = gt * (1 - mask)
    assert grad_error_hole(flat, gt, mask).item() > 0.1
