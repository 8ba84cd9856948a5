"""The gateway's page in a real browser: Debian's chromium, driven by playwright-core, with a
fake microphone playing the project's sample (tools/install-browser.sh installs both)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TIMING
from tests.support.proxy import CuttingProxy
from tests.web.conftest import (
    CLIENT_TOKEN,
    ROOT,
    SAMPLE,
    SAMPLE_WORDS,
    assert_no_gap,
    engine_url,
    grant,
    web_gateway,
    words_of,
)

pytestmark = [pytest.mark.engine, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
DRIVER = ROOT / "tests" / "web" / "browser" / "drive-page.mjs"
PLAYWRIGHT = ROOT / "tools" / "browser" / "node_modules" / "playwright-core"


@dataclass
class PageRun:
    finals: str = ""
    status: str = ""
    events: list[str] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, PLAYWRIGHT) if not p.exists()]
    if shutil.which("node") is None:
        missing.append("node")
    if missing:
        pytest.fail(f"run tools/install-browser.sh first: missing {', '.join(missing)}")


async def drive_page(
    url: str, *, on_finals: Any = None, screenshot: Path | None = None, token: str = ""
) -> PageRun:
    """Run the driver script against ``url``; ``on_finals(text)`` sees each change of the finals."""
    _require_browser()
    args = [str(DRIVER), url, str(SAMPLE), SAMPLE_WORDS[-1]]
    if screenshot is not None:
        args.append(str(screenshot))
    process = await asyncio.create_subprocess_exec(
        "node",
        *args,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PAGE_TIMEOUT_MS": str(int(90_000 * TIMING)), "PAGE_TOKEN": token},
    )
    run = PageRun()
    assert process.stdout is not None
    try:
        async with asyncio.timeout(150 * TIMING):
            while line := await process.stdout.readline():
                event = json.loads(line)
                run.lines.append(event)
                if event["event"] == "finals" and on_finals is not None:
                    on_finals(event["text"])
                elif event["event"] == "done":
                    run.finals, run.status, run.events = event["finals"], event["status"], event["events"]
            assert await process.wait() == 0, f"the driver failed: {run.lines[-5:]}"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return run


async def test_page_transcribes_the_microphone() -> None:
    """With client auth on, the page given a granted access token (sent as the subprotocol
    pair ``bearer, <token>``) streams the microphone: the sample's words appear, in order, and
    the stream closes cleanly."""
    async with engine_url() as upstream, web_gateway(upstream, auth_tokens=CLIENT_TOKEN) as gateway:
        token = (await grant(gateway, CLIENT_TOKEN))["access_token"]
        run = await drive_page(f"http://127.0.0.1:{gateway.http_port}/", token=token)
    assert_no_gap(SAMPLE_WORDS, words_of(run.finals))
    assert run.status == "closed"
    assert any("connected" in e for e in run.events)


async def test_page_transcript_has_no_gap_when_the_upstream_is_cut() -> None:
    """The upstream connection is cut mid-stream: the page shows the reconnect, and its
    transcript is the sample's words with none lost and none repeated."""
    async with engine_url() as engine:
        engine_port = int(engine.split(":")[2].split("/")[0])
        async with CuttingProxy(engine_port) as proxy:
            upstream = f"ws://127.0.0.1:{proxy.port}/v1/listen"
            async with web_gateway(upstream) as gateway:

                def cut_after_first_final(text: str) -> None:
                    if text and proxy.cuts == 0:
                        proxy.cut()

                # WEB_PAGE_SCREENSHOT=docs/web-page.png takes the README's picture of the page.
                screenshot = os.environ.get("WEB_PAGE_SCREENSHOT")
                run = await drive_page(
                    f"http://127.0.0.1:{gateway.http_port}/",
                    on_finals=cut_after_first_final,
                    screenshot=Path(screenshot) if screenshot else None,
                )
    assert proxy.cuts == 1
    assert any("reconnecting" in e for e in run.events), run.events
    assert any("reconnected" in e for e in run.events), run.events
    assert_no_gap(SAMPLE_WORDS, words_of(run.finals))
    assert run.status == "closed"
