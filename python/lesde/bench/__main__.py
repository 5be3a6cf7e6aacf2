"""``python -m lesde.bench ARGS``: the same as ``lesde bench ARGS``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
