"""Facts about the machine a benchmark ran on, for the JSON and BENCHMARKS.md.

Read from ``/proc`` (Linux): CPU model, logical CPUs (and the ones this
process may use), memory, the load average at the time of the call.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any


def _proc(name: str) -> str:
    path = Path("/proc") / name
    try:
        return path.read_text()
    except OSError:
        return ""


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages, or ``None`` off Linux."""
    fields = _proc("loadavg").split()
    if len(fields) < 3:
        return None
    return float(fields[0]), float(fields[1]), float(fields[2])


def machine_facts() -> dict[str, Any]:
    """CPU model, cores, memory and load, as a JSON-ready dict."""
    cpu = _proc("cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpu.splitlines()
             if line.startswith("model name")]
    model = names[0] if names else platform.processor() or platform.machine()
    mem_kb = 0
    for line in _proc("meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": load_average(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def describe(facts: dict[str, Any]) -> str:
    """One line for a report header."""
    load = facts.get("load_average")
    load_text = " / ".join(f"{v:.2f}" for v in load) if load else "n/a"
    return (
        f"{facts['cpu_model']}, {facts['usable_cpus']} usable of {facts['logical_cpus']} CPUs, "
        f"{facts['memory_gib']} GiB; load average {load_text}; {facts['date_utc']} UTC"
    )
