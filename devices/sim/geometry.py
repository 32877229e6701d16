"""Cone-beam geometry of the lab CT.

Lab frame (mm): the nominal focal spot at the origin, the beam along +z towards the detector,
x horizontal (to the right seen from the source), y vertical (up). The rotation axis is
parallel to y and passes through the manipulator position ``(x, y, sod)``. The detector plane
is ``z = sdd``; detector column ``j`` grows with x, row ``i`` grows downwards (row 0 at the
top), as images are displayed.

Specimen frame: origin on the rotation axis at the manipulator height, axes coinciding with the
lab axes at rotation angle 0. A positive rotation angle turns the specimen counter-clockwise
seen from above (right-handed about +y). The stage wobble tilts the axis by up to
``wobble_urad`` in a direction that turns with the rotation (a precessing axis error).

Laminography: the whole rotation stage (with its wobble) can be tilted by ``tilt_deg`` about
the lab x axis through the rotation centre ``(x, y, sod)``; a positive tilt moves the upper end
of the rotation axis towards the detector. A specimen-frame vector ``p`` then sits at
``R_x(tilt) W R_y(angle) p`` relative to the rotation centre (``W`` the wobble). This is the
convention of :class:`nanoct.recon.laminography.LaminoGeometry` with the recon volume's axes
``(x, y, z) = (x_s, z_s, -y_s)`` of this specimen frame (``y_s`` up, ``z_s`` towards the detector
at angle 0), so twin, run metadata and reconstruction agree on the sign of the tilt.
``tilt_deg = 0`` is ordinary CT and leaves every matrix exactly as without a tilt.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from nanoct.devices.sim.raytrace import rotation_matrix

__all__ = ["MIN_SOD_MM", "CTGeometry", "DetectorGrid", "specimen_reach_mm"]

# The paper's minimum focus-object distance (section 1.1): 0.5073 mm.
MIN_SOD_MM = 0.5073


def specimen_reach_mm(corners: np.ndarray, tilt_deg: float = 0.0) -> tuple[float, float]:
    """How far a specimen reaches from the rotation centre over a full turn, mm.

    Parameters
    ----------
    corners : ndarray, shape (n, 3)
        Specimen-frame points whose convex hull holds the specimen (x, y up, z), mm.
    tilt_deg : float
        Tilt of the rotation axis (laminography).

    Returns
    -------
    lateral, depth : float
        Bounds of ``|x|`` (across the beam) and of ``|z - sod|`` (along it) over every rotation
        angle: ``r = max hypot(x, z)`` and ``r cos(tilt) + max|y| |sin(tilt)|`` (exactly ``r``
        at zero tilt).
    """
    c = np.asarray(corners, dtype=float)
    r = float(np.max(np.hypot(c[:, 0], c[:, 2])))
    if not tilt_deg:
        return r, r
    t = np.deg2rad(tilt_deg)
    depth = r * abs(float(np.cos(t))) + float(np.max(np.abs(c[:, 1]))) * abs(float(np.sin(t)))
    return r, depth


def check_tilt(
    tilt_deg: object,
    tilt_range_deg: tuple[float, float],
    corners: np.ndarray,
    distance_mm: float,
    *,
    distance_name: str,
    obstacle: str,
) -> float:
    """``tilt_deg`` as a float, or ValueError naming it: not a number, outside
    ``tilt_range_deg``, or a tilt that swings the specimen (``corners``, see
    :func:`specimen_reach_mm`) as far as the ``obstacle`` (the source, the exit window) at
    ``distance_mm`` (called ``distance_name``) along the beam."""
    lo, hi = tilt_range_deg
    if isinstance(tilt_deg, bool) or not isinstance(tilt_deg, int | float | np.number):
        raise ValueError(f"tilt_deg={tilt_deg!r} must be a number in [{lo}, {hi}] deg")
    t = float(tilt_deg)
    if not (np.isfinite(t) and lo <= t <= hi):
        raise ValueError(f"tilt_deg={tilt_deg!r} is outside the tilt range [{lo}, {hi}] deg")
    _, depth = specimen_reach_mm(corners, t)
    if depth >= distance_mm:
        raise ValueError(
            f"tilt_deg={tilt_deg!r} would swing the specimen (reach {depth:.3g} mm along the "
            f"beam) into the {obstacle} at {distance_name}={distance_mm}; allowed: a tilt that "
            f"keeps it in front of the source, or a larger {distance_name}"
        )
    return t


@dataclass(frozen=True)
class DetectorGrid:
    """Pixel centres of a (binned) flat detector.

    Parameters
    ----------
    rows, cols : int
        Pixels after binning.
    pixel_mm : float
        Pitch after binning.
    offset_u_mm, offset_v_mm : float
        Position of the detector centre relative to the central ray (x and y).
    """

    rows: int
    cols: int
    pixel_mm: float
    offset_u_mm: float = 0.0
    offset_v_mm: float = 0.0

    def u_mm(self) -> np.ndarray:
        """Horizontal lab coordinate of each column centre."""
        return (np.arange(self.cols) - (self.cols - 1) / 2.0) * self.pixel_mm + self.offset_u_mm

    def v_mm(self) -> np.ndarray:
        """Vertical lab coordinate of each row centre (row 0 at the top)."""
        return ((self.rows - 1) / 2.0 - np.arange(self.rows)) * self.pixel_mm + self.offset_v_mm

    def to_pixel(self, u_mm: np.ndarray, v_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) fractional pixel coordinates of detector-plane points."""
        col = (np.asarray(u_mm) - self.offset_u_mm) / self.pixel_mm + (self.cols - 1) / 2.0
        row = (self.rows - 1) / 2.0 - (np.asarray(v_mm) - self.offset_v_mm) / self.pixel_mm
        return row, col

    def oversampled(self, factor: int) -> DetectorGrid:
        """The same detector area sampled ``factor`` times finer in each direction."""
        if factor == 1:
            return self
        return replace(
            self, rows=self.rows * factor, cols=self.cols * factor, pixel_mm=self.pixel_mm / factor
        )


