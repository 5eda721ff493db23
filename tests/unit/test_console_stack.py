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


def test_operator_passwords_come_from_a_file_or_stdin_never_an_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from facegate.core.errors import ConfigError
    from facegate.tools.cli_operators import read_password

    secret = tmp_path / "pw"
    secret.write_text("from a file 123\nignored second line\n")
    assert read_password(str(secret)) == "from a file 123"
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin 456\n"))
    assert read_password("-") == "from stdin 456"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(ConfigError, match="no terminal"):
        read_password(None)  # not a terminal: no prompt, a clear error
    with pytest.raises(ConfigError, match="cannot read"):
        read_password(str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        read_password(str(tmp_path / "empty"))
