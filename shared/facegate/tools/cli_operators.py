"""``facegate operators add|list``: the console's operator accounts.

The password comes from ``--password-file`` (``-`` for standard input, its
first line) or, on a terminal, a prompt asked twice; it is stored only as
an argon2id hash (:mod:`facegate.adapters.redis_operators`). Creating an
account is an audited admin action.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import Any

from facegate.core.errors import ConfigError
from facegate.tools.cli_context import cli_actor
from facegate.tools.cli_context import context as _ctx


def read_password(source: str | None) -> str:
    if source == "-":
        password = sys.stdin.readline().rstrip("\r\n")
    elif source:
        try:
            lines = Path(source).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read ({exc.strerror or exc})") from exc
        password = lines[0] if lines else ""
    else:
        if not sys.stdin.isatty():
            raise ConfigError("no terminal to ask for the password: use --password-file FILE|-")
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ")
    if not password:
        raise ConfigError("empty password")
    return password


def cmd_operators_add(args: argparse.Namespace) -> int:
    try:
        from facegate.adapters.redis_operators import RedisOperators, hash_password
    except ImportError as exc:
        raise ConfigError(
            f"operator accounts need the console extra ({exc.name}): "
            "pip install 'facegate[console]'"
        ) from exc
    from facegate.core import keys
    from facegate.core.audit import Action, AdminAction
    from facegate.core.operators import Role

    keys.check_operator(args.name)
    password_hash = hash_password(read_password(args.password_file))
    ctx = _ctx()
    operators = RedisOperators(ctx.store.client)
    if not operators.add_operator(args.name, Role(args.role), password_hash, replace=args.replace):
        print(f"operator {args.name} exists (--replace to set a new password and role)",
              file=sys.stderr)
        return 1
    ctx.store.record_admin(
        AdminAction(cli_actor(), Action.OPERATOR_ADD, args.name, time.time(),
                    {"role": args.role, "replaced": str(bool(args.replace)).lower()})
    )
    print(f"operator {args.name} ({args.role}) saved; sign in at the console "
          f"({ctx.env.get('FACEGATE_CONSOLE_URL', 'facegate stack status shows its URL')})")
    return 0


def cmd_operators_list(args: argparse.Namespace) -> int:
    from facegate.adapters.redis_operators import RedisOperators

    operators = RedisOperators(_ctx().store.client)
    names = operators.list_operators()
    if not names:
        print("no operators (facegate operators add NAME --role admin)")
    for name in names:
        found = operators.get_operator(name)
        if found is not None:
            print(f"{name:<24} {found.role.value}")
    return 0


def register(sub: Any) -> None:
    ops = sub.add_parser("operators", help="console sign-in accounts (admin or viewer)")
    osub = ops.add_subparsers(dest="operators_command", metavar="ACTION", required=True)
    add = osub.add_parser("add", help="create an operator (password hashed with argon2)")
    add.add_argument("name")
    add.add_argument("--role", choices=("admin", "viewer"), default="viewer",
                     help="admin: sees and changes; viewer: sees only (default)")
    add.add_argument("--password-file", metavar="FILE",
                     help="read the password from FILE's first line ('-': standard input); "
                     "default: ask on the terminal")
    add.add_argument("--replace", action="store_true",
                     help="overwrite an existing account's password and role")
    add.set_defaults(handler=cmd_operators_add)
    osub.add_parser("list", help="list operators and roles").set_defaults(
        handler=cmd_operators_list
    )
