import inspect
import typing

import pytest
from pydantic import create_model

from stack.apis._webmethod import get_webmethod


def _body_model(fn):
    """The JSON body model of a POST operation, built from the method signature as the server does."""
    wm = get_webmethod(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    fields = {
        name: (hints[name], ... if p.default is inspect.Parameter.empty else p.default)
        for name, p in inspect.signature(fn).parameters.items()
        if name != "self" and name not in wm.path_params
    }
    return create_model(wm.request_name or "Request", **fields)


@pytest.fixture
def body_model():
    return _body_model
