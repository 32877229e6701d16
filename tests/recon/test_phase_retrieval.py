"""Paganin phase retrieval against the microscope twin's own absorption image."""

from __future__ import annotations

import numpy as np
import pytest

from nanoct.devices.sim.materials import refractive_index
from nanoct.devices.sim.microscope import MicroscopeInstabilities, MicroscopeTwin
from nanoct.recon.phase_retrieval import paganin_filter, paganin_length_mm


def _image(phase_contrast: bool) -> np.ndarray:
    """Monochromatic-like view (one energy group) of the 6 um glass fibres."""
    tw = MicroscopeTwin(seed=0, specimen="fibres", oversample=2, n_energy_bins=1,
                        phase_contrast=phase_contrast,
                        instabilities=MicroscopeInstabilities.none())  # fmt: skip
    energies, _, images = tw.group_images()
    return images[0], float(energies[0]), tw


def test_retrieval_turns_the_phase_contrast_image_into_the_absorption_image():
    pc, energy, tw = _image(True)
    absorption, _, _ = _image(False)
    delta, beta = refractive_index("glass", [energy])
    got = paganin_filter(pc, pixel_mm=tw.pixel_mm, sod_mm=tw.fod_mm, sdd_mm=tw.sdd_mm,
                         delta_over_beta=float(delta[0] / beta[0]), energy_kev=energy)  # fmt: skip
    rows = slice(96, 160)  # away from the image borders
    err_before = np.sqrt(np.mean((pc[rows] - absorption[rows]) ** 2))
    err_after = np.sqrt(np.mean((got[rows] - absorption[rows]) ** 2))
    print("rms difference from the absorption image", err_before, err_after)
    assert pc[rows].max() > 1.02  # bright Fresnel fringes ...
    assert got[rows].max() < 1.005  # ... gone after the retrieval
    assert err_after < 0.2 * err_before
    # the mean transmission (what a reconstruction integrates) is kept
    assert got.mean() == pytest.approx(pc.mean(), rel=1e-3)


def test_parameters_are_checked():
    with pytest.raises(ValueError, match=r"delta_over_beta=-1.0 must be a finite number > 0"):
        paganin_length_mm(sod_mm=4.4, sdd_mm=1004.4, delta_over_beta=-1.0, energy_kev=10.0)
    with pytest.raises(ValueError, match=r"sdd_mm=4.0 must exceed sod_mm=4.4"):
        paganin_length_mm(sod_mm=4.4, sdd_mm=4.0, delta_over_beta=80.0, energy_kev=10.0)
    with pytest.raises(ValueError, match="transmission must be"):
        paganin_filter(np.ones(5), pixel_mm=0.055, sod_mm=4.4, sdd_mm=1004.4,
                       delta_over_beta=80.0, energy_kev=10.0)  # fmt: skip
    # z = z2 / M = 4.38 mm, lambda 0.124 nm at 10 keV: sqrt(z lambda (delta/beta) / 4 pi)
    length = paganin_length_mm(sod_mm=4.4, sdd_mm=1004.4, delta_over_beta=80.0, energy_kev=10.0)
    z = 1000.0 * 4.4 / 1004.4
    assert length == pytest.approx(np.sqrt(z * 1.23984198e-7 * 80.0 / (4 * np.pi)), rel=1e-9)
