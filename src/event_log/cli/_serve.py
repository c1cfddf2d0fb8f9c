"""``serve``: the web API and live page (``event_log.web``, the ``web`` extra)."""

from __future__ import annotations

import click

from ._runtime import Settings, expected_errors, pass_settings

__all__ = ["WEB_EXTRA_MODULES", "serve"]

# What the web extra installs (and what they bring): an ImportError naming one of
# these means the extra is missing; any other is a real fault, and is raised.
WEB_EXTRA_MODULES = frozenset({"fastapi", "uvicorn", "starlette"})


def _missing_module(exc: BaseException | None) -> str | None:
    """The web extra's module whose absence caused ``exc`` (event_log.web re-raises the
    ImportError with a message of its own), or None for any other import failure."""
    while exc is not None:
        name = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
        if name is not None and name.partition(".")[0] in WEB_EXTRA_MODULES:
            return str(name)
        exc = exc.__cause__ or exc.__context__
    return None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@pass_settings
def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the events API and the live page (needs the web extra: event-log[web])."""
    try:
        from event_log.web import serve as serve_web
    except ImportError as exc:
        missing = _missing_module(exc)
        if missing is None:
            raise
        raise click.ClickException(
            f"serve needs the web extra ({missing} is not installed): pip install 'event-log[web]'"
        ) from None
    url = settings.url
    with expected_errors(url):
        serve_web(url.render_as_string(hide_password=False), host=host, port=port)
