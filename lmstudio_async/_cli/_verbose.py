"""``-v/--verbose``: show the SDK's debug log (connect, auth, channels, cancels) on stderr."""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["add_verbose_argument", "configure_logging"]


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        # A subcommand's default must not overwrite `lmstudio-async -v chat`'s True.
        default=argparse.SUPPRESS,
        help="log what the SDK does (connect, authenticate, channels, cancels) to stderr",
    )


def configure_logging(verbose: bool) -> None:
    """Send the ``lmstudio_async`` loggers' DEBUG lines to stderr when ``verbose``."""
    if not verbose:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(relativeCreated)7.1f ms] %(name)s: %(message)s"))
    logger = logging.getLogger("lmstudio_async")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
