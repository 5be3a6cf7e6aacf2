"""pytest configuration for bench/ (markers used by bench/test_baselines.py)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_torch: needs PyTorch (skipped if missing)")
    config.addinivalue_line("markers", "needs_jax: needs JAX (skipped if missing)")
