"""The one C extension: tracing's request path (stack/_spancore.c, with the running span of
stack/_spanrecord.c, the span buffer of stack/_spanbuffer.c and the span writer's rows of
stack/_spanrows.c). Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("stack._spancore", ["stack/_spancore.c", "stack/_spanrecord.c", "stack/_spanbuffer.c",
                                                 "stack/_spanrows.c"],
                             depends=["stack/_spanbuffer.h", "stack/_spanrecord.h"])])
