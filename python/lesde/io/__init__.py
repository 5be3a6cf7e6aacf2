"""Files: :mod:`~lesde.io.storage` writes atomically, reads only after every check that can
be made first (never unpickling), takes only regular files as inputs, and gives one
writer at a time (locks).

Examples
--------
>>> import os, tempfile, numpy as np
>>> from lesde.io import storage
>>> path = os.path.join(tempfile.mkdtemp(), "demo.npz")
>>> storage.write_npz(path, {"x": np.arange(3.0)}, {"kind": "demo", "format_version": 1})
>>> storage.read_npz(path, what="demo file", kind="demo", format_version=1,
...                  required=["x"]).arrays["x"]
array([0., 1., 2.])
"""
