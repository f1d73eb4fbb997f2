"""The exception tree: its drawing, its status codes, its messages."""

import re

import stack.errors as errors
from stack.errors import NotFoundError, ServiceUnavailableError, StackError, status_code_for
from stack.storage import DuplicateKeyError, StorageError, StorageUnavailableError


def test_every_error_class_is_drawn_in_the_tree():
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, StackError)]
    classes += [StorageError, StorageUnavailableError, DuplicateKeyError]
    for cls in classes:
        assert re.search(rf"[─ ]{cls.__name__}\b", errors.__doc__), f"{cls.__name__} is not drawn"


def test_status_codes_of_storage_errors():
    assert status_code_for(StorageUnavailableError("down")) == 503
    assert status_code_for(ServiceUnavailableError("busy", retry_after=7)) == 503
    assert status_code_for(StorageError("bad statement")) == 500
    assert isinstance(StorageUnavailableError("down"), StorageError)


def test_not_found_kind_and_identifier():
    exc = NotFoundError("Model", "m9", ["m2", "m1"])
    assert exc.message == "Model 'm9' not found; registered: 'm1', 'm2'"
    assert status_code_for(exc) == 404


def test_not_found_with_a_whole_message():
    exc = NotFoundError("step", "s9", ["s1"], message="turn 't1' has no step 's9'")
    assert exc.message == "turn 't1' has no step 's9'; known: 's1'"
    assert (exc.kind, exc.identifier) == ("step", "s9")
    assert NotFoundError("step", "s9", message="no step 's9'").message == "no step 's9'"
