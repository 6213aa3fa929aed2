"""`livestyle styles`: the catalog of installed models."""
from __future__ import annotations

import click

from livestyle.zoo.catalog import CATALOG_FILE, Catalog, describe_arch


@click.command("styles")
def command():
    """List the installed styles and super-resolution models."""
    catalog = Catalog()
    if not catalog.entries:
        click.echo(f"no trained models are installed yet (catalog: {catalog.folder / CATALOG_FILE})")
        return
    arch_width = max(len("architecture"), *(len(describe_arch(e.arch)) for e in catalog.entries.values())) + 2
    click.echo(f"{'name':<22}{'task':<10}{'variant':<8}{'architecture':<{arch_width}}credit")
    for entry in catalog.entries.values():
        click.echo(f"{entry.name:<22}{entry.task:<10}{entry.variant:<8}{describe_arch(entry.arch):<{arch_width}}"
                   f"{entry.credit}")
