"""The ``focalkit`` command-line interface (``focalkit curves | demo | compare | bench``)."""
