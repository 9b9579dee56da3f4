"""Sub-commands imported only when they run: ``aiaas --help`` and ``aiaas models list`` must not pay for
SQLAlchemy, httpx, the optimizer or the catalog (they made every command take ~1.7 s to start).

Every group of the CLI is a ``LeanGroup``: its flags that are not given (``--help``, ``--install-completion``,
``--show-completion``) read False rather than None. Typer 0.29 passes a bool flag's bool as is but coerces
anything else -- None included -- through a pydantic ``TypeAdapter``, so ``aiaas keys --help`` imported pydantic
(~0.1 s) for the root group's unset ``--help``. ``tests/cli/test_cli_imports.py`` notices when that changes.

A ``LazyGroup`` lists its lazy commands with a one-line help from a table, and imports the module that
defines one only when that command is invoked (or asked for its own ``--help``). The modules keep their
``register(app)`` functions; a loader calls it on a throwaway Typer app and takes the command by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import typer
from typer import _click as click  # typer 0.29 vendors click: its groups take its own types
from typer.core import TyperCommand, TyperGroup, TyperOption

Loader = Callable[[], click.Command]


def from_register(module: str, name: str, group: str | None = None, with_models: bool = False) -> Loader:
    """The command ``name`` that ``module.register(app[, models_app])`` adds to ``app`` (or to the ``group``
    sub-app when given, e.g. ``models``)."""

    def load() -> click.Command:
        mod = importlib.import_module(module)
        app, models = typer.Typer(), typer.Typer()
        mod.register(app, models) if with_models else mod.register(app)
        source = typer.main.get_group(models if group == "models" else app)
        command = source.commands.get(name)
        if command is None:  # pragma: no cover -- a table entry that does not match its module
            raise RuntimeError(f"{module}.register adds no command {name!r}")
        return command

    return load


def from_attr(module: str, attr: str) -> Loader:
    """A Typer sub-app kept in ``module.attr`` (e.g. ``aiaas.cli.catalog:catalog_app``)."""

    def load() -> click.Command:
        return typer.main.get_command(getattr(importlib.import_module(module), attr))

    return load


class LeanGroup(TyperGroup):
    """A Typer group whose flags without a default default to False (see the module docstring)."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        for p in params:
            if isinstance(p, TyperOption) and p.is_bool_flag and p.default is None:
                p.default = False
        return params


class LazyGroup(LeanGroup):
    lazy: dict[str, tuple[Loader, str]] = {}  # name -> (loader, one-line help); set by subclasses
    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = list(super().list_commands(ctx))
        return names + [n for n in self.lazy if n not in names]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in self.lazy:
            return command
        load, help_text = self.lazy[cmd_name]
        if self._listing:  # listing this group's commands in its --help: the table's line is enough
            return TyperCommand(cmd_name, help=help_text, short_help=help_text)
        command = load()
        self.add_command(command, cmd_name)
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
