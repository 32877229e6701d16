"""Analytic specimens of the X-ray microscope (field of view ~60 um at 240 nm per pixel).

Same building blocks and conventions as :mod:`nanoct.devices.sim.specimens` (features of one
material displacing another, coordinates in mm in the specimen frame: y is the vertical
rotation axis, z points to the detector at rotation angle 0). The paper (section 2.2) names
the objects: a bundle of glass fibres of about 6 um diameter to determine the magnification
(Fig. 9), low-absorbing biological objects whose facets and bristles show phase contrast (the
eye of a fly and a spider's leg, Figs. 8 and 9), thin wires and edges to check the focal
spot's influence. Every other dimension below is an assumption chosen to look like such
objects inside the microscope's field of view. The layouts do not depend on the twin's seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nanoct.devices.sim.raytrace import Box, Cylinder, Sphere, rotation_matrix
from nanoct.devices.sim.specimens import Feature, Specimen, flat_chip

__all__ = [
    "MICROSCOPE_SPECIMENS",
    "chitin_bristles",
    "fibre_bundle",
    "fine_wire",
    "flat_chip_microscope",
    "fly_eye_facets",
    "make_microscope_specimen",
    "tungsten_edge",
]

UM = 1e-3  # mm per um
X, Y, Z = np.eye(3)


def fibre_bundle(
    n_fibres: int = 8,
    diameter_um: float = 6.0,
    diameter_spread: float = 0.005,
    length_um: float = 300.0,
) -> Specimen:
    """Glass fibres (nominal ``diameter_um``) lying side by side, touching, in one layer.

    The fibres' axes are vertical (along the rotation axis, y); their centres lie on the x axis
    at z = 0, so at rotation angle 0 the layer faces the beam and neighbouring centres are one
    (mean) diameter apart. Diameters scatter by ``diameter_spread`` (relative, 1 sigma; the
    paper says "approximately 6 um") around the nominal value with a fixed generator; the
    layout is the same whatever the twin's seed. E-glass (see :mod:`materials`). The nominal
    diameter, the true diameters and the centres (um) are in ``metadata``.
    """
    if not (isinstance(n_fibres, int) and n_fibres >= 1):
        raise ValueError(f"n_fibres={n_fibres!r} must be an integer >= 1")
    if not (np.isfinite(diameter_um) and diameter_um > 0):
        raise ValueError(f"diameter_um={diameter_um!r} must be > 0 um")
    rng = np.random.default_rng(69)
    d = diameter_um * (1.0 + diameter_spread * rng.standard_normal(n_fibres))
    centres = np.concatenate([[0.0], np.cumsum((d[:-1] + d[1:]) / 2.0)])
    centres -= (centres[0] + centres[-1]) / 2.0
    feats = tuple(
        Feature(
            Cylinder(np.array([cx, 0.0, 0.0]) * UM, Y, di / 2.0 * UM, length_um / 2.0 * UM),
            "glass",
            "air",
            f"fibre d={di:.3f} um",
        )
        for cx, di in zip(centres, d, strict=True)
    )
    return Specimen(
        "fibres",
        feats,
        fibre_bundle.__doc__ or "",
        metadata={
            "diameter_um": float(diameter_um),
            "diameters_um": [float(v) for v in d],
            "centres_um": [float(v) for v in centres],
        },
    )


def chitin_bristles(
    leg_diameter_um: float = 30.0, wall_um: float = 3.0, bristle_diameter_um: float = 1.5
) -> Specimen:
    """A piece of a spider's leg: a hollow chitin tube with fine bristles (low absorbing).

    The leg is a vertical chitin tube (``leg_diameter_um`` outside, ``wall_um`` wall, filled
    with air: a dried specimen) whose left flank lies inside the field of view; six bristles
    of ``bristle_diameter_um`` (+-30 %), 30 um long, leave its surface towards the left at
    25-55 deg from the vertical. Chitin (C8H13NO5, 1.4 g/cm^3) absorbs little at 10-30 keV: the
    bristles are seen mainly through their phase-contrast fringes.
    """
    r_out = leg_diameter_um / 2.0
    xc = r_out + 3.0  # the tube's left surface at x = 3 um
    feats: list[Feature] = [
        Feature(Cylinder(np.array([xc, 0, 0]) * UM, Y, r_out * UM, 0.15), "chitin", "air", "leg"),
        Feature(
            Cylinder(np.array([xc, 0, 0]) * UM, Y, (r_out - wall_um) * UM, 0.15),
            "air",
            "chitin",
            "leg lumen",
        ),
    ]
    length = 30.0
    heights = (-25.0, -15.0, -5.0, 5.0, 15.0, 25.0)
    angles = (25.0, 40.0, 55.0, 30.0, 45.0, 35.0)
    scale = (1.0, 0.7, 1.3, 0.8, 1.2, 1.0)
    for k, (y0, a, s) in enumerate(zip(heights, angles, scale, strict=True)):
        theta = np.deg2rad(a)
        axis = np.array([-np.sin(theta), np.cos(theta), 0.0])
        start = np.array([3.0 - 1.0, y0, 0.0])  # 1 um off the leg's surface
        centre = start + axis * length / 2.0
        feats.append(
            Feature(
                Cylinder(centre * UM, axis, bristle_diameter_um * s / 2.0 * UM, length / 2 * UM),
                "chitin",
                "air",
                f"bristle {k}",
            )
        )
    return Specimen("bristles", tuple(feats), chitin_bristles.__doc__ or "")


def fly_eye_facets(
    n_rings: int = 3, facet_diameter_um: float = 9.0, cornea_um: float = 2.0
) -> Specimen:
    """Part of a fly's compound eye: chitin lens facets on a thin cornea (low absorbing).

    Spherical facets of ``facet_diameter_um`` in hexagonal packing (``n_rings`` rings around a
    central one) in the plane facing the beam, touching each other, resting on a chitin sheet
    of ``cornea_um`` behind them. The facets' outlines show as phase-contrast fringes (the
    paper's Fig. 8, left).
    """
    r = facet_diameter_um / 2.0
    feats: list[Feature] = []
    for q in range(-n_rings, n_rings + 1):
        for s in range(-n_rings, n_rings + 1):
            if abs(q + s) > n_rings:
                continue
            cx = facet_diameter_um * (q + s / 2.0)
            cy = facet_diameter_um * (s * np.sqrt(3.0) / 2.0)
            feats.append(
                Feature(Sphere(np.array([cx, cy, 0.0]) * UM, r * UM), "chitin", "air", "facet")
            )
    half = facet_diameter_um * (n_rings + 1)
    feats.append(
        Feature(
            Box(
                np.array([0.0, 0.0, -(r + cornea_um / 2.0)]) * UM,
                np.array([half, half, cornea_um / 2.0]) * UM,
            ),
            "chitin",
            "air",
            "cornea",
        )
    )
    return Specimen("facets", tuple(feats), fly_eye_facets.__doc__ or "")


def fine_wire(
    diameter_um: float = 2.0, material: str = "tungsten", tilt_deg: float = 2.0
) -> Specimen:
    """A thin wire (default 2 um tungsten), nearly vertical: turned by ``tilt_deg`` about the
    beam so that detector rows sample its profile at different phases (oversampled profiles).
    """
    axis = rotation_matrix("z", np.deg2rad(tilt_deg)) @ Y
    f = Feature(Cylinder(np.zeros(3), axis, diameter_um / 2.0 * UM, 0.15), material, "air", "wire")
    return Specimen("wire", (f,), fine_wire.__doc__ or "", metadata={"diameter_um": diameter_um})


def tungsten_edge(thickness_um: float = 5.0, tilt_deg: float = 2.0) -> Specimen:
    """A tungsten plate covering x > 0 whose straight edge runs through the rotation axis,
    turned by ``tilt_deg`` about the beam (the slanted-edge practice). 200 x 400 um, and
    ``thickness_um`` along the beam at angle 0 (5 um W transmits ~40 % at 10 keV)."""
    rot = rotation_matrix("z", np.deg2rad(tilt_deg))
    centre = rot @ (np.array([100.0, 0.0, 0.0]) * UM)
    half = np.array([100.0, 200.0, thickness_um / 2.0]) * UM
    f = Feature(Box(centre, half, rot), "tungsten", "air", "edge")
    return Specimen(
        "edge", (f,), tungsten_edge.__doc__ or "", metadata={"tilt_rad": np.deg2rad(tilt_deg)}
    )


def flat_chip_microscope(
    width_um: float = 36.0, thickness_um: float = 4.0, line_um: float = 2.0, metal_um: float = 1.0
) -> Specimen:
    """The flat chip of :func:`nanoct.devices.sim.specimens.flat_chip` scaled to the
    microscope's ~60 um field: a 36 um silicon die, 4 um thick, with 2 um wide, 1 um thick
    copper lines (1 um Cu absorbs ~18 % at 10 keV, the die ~3 %) and tungsten vias; its
    diagonal (51 um) stays inside the field at every rotation angle. For laminography
    (normal along the rotation axis)."""
    return flat_chip(width_um, thickness_um, line_um, metal_um)


MICROSCOPE_SPECIMENS: dict[str, Callable[[], Specimen]] = {
    "fibres": fibre_bundle,
    "bristles": chitin_bristles,
    "facets": fly_eye_facets,
    "wire": fine_wire,
    "edge": tungsten_edge,
    "flat_chip": flat_chip_microscope,
}


def make_microscope_specimen(name: str) -> Specimen:
    """Build a microscope specimen by name; ValueError listing the known names otherwise."""
    if name not in MICROSCOPE_SPECIMENS:
        raise ValueError(f"specimen={name!r} is unknown; allowed: {sorted(MICROSCOPE_SPECIMENS)}")
    return MICROSCOPE_SPECIMENS[name]()
