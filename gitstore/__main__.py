"""``python -m gitstore``: the ``gitstore`` command, for when its script is not on PATH."""

from __future__ import annotations

from gitstore.cli.main import main

if __name__ == "__main__":
    main()
