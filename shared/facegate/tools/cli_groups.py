"""Access groups and door rules on the command line.

::

    facegate groups add staff
    facegate groups members staff add erin frank
    facegate groups members staff remove frank
    facegate groups members staff
    facegate groups list
    facegate groups remove staff
    facegate doors allow front --group staff --schedule 'mon-fri 07:00-19:00'
    facegate doors allow front --person dave --schedule 'fri 22:00-02:00'
    facegate doors allow front alice            (any time, as before)
    facegate doors disallow front --group staff --person dave

Schedules are weekly windows on the building's wall clock
(``FACEGATE_TIMEZONE`` of the matcher; :mod:`facegate.core.schedule`).
``facegate doors list`` prints each door's rules.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from facegate.core.access import RuleKind
from facegate.core.audit import Action
from facegate.core.policy import DoorPolicy
from facegate.tools.cli_context import context as _ctx


def rule_lines(policy: DoorPolicy) -> list[str]:
    """The lines ``doors list`` and ``doors allow`` print about who may pass when."""
    lines = [f"    at any time: {', '.join(sorted(policy.allowed)) or '-'}"]
    lines += [f"    {rule}" for rule in policy.rules]
    return lines


def cmd_groups_add(args: argparse.Namespace) -> int:
    created = _ctx().store.add_group(args.group)
    if created:
        _ctx().admin().audit(Action.GROUP_ADD, args.group)
    print(f"group {args.group} {'created' if created else 'exists already'}")
    return 0


def cmd_groups_remove(args: argparse.Namespace) -> int:
    if not _ctx().store.delete_group(args.group):
        print(f"no group {args.group}", file=sys.stderr)
        return 1
    _ctx().admin().audit(Action.GROUP_REMOVE, args.group)
    print(f"group {args.group} removed (door rules naming it now let nobody in)")
    return 0


def cmd_groups_list(args: argparse.Namespace) -> int:
    store = _ctx().store
    groups = store.list_groups()
    if not groups:
        print("no groups (facegate groups add GROUP)")
    for group in groups:
        print(f"{group:<16} {', '.join(store.group_members(group)) or '-'}")
    return 0


def cmd_groups_members(args: argparse.Namespace) -> int:
    store = _ctx().store
    if args.group not in store.list_groups():
        print(f"no group {args.group} (facegate groups add {args.group})", file=sys.stderr)
        return 1
    if args.action == "add":
        people = set(store.people())
        for person in args.people:
            store.add_member(args.group, person)
            if person not in people:
                print(f"note: {person} is not enrolled (yet)", file=sys.stderr)
        _ctx().admin().audit(
            Action.GROUP_MEMBERS_ADD, args.group, people=",".join(sorted(args.people))
        )
    elif args.action == "remove":
        for person in args.people:
            store.remove_member(args.group, person)
        _ctx().admin().audit(
            Action.GROUP_MEMBERS_REMOVE, args.group, people=",".join(sorted(args.people))
        )
    elif args.people:
        print("give add or remove before the names", file=sys.stderr)
        return 2
    print(f"group {args.group}: {', '.join(store.group_members(args.group)) or '-'}")
    return 0


def cmd_doors_allow(args: argparse.Namespace) -> int:
    admin = _ctx().admin()
    people = [*args.people, *(args.person or [])]
    if not people and not args.group:
        print("name someone: NAME, --person NAME or --group GROUP", file=sys.stderr)
        return 2
    policy = None
    for person in people:
        policy = admin.allow_rule(args.door, RuleKind.PERSON, person, args.schedule)
    for group in args.group or []:
        policy = admin.allow_rule(args.door, RuleKind.GROUP, group, args.schedule)
    assert policy is not None
    print("\n".join([f"door {policy.door}:", *rule_lines(policy)]))
    return 0


def cmd_doors_disallow(args: argparse.Namespace) -> int:
    people = [*args.people, *(args.person or [])]
    policy = _ctx().admin().disallow(args.door, people, args.group or [])
    print("\n".join([f"door {policy.door}:", *rule_lines(policy)]))
    return 0


def register_door_commands(dsub: Any) -> None:
    """``doors allow`` and ``doors disallow`` (under the ``doors`` command)."""
    allow = dsub.add_parser(
        "allow", help="let people or groups in at a door, at any time or on a weekly schedule"
    )
    disallow = dsub.add_parser("disallow", help="take people or groups off a door")
    for parser in (allow, disallow):
        parser.add_argument("door")
        parser.add_argument("people", nargs="*", metavar="NAME", help="people ('*': everyone)")
        parser.add_argument("--person", action="append", metavar="NAME", help="a person")
        parser.add_argument("--group", action="append", metavar="GROUP", help="a group")
    allow.add_argument(
        "--schedule",
        metavar="WINDOWS",
        help="weekly windows, e.g. 'mon-fri 07:00-19:00; sat 09:00-13:00' or "
        "'fri 22:00-02:00' (overnight), in FACEGATE_TIMEZONE (default: at any time)",
    )
    allow.set_defaults(handler=cmd_doors_allow)
    disallow.set_defaults(handler=cmd_doors_disallow)


def register(sub: Any) -> None:
    groups = sub.add_parser("groups", help="access groups (people allowed together)")
    gsub = groups.add_subparsers(dest="groups_command", metavar="ACTION", required=True)
    add = gsub.add_parser("add", help="create a group")
    add.add_argument("group")
    add.set_defaults(handler=cmd_groups_add)
    rm = gsub.add_parser("remove", help="delete a group and its memberships")
    rm.add_argument("group")
    rm.set_defaults(handler=cmd_groups_remove)
    gsub.add_parser("list", help="groups and their members").set_defaults(
        handler=cmd_groups_list
    )
    members = gsub.add_parser("members", help="list, add or remove a group's members")
    members.add_argument("group")
    members.add_argument("action", nargs="?", choices=("add", "remove"))
    members.add_argument("people", nargs="*", metavar="NAME")
    members.set_defaults(handler=cmd_groups_members)


__all__ = ["register", "register_door_commands", "rule_lines"]
