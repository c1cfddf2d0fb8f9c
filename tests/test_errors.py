"""Driver failures become StorageError with the original as __cause__."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from event_log import EventLogError, StorageError
from event_log._errors import as_storage_error, translate_storage_errors

DRIVER_FAILURES = [
    OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked")),
    OSError(28, "No space left on device"),
    ConnectionRefusedError(111, "Connection refused"),
]


@pytest.mark.parametrize("failure", DRIVER_FAILURES, ids=type)
def test_translator_wraps_driver_failures(failure: Exception) -> None:
    with pytest.raises(StorageError) as info, translate_storage_errors("writing"):
        raise failure
    assert info.value.__cause__ is failure
    assert "writing failed" in str(info.value)


def test_translator_leaves_other_errors_alone() -> None:
    with pytest.raises(KeyError), translate_storage_errors("reading"):
        raise KeyError("not a storage problem")


def test_as_storage_error_keeps_an_existing_storage_error() -> None:
    original = StorageError("already translated")
    assert as_storage_error("x", original) is original
    wrapped = as_storage_error("x", RuntimeError("boom"))
    assert isinstance(wrapped, EventLogError)
    assert isinstance(wrapped.__cause__, RuntimeError)
