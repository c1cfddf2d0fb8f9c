"""The original system's event-log tests, run against event_log.sync unchanged in style:
they call the module functions of one shared default database, so this points that
default at a temporary file for the session and closes it at the end.

configure(), not $EVENT_LOG_URL: the suite's autouse fixture clears the variable for
every test. Each test sets it again (a cheap check): a test elsewhere in the same
worker may have configured the default for itself meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import event_log.sync._default as sync_default
from event_log.sync import close, configure


@pytest.fixture(scope="session")
def original_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sync_original') / 'events.db'}"
    previous_url, previous_options = sync_default._settings
    yield url
    close()
    configure(previous_url, **previous_options)


@pytest.fixture(autouse=True)
def _default_database(original_database: str) -> None:
    if sync_default._settings != (original_database, {}):
        configure(original_database)
