"""The ``gitstore`` command line: a thin Click layer over gitstore's public library API.

Every command opens the store, makes one library call and formats the answer; errors become one
line on stderr and a documented exit code in one place (:func:`gitstore.cli.main.main`).
"""
