"""The `livestyle` command: a thin click layer over the library, one module per command.

Every `LivestyleError` becomes one line on stderr and exit status 1; a bad option or argument one
line and exit status 2 (click's usage errors); Ctrl-C exits with 130.

May import every livestyle package, but only inside the command that runs (module level: click,
``options`` and the packages' torch-free names), so that `--help` and usage errors answer at once.
Shared options live in ``options``; no command imports another.
"""
from __future__ import annotations

import signal
import sys
import warnings

import click

from livestyle.errors import LivestyleError


class LivestyleGroup(click.Group):
    """A click group that reports library errors as one line, never as a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LivestyleError as exc:
            click.echo(f"livestyle: error: {exc}", err=True)
            sys.exit(1)
        except click.ClickException as exc:  # a bad option value, a missing argument, an unknown command
            where = getattr(exc, "ctx", None)
            hint = f" (see '{where.command_path} --help')" if isinstance(exc, click.UsageError) and where else ""
            message = " ".join(exc.format_message().split())
            click.echo(f"livestyle: error: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:  # some say what was kept (training: where its checkpoint is)
            click.echo(f"livestyle: interrupted: {exc}" if str(exc) else "livestyle: interrupted", err=True)
            sys.exit(128 + getattr(exc, "signum", signal.SIGINT))  # 130; 143 where SIGTERM stopped it


@click.group(cls=LivestyleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="livestyle")
def main() -> None:
    """Real-time neural style transfer and super-resolution (Johnson et al., ECCV 2016)."""
    warnings.formatwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings, ours and the libraries', as one line each (no source path and code line)."""
    return f"livestyle: warning: {message}\n"


def _register() -> None:
    from livestyle.cli import batch, bench, cam, eval, export, image, importcmd, styles, train, video

    for module in (batch, bench, cam, eval, export, image, importcmd, styles, train, video):
        main.add_command(module.command)


try:
    _register()  # light: every command imports torch and the like only when it runs
except KeyboardInterrupt:  # Ctrl-C meanwhile: the same quiet exit as during a command
    click.echo("livestyle: interrupted", err=True)
    sys.exit(130)
