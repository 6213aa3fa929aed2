"""`livestyle styles`: the catalog of installed models."""
from __future__ import annotations

import click

from ..catalog import Catalog


@click.command("styles")
def command():
    """List the installed styles and super-resolution models."""
    catalog = Catalog()
    if not catalog.entries:
        click.echo(f"no trained models are installed yet (catalog: {catalog.folder / 'catalog.json'})")
        return
    click.echo(f"{'name':<22}{'task':<10}{'variant':<8}{'architecture':<34}credit")
    for entry in catalog.entries.values():
        arch = ", ".join(f"{k}={v}" for k, v in entry.arch.items())
        click.echo(f"{entry.name:<22}{entry.task:<10}{entry.variant:<8}{arch:<34}{entry.credit}")
