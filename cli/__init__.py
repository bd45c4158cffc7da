"""The ``zoo`` command line (click), imported as ``zoo_cli``: parse, call :mod:`zoo`, print."""
