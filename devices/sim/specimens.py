"""Analytic specimens (phantoms) built from solids of real materials.

A specimen is a list of features; each feature is a solid of one material that *displaces*
another (its parent: epoxy displaces air, the silicon die displaces epoxy, a copper line
displaces oxide). The line integral of the attenuation along a ray is then exactly
``sum_f chord_f * (mu_material_f - mu_displaced_f)``, provided features are nested in their
parents and siblings do not overlap, which every factory here guarantees.

Coordinates are mm in the specimen frame (see :mod:`nanoct.devices.sim.geometry`): y is the
rotation axis, z points to the detector at angle 0. Dimensions are the paper's where it gives
them (30 um wire, ~6 um glass fibres, chip structures 0.3-4 um, JIMA groups from 0.4 um);
the rest of each layout is an assumption made to look like the real objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nanoct.devices.sim.raytrace import Box, Cylinder, Shape, rotation_matrix

__all__ = [
    "JIMA_WIDTHS_UM",
    "SPECIMENS",
    "Feature",
    "Specimen",
    "flat_chip",
    "glass_fibres",
    "jima_chart",
    "jima_layout",
    "make_specimen",
    "reference_wire",
    "sharp_edge",
    "silicon_chip",
]

UM = 1e-3  # mm per um
X, Y, Z = np.eye(3)


@dataclass(frozen=True)
class Feature:
    """One solid of ``material`` replacing ``displaces`` inside it."""

    shape: Shape
    material: str
    displaces: str = "air"
    label: str = ""


@dataclass(frozen=True)
class Specimen:
    """A named phantom. ``features`` are in the specimen frame (or the lab frame for fixed
    objects such as the reference wire)."""

    name: str
    features: tuple[Feature, ...]
    description: str = ""
    metadata: dict = field(default_factory=dict)

    def materials(self) -> tuple[str, ...]:
        """Every material that occurs, as material or as displaced medium, sorted."""
        names = {f.material for f in self.features} | {f.displaces for f in self.features}
        return tuple(sorted(names))

    def corners(self) -> np.ndarray:
        """Corners of all features' bounding boxes, (8 * n_features, 3) mm."""
        return np.concatenate([f.shape.corners() for f in self.features])


def _box(center_um, size_um, material: str, displaces: str, label: str = "") -> Feature:
    c = np.asarray(center_um, dtype=float) * UM
    h = np.asarray(size_um, dtype=float) * UM / 2.0
    return Feature(Box(c, h), material, displaces, label)


def silicon_chip() -> Specimen:
    """A piece of a silicon microchip embedded in epoxy.

    An epoxy cylinder (600 um diameter, 800 um high, axis = rotation axis) holds a silicon die
    (340 x 600 x 100 um) whose front face carries an 8 um oxide stack with metal structures:
    copper line/space gratings of 0.3, 0.5, 0.8, 1, 1.5, 2, 3 and 4 um, vertical and
    horizontal (5 lines each, 1 um thick), aluminium bus lines and bond pads (low absorbing),
    a 6 x 6 field of 0.5 um tungsten vias at 2 um pitch and a 4 x 4 array of 2 um copper cubes.
    """
    widths = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 3.0, 4.0)
    feats: list[Feature] = [
        Feature(Cylinder((0, 0, 0), Y, 0.300, 0.400), "epoxy", "air", "epoxy mount"),
        _box((0, 0, -10), (340, 600, 100), "silicon", "epoxy", "die"),
        _box((0, 0, 44), (340, 600, 8), "silicon_dioxide", "epoxy", "oxide stack"),
    ]
    z_metal = 43.0  # um, centre of the 1 um metal layer inside the oxide (40..48 um)
    # Vertical gratings (lines along y): resolve horizontal detail.
    x = -150.0
    for w in widths:
        for k in range(5):
            feats.append(
                _box(
                    (x + (2 * k + 0.5) * w, 200, z_metal),
                    (w, 60, 1),
                    "copper",
                    "silicon_dioxide",
                    f"v-line {w} um",
                )
            )
        x += 10 * w + 6
    # Horizontal gratings (lines along x): resolve vertical detail.
    y = 120.0
    for w in widths:
        for k in range(5):
            feats.append(
                _box(
                    (60, y - (2 * k + 0.5) * w, z_metal),
                    (60, w, 1),
                    "copper",
                    "silicon_dioxide",
                    f"h-line {w} um",
                )
            )
        y -= 10 * w + 6
    # Aluminium bus lines and bond pads (low absorbing structures).
    for k, xb in enumerate((-140.0, -120.0, -100.0)):
        feats.append(_box((xb, -60, 46), (4, 300, 1), "aluminium", "silicon_dioxide", f"bus {k}"))
    for k, (xp, yp) in enumerate(((-50.0, -230.0), (50.0, -230.0))):
        feats.append(_box((xp, yp, 46), (60, 60, 1), "aluminium", "silicon_dioxide", f"pad {k}"))
    # Tungsten vias (0.5 um) through the oxide.
    for i in range(6):
        for j in range(6):
            c = np.array([-40 + 2.0 * i, -120 + 2.0 * j, 44.0]) * UM
            feats.append(
                Feature(Cylinder(c, Z, 0.25 * UM, 3.0 * UM), "tungsten", "silicon_dioxide", "via")
            )
    # Copper cubes (2 um), the "cubic structures" of the paper's Fig. 5.
    for i in range(4):
        for j in range(4):
            feats.append(
                _box(
                    (20 + 6.0 * i, -160 + 6.0 * j, 44),
                    (2, 2, 2),
                    "copper",
                    "silicon_dioxide",
                    "cube",
                )
            )
    return Specimen("chip", tuple(feats), silicon_chip.__doc__ or "")


