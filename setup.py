"""The one C extension: tracing's request path (stack/_spancore.c, with the span buffer of
stack/_spanbuffer.c). Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("stack._spancore", ["stack/_spancore.c", "stack/_spanbuffer.c"],
                             depends=["stack/_spanbuffer.h"])])
