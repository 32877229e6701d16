"""Physics of the twin, measured the way a scientist would measure the real instrument.

Each test would fail on a twin that draws pictures instead of doing the physics: magnifications
are measured on features of known size, attenuation is compared with xraydb over the whole
spectrum, the spot is measured from an edge, the wire follows the spot as cone-beam geometry
says, and the noise follows the detector model.
"""

from __future__ import annotations

import numpy as np
import pytest
import xraydb
from scipy import optimize

from nanoct.devices.sim.detector import FlatPanelSpec
from nanoct.devices.sim.geometry import DetectorGrid
from nanoct.devices.sim.imaging import blur
from nanoct.devices.sim.materials import absorbed_fraction, attenuation_table
from nanoct.devices.sim.raytrace import Box
from nanoct.devices.sim.specimens import Feature, Specimen
from nanoct.devices.sim.spectrum import tungsten_transmission_spectrum
from nanoct.devices.sim.twin import CTTwin, Instabilities
from nanoct.recon.resolution import spot_size_from_edge

IDEAL = Instabilities.none()


def _transmission(twin: CTTwin, grid: DetectorGrid) -> np.ndarray:
    """Detected-signal transmission of the specimen (and wire) on ``grid``, noise free."""
    with_obj, _ = twin.deposited_energy(1.0, grid=grid)
    x = twin.axis_x_mm
    twin.set_position("axis_x_mm", twin.out_of_beam_x_mm())
    wire, twin.wire = twin.wire, None
    open_, _ = twin.deposited_energy(1.0, grid=grid)
    twin.wire = wire
    twin.set_position("axis_x_mm", x)
    return with_obj / open_


# ---- magnification ---------------------------------------------------------------------------
def test_chip_magnification_from_grating_line_positions():
    """Centres of the 3 um and 4 um copper lines on the detector vs their positions on the
    chip: the slope is the magnification at the metal layer's depth."""
    twin = CTTwin(specimen="chip", instabilities=IDEAL, wire=False, sod_mm=2.95, sdd_mm=250.0)
    widths, starts = [], []
    x = -150.0
    for w in (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 3.0, 4.0):
        widths.append(w)
        starts.append(x)
        x += 10 * w + 6
    centres_um = [
        s + (2 * k + 0.5) * w
        for s, w in zip(starts[-2:], widths[-2:], strict=True)
        for k in range(5)
    ]
    depth_mm = 43e-3  # the metal layer lies 43 um downstream of the rotation axis
    m_layer = twin.sdd_mm / (twin.sod_mm + depth_mm)
    pixel = 0.01
    u_mid = np.mean(centres_um) * 1e-3 * m_layer
    grid = DetectorGrid(
        rows=40, cols=800, pixel_mm=pixel, offset_u_mm=u_mid, offset_v_mm=0.200 * m_layer
    )
    profile = -np.log(_transmission(twin, grid)).mean(axis=0)
    profile -= np.polyval(np.polyfit(np.arange(profile.size), profile, 2), np.arange(profile.size))
    u = grid.u_mm()
    measured = []
    for c in centres_um:
        guess = c * 1e-3 * m_layer
        win = np.abs(u - guess) < 1.0e-3 * m_layer  # +-1 um around the line
        wts = np.clip(profile[win], 0, None)
        measured.append(float((u[win] * wts).sum() / wts.sum()))
    slope = np.polyfit(np.array(centres_um) * 1e-3, measured, 1)[0]
    assert slope == pytest.approx(m_layer, rel=0.005)
    assert slope == pytest.approx(twin.sdd_mm / twin.sod_mm, rel=0.02)
    # at a longer distance the layer's depth matters less: SDD/SOD within 1 %
    twin.set_position("sod_mm", 10.0)
    assert twin.sdd_mm / (10.0 + depth_mm) == pytest.approx(twin.sdd_mm / 10.0, rel=0.01)