#: Line widths of the JIMA-like chart's groups (lines and spaces equal), um.
JIMA_WIDTHS_UM = (0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5, 2.0, 3.0)
_JIMA_GAP_UM = 4.0
_JIMA_V_ROW_UM = 15.0  # centre height of the vertical-line groups
_JIMA_LINE_LENGTH_UM = 20.0


def jima_layout(tilt_rad: float = 0.0) -> list[dict]:
    """Where each vertical-line group of :func:`jima_chart` lies (chart frame turned by
    ``tilt_rad`` about the beam): width, centre (x, y) and half extent (across, along the
    lines) in um, as a chart's data sheet would give them."""
    total = sum(11 * w for w in JIMA_WIDTHS_UM) + _JIMA_GAP_UM * (len(JIMA_WIDTHS_UM) - 1)
    c, s = np.cos(tilt_rad), np.sin(tilt_rad)
    out, x = [], -total / 2.0
    for w in JIMA_WIDTHS_UM:
        xc, yc = x + 5.5 * w, _JIMA_V_ROW_UM
        out.append(
            {
                "width_um": w,
                "center_um": (xc * c - yc * s, xc * s + yc * c),
                "half_extent_um": (5.5 * w + min(2.0, _JIMA_GAP_UM / 2), _JIMA_LINE_LENGTH_UM / 2),
            }
        )
        x += 11 * w + _JIMA_GAP_UM
    return out


def jima_chart(thickness_um: float = 1.0, tilt_deg: float = 4.0) -> Specimen:
    """A JIMA-like line/space chart: gold line groups on a 2 um silica membrane.

    Groups of 6 lines of width 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5, 2.0 and 3.0 um (lines and
    spaces equal), vertical in the upper row and horizontal in the lower row, ``thickness_um``
    of gold (assumption: the JIMA RT RC charts carry a heavy-metal absorber about 1 um thick).
    The membrane faces the beam at rotation angle 0. The chart is mounted turned by
    ``tilt_deg`` about the beam, so that detector rows sample its lines at different phases
    (the slanted-edge practice; 0 gives lines parallel to the detector columns).
    """
    tilt = np.deg2rad(tilt_deg)
    rot = rotation_matrix("z", tilt)
    widths = JIMA_WIDTHS_UM
    total = sum(11 * w for w in widths) + _JIMA_GAP_UM * (len(widths) - 1)

    def tbox(center_um, size_um, material, displaces, label):
        c = rot @ (np.asarray(center_um, dtype=float) * UM)
        return Feature(
            Box(c, np.asarray(size_um, float) * UM / 2.0, rot), material, displaces, label
        )

    feats: list[Feature] = [
        tbox((0, 0, 0), (total + 40, 80, 2), "silicon_dioxide", "air", "membrane")
    ]
    zc = 1.0 + thickness_um / 2.0
    x = -total / 2.0
    for w in widths:
        for k in range(6):
            cx = x + (2 * k + 0.5) * w
            feats.append(
                tbox(
                    (cx, _JIMA_V_ROW_UM, zc),
                    (w, _JIMA_LINE_LENGTH_UM, thickness_um),
                    "gold",
                    "air",
                    f"v {w} um",
                )
            )
        y0 = -10.0
        for k in range(6):
            cy = y0 - (2 * k + 0.5) * w
            feats.append(
                tbox((x + 5.5 * w, cy, zc), (11 * w, w, thickness_um), "gold", "air", f"h {w} um")
            )
        x += 11 * w + _JIMA_GAP_UM
    return Specimen(
        "jima",
        tuple(feats),
        jima_chart.__doc__ or "",
        metadata={"tilt_rad": float(tilt), "widths_um": list(widths)},
    )


