"""The version of the C interface between ``csrc/focal_cpu.c`` and :mod:`focalkit.backends.cpu.library`.

``setup.py`` reads this number (without importing focalkit) and compiles it into the library as
``FK_ABI_VERSION``; the loader refuses a library built with another number. Change it whenever a C signature
changes.
"""

ABI_VERSION = 8
