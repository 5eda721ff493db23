"""The local stack runs the console and tells where it is (no processes started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facegate.runtime.settings import check_known
from facegate.tools import cli
from facegate.tools.devstack import Stack, StackConfig

pytestmark = pytest.mark.unit


def test_stack_env_and_status_name_the_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = Stack(StackConfig.for_tests(30950, state_dir=tmp_path))
    assert "console" in stack.process_names()
    env = stack.env()
    assert env["FACEGATE_CONSOLE_URL"] == "http://127.0.0.1:30957"
    assert env["FACEGATE_CONSOLE_PORT"] == "30957"
    check_known(env)  # every variable the stack hands out is a declared setting
    assert "export FACEGATE_CONSOLE_URL='http://127.0.0.1:30957'" in stack.export_lines()
    assert stack._spec("console").argv[-2:] == ["-m", "services.console"]
    state = str(tmp_path)
    assert cli.main(["stack", "status", "--state-dir", state]) == 1  # nothing runs
    out = capsys.readouterr().out
    assert "console" in out and "console: http://127.0.0.1:18710" in out


def test_console_port_collisions_are_refused(tmp_path: Path) -> None:
    from facegate.core.errors import ConfigError

    with pytest.raises(ConfigError, match="collide"):
        StackConfig(state_dir=tmp_path, console_port=18700)
