"""The ``hardenkit`` console script.

Subcommands import what they need when they run, so ``hardenkit --version`` and
``hardenkit lock`` never load the web stack. ``main.py`` holds the table of
subcommands; each subcommand is a module here (``check``, ``demo``, ``keys``,
``lock``, ``redact``, ``slo``, ``status``, ``auth``...) with a ``main(argv)``.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
