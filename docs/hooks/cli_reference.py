"""The command-line reference, generated from the argument parsers (``cyclegan.cli.build_parser()``).

Registered as a MkDocs hook (``mkdocs.yml``: ``hooks:``): when the page ``reference/cli.md`` is built,
its marker ``<!-- cli-reference -->`` is replaced with every subcommand (nested ones included) and
every flag, with its default and help text. Reading the parsers at build time means the page cannot
drift from the code. ``python docs/hooks/cli_reference.py`` prints the same Markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- cli-reference -->"
PAGE = "reference/cli.md"



def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("cyclegan",),
         summary: str | None = None) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """Every parser under ``parser`` (itself first), with its command path and the one-line help its
    parent lists it with."""
    yield path, parser, summary
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name), helps.get(name))


def flag_actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """The parser's arguments and flags, without ``--help`` and the subcommand selector."""
    for action in parser._actions:
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            yield action


def field_defaults() -> dict[str, Any]:
    """Field name → the config dataclasses' default: what a flag built from them (whose parser default
    is ``SUPPRESS``, so that an absent flag does not override a preset) falls back to."""
    from cyclegan.config import TrainConfig

    defaults: dict[str, Any] = {}
    for klass in TrainConfig.sections().values():
        for f in dataclasses.fields(klass):
            if f.default is not dataclasses.MISSING:
                defaults.setdefault(f.name, f.default)
    return defaults


def help_text(parser: argparse.ArgumentParser, action: argparse.Action, fields: dict[str, Any]) -> str:
    """The flag's help as ``--help`` prints it (``%(default)s`` expanded), without the "(default: X)"
    that ``add_dataclass_flags`` appends: the table has a column for it."""
    if not action.help or action.help is argparse.SUPPRESS:
        return ""
    text = " ".join(parser._get_formatter()._expand_help(action).split())
    suffix = f" (default: {fields.get(action.dest)})"
    return text[: -len(suffix)] if text.endswith(suffix) else text


def default_text(action: argparse.Action, fields: dict[str, Any], dataclass_flags: bool) -> str:
    """The default as the table shows it (Markdown)."""
    if action.required:
        return "required"
    if action.nargs == 0:
        return "switch"
    default = action.default
    if default is argparse.SUPPRESS:
        if not (dataclass_flags and action.dest in fields):
            return "the recipe's"
        default = fields[action.dest]
    if default is None or default == "":
        return "—"
    return f"`{default}`"


def escape(text: str) -> str:
    """Help text as Markdown inside a table cell: code spans kept, HTML-like and emphasis characters
    outside them escaped, and pipes escaped everywhere (a pipe ends a cell, even in a code span)."""
    parts = text.split("`")
    for i, part in enumerate(parts):
        if i % 2 == 0:  # outside a code span
            part = part.replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            part = part.replace("*", "\\*").replace("_", "\\_").replace("[", "\\[")
        parts[i] = part.replace("|", "\\|")
    return "`".join(parts) if len(parts) % 2 == 1 else "\\`".join(parts)


def invocation(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """``--flag METAVAR`` (or the positional's name), as ``--help`` writes it."""
    return parser._get_formatter()._format_action_invocation(action)


def render_parser(path: tuple[str, ...], parser: argparse.ArgumentParser, summary: str | None,
                  fields: dict[str, Any]) -> str:
    """One command's section: its heading, what it does, its flags by group."""
    depth = min(len(path) + 1, 4)
    lines = [f"{'#' * depth} `{' '.join(path)}`", ""]
    if summary:
        lines += [escape(summary[0].upper() + summary[1:]) + ".", ""]
    if parser.description and len(path) == 1:
        lines += [escape(parser.description), ""]
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subcommands:
        names = ", ".join(f"[`{name}`](#{anchor((*path, name))})" for name in action.choices)
        lines += [f"Subcommands: {names}.", ""]
    dataclass_flags = path[-1] == "train"
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a in set(flag_actions(parser))]
        if not actions:
            continue
        visible = [a for a in actions if a.help is not argparse.SUPPRESS]
        hidden = [a for a in actions if a.help is argparse.SUPPRESS]
        lines += [f"**{escape(group.title or 'options')}**", ""]
        if visible:
            lines += ["| flag | default | what it does |", "| --- | --- | --- |"]
            for action in visible:
                flag = invocation(parser, action).replace("|", "\\|")
                lines.append(f"| `{flag}` | {default_text(action, fields, dataclass_flags)} | "
                             f"{escape(help_text(parser, action, fields))} |")
            lines.append("")
        if hidden:
            flags = ", ".join(f"`{a.option_strings[0]}`" for a in hidden)
            lines += [f"Accepted and ignored (the reference's display and saving flags): {flags}.", ""]
    for group in parser._mutually_exclusive_groups:
        if group.required:
            flags = ", ".join(f"`{a.option_strings[0]}`" for a in group._group_actions)
            lines += [f"One of {flags} is required.", ""]
    if parser.epilog:
        lines += ["```text", parser.epilog.rstrip(), "```", ""]
    return "\n".join(lines)


def anchor(path: tuple[str, ...]) -> str:
    """The id MkDocs' ``toc`` extension gives the heading `` `cyclegan data synthetic` ``."""
    return "-".join(path).lower()


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The whole reference: every command of ``parser`` (default: ``cyclegan.cli.build_parser()``)."""
    if parser is None:
        from cyclegan.cli import build_parser

        parser = build_parser()
    fields = field_defaults()
    return "\n".join(render_parser(path, sub, summary, fields) for path, sub, summary in walk(parser))


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """MkDocs hook: fill the CLI reference page."""
    if page.file.src_uri == PAGE:
        return markdown.replace(MARKER, render())
    return markdown


if __name__ == "__main__":
    print(render())
