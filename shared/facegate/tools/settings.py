"""Variables the tools read: the command line, the test suite, the benchmarks."""

from __future__ import annotations

from pydantic import Field

from facegate.runtime.settings import OptionalPath, Settings


class ToolSettings(Settings):
    """Client-side and test-side settings (no service reads these)."""

    ingest_url: str | None = Field(
        None, description="where `facegate snap` and cameras reach ingest (default: host/port)"
    )
    console_url: str | None = Field(
        None, description="the operators' console (set by `facegate stack env`; printed by "
        "`facegate stack status`)"
    )
    console_screenshots: OptionalPath = Field(
        None, description="where the console's browser test saves its page screenshots "
        "(default: a temporary folder; docs/console to refresh the README's)"
    )
    lfw_dir: OptionalPath = Field(
        None, description="LFW View 1 for the lfw tests (default ../shared/data/lfw-view1)"
    )
    test_base_port: int = Field(26300, ge=1024, le=65000, description="integration tests' ports")
    e2e_base_port: int = Field(26400, ge=1024, le=65000, description="end-to-end tests' ports")
    test_ready_timeout_s: float | None = Field(
        None, gt=0, le=3600, description="how long test stacks wait for their services"
    )
    bench_smoke_base_port: int = Field(
        27410, ge=1024, le=65000, description="the e2e benchmark smoke test's ports"
    )
    schemathesis_examples: int = Field(
        30, ge=1, le=10000, description="test cases per operation of the schemathesis run"
    )


__all__ = ["ToolSettings"]
