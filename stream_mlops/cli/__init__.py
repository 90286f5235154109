"""The ``stream-mlops`` command line."""

from stream_mlops.cli.main import main

__all__ = ["main"]