def glass_fibres(n_rings: int = 3, diameter_um: float = 6.0) -> Specimen:
    """A bundle of glass fibres (~6 um, the paper's Fig. 9), axes along the rotation axis.

    Hexagonal packing with ``n_rings`` rings around a central fibre, 0.4 um gaps, diameters
    and positions jittered by a fixed generator (the bundle is the same whatever the twin's
    seed). Fibres 300 um long.
    """
    rng = np.random.default_rng(6)
    pitch = diameter_um + 0.4
    feats: list[Feature] = []
    for q in range(-n_rings, n_rings + 1):
        for r in range(-n_rings, n_rings + 1):
            if abs(q + r) > n_rings:
                continue
            cx = pitch * (q + r / 2.0) + rng.normal(0, 0.1)
            cz = pitch * (r * np.sqrt(3) / 2.0) + rng.normal(0, 0.1)
            d = diameter_um * (1 + rng.normal(0, 0.01))
            feats.append(
                Feature(
                    Cylinder(np.array([cx, 0, cz]) * UM, Y, d / 2 * UM, 0.150),
                    "glass",
                    "air",
                    f"fibre d={d:.3f} um",
                )
            )
    return Specimen("fibres", tuple(feats), glass_fibres.__doc__ or "")


def sharp_edge(thickness_um: float = 50.0) -> Specimen:
    """A tungsten plate whose straight vertical edge lies on the rotation axis (x = 0).

    The plate covers x > 0, 300 um wide and 600 um high, ``thickness_um`` along the beam at
    angle 0: an edge for measuring the focal spot's line spread.
    """
    f = _box((150, 0, 0), (300, 600, thickness_um), "tungsten", "air", "edge")
    return Specimen("edge", (f,), sharp_edge.__doc__ or "")


def reference_wire(
    center_mm: tuple[float, float, float], diameter_um: float = 30.0, arm_mm: float = 0.06
) -> Specimen:
    """The fixed 30 um tungsten cross wire of the paper (Fig. 3), in the *lab* frame.

    Two wires cross at ``center_mm`` (x, y, z from the nominal focal spot): one vertical (its
    horizontal position tracks horizontal spot drift) and one horizontal (vertical drift),
    each ``2 * arm_mm`` long.
    """
    c = np.asarray(center_mm, dtype=float)
    r = diameter_um / 2.0 * UM
    feats = (
        Feature(Cylinder(c, Y, r, arm_mm), "tungsten", "air", "vertical wire"),
        Feature(Cylinder(c, X, r, arm_mm), "tungsten", "air", "horizontal wire"),
    )
    return Specimen("reference_wire", feats, reference_wire.__doc__ or "")


