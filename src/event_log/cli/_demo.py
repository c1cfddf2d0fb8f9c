"""``demo``: a small agent swarm that logs every step (``event_log.demo``)."""

from __future__ import annotations

import click

from ._runtime import Settings, display_url, expected_errors, pass_settings

__all__ = ["demo"]


@click.command()
@click.option("--agents", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--tasks", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--seed", type=int, help="Random seed (default: random).")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Multiplies every simulated delay (0.01: instant).",
)
@click.option(
    "--failure-rate",
    type=click.FloatRange(0, 1),
    default=0.25,
    show_default=True,
    help="Chance that a task fails.",
)
@click.option("--concurrency", type=click.IntRange(min=1), default=3, show_default=True)
@pass_settings
def demo(
    settings: Settings,
    agents: int,
    tasks: int,
    seed: int | None,
    time_scale: float,
    failure_rate: float,
    concurrency: int,
) -> None:
    """Run a small agent swarm that logs every step, then show what it logged."""
    from event_log import demo as demo_module

    url = settings.url
    argv = [
        "--url",
        url.render_as_string(hide_password=False),
        "--agents",
        str(agents),
        "--tasks",
        str(tasks),
        "--time-scale",
        str(time_scale),
        "--failure-rate",
        str(failure_rate),
        "--concurrency",
        str(concurrency),
    ]
    if seed is not None:
        argv += ["--seed", str(seed)]
    with expected_errors(url):
        demo_module.main(argv)  # its own asyncio.run, its own output
    prefix = "event-log" if not settings.url_given else f"event-log --url {display_url(url)}"
    click.echo(
        f"\nLook around: '{prefix} summary', '{prefix} task TASK_ID', '{prefix} tail -f'.",
        err=True,
    )