@dataclass(frozen=True)
class CTGeometry:
    """Where everything is for one exposure.

    Parameters
    ----------
    sod_mm : float
        Source-object distance: focal spot to rotation axis along z.
    sdd_mm : float
        Source-detector distance.
    axis_x_mm, axis_y_mm : float
        Lateral position of the rotation axis (manipulator x, y).
    angle_deg : float
        Rotation angle.
    wobble_urad : float
        Amplitude of the axis tilt; ``wobble_phase_rad`` its phase.
    tilt_deg : float
        Tilt of the rotation axis against the plane perpendicular to the beam (laminography),
        degrees; 0 = ordinary CT. Positive moves the axis' upper end towards the detector.
    """

    sod_mm: float
    sdd_mm: float
    axis_x_mm: float = 0.0
    axis_y_mm: float = 0.0
    angle_deg: float = 0.0
    wobble_urad: float = 0.0
    wobble_phase_rad: float = 0.0
    tilt_deg: float = 0.0

    @property
    def magnification(self) -> float:
        return self.sdd_mm / self.sod_mm

    def voxel_size_um(self, pixel_mm: float) -> float:
        """Detector pixel pitch projected to the rotation axis, um."""
        return pixel_mm / self.magnification * 1e3

    def specimen_rotation(self) -> np.ndarray:
        """Matrix taking specimen-frame vectors to the lab frame (rotation, wobble, tilt)."""
        theta = np.deg2rad(self.angle_deg)
        rot = rotation_matrix("y", theta)
        if self.wobble_urad:
            a = self.wobble_urad * 1e-6
            phi = theta + self.wobble_phase_rad
            rot = (
                rotation_matrix("z", a * np.sin(phi)) @ rotation_matrix("x", a * np.cos(phi)) @ rot
            )
        if self.tilt_deg:
            rot = rotation_matrix("x", np.deg2rad(self.tilt_deg)) @ rot
        return rot

    def axis_position(self) -> np.ndarray:
        return np.array([self.axis_x_mm, self.axis_y_mm, self.sod_mm])

    def project(self, points_lab: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Detector-plane (u, v) in mm of lab points seen from ``source``."""
        p = np.atleast_2d(points_lab)
        s = np.asarray(source, dtype=float)
        scale = (self.sdd_mm - s[2]) / (p[:, 2] - s[2])
        u = s[0] + (p[:, 0] - s[0]) * scale
        v = s[1] + (p[:, 1] - s[1]) * scale
        return u, v
