"""placeholder"""
import click


@click.command("synth")
def command() -> None:
    """Generate a synthetic trace."""
