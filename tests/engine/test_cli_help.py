"""The CLI explains itself: ``--version``, and help text with its default for every option."""

from __future__ import annotations

import argparse
from importlib import metadata

import pytest

from polyroute.cli import _parsers, build_parser, main


def test_version_names_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"polyroute {metadata.version('polyroute')}"


def test_every_option_of_every_command_has_help_with_its_default() -> None:
    missing, no_default = [], []
    for parser in _parsers(build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            if not action.help:
                missing.append(f"{parser.prog} {name}")
            shown = action.default not in (None, False, argparse.SUPPRESS)
            if shown and action.option_strings and str(action.default) not in text:
                no_default.append(f"{parser.prog} {name}={action.default}")
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"defaults not shown in --help: {no_default}"