def test_reference_wire_magnification_from_its_diameter():
    """Fit the shadow of the 30 um tungsten wire with a polychromatic cylinder model: the
    fitted shadow radius over 15 um is the wire's magnification SDD / z_wire."""
    twin = CTTwin(
        specimen="chip",
        instabilities=IDEAL,
        wire=True,
        detector_spec=FlatPanelSpec(light_spread_sigma_mm=0.0),
    )
    x_w, y_w, z_w = twin.wire_center_mm
    m_wire = twin.sdd_mm / z_w
    pixel = 0.02
    grid = DetectorGrid(
        rows=8,
        cols=400,
        pixel_mm=pixel,
        offset_u_mm=x_w * m_wire,
        offset_v_mm=(y_w + 0.025) * m_wire,
    )
    t = _transmission(twin, grid).mean(axis=0)
    det = twin.detected_spectrum()
    mu = attenuation_table(["tungsten"], det.energies_kev)[0]
    u = grid.u_mm()

    def model(params):
        centre, radius_mm, sigma_px, path_scale = params
        x = np.clip(radius_mm**2 - (u - centre) ** 2, 0, None)
        chord = path_scale * 2 * np.sqrt(x) / m_wire  # path through the wire, mm
        tr = (det.weights[:, None] * np.exp(-mu[:, None] * chord[None, :])).sum(axis=0)
        return blur(tr[None, :], abs(sigma_px))[0]

    fit = optimize.least_squares(
        lambda p: model(p) - t, x0=[u.mean(), 1.8, 1.0, 1.0], x_scale=[0.01, 0.01, 0.1, 0.01]
    )
    assert np.abs(fit.fun).max() < 0.03  # the cylinder model describes the shadow
    radius_mm = fit.x[1]
    # The wire sits off axis: its rays meet the flat detector obliquely (angle alpha in x),
    # which stretches the shadow by 1 / cos(alpha) (distance z / cos(alpha), and 1 / cos^2
    # on the flat detector). Corrected for that, the shadow gives the on-axis SDD / z_wire.
    cos_a = z_w / np.hypot(x_w, z_w)
    assert radius_mm * cos_a / 0.015 == pytest.approx(m_wire, rel=0.01)
    assert m_wire == pytest.approx(twin.sdd_mm / 2.0)


# ---- attenuation -----------------------------------------------------------------------------
def test_silicon_attenuation_matches_xraydb_over_the_spectrum():
    thickness_mm = 0.100
    slab = Specimen("si", (Feature(Box((0, 0, 0), (1.0, 1.0, thickness_mm / 2)), "silicon"),))
    twin = CTTwin(specimen=slab, instabilities=IDEAL, wire=False)
    grid = DetectorGrid(rows=5, cols=5, pixel_mm=0.05)
    measured = float(_transmission(twin, grid)[2, 2])

    # independent expectation on the fine (0.5 keV) spectrum, straight from xraydb
    spec = tungsten_transmission_spectrum(twin.tube.voltage_kv, bin_width_kev=0.5)
    e = np.asarray(spec.energies_kev)
    ev = e * 1e3
    air = xraydb.material_mu("N0.78O0.21Ar0.01", ev, density=0.001205) / 10.0
    photons = np.asarray(spec.photons_per_s_sr_ua) * np.exp(-air * twin.sdd_mm)
    deposit = photons * absorbed_fraction("caesium_iodide", 150.0, e) * e
    mu_si = xraydb.material_mu("Si", ev, density=2.329) / 10.0
    # the central ray crosses the slab at a small angle from the pixel's 25 um offset
    path = thickness_mm * np.sqrt(1 + (0.025**2 * 2) / twin.sdd_mm**2)
    expected = float((deposit * np.exp(-mu_si * path)).sum() / deposit.sum())
    assert measured == pytest.approx(expected, rel=0.01)
    # and it is really polychromatic: no single energy's Beer-Lambert gives it by accident
    mono_mean = np.exp(-np.interp(spec.mean_energy_kev, e, mu_si) * path)
    assert abs(mono_mean - expected) > 0.01


# ---- focal spot ------------------------------------------------------------------------------
def test_edge_spread_gives_the_high_focus_spot_at_10_percent_isodose():
    # high magnification (about 1000), so the detector's own blur is small against the spot's
    twin = CTTwin(
        specimen="edge", instabilities=IDEAL, wire=False, sod_mm=0.5073, sdd_mm=500.0, oversample=4
    )
    assert twin.tube.mode == "high_focus"
    grid = DetectorGrid(rows=4, cols=200, pixel_mm=0.05)
    esf = twin.deposited_energy(1.0, grid=grid)[0].mean(axis=0)
    mag = twin.sdd_mm / twin.sod_mm
    spot = spot_size_from_edge(esf, pixel_um=50.0, magnification=mag, level=0.1)
    assert spot == pytest.approx(0.9, rel=0.10)
    # the micro-focus mode gives a correspondingly larger spot
    twin.tube.configure(mode="micro_focus", current_ua=10.0)
    esf = twin.deposited_energy(1.0, grid=grid)[0].mean(axis=0)
    assert spot_size_from_edge(esf, pixel_um=50.0, magnification=mag) == pytest.approx(
        1.8, rel=0.10
    )


