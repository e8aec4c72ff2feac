"""The README's two set-up commands and .ci/run must not drift apart: CI runs exactly the
README's commands in a fresh virtual environment, with the torch a newcomer's pip resolves, and
tests the lowest torch pyproject.toml declares."""

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


def ci_lines() -> list[str]:
    return [line.strip() for line in CI.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_readme_opens_with_exactly_two_commands_the_second_running_the_tests():
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert "bert4rec demo" in commands[0]
    assert "python -m pytest" in commands[1]


def test_ci_extracts_the_readme_commands_verbatim():
    extraction = next(line for line in ci_lines() if line.startswith("readme_command()"))
    script = f'{extraction}\nprintf "%s\\n%s" "$(readme_command 1)" "$(readme_command 2)"'
    found = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout
    assert found.splitlines() == readme_commands()


def test_ci_runs_them_in_a_fresh_venv_without_pinning_torch_first():
    lines = ci_lines()
    tests, main_job = lines.index('bash -c "$test_command"'), lines.index(
        'bash -c "$main_command" | tee "$envs/demo.txt"')
    venv = lines.index('python -m venv "$envs/newcomer"')
    assert venv < tests < main_job
    assert not any("torch==" in line or "pip install" in line for line in lines[venv:main_job])


def test_the_floor_ci_tests_is_the_floor_pyproject_declares():
    declared = re.findall(r'^ *"(torch[^"]*)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert len(declared) == 1 and re.fullmatch(r"torch>=[0-9.]+", declared[0]), declared
    declared = declared[0]
    extraction = next(line for line in ci_lines() if line.startswith("floor=$("))
    found = subprocess.run(["bash", "-c", f'{extraction}\nprintf %s "$floor"'], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    assert found == declared.removeprefix("torch>=")
    assert 'python -m pip install -q "torch==$floor"' in ci_lines()
