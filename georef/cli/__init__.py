"""The ``georef`` command line."""
