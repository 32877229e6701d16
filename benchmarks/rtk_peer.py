"""itk-rtk's CPU FDK as the benchmarks' peer (imported by recon_speed.py and laminography.py,
which run as scripts from this folder; itk-rtk is an optional extra: ``pip install itk-rtk``).

Geometry: nanoct's (``nanoct.recon.fdk``): projections ``(angle, row, column)``, angles in
radians, ``geo`` with ``sod_mm``, ``sdd_mm``, ``pixel_mm`` and optional offsets. The returned
volume is in RTK's orientation, ``(vertical, beam, x)``; the benchmarks calibrate it onto
nanoct's with ``nanoct.recon.backends.calibrate_cone``.
"""

from __future__ import annotations

import numpy as np


def rtk_fdk(proj, angles, geo, shape, vox, out_of_plane_deg=0.0):
    """itk-rtk CPU FDK of ``proj``; ``out_of_plane_deg`` tilts the orbit (laminography)."""
    import itk
    from itk import RTK as rtk

    nr, nc = proj.shape[1:]
    pix = geo["pixel_mm"]
    g = rtk.ThreeDCircularProjectionGeometry.New()
    for a in angles:
        g.AddProjection(
            geo["sod_mm"], geo["sdd_mm"], float(np.degrees(a)), geo.get("offset_u_mm", 0.0),
            geo.get("offset_v_mm", 0.0), float(out_of_plane_deg), 0.0,
        )  # fmt: skip
    image_type = itk.Image[itk.F, 3]
    pimg = itk.image_from_array(np.ascontiguousarray(proj, np.float32))
    pimg.SetSpacing([pix, pix, 1.0])
    pimg.SetOrigin([-(nc - 1) / 2 * pix, -(nr - 1) / 2 * pix, 0.0])
    nz, ny, nx = shape
    src = rtk.ConstantImageSource[image_type].New()
    src.SetOrigin([-(nx - 1) / 2 * vox, -(nz - 1) / 2 * vox, -(ny - 1) / 2 * vox])
    src.SetSpacing([vox, vox, vox])
    src.SetSize([nx, nz, ny])
    src.SetConstant(0.0)
    f = rtk.FDKConeBeamReconstructionFilter[image_type].New()
    f.SetInput(0, src.GetOutput())
    f.SetInput(1, pimg)
    f.SetGeometry(g)
    f.Update()
    return itk.array_from_image(f.GetOutput()).transpose(1, 0, 2)
