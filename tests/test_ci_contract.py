"""The README's two set-up commands and .ci/run must not drift apart: CI runs exactly the
README's test command, after installing the CPU build of torch."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / ".ci" / "run"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash)?\n(.*?)```", text, re.S)
    assert block, "README.md has no code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands_the_second_running_the_tests():
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert "python -m pytest" in commands[1]


def test_ci_extracts_the_readme_test_command_verbatim():
    extraction = next(line for line in CI.read_text().splitlines()
                      if line.startswith("test_command=$("))
    found = subprocess.run(["bash", "-c", f'{extraction}\nprintf %s "$test_command"'],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert found == readme_commands()[1]


def test_ci_runs_that_command_after_pinning_the_cpu_torch():
    lines = [line.strip() for line in CI.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert lines[-1] == 'bash -c "$test_command"'
    pin = next(i for i, line in enumerate(lines) if "pip install -q torch==" in line)
    assert pin < lines.index('bash -c "$test_command"')
    assert "torch==2.13.0" in lines[pin]
