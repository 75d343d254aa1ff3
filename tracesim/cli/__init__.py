"""The ``tracesim`` command: a thin click layer over library calls.

Each command lives in its own module of this package and is registered below. A
:class:`~tracesim.errors.TracesimError` (or a click usage error) becomes one line on stderr and
exit code 2; no user mistake produces a traceback.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import TracesimError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tracesim")
def cli() -> None:
    """Record, synthesise and replay Kubernetes control-plane traces."""


def _register() -> None:
    from . import (
        bottlenecks,
        calibrate,
        experiment,
        importer,
        info,
        record,
        repair,
        replay,
        report,
        scale,
        serve,
        sweep,
        synth,
        window,
    )

    # In the order of the data flow: traces, transforms, replays, analysis.
    for module in (
        info,
        synth,
        record,
        repair,
        serve,
        scale,
        window,
        importer,
        replay,
        experiment,
        sweep,
        bottlenecks,
        report,
        calibrate,
    ):
        cli.add_command(module.command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script and ``python -m tracesim``."""
    try:
        code = cli.main(args=argv, prog_name="tracesim", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except TracesimError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(code if isinstance(code, int) else 0)
