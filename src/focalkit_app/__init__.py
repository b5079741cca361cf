"""The ``focalkit`` command-line application: ``focalkit curves``, ``focalkit demo``, ``focalkit compare`` and
``focalkit bench``.

It is built on the library's public API only (``focalkit``, ``focalkit.errors``, ``focalkit.semantics``,
``focalkit.reference``, ``focalkit.adaptive``, ``focalkit.functional``, ``focalkit.nn``, ``focalkit.backends``);
``tests/test_application_boundary.py`` checks this. The library never imports this package.
"""
