"""CI runs the tests with exactly the command the README's Quickstart gives a developer."""

from __future__ import annotations

import re

from tests.live_servers import ROOT
from tests.test_transport_readme import section


def readme_test_command() -> str:
    blocks: list[str] = re.findall(r"```bash\n(.*?)```", section("Quickstart"), re.S)
    (line,) = [text for block in blocks for text in block.splitlines() if '".[test]"' in text]
    return line.split("&&", 1)[1].strip()


def test_ci_runs_the_readme_test_command_as_written() -> None:
    command = readme_test_command()
    assert command.startswith(".venv/bin/pytest ")
    ci = (ROOT / ".ci" / "run").read_text()
    (step,) = [text for text in ci.splitlines() if text.startswith('run_step "tests on mock')]
    assert step.endswith(f'" {command}')


def test_the_command_with_the_real_server_is_the_same() -> None:
    command = readme_test_command()
    with_server = f"MLTRAIN_TEST_MONGODB_URI=mongodb://127.0.0.1:27306 {command}"
    assert with_server in section("Quickstart")
