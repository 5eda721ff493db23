"""``facegate groups ...`` and ``facegate doors allow/disallow`` on the in-memory store."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from facegate.adapters.memory_objects import MemoryObjectStore
from facegate.adapters.memory_store import MemoryStore
from facegate.clients.admin import Admin
from facegate.core.access import AccessRule, RuleKind
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.core.schedule import Schedule
from facegate.tools import cli_groups, cli_pipeline
from facegate.tools.cli import main

pytestmark = pytest.mark.unit


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    store = MemoryStore()
    admin = Admin(None, store, MemoryObjectStore("b"), lambda r: None)  # type: ignore[arg-type]
    ctx = SimpleNamespace(store=store, admin=lambda: admin, env={})
    monkeypatch.setattr(cli_groups, "_ctx", lambda: ctx)
    monkeypatch.setattr(cli_pipeline, "_ctx", lambda: ctx)
    store.add_templates("erin", np.eye(1, 128, dtype=np.float32), "m")
    store.set_door(DoorPolicy("front", DoorMode.VERIFY, frozenset({"alice"}), 0.6))
    return store


def run(*argv: str) -> int:
    return main(list(argv))


def test_groups_and_members(store: MemoryStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("groups", "add", "staff") == 0
    assert run("groups", "members", "staff", "add", "erin", "frank") == 0
    out = capsys.readouterr()
    assert "group staff: erin, frank" in out.out and "frank is not enrolled" in out.err
    assert run("groups", "members", "staff", "remove", "frank") == 0
    assert run("groups", "list") == 0
    assert "staff            erin" in capsys.readouterr().out
    assert run("groups", "members", "nobody", "add", "erin") == 1
    assert run("groups", "remove", "staff") == 0 and store.list_groups() == []
    assert store.groups_of("erin") == []
    audited = [(a.action.value, a.target, dict(a.detail)) for _, a in store.admin_actions(10)]
    assert audited[::-1] == [
        ("group_add", "staff", {}),
        ("group_members_add", "staff", {"people": "erin,frank"}),
        ("group_members_remove", "staff", {"people": "frank"}),
        ("group_remove", "staff", {}),
    ]


def test_doors_allow_with_schedules_and_disallow(
    store: MemoryStore, capsys: pytest.CaptureFixture[str]
) -> None:
    run("groups", "add", "staff")
    office, night = "mon-fri 07:00-19:00", "fri 22:00-02:00"
    assert run("doors", "allow", "front", "--group", "staff", "--schedule", office) == 0
    assert run("doors", "allow", "front", "--person", "alice", "--schedule", night) == 0
    out = capsys.readouterr().out
    assert "group staff: mon,tue,wed,thu,fri 07:00-19:00" in out
    assert "person alice: fri 22:00-02:00" in out and "at any time: -" in out
    policy = store.get_door("front")
    assert policy is not None and policy.allowed == frozenset()  # alice now only on schedule
    assert policy.rules == (
        AccessRule(RuleKind.GROUP, "staff", Schedule.parse("mon-fri 07:00-19:00")),
        AccessRule(RuleKind.PERSON, "alice", Schedule.parse("fri 22:00-02:00")),
    )
    # a person without a schedule goes back to `allowed` (any time), as `doors allow DOOR NAME`
    assert run("doors", "allow", "front", "alice") == 0
    policy = store.get_door("front")
    assert policy is not None and policy.allowed == {"alice"} and len(policy.rules) == 1
    assert run("doors", "list") == 0
    assert "rule: group staff: mon,tue,wed,thu,fri 07:00-19:00" in capsys.readouterr().out
    assert run("doors", "disallow", "front", "alice", "--group", "staff") == 0
    policy = store.get_door("front")
    assert policy is not None and policy.allowed == frozenset() and policy.rules == ()


def test_bad_input_is_one_line_and_changes_nothing(
    store: MemoryStore, capsys: pytest.CaptureFixture[str]
) -> None:
    before = store.get_door("front")
    assert run("doors", "allow", "front", "--group", "nosuch") == 1
    assert "no group 'nosuch'" in capsys.readouterr().err
    run("groups", "add", "staff")
    assert run("doors", "allow", "front", "--group", "staff", "--schedule", "funday 7-8") == 1
    assert "bad window" in capsys.readouterr().err
    assert run("doors", "allow", "nodoor", "--group", "staff") == 1
    assert store.get_door("front") == before
    assert run("doors", "allow", "front") == 2


def test_revoke_erases_memberships_and_person_rules(store: MemoryStore) -> None:
    run("groups", "add", "staff")
    run("groups", "members", "staff", "add", "erin")
    run("doors", "allow", "front", "--person", "erin", "--schedule", "sat")
    run("doors", "allow", "front", "--group", "staff")
    assert run("revoke", "erin") == 0
    policy = store.get_door("front")
    assert policy is not None
    assert policy.rules == (AccessRule(RuleKind.GROUP, "staff"),)  # the group rule stays
    assert store.groups_of("erin") == [] and store.group_members("staff") == []
