"""The one compiled part of the package: the delivery encoder of the message path
(amqpbroker/protocol/_speedups.pyx).

It is optional. Without Cython, a C compiler or Python's headers, or with
AMQPBROKER_PURE_PYTHON=1, the install goes on without it and the broker uses the same
function in Python (protocol/fastcodec.py); docs/performance.md says what it buys.
Everything else is in pyproject.toml.
"""

import os

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """A failed compile is a warning, not a failed install (pure Python remains)."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler: distutils' errors are not one class
            print(f"warning: amqpbroker.protocol._speedups was not compiled ({exc}); "
                  "pure Python is used")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # no Python headers, a compiler error
            print(f"warning: {ext.name} was not compiled ({exc}); pure Python is used")


def extensions():
    if os.environ.get("AMQPBROKER_PURE_PYTHON"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    return cythonize(["amqpbroker/protocol/_speedups.pyx"], quiet=True,
                     compiler_directives={"language_level": 3})


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
