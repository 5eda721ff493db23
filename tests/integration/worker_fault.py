"""A real matcher process whose Celery loop fails once, as kombu's Redis
transport did after a Redis restart (``AttributeError`` in the consumer:
Celery's "Unrecoverable error"). Run by ``test_worker_restart_process.py``:
``python tests/integration/worker_fault.py --ready-file PATH``.

With ``WORKER_FAULT_ONCE=1`` in the environment, the consumer loop raises
3 s after it started; the variable is removed first, so the process that
:func:`facegate.adapters.celery_worker.run_worker` executes again (same pid,
same command line) runs without the fault.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

if os.environ.pop("WORKER_FAULT_ONCE", None) == "1":
    from celery.worker import loops

    original = loops.asynloop

    def asynloop(obj: Any, connection: Any, consumer: Any, blueprint: Any, hub: Any,
                 *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + 3.0

        def fail() -> None:
            if time.monotonic() > deadline:
                raise AttributeError("'NoneType' object has no attribute 'hostname' (injected)")

        hub.on_tick.add(fail)  # on_tick errors leave the loop (timer errors would be logged)
        return original(obj, connection, consumer, blueprint, hub, *args, **kwargs)

    loops.asynloop = asynloop
    print(f"worker_fault: faulty run, pid {os.getpid()}", flush=True)
else:
    print(f"worker_fault: clean run, pid {os.getpid()}", flush=True)

from services.matcher.__main__ import main

raise SystemExit(main(sys.argv[1:]))
