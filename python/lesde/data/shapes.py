"""The paper's synthetic data set: filled ellipses, rectangles and triangles.

:func:`geometric_shapes` draws the 3-class set of the paper's experiments on 32 x 32
single-channel images: randomly rotated, scaled, stretched and shifted, antialiased and
slightly blurred, with the same mean area for the three shapes so that total brightness
does not give the class away. Pure NumPy/SciPy, deterministic from a seed.

Examples
--------
>>> geometric_shapes(2, size=16, seed=0)
Dataset(N=6, K=3, images=(1, 16, 16), classes=('ellipse', 'rectangle', 'triangle'))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..validate import integer, real
from .dataset import Dataset

__all__ = ["geometric_shapes"]

_SHAPE_NAMES = ("ellipse", "rectangle", "triangle")

# Base sizes as fractions of the image side, for scale 1 and aspect 1 (see geometric_shapes).
# The triangle's circumradius sets the footprint; the others are chosen so that all three
# shapes have the same area for the same (scale, aspect):
#   ellipse  pi * R_E^2 * aspect,   rectangle  4 * R_R^2 * aspect,
#   triangle (3 sqrt(3) / 4) * R_T^2 * aspect.
_R_TRIANGLE = 0.30
_R_ELLIPSE = _R_TRIANGLE * math.sqrt(3.0 * math.sqrt(3.0) / (4.0 * math.pi))  # ~0.193
_R_RECTANGLE = _R_TRIANGLE * math.sqrt(3.0 * math.sqrt(3.0) / 16.0)  # ~0.171
_ASPECT = (0.5, 1.0)
_SUPERSAMPLE = 4  # 4 x 4 sample points per pixel
_CHUNK_POINTS = 1 << 21  # sample points per rendering chunk (bounds memory)
_SQRT3 = math.sqrt(3.0)


def _render(cls, angle, scale, aspect, cx, cy, size):
    """Antialiased coverage of filled shapes, shape (B, size, size) float32.

    Per image: class ``cls``, rotation ``angle`` (radians, counter-clockwise on screen),
    relative ``scale``, ``aspect`` (minor/major) and centre ``(cx, cy)`` in pixel units
    (x = column, y = row, pixel (i, j) covering [j, j+1] x [i, i+1]).
    """
    B = cls.size
    s = _SUPERSAMPLE
    # sample coordinates: x across columns, Y = -y (up) so that angles are counter-clockwise
    t = ((np.arange(size * s, dtype=np.float32) + np.float32(0.5)) / np.float32(s))[None, :]
    radius = np.array([_R_ELLIPSE, _R_RECTANGLE, _R_TRIANGLE])[cls] * size * scale
    a = radius  # semi-extent along the shape's own u axis
    b = radius * aspect  # along v
    c, sn = np.cos(angle), np.sin(angle)
    # u = (c X + sn Y) / a and v = (-sn X + c Y) / b, with X = x - cx, Y = cy - y.
    # Written as u = ux * x + uy * y + u0 (same for v), separable over rows and columns.
    ux, uy, u0 = c / a, -sn / a, (-c * cx + sn * cy) / a
    vx, vy, v0 = -sn / b, -c / b, (sn * cx + c * cy) / b
    col = t[:, None, :]  # (1, 1, S) x coordinates of the sample columns
    row = t[:, :, None]  # (1, S, 1) y coordinates of the sample rows

    def per_image(coef):
        return coef.astype(np.float32)[:, None, None]

    u = (per_image(ux) * col + per_image(u0)) + per_image(uy) * row  # (B, S, S)
    v = (per_image(vx) * col + per_image(v0)) + per_image(vy) * row
    inside = np.empty(u.shape, dtype=bool)
    for k in range(3):
        sel = np.flatnonzero(cls == k)
        if sel.size == 0:
            continue
        uk, vk = u[sel], v[sel]
        if k == 0:  # ellipse
            inside[sel] = uk * uk + vk * vk <= 1.0
        elif k == 1:  # rectangle
            inside[sel] = (np.abs(uk) <= 1.0) & (np.abs(vk) <= 1.0)
        else:  # triangle: equilateral, circumradius 1, apex at v = +1, centroid at 0
            inside[sel] = (vk >= -0.5) & (vk <= 1.0 - _SQRT3 * np.abs(uk))
    cover = inside.reshape(B, size, s, size, s).sum(axis=(2, 4), dtype=np.int32)
    return cover.astype(np.float32) * np.float32(1.0 / (s * s))


def geometric_shapes(
    n_per_class,
    size=32,
    seed=0,
    *,
    angles=(0.0, 360.0),
    size_jitter=0.2,
    shift=2.0,
    blur=0.7,
    noise=0.0,
) -> Dataset:
    """The paper's synthetic 3-class data set: filled ellipses, rectangles and triangles.

    Each image is ``size x size``, one channel, one white shape (value 1) on black (0):

    - class 0 ``"ellipse"``: semi-axes ``R_E s`` and ``R_E s a``;
    - class 1 ``"rectangle"``: half-sides ``R_R s`` and ``R_R s a``;
    - class 2 ``"triangle"``: an equilateral triangle of circumradius ``R_T s`` (apex up),
      squashed along its axis by ``a`` (isosceles, apex angle 60 to ~98 degrees);

    with ``s ~ U[1 - size_jitter, 1 + size_jitter]`` (scale), ``a ~ U[0.5, 1]`` (aspect, so
    not only circles and squares), then rotated by ``angle ~ U[angles]`` degrees
    (counter-clockwise as displayed, row 0 at the top) about its centre (centroid for the
    triangle), which sits at the image centre shifted uniformly within a disc of radius
    ``shift`` pixels. The base sizes are fractions of ``size``: ``R_T = 0.30``,
    ``R_E = R_T sqrt(3 sqrt(3) / (4 pi)) ~ 0.193`` and ``R_R = R_T sqrt(3 sqrt(3) / 16)
    ~ 0.171``, which gives the three shapes the *same area* ``(3 sqrt(3)/4) (R_T size)^2 s^2 a``
    for equal ``(s, a)``, hence the same area distribution (mean ~ 8.9 % of the image, ~ 91
    pixels at ``size = 32``): total brightness carries no class information. With the
    defaults the shape stays at least ~2.5 pixels inside the border (more than 3 blur
    sigmas), for any ``size`` (the shift is in pixels, so it matters more at small sizes).

    Rendering: coverage sampled on 4 x 4 points per pixel (antialiasing), then a Gaussian
    blur of ``blur`` pixels (``scipy.ndimage.gaussian_filter`` over each image, zero
    outside), then additive Gaussian noise of std ``noise``, then clipping to ``[0, 1]``.

    Parameters
    ----------
    n_per_class : int
        Images per class (``>= 1``); ``N = 3 n_per_class`` in all.
    size : int, default 32
        Image side in pixels (``>= 8``).
    seed : int, default 0
        Seed of the one :func:`numpy.random.default_rng` that draws everything, in the fixed
        order: sample order (permutation), angles, scales, aspects, shift radii, shift
        directions, then the pixel noise (only if ``noise > 0``, in chunks of fixed size).
    angles : (float, float), default (0, 360)
        Range ``lo <= hi`` of the rotation angle, degrees. ``(0, 0)``: no rotation.
    size_jitter : float, default 0.2
        Relative scale jitter, ``0 <= size_jitter < 1``.
    shift : float, default 2.0
        Largest distance of the shape centre from the image centre, pixels (``>= 0``).
    blur : float, default 0.7
        Gaussian blur sigma in pixels (``>= 0``; 0 disables).
    noise : float, default 0.0
        Std of additive Gaussian pixel noise (``>= 0``; applied before clipping).

    Returns
    -------
    Dataset
        ``images`` of shape ``(3 n_per_class, 1, size, size)`` float32 in ``[0, 1]``, in a
        shuffled (deterministic) order, ``class_names = ("ellipse", "rectangle",
        "triangle")``, exactly ``n_per_class`` of each. The same arguments give bit-identical
        arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from lesde.data import geometric_shapes
    >>> ds = geometric_shapes(50, seed=0)
    >>> ds.images.shape, ds.images.dtype, ds.class_names
    ((150, 1, 32, 32), dtype('float32'), ('ellipse', 'rectangle', 'triangle'))
    >>> ds.labels[:8].tolist()  # shuffled, not class blocks
    [1, 2, 1, 2, 2, 1, 1, 2]
    >>> area = ds.images.sum(axis=(1, 2, 3))  # brightness ~ area ~ 91 pixels in every class
    >>> [round(float(area[ds.labels == k].mean())) for k in range(3)]
    [91, 97, 94]
    >>> bool(np.array_equal(ds.images, geometric_shapes(50, seed=0).images))
    True
    """
    n = integer("n_per_class", n_per_class, at_least=1)
    size = integer("size", size, at_least=8)
    if isinstance(angles, (str, bytes)) or not isinstance(angles, Sequence) or len(angles) != 2:
        raise TypeError(f"angles must be a pair (lo, hi) of degrees, got {angles!r}")
    lo = real("angles[0]", angles[0])
    hi = real("angles[1]", angles[1])
    if lo > hi:
        raise ValueError(f"angles must satisfy lo <= hi, got angles = ({lo}, {hi})")
    jitter = real("size_jitter", size_jitter, at_least=0, below=1)
    shift = real("shift", shift, at_least=0)  # pixels
    blur = real("blur", blur, at_least=0)  # Gaussian sigma in pixels
    noise = real("noise", noise, at_least=0)  # std of the pixel noise

    N = 3 * n
    rng = np.random.default_rng(seed)
    cls = np.repeat(np.arange(3, dtype=np.int64), n)[rng.permutation(N)]
    angle = np.deg2rad(rng.uniform(lo, hi, N))
    scale = rng.uniform(1.0 - jitter, 1.0 + jitter, N)
    aspect = rng.uniform(_ASPECT[0], _ASPECT[1], N)
    r_shift = shift * np.sqrt(rng.random(N))
    phi = rng.uniform(0.0, 2.0 * math.pi, N)
    cx = size / 2.0 + r_shift * np.cos(phi)
    cy = size / 2.0 + r_shift * np.sin(phi)

    images = np.empty((N, 1, size, size), dtype=np.float32)
    chunk = max(1, _CHUNK_POINTS // (size * _SUPERSAMPLE) ** 2)
    for start in range(0, N, chunk):
        sl = slice(start, min(start + chunk, N))
        img = _render(cls[sl], angle[sl], scale[sl], aspect[sl], cx[sl], cy[sl], size)
        if blur > 0.0:
            img = ndimage.gaussian_filter(img, sigma=(0.0, blur, blur), mode="constant")
        images[sl, 0] = img
    if noise > 0.0:
        for start in range(0, N, chunk):
            block = images[start : start + chunk]
            block += np.float32(noise) * rng.standard_normal(block.shape, dtype=np.float32)
    np.clip(images, 0.0, 1.0, out=images)
    return Dataset(images, cls, _SHAPE_NAMES)
