"""The model's names, read from the compiled core, and what Python knows about each signal.

The core names the signals (``_core.Signal``), the noise kinds (``_core.noise_kinds()``)
and the SDE schemes (``_core.schemes()``): :data:`SIGNALS`, :data:`NOISES` and
:data:`SCHEMES` are read from there, never restated. Everything the Python side knows per
signal lives in one table, :data:`SIGNAL_INFO` (a :class:`SignalInfo` per name): which
feature dimensions it takes, the metrics a summary leads with, how to read them, and what
to advise when its features grow too large. :func:`lesde.sim.config.Config.check`,
:attr:`lesde.sim.result.Result.headline`, the engine's advice and the CLI's summaries read
it. When this module is imported it checks that every signal of the core has an entry and
every entry a signal of the core (and that the noise and scheme tables name the core's
enums): a new signal without an entry fails at import, naming it, not mid-run.

Adding a signal: the C++ enum and its binding (``cpp/include/lesde/model.hpp``,
``cpp/src/bindings/register_config.cpp``), and its entry here.

Examples
--------
>>> SIGNALS
('linear', 'projected', 'cross_entropy')
>>> SIGNAL_INFO["linear"].headline
('separable_ncc', 'ncc_accuracy', 'nc1')
>>> "heun" in SCHEMES and "gaussian" in NOISES
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .. import _core

__all__ = [
    "BACKENDS",
    "NOISES",
    "SCHEMES",
    "SIGNALS",
    "SIGNAL_INFO",
    "SignalInfo",
    "check_dimension",
    "check_registry",
]


@dataclass(frozen=True)
class SignalInfo:
    """What Python knows about one signal of the core.

    Attributes
    ----------
    takes_head : bool
        Whether a ``head`` matrix (K x dim) may be given.
    square : bool
        Whether ``dim`` must equal ``n_classes`` (for a signal that takes a head: unless
        one is given).
    headline : tuple of str
        What a summary of a run leads with: the metrics its dynamics drive
        (docs/model.md, section 3), in order.
    reading : str
        How to read those metrics (the CLI prints it under them).
    nonfinite_cause : str or None
        The likely cause to name when a replica's features became non-finite, where the
        signal itself grows (None: the general causes).
    resolution_advice : str or None
        What to advise when the class contrasts lose their digits against the class means,
        where the signal itself drives it (None: the general advice).

    Examples
    --------
    >>> SIGNAL_INFO["projected"].takes_head, SIGNAL_INFO["projected"].square
    (False, True)
    """

    takes_head: bool
    square: bool
    headline: tuple[str, ...]
    reading: str
    nonfinite_cause: str | None = None
    resolution_advice: str | None = None


#: Everything Python knows per signal, keyed by the core's name. Linear: the clouds separate
#: iff alpha > beta, but nothing pulls them toward their labels, so loss and accuracy (the
#: features read as logits) say nothing. Projected: the clouds separate on both sides of
#: alpha = beta; the argmax accuracy shows the side. Cross-entropy: loss -> 0 and accuracy
#: -> 1 iff alpha > beta (the clouds can still be separable when alpha < beta).
#: ``separable_ncc``: 1 for a replica whose final features the nearest-class-centre rule
#: classifies without error, a certificate of separability.
SIGNAL_INFO: dict[str, SignalInfo] = {
    "linear": SignalInfo(
        takes_head=True,
        square=False,
        headline=("separable_ncc", "ncc_accuracy", "nc1"),
        reading="The linear signal separates the classes iff alpha > beta (separable_ncc -> 1) "
        "but never pulls the features toward their labels: loss and accuracy, which read the "
        "features as logits, say nothing about learning here.",
        nonfinite_cause="the linear signal grows exponentially (class means ~ "
        "exp((alpha+(K-1)beta)t/K)); shorten t_end, lower alpha/beta, or use "
        "signal='cross_entropy'",
        resolution_advice="the linear signal's common mode grows like exp((alpha+(K-1)beta)t/K) "
        "and outgrows the contrasts; shorten t_end or use signal='cross_entropy'",
    ),
    "projected": SignalInfo(
        takes_head=False,
        square=True,
        headline=("separable_ncc", "ncc_accuracy", "accuracy", "nc1"),
        reading="The projected signal separates the classes on both sides of alpha = beta; "
        "the side shows in the argmax accuracy (above chance when alpha > beta), not in "
        "separability.",
    ),
    "cross_entropy": SignalInfo(
        takes_head=True,
        square=True,
        headline=("loss", "accuracy", "separable_ncc", "ncc_accuracy", "nc1", "etf_distance"),
        reading="alpha > beta drives the loss to 0 and the accuracy to 1; alpha < beta "
        "pushes each class away from its label (loss up, accuracy to 0), while the classes "
        "can stay separable by another linear map (separable_ncc).",
    ),
}


def check_registry(what: str, core: Iterable[str], known: Iterable[str], where: str) -> None:
    """Refuse a table of ``known`` names that is not the core's list ``core``: an ImportError
    naming each name without an entry in ``where``, or each entry the core lacks.

    Examples
    --------
    >>> check_registry("signal", ["linear", "cubic"], ["linear"], "SIGNAL_INFO")
    Traceback (most recent call last):
        ...
    ImportError: the core's signal 'cubic' has no entry in SIGNAL_INFO (lesde/sim/model.py); add one
    """
    core, known = list(core), list(known)
    missing = [name for name in core if name not in known]
    if missing:
        names = ", ".join(repr(n) for n in missing)
        raise ImportError(
            f"the core's {what} {names} has no entry in {where} (lesde/sim/model.py); add one"
        )
    extra = [name for name in known if name not in core]
    if extra:
        names = ", ".join(repr(n) for n in extra)
        raise ImportError(
            f"{where} has an entry for {what} {names}, which the compiled core does not know; "
            "remove it or rebuild the core (bash tools/dev-build.sh)"
        )


def _names(table: list[Mapping]) -> tuple[str, ...]:
    return tuple(entry["name"] for entry in table)


#: The signals, noise kinds and schemes of the compiled core, in its order.
SIGNALS: tuple[str, ...] = tuple(_core.Signal.__members__)
NOISES: tuple[str, ...] = _names(_core.noise_kinds())
SCHEMES: tuple[str, ...] = _names(_core.schemes())
#: The values of ``Config.backend``: "auto" and every backend a build of lesde may have, so
#: a config written by another build (a source build with the test-only CUDA emulator, a
#: CUDA build) reads here; which of them this build can run is the core's registry
#: (``_core.backends()``), which :func:`lesde.sim.backends.check_backend` asks at every entry.
BACKENDS: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda_emulator")

check_registry("signal", SIGNALS, SIGNAL_INFO, "SIGNAL_INFO")
check_registry("noise kind", NOISES, _core.NoiseKind.__members__, "the core's enum NoiseKind")
check_registry("scheme", SCHEMES, _core.Scheme.__members__, "the core's enum Scheme")


def check_dimension(signal: str, n_classes: int, dim: int, has_head: bool) -> None:
    """Refuse a feature dimension (and head) the signal does not take (:class:`SignalInfo`:
    ``takes_head``, ``square``).

    Examples
    --------
    >>> check_dimension("cross_entropy", 3, 5, has_head=True)  # a head maps 5 -> 3 logits
    >>> check_dimension("projected", 3, 5, has_head=False)
    Traceback (most recent call last):
        ...
    ValueError: signal="projected" needs dim == n_classes (3), got dim=5
    """
    info = SIGNAL_INFO[signal]
    if has_head and not info.takes_head:
        takers = " or ".join(f'"{n}"' for n in sorted(SIGNAL_INFO) if SIGNAL_INFO[n].takes_head)
        raise ValueError(f"head is only used with signal={takers}")
    if info.square and dim != n_classes and not has_head:
        if info.takes_head:
            raise ValueError(
                f'signal="{signal}" with dim={dim} != n_classes={n_classes} needs a head '
                f"matrix of shape ({n_classes}, {dim})"
            )
        raise ValueError(f'signal="{signal}" needs dim == n_classes ({n_classes}), got dim={dim}')
