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
    arch_width = max(len("architecture"), *(len(architecture(e.arch)) for e in catalog.entries.values())) + 2
    click.echo(f"{'name':<22}{'task':<10}{'variant':<8}{'architecture':<{arch_width}}credit")
    for entry in catalog.entries.values():
        click.echo(f"{entry.name:<22}{entry.task:<10}{entry.variant:<8}{architecture(entry.arch):<{arch_width}}"
                   f"{entry.credit}")


def architecture(arch: dict) -> str:
    """A catalog entry's arch in a few words, e.g. "×4, width 64, 4 blocks"."""
    words = []
    if "scale" in arch:
        words.append(f"×{arch['scale']}")
    if "width" in arch:
        words.append(f"width {arch['width']}")
    if "blocks" in arch:
        words.append(f"{arch['blocks']} blocks")
    if arch.get("pixel_shuffle"):
        words.append("pixel-shuffle")
    if arch.get("margin"):
        words.append(f"margin {arch['margin']}")
    return ", ".join(words) or "-"
