"""The fixed reduction order over samples (reduce.hpp): any split of the blocks over threads
and ranks adds exactly what one process adds, for any number of ranks."""

import json
import math
from itertools import pairwise

import numpy as np
import pytest

import lesde
from lesde import _core
from lesde.sim import checkpoint as ck

from reference import reduction_blocks, tree_sum


def _partials(count, width=4, seed=0):
    """Block partials spread over 24 decades: any change of order changes the sum."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, width)) * 10.0 ** rng.integers(-12, 12, (count, width))


def _even(count, ranks):
    return [r * count // ranks for r in range(ranks)] + [count]


@pytest.mark.parametrize("n_samples", [1, 9000, 256 * 2048, 256 * 2048 + 1, 10**6])
def test_the_block_layout_and_order_match_the_reference(n_samples):
    count, size = _core.block_layout(n_samples)
    assert (count, size) == reduction_blocks(n_samples)
    partials = _partials(count)
    one = _core.reduce_partials(n_samples, partials)[0]
    assert one.tobytes() == tree_sum(partials).tobytes()


def test_up_to_256_blocks_the_order_is_left_to_right_as_before():
    """Runs of up to 256 x 2048 samples keep the bits lesde gave them before the tree."""
    for n in (9000, 256 * 2048):
        partials = _partials(_core.block_layout(n)[0], seed=n)
        left_to_right = np.zeros(partials.shape[1])
        for row in partials:
            left_to_right = left_to_right + row
        assert _core.reduce_partials(n, partials)[0].tobytes() == left_to_right.tobytes()


def test_a_thousand_ranks_add_what_one_process_adds():
    """10^6 samples (489 blocks) over 1,000 ranks: most own one block, many none."""
    N = 10**6
    count = _core.block_layout(N)[0]
    assert count < 1000
    partials = _partials(count, seed=1)
    one = _core.reduce_partials(N, partials)[0]
    rng = np.random.default_rng(2)
    splits = {
        "even": _even(count, 1000),
        "random, empty ranks": [0, *np.sort(rng.integers(0, count + 1, 999)).tolist(), count],
        "all on the last rank": [0] * 1000 + [count],
        "three": _even(count, 3),
    }
    for name, bounds in splits.items():
        for threads in (1, 3):
            got = _core.reduce_partials(N, partials, bounds, threads)
            assert got.shape == (len(bounds) - 1, partials.shape[1])
            assert (got.view(np.int64) == one.view(np.int64)).all(), (name, threads)
    left_to_right = np.zeros(partials.shape[1])
    for row in partials:
        left_to_right = left_to_right + row
    assert one.tobytes() != left_to_right.tobytes()  # the order is the tree's, not another


def test_a_rank_sends_o_log_blocks_numbers():
    """What a rank sends per exchange: at most 2 log2(blocks) tree nodes, whatever N."""
    N = 2**31 - 1
    count = _core.block_layout(N)[0]
    bound = 2 * math.ceil(math.log2(count))
    for ranks in (2, 3, 1000):
        bounds = _even(count, ranks)
        nodes = [_core.reduction_nodes(N, a, b) for a, b in pairwise(bounds)]
        assert max(nodes) <= bound, ranks
        assert sum(nodes) <= ranks * bound
    assert _core.reduction_nodes(N, 0, count) == 1
    with pytest.raises(ValueError, match="range"):
        _core.reduction_nodes(N, 5, 3)


def test_a_run_over_256_blocks_is_the_same_on_any_thread_count():
    cfg = dict(n_classes=2, n_per_class=270_000, dim=2, steps=2, record_every=1, sigma=0.3)
    cfg.update(seed=5, signal="cross_entropy")
    runs = [lesde.simulate(threads=t, progress=False, **cfg) for t in (1, 3)]
    assert _core.block_layout(runs[0].config.n_samples)[0] > 256
    for name in ("features", "class_means", "sigma_w"):
        assert getattr(runs[0], name).tobytes() == getattr(runs[1], name).tobytes(), name


def _drop_order(src, dst, order=None):
    """The checkpoint ``src`` as an older lesde wrote it: without ``reduction_order`` (or
    with another one), its digest made again."""
    with np.load(src, allow_pickle=False) as data:
        files = {name: data[name] for name in data.files}
    header = json.loads(str(files.pop("header")))
    files.pop("sha256")
    header.pop("reduction_order")
    if order is not None:
        header["reduction_order"] = order
    text = json.dumps(header, sort_keys=True)
    files["header"], files["sha256"] = np.array(text), np.array(ck.checkpoint_digest(text, files))
    with open(dst, "wb") as out:  # a name without .npz: np.savez would add it
        np.savez(out, **files)
    return dst


@pytest.mark.parametrize("n_per_class", [5000, 270_000])
def test_a_checkpoint_of_the_old_order_is_refused_only_where_the_orders_differ(
    tmp_path, monkeypatch, n_per_class
):
    """Before the tree, 256 blocks of N / 256 samples were added left to right: a checkpoint
    of that order over 256 x 2048 samples cannot be continued identically and is refused;
    below, both orders add the same numbers and the resumed run equals the whole one."""
    cfg = dict(n_classes=2, n_per_class=n_per_class, steps=2, record_every=1, sigma=0.3, seed=3)
    whole = lesde.simulate(progress=False, **cfg)
    ckpt = tmp_path / "run.ckpt"
    write = ck.Checkpointer.write

    def write_then_stop(self, step, arrays, wall_seconds):  # a Ctrl-C after step 1's
        write(self, step, arrays, wall_seconds)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch, pytest.warns(RuntimeWarning, match="interrupted"):
        patch.setattr(ck.Checkpointer, "write", write_then_stop)
        lesde.simulate(progress=False, checkpoint=ckpt, checkpoint_every=1, **cfg)
    old = _drop_order(ckpt, tmp_path / "old.ckpt")
    if n_per_class > 256 * 1024:
        with pytest.raises(ValueError, match="reduction order 1, this lesde in order 2"):
            lesde.resume(old, progress=False)
        return
    resumed = lesde.resume(old, progress=False)
    assert resumed.features.tobytes() == whole.features.tobytes()
    assert resumed.class_means.tobytes() == whole.class_means.tobytes()
    with pytest.raises(ValueError, match="reduction order 7"):
        lesde.resume(_drop_order(ckpt, tmp_path / "new.ckpt", order=7), progress=False)
