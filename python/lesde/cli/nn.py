"""``lesde nn``: real networks as the paper ran them (needs PyTorch to train).

- ``lesde nn train DIR``: a trial ensemble of LeNets on the shapes data (or a local
  CIFAR-10 copy), trained in parallel worker processes and stored per trial in DIR;
  the same command resumes a killed ensemble or grows it (:func:`lesde.nn.train_ensemble`).
- ``lesde nn paper DIR``: the paper's pipeline on a stored ensemble: trial-averaged class
  means, the L (or I) estimator, Savitzky-Golay rates with the paper's window, the LE-ODE
  replay from the averaged class means (:func:`lesde.nn.pipeline.paper_pipeline`). Reading an
  ensemble needs no PyTorch.

Examples
--------
>>> from lesde.cli import build_parser
>>> args = build_parser().parse_args(["nn", "paper", "runs/shapes", "--window", "31"])
>>> args.func is cmd_paper, args.window, args.estimator, args.rate_offset
(True, 31, 'L', 1)
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import (
    EXIT_INTERRUPTED,
    EXIT_NUMERIC,
    EXIT_OK,
    PROG,
    Out,
    UsageError,
    add_command,
    add_output_options,
    plot_module,
    print_json,
    progress_flag,
    save_figure,
    table,
)

__all__ = ["add_nn", "cmd_paper", "cmd_train"]

EXAMPLES = """Examples:
  lesde nn train runs/shapes --trials 16 --steps 10000 --lr 0.005
  lesde nn train runs/shapes --trials 64 --steps 10000 --lr 0.005   # adds trials 16-63
  lesde nn paper runs/shapes                      # L estimator, window 21, all trials
  lesde nn paper runs/shapes --trials 4 --estimator I --json
  lesde nn paper runs/shapes --conventions paper --start 0 --out figs"""


def add_nn(commands) -> None:
    """Register ``lesde nn`` (``train`` and ``paper``) on the subcommands ``commands``.

    >>> from lesde.cli import build_parser
    >>> build_parser().parse_args(["nn", "train", "d", "--trials", "4"]).trials
    4
    """
    from .common import Parser

    p = add_command(
        commands,
        "nn",
        _missing_action,
        "real networks: trial ensembles and the paper's pipeline",
        description="Train trial ensembles of real networks (LeNet, plain SGD, one sample "
        "per step) and run the paper's pipeline on them: trial-averaged class means, the L "
        "or I estimator, Savitzky-Golay rates, an LE-ODE replay. docs/real_networks.md.",
        epilog=EXAMPLES,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    _add_train(actions)
    _add_paper(actions)


def _missing_action(args) -> int:
    raise UsageError("lesde nn needs an action: train or paper (lesde nn --help)")


def _add_train(actions) -> None:
    p = add_command(
        actions,
        "train",
        cmd_train,
        "train (or resume, or grow) a trial ensemble in DIR",
        description="Train R independently seeded LeNets with plain SGD, one sample per "
        "step, in worker processes (one PyTorch thread each by default). Each finished "
        "trial is written to DIR at once; the same command resumes after a kill or Ctrl-C "
        "and trains only the missing trials. DIR refuses other data or settings.",
        epilog=EXAMPLES,
    )
    p.add_argument("folder", metavar="DIR", help="where the trials are stored")
    p.add_argument("--trials", type=int, required=True, help="R, the number of networks")
    p.add_argument("--steps", type=int, default=10_000, help="SGD steps per trial")
    p.add_argument("--lr", type=float, default=0.005, help="SGD step size")
    p.add_argument(
        "--record-every", type=int, help="steps between records (default: steps // 200, at least 1)"
    )
    p.add_argument(
        "--impact-every", type=int, help="steps between impact measurements (default: none)"
    )
    p.add_argument(
        "--label-noise",
        type=float,
        default=0.0,
        help="p_err in [0, 1]: each label is replaced by another class with this probability",
    )
    p.add_argument("--seed", type=int, default=0, help="the ensemble's seed")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads per worker")
    p.add_argument("--n-per-class", type=int, default=300, help="training images per class")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the shapes data")
    p.add_argument("--cifar", metavar="ROOT", help="a local CIFAR-10 copy instead of shapes")
    p.add_argument("--classes", default="cat,dog", help="CIFAR-10 classes (with --cifar)")
    add_output_options(p)


def _add_paper(actions) -> None:
    p = add_command(
        actions,
        "paper",
        cmd_paper,
        "the paper's pipeline on the ensemble in DIR",
        description="Average the class-mean logits over the trials, estimate A(t), B(t) "
        "(L: projected model, the paper's choice; I: linear model), differentiate them "
        "with a Savitzky-Golay filter (window in records, polynomial order 2), and replay "
        "the LE-ODE from the averaged class means with forward Euler, the step from "
        "record m reading the rate at record m + 1 (the paper's integrator). Prints the "
        "replay's relative max-norm error.",
        epilog=EXAMPLES,
    )
    p.add_argument("folder", metavar="DIR", help="an ensemble written by lesde nn train")
    p.add_argument("--trials", type=int, help="use trials 0..R-1 (default: all stored)")
    p.add_argument("--estimator", choices=("L", "I"), default="L", help="the estimator")
    p.add_argument("--window", type=int, default=21, help="Savitzky-Golay window (odd)")
    p.add_argument("--polyorder", type=int, default=2, help="Savitzky-Golay order")
    p.add_argument(
        "--data",
        choices=("records", "stepped"),
        default="records",
        help="class means of all samples at records, or the paper's stepped-input logits",
    )
    p.add_argument(
        "--start",
        default="aligned",
        help="first record: an index, or 'aligned' (class means point at their labels)",
    )
    p.add_argument(
        "--conventions",
        choices=("lesde", "paper"),
        default="lesde",
        help="estimator conventions: lesde's, or the paper's code (zero-sum logits, log|ratio|)",
    )
    p.add_argument(
        "--rate-offset", type=int, choices=(0, 1), default=1, help="rate index m + OFFSET"
    )
    p.add_argument("--out", metavar="DIR", help="also write the replay figure there")
    add_output_options(p, quiet=False)


def _shapes_or_cifar(args):
    from ..data import cifar10, geometric_shapes

    if args.cifar:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        return cifar10(args.cifar, classes=classes, n_per_class=args.n_per_class)
    return geometric_shapes(args.n_per_class, seed=args.data_seed)


def cmd_train(args) -> int:
    """Train or resume the ensemble in ``args.folder``; print a summary of its trials.

    >>> import tempfile
    >>> from lesde.cli import main
    >>> folder = tempfile.mkdtemp()
    >>> main(["nn", "train", folder, "--trials", "2", "--steps", "4", "--n-per-class", "3",
    ...       "--workers", "1", "--quiet", "--json"])  # doctest: +ELLIPSIS
    {
      "folder": ...,
      "trials": 2,
    ...
    0
    """
    try:
        from ..nn.ensemble import EnsembleFolderInUse, WorkerError, train_ensemble
    except ImportError as err:
        raise UsageError(f"lesde nn train needs PyTorch: pip install 'lesde[nn]' ({err})") from None
    out = Out(args.json)
    data = _shapes_or_cifar(args)
    out(f"data: {data}")
    try:
        res = train_ensemble(
            data,
            trials=args.trials,
            lr=args.lr,
            steps=args.steps,
            folder=args.folder,
            seed=args.seed,
            workers=args.workers,
            threads=args.threads,
            label_noise=args.label_noise,
            record_every=args.record_every,
            impact_every=args.impact_every,
            progress=progress_flag(args),
        )
    except EnsembleFolderInUse as err:
        raise UsageError(str(err)) from None
    except WorkerError as err:  # the training failed: a worker died (its trials are kept)
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return EXIT_NUMERIC
    summary = res.summary()
    if args.json:
        print_json({"folder": str(args.folder), "trials": res.replicas, **summary})
    else:
        stopped = " (interrupted)" if res.interrupted else ""
        out(f"{res.replicas} trials in {args.folder}{stopped}")
        rows = [[name, summary[name]] for name in ("loss", "accuracy", "clean_accuracy")]
        out(table(rows, ["final (mean over trials)", "value"]))
    return EXIT_INTERRUPTED if res.interrupted else EXIT_OK


def cmd_paper(args) -> int:
    """Run the paper's pipeline on a stored ensemble and print its replay error.

    >>> import tempfile
    >>> from lesde.cli import main
    >>> main(["nn", "paper", tempfile.mkdtemp()])  # doctest: +ELLIPSIS
    1
    """
    from ..nn.ensemble import load_ensemble
    from ..nn.pipeline import paper_pipeline
    from ..sim.engine import InsufficientMemoryError

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(f"ensemble folder {str(folder)!r} not found")
    try:
        ensemble = load_ensemble(folder, trials=args.trials)
    except InsufficientMemoryError:
        raise  # exit 2: does not fit in memory
    except ValueError as err:
        raise UsageError(str(err)) from None
    start = args.start if args.start == "aligned" else _index(args.start)
    try:
        run = paper_pipeline(
            ensemble,
            estimator=args.estimator,
            window=args.window,
            polyorder=args.polyorder,
            data=args.data,
            start=start,
            rate_offset=args.rate_offset,
            conventions=args.conventions,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
    summary = run.summary()
    if args.json:
        print_json({"folder": str(folder), **summary})
    else:
        out = Out()
        out(f"{ensemble.replicas} trials from {folder}, {run!r}")
        rows = [[k, v] for k, v in summary.items() if not isinstance(v, (list, dict))]
        out(table(rows, ["", "value"]))
    if args.out:
        plot = plot_module()
        fig = plot.replay_comparison(
            run.times, run.class_means, {f"{args.estimator} estimator, LE-ODE": run.replay}
        )
        path = Path(args.out) / f"{folder.name}-paper-replay.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"wrote {save_figure(plot, fig, path)}", file=Out(args.json).stream)
    return EXIT_OK


def _index(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--start must be 'aligned' or a record index, got {text!r}") from None