# ---- drift -----------------------------------------------------------------------------------
def _wire_centre(twin: CTTwin, grid: DetectorGrid, axis: int) -> float:
    dip = 1.0 - _transmission(twin, grid).mean(axis=axis)
    coords = grid.u_mm() if axis == 0 else grid.v_mm()
    return float((coords * dip).sum() / dip.sum())


@pytest.mark.parametrize("drift", [True, False])
def test_wire_follows_the_focal_spot_as_geometry_predicts(drift):
    inst = Instabilities.only("spot_drift") if drift else IDEAL
    twin = CTTwin(specimen="chip", instabilities=inst, seed=3)
    x_w, y_w, z_w = twin.wire_center_mm
    m_wire = twin.sdd_mm / z_w
    # the vertical arm above the crossing gives x; the horizontal arm beside it gives y
    vgrid = DetectorGrid(
        rows=6,
        cols=300,
        pixel_mm=0.02,
        offset_u_mm=x_w * m_wire,
        offset_v_mm=(y_w + 0.025) * m_wire,
    )
    hgrid = DetectorGrid(
        rows=300,
        cols=6,
        pixel_mm=0.02,
        offset_u_mm=(x_w + 0.025) * m_wire,
        offset_v_mm=y_w * m_wire,
    )
    u0, v0 = _wire_centre(twin, vgrid, 0), _wire_centre(twin, hgrid, 1)
    s0 = twin.tube.spot_offset_um(twin.clock.now())
    twin.clock.advance(8 * 3600.0)
    u1, v1 = _wire_centre(twin, vgrid, 0), _wire_centre(twin, hgrid, 1)
    s1 = twin.tube.spot_offset_um(twin.clock.now())
    # a spot displaced by ds moves a shadow at magnification M by -ds * (M - 1)
    du_pred = -(s1[0] - s0[0]) * 1e-3 * (m_wire - 1)
    dv_pred = -(s1[1] - s0[1]) * 1e-3 * (m_wire - 1)
    if drift:
        assert np.hypot(du_pred, dv_pred) > 0.02  # the drift is big enough to matter
        assert u1 - u0 == pytest.approx(du_pred, rel=0.03, abs=5e-4)
        assert v1 - v0 == pytest.approx(dv_pred, rel=0.03, abs=5e-4)
    else:
        assert (du_pred, dv_pred) == (0.0, 0.0)
        assert abs(u1 - u0) < 1e-6 and abs(v1 - v0) < 1e-6


# ---- noise -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("binning", "frames"), [(4, 1), (4, 4), (2, 1)])
def test_flat_noise_follows_the_detector_model(binning, frames):
    """Photon transfer: the variance of the difference of two flats over twice the mean
    signal is what the compound-Poisson detector model predicts."""
    twin = CTTwin(
        specimen="chip", instabilities=Instabilities.only("noise"), wire=False, binning=binning
    )
    twin.set_position("axis_x_mm", twin.out_of_beam_x_mm())
    a = twin.acquire(1.0, frames).image
    b = twin.acquire(1.0, frames).image
    n = a.shape[0]
    roi = (slice(n // 4, 3 * n // 4), slice(n // 4, 3 * n // 4))
    var = float(np.var(a[roi] - b[roi]) / 2.0)
    mean = float(np.mean((a[roi] + b[roi]) / 2.0))
    e_var = twin.detected_spectrum().e_var_open_kev
    predicted = float(
        twin.detector.expected_variance(mean, e_var, binning=binning, exposure_s=1.0, frames=frames)
    )
    assert var == pytest.approx(predicted, rel=0.06)
    # and it is really photon noise: a dark has only read noise left
    twin.shutter_open = False
    d1, d2 = twin.acquire(1.0, frames).image, twin.acquire(1.0, frames).image
    dark_var = float(np.var(d1[roi] - d2[roi]) / 2.0)
    assert dark_var < 0.05 * var


# ---- determinism -----------------------------------------------------------------------------
def test_same_seed_same_frames_other_seed_other_frames():
    def frames(seed):
        tw = CTTwin(seed=seed, specimen="chip")
        out = []
        for angle in (0.0, 30.0):
            tw.set_position("angle_deg", angle)
            out.append(tw.acquire(5.0, 2).image)
        return np.stack(out)

    a, b, c = frames(7), frames(7), frames(8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