def flat_chip(
    width_um: float = 500.0,
    thickness_um: float = 50.0,
    line_um: float = 20.0,
    metal_um: float = 10.0,
    *,
    metal: str = "copper",
    via_material: str = "tungsten",
    substrate: str = "silicon",
) -> Specimen:
    """A flat chip for laminography: a thin square die lying flat on the rotation stage.

    The die (``width_um`` square, ``thickness_um`` thick, ``substrate``) has its normal along
    the rotation axis (specimen y), so it faces the beam only when the axis is tilted
    (laminography); in a CT at zero tilt the beam runs along its plane. Two wiring layers
    with different in-plane patterns lie inside its faces (``metal_um`` thick, ``metal``
    displacing the substrate): the *top* layer (+y) carries five lines along x at unequal
    spacing; the *bottom* layer (-y) four lines along z and an L-shaped pad in one corner
    (it makes the layout chiral, so a mirrored or turned reconstruction shows). Three vias
    (``via_material``, ``line_um`` diameter) join the layers. Lines are ``line_um`` wide.

    The defaults suit the sub-um CT's field at binning 4 (500 um die, 20 um lines);
    :func:`nanoct.devices.sim.microscope_specimens.flat_chip_microscope` scales it to the
    microscope. The layout is an assumption shaped like a chip's wiring, not a real design.
    ``metadata["layout"]`` lists every feature as ``{"layer", "center_um", "size_um"}``
    (boxes; vias as their bounding boxes) in the specimen frame (x, y up = rotation axis, z),
    with ``metadata["layer_y_um"]`` the centre height of each layer.
    """
    for name, v in (("width_um", width_um), ("thickness_um", thickness_um),
                    ("line_um", line_um), ("metal_um", metal_um)):  # fmt: skip
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name}={v!r} must be > 0 um")
    if not 2 * metal_um < thickness_um:
        raise ValueError(
            f"metal_um={metal_um!r} must be below half of thickness_um={thickness_um!r} "
            "(two layers inside the die)"
        )
    if not 10 * line_um < width_um:
        raise ValueError(f"line_um={line_um!r} must be below width_um / 10 = {width_um / 10}")
    w, h = width_um / 2.0, thickness_um / 2.0
    y_top, y_bot = h - metal_um / 2.0, -h + metal_um / 2.0
    layout: list[dict] = []

    def add(layer: str, center, size) -> None:
        layout.append(
            {
                "layer": layer,
                "center_um": [float(c) for c in center],
                "size_um": [float(v) for v in size],
            }
        )

    for zf in (-0.7, -0.4, -0.1, 0.3, 0.6):  # top: lines along x (unequal spacing)
        add("top", (0.0, y_top, zf * w), (1.6 * w, metal_um, line_um))
    for xf in (-0.6, -0.2, 0.2, 0.6):  # bottom: lines along z
        add("bottom", (xf * w, y_bot, -0.1 * w), (line_um, metal_um, 1.4 * w))
    # an L-shaped pad in the (+x, +z) corner: a long side along x and a short side along z
    add("bottom", (0.75 * w, y_bot, 0.75 * w), (0.3 * w, metal_um, 2 * line_um))
    z0, z1 = 0.35 * w, 0.75 * w - line_um  # the short side ends where the long side begins
    add("bottom", (0.9 * w - line_um, y_bot, (z0 + z1) / 2.0), (2 * line_um, metal_um, z1 - z0))
    via_h = thickness_um - 2 * metal_um
    for xf, zf in ((-0.6, -0.4), (0.2, -0.7), (0.6, 0.3)):  # where top and bottom lines cross
        add("via", (xf * w, 0.0, zf * w), (line_um, via_h, line_um))
    feats: list[Feature] = [_box((0, 0, 0), (width_um, thickness_um, width_um), substrate, "air",
                                 "die")]  # fmt: skip
    for item in layout:
        c, sz = item["center_um"], item["size_um"]
        if item["layer"] == "via":
            feats.append(
                Feature(
                    Cylinder(np.asarray(c) * UM, Y, sz[0] / 2.0 * UM, sz[1] / 2.0 * UM),
                    via_material,
                    substrate,
                    "via",
                )
            )
        else:
            feats.append(_box(c, sz, metal, substrate, f"{item['layer']} line"))
    return Specimen(
        "flat_chip",
        tuple(feats),
        flat_chip.__doc__ or "",
        metadata={
            "width_um": float(width_um),
            "thickness_um": float(thickness_um),
            "line_um": float(line_um),
            "metal_um": float(metal_um),
            "metal": metal,
            "via_material": via_material,
            "substrate": substrate,
            "layer_y_um": {"top": float(y_top), "bottom": float(y_bot)},
            "layout": layout,
        },
    )


SPECIMENS: dict[str, Callable[[], Specimen]] = {
    "chip": silicon_chip,
    "jima": jima_chart,
    "fibres": glass_fibres,
    "edge": sharp_edge,
    "flat_chip": flat_chip,
}


def make_specimen(name: str) -> Specimen:
    """Build a specimen by name; ValueError listing the known names otherwise."""
    if name not in SPECIMENS:
        raise ValueError(f"specimen={name!r} is unknown; allowed: {sorted(SPECIMENS)}")
    return SPECIMENS[name]()
