"""MkDocs hook: one page per ``topk-plugin`` command, generated from its argparse parser at build time.

Why generated: a hand-written copy of ``--help`` drifts; this one is the parser's own
text every time the site is built. The pages land under ``cli/`` (``cli/shape-bias.md``, ...)
and ``cli/index.md`` lists them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mkdocs.structure.files import File

# Document this checkout's parsers, not whichever topk_plugin the interpreter running mkdocs has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from topk_plugin.cli.main import build_parser  # noqa: E402

COLUMNS = 100  # argparse wraps to $COLUMNS; fixed so the pages do not depend on the terminal


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """``{name: (parser, one-line help)}`` of a parser's subcommands."""
    for action in parser._actions:  # argparse keeps subparsers on a private action
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return {name: (sub, helps.get(name, "")) for name, sub in action.choices.items()}
    return {}


def _help(parser: argparse.ArgumentParser) -> str:
    formatter_class = parser.formatter_class
    parser.formatter_class = lambda prog: formatter_class(prog, width=COLUMNS)
    try:
        return parser.format_help()
    finally:
        parser.formatter_class = formatter_class


def pages() -> dict[str, str]:
    """``{path: markdown}`` for every command (nested ones like ``fastgan train`` included)."""
    root = build_parser()
    out, listing = {}, []
    for name, (sub, line) in _subparsers(root).items():
        nested = _subparsers(sub)
        body = [f"# topk-plugin {name}\n", "Generated from the command's own parser (the text of `--help`).\n",
                "```text", _help(sub).rstrip(), "```\n"]
        for child, (parser, _) in nested.items():
            body += [f"## topk-plugin {name} {child}\n", "```text", _help(parser).rstrip(), "```\n"]
        out[f"cli/{name}.md"] = "\n".join(body)
        listing.append(f"| [`{name}`]({name}.md) | {line} |")
    out["cli/index.md"] = "\n".join([
        "# Command line\n",
        "`topk-plugin COMMAND ...` (or `python -m topk_plugin`); every page below is generated from the "
        "parser, so it is exactly what `--help` prints.\n",
        "| command | what it does |", "| --- | --- |", *listing, "",
        "```text", _help(root).rstrip(), "```\n"])
    return out


def on_files(files, config):
    for path, text in pages().items():
        files.append(File.generated(config, path, content=text))
    return files
