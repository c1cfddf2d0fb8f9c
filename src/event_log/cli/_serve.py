"""``serve``: the web API and live page (``event_log.web``, the ``web`` extra).

The database is served read-only: it must already hold an event log (a missing
file is an error, never created), and serving never changes it. On loopback
(the default) only this machine reaches the server. On any other
interface anyone who reaches the port could read the audit trail, so ``serve``
refuses to start there without a token (``--token`` or ``EVENT_LOG_TOKEN``,
read here at the edge), unless ``--insecure-no-auth`` says to.
"""

from __future__ import annotations

import click

from ._runtime import Settings, check_readable, expected_errors, pass_settings, run

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
@click.option(
    "--token",
    envvar="EVENT_LOG_TOKEN",
    show_envvar=True,
    metavar="TEXT",
    help="Only clients with this token may read: 'Authorization: Bearer TOKEN' for the "
    "API, a login form for the page. Needed on any interface but loopback. Prefer the "
    "environment variable: a command line is visible to other users.",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Serve a non-loopback interface without a token: anyone who can reach the port "
    "can read the audit trail.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Open connections at most; past it a client gets a 503 with Retry-After.",
)
@click.option(
    "--max-streams",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Live streams (/stream) at most; past it a 503 with Retry-After.",
)
@click.option(
    "--max-lag",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Events a stream client may fall behind before it is sent a 'lagged' message "
    "naming where to resume, and disconnected.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds a connection may take to send a whole request head.",
)
@click.option(
    "--keep-alive",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Whole seconds an idle connection is kept open between requests.",
)
@pass_settings
def serve(
    settings: Settings,
    host: str,
    port: int,
    token: str | None,
    insecure_no_auth: bool,
    max_connections: int,
    max_streams: int,
    max_lag: int,
    header_timeout: float,
    keep_alive: int,
) -> None:
    """Serve the events API and the live page (needs the web extra: event-log[web]).

    Runs until Ctrl-C or SIGTERM, which end every open stream with a last comment.
    """
    ctx = click.get_current_context()
    try:
        # serve_web runs uvicorn, which event_log.web itself does not import.
        import uvicorn  # noqa: F401

        from event_log.web import check_token, is_loopback
        from event_log.web import serve as serve_web
    except ImportError as exc:
        missing = _missing_module(exc)
        if missing is None:
            raise
        raise click.ClickException(
            f"serve needs the web extra ({missing} is not installed): pip install 'event-log[web]'"
        ) from None
    if token is not None:
        try:
            check_token(token)
        except ValueError as exc:
            raise click.BadParameter(
                str(exc), ctx=ctx, param_hint="'--token' / EVENT_LOG_TOKEN"
            ) from None
        if insecure_no_auth:
            raise click.UsageError(
                "--insecure-no-auth and a token (--token / EVENT_LOG_TOKEN) contradict "
                "each other: give one",
                ctx=ctx,
            )
    elif not is_loopback(host):
        if not insecure_no_auth:
            raise click.UsageError(
                f"serving on {host} needs a token: pass --token or set EVENT_LOG_TOKEN "
                "(or --insecure-no-auth to serve without one)",
                ctx=ctx,
            )
        click.echo(
            f"Warning: serving {host}:{port} without a token: anyone who can reach the "
            "port can read the audit trail",
            err=True,
        )
    url = settings.url
    # A reader: the database must already hold an event log (checked before the server
    # starts, so a missing file or an unreachable server is one line), and the app opens
    # it read-only, so serving never creates or changes it.
    run(check_readable(url), url=url)
    with expected_errors(url):
        serve_web(
            url.render_as_string(hide_password=False),
            host=host,
            port=port,
            token=token,
            insecure_no_auth=insecure_no_auth,
            max_connections=max_connections,
            max_streams=max_streams,
            max_lag=max_lag,
            header_timeout=header_timeout,
            keep_alive=keep_alive,
            read_only=True,
        )
