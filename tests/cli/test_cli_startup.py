"""`bert4rec --help` and `--version` import no heavy library: only the command being run loads
its module, so start-up stays in a fraction of a second (docs/performance.md)."""

import argparse
import json
import subprocess
import sys

import pytest

from bert4rec.cli import COMMANDS, build_parser

HEAVY = ("torch", "polars", "numpy", "pandas", "fastapi", "uvicorn", "tqdm", "rapidfuzz")
PROBE = """
import json, sys
from bert4rec.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []])
def test_help_and_version_load_no_heavy_library(argv):
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True,
                          text=True, check=True)
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "bert4rec" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_help_lists_every_command_with_its_summary(capsys):
    with pytest.raises(SystemExit):
        build_parser(["--help"]).parse_args(["--help"])
    listed = " ".join(capsys.readouterr().out.split())  # as wrapped for any terminal width
    for name, (_, summary) in COMMANDS.items():
        assert f" {name} {summary}" in listed


def test_each_module_registers_exactly_its_commands_with_the_same_summary():
    registered = {}
    for module in {module for module, _ in COMMANDS.values()}:
        parser = build_parser([next(n for n, (m, _) in COMMANDS.items() if m == module)])
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for choice in action._choices_actions:
            if choice.dest in COMMANDS and COMMANDS[choice.dest][0] == module:
                registered[choice.dest] = (module, choice.help)
    assert registered == COMMANDS
