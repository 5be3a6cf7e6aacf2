"""The random streams: Philox4x32-10 known answers and the core's counter layout."""

import numpy as np
import pytest

from lesde import _core

from reference import normals, philox4x32_10

# Random123's published known-answer vectors (kat_vectors): counter, key, output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_core_philox_matches_published_vectors(counter, key, expected):
    assert tuple(_core.philox4x32_10(list(counter), list(key))) == expected


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_numpy_reference_matches_published_vectors(counter, key, expected):
    assert tuple(int(v) for v in philox4x32_10(np.array(counter), key)) == expected


@pytest.mark.parametrize("p", [1, 3, 4, 10])
def test_core_normals_equal_numpy_reference(p):
    seed = 2**40 + 12345  # exercises both key words
    for replica, step, sample in [(0, 0, 0), (3, 17, 999), (1, 2**31 - 1, 2**31 - 2)]:
        core = _core.normals(seed, _core.Purpose.noise, replica, step, sample * p, p)
        ref = normals(seed, "noise", replica, step, [sample], p)[0]
        # The core's vectorised log/sin/cos agree with libm to a few ulps.
        np.testing.assert_allclose(
            core,
            ref,
            rtol=1e-13,
            atol=1e-14,
            err_msg=f"stream differs at replica {replica}, step {step}",
        )


@pytest.mark.parametrize("first,count", [(0, 1), (3, 5), (5, 300), (2**33 + 1, 17)])
def test_vectorised_and_scalar_normals_are_identical(first, count):
    fast = _core.normals(3, _core.Purpose.noise, 2, 9, first, count, vectorised=True)
    slow = _core.normals(3, _core.Purpose.noise, 2, 9, first, count, vectorised=False)
    np.testing.assert_array_equal(fast, slow, err_msg="SIMD and scalar noise paths differ")


def test_purposes_give_different_streams():
    draws = {
        purpose: _core.normals(7, getattr(_core.Purpose, purpose), 0, 0, 0, 4)
        for purpose in ("init", "noise", "labels", "batch")
    }
    values = [tuple(v) for v in draws.values()]
    assert len(set(values)) == 4, "two purposes share a random stream"


def test_normals_are_standard_normal():
    # 40,000 draws: mean and variance within 5 standard errors (false-positive rate ~1e-6).
    z = _core.normals(1, _core.Purpose.noise, 0, 0, 0, 40_000)
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n), f"mean {z.mean()} is off"
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n), f"variance {z.var()} is off"
    from scipy import stats

    assert stats.kstest(z, "norm").pvalue > 1e-4, "normals fail a KS test against N(0, 1)"
