"""Analysis built on runs: estimate alpha(t), beta(t) from class means and replay them
(:mod:`~lesde.analysis.estimate`), predict the rest of a training from its first part
(:mod:`~lesde.analysis.predict`).

Examples
--------
>>> import lesde
>>> from lesde.analysis import estimate
>>> res = lesde.simulate(n_classes=3, n_per_class=1, signal="linear", alpha=2.0,
...                      beta=0.5, sigma=0.0, init_scale=0.0, t_end=1.0,
...                      init_means=[[1.0, 0.2, 0.1], [0.0, 1.0, 0.3], [0.2, 0.1, 1.2]],
...                      scheme="heun", record_every=5, progress=False)
>>> est = estimate.fit(res, window=7)
>>> round(float(est.alpha_hat[5]), 3), round(float(est.beta_hat[5]), 3)
(2.0, 0.5)
"""
