"""``facegate stack up|down|status|env|logs``: the local stack as processes.

Redis, SeaweedFS (``weed mini``), ingest, encoder and matcher workers on
loopback with the ports of docs/DESIGN.md; state under ``var/stack/``.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any


def _stack(args: argparse.Namespace) -> Any:
    from facegate.tools.devstack import Stack, StackConfig

    over: dict[str, Any] = {}
    if getattr(args, "encoders", None) is not None:
        over["encoders"] = args.encoders
    if getattr(args, "matchers", None) is not None:
        over["matchers"] = args.matchers
    if getattr(args, "ready_timeout", None) is not None:
        over["ready_timeout_s"] = args.ready_timeout
    if os.environ.get("FACEGATE_MQTT_URL", "").strip():  # the MQTT bridge runs too
        over["mqtt_url"] = os.environ["FACEGATE_MQTT_URL"].strip()
    return Stack(StackConfig.default(args.state_dir, **over))


def _print_status(statuses: Any) -> None:
    for s in statuses:
        state = f"running (pid {s.pid})" if s.running else "stopped"
        extra = f"  [{s.detail}]" if s.detail else ""
        print(f"{s.name:<12} {state:<22} log {s.log}{extra}")


def _print_metrics(stack: Any) -> None:
    """Where Prometheus scrapes each process (workers: /healthz, /readyz beside it)."""
    print("metrics (Prometheus /metrics; the workers also answer /healthz and /readyz):")
    for name, url in stack.config.metrics_urls().items():
        print(f"  {name:<10} {url}")


def cmd_up(args: argparse.Namespace) -> int:
    logging.getLogger("facegate.tools.devstack").setLevel(logging.INFO)
    stack = _stack(args)
    print(f"starting the local stack in {stack.state_dir} (first start converts the model)")
    _print_status(stack.up())
    print(f"ingest: {stack.config.ingest_url}   S3: {stack.config.s3_endpoint}   "
          f"Redis: {stack.config.redis_url}")
    if stack.config.mqtt_url:
        from facegate.tools.devstack.mqtt import health_url

        print(f"MQTT bridge -> {stack.config.mqtt_url}   health: {health_url(stack)}")
    _print_console(stack)
    _print_metrics(stack)
    print("the facegate commands use this stack's settings; `facegate stack env` exports them")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stopped = _stack(args).down()
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def _print_console(stack: Any) -> None:
    if "console" in stack.config.services:
        print(f"console: {stack.config.console_url}   (FACEGATE_CONSOLE_URL; sign-in accounts: "
              "facegate operators add NAME --role admin)")


def cmd_status(args: argparse.Namespace) -> int:
    stack = _stack(args)
    statuses = stack.status()
    _print_status(statuses)
    _print_console(stack)
    _print_metrics(stack)
    return 0 if all(s.running for s in statuses) else 1


def cmd_env(args: argparse.Namespace) -> int:
    print(_stack(args).export_lines(), end="")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    print(_stack(args).tail(args.name, args.lines))
    return 0


def register(sub: Any) -> None:
    stack = sub.add_parser("stack", help="start/stop the local Redis + SeaweedFS + services")
    ssub = stack.add_subparsers(dest="stack_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--state-dir", type=Path, default=None,
                       help="where pids, logs and data live (default var/stack)")
        return p

    up = common(ssub.add_parser("up", help="start everything and wait until ready"))
    up.add_argument("--encoders", type=int, help="encoder worker processes (1)")
    up.add_argument("--matchers", type=int, help="matcher worker processes (1)")
    up.add_argument("--ready-timeout", type=float, default=300.0,
                    help="seconds to wait for each process (300)")
    up.set_defaults(handler=cmd_up)
    common(ssub.add_parser("down", help="stop everything")).set_defaults(handler=cmd_down)
    common(ssub.add_parser("status", help="what runs")).set_defaults(handler=cmd_status)
    common(ssub.add_parser("env", help="print export lines of the stack's settings")
           ).set_defaults(handler=cmd_env)
    logs = common(ssub.add_parser("logs", help="the last lines of one process's log"))
    logs.add_argument("name", help="redis, seaweedfs, ingest, encoder-1, matcher-1...")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.set_defaults(handler=cmd_logs)
