"""The simulator: what a run is, how it runs, and what it leaves.

- :mod:`~lesde.sim.config`: :class:`~lesde.sim.config.Config`, one frozen, validated
  object; :mod:`~lesde.sim.schedules` its time-varying rates.
- :mod:`~lesde.sim.engine`: Config -> the C++ engine's arrays and backend, the chunked run
  loop (progress, Ctrl-C, checkpoints), the memory check.
- :mod:`~lesde.sim.simulate`: :func:`lesde.simulate`, the user's run.
- :mod:`~lesde.sim.result`: :class:`~lesde.sim.result.Result`, records and final state.
- :mod:`~lesde.sim.checkpoint`, :mod:`~lesde.sim.zarr_store`: what a run may write.
- :mod:`~lesde.sim.mpi`, :mod:`~lesde.sim.sharded_checkpoint`,
  :mod:`~lesde.sim.collective`: one run sharded over MPI ranks.

Nothing here imports the real-network side (:mod:`lesde.nn`), PyTorch or matplotlib.

Examples
--------
>>> from lesde.sim.config import Config
>>> from lesde.sim.simulate import simulate
>>> simulate(Config(n_classes=2, n_per_class=5, t_end=0.1), progress=False).ok
True
"""
