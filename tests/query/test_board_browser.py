"""The live board in a real headless Chromium: prices change while ticks flow.

Uses Debian's ``/usr/bin/chromium`` (``tools/install-browser.sh``) through
playwright; the screenshot lands in ``test-artifacts/query-board.png``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from query.conftest import Keys
from query.ingest_like import NS, IngestLike, make_ticks, new_symbol
from query.running_api import RunningApi

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/install-browser.sh"
)


async def test_board_updates_prices_from_the_stream(
    api: RunningApi, ingest: IngestLike, artifacts_dir: Path
) -> None:
    from playwright.async_api import async_playwright

    symbols = [new_symbol("B") for _ in range(3)]
    start = time.time_ns() - 3600 * NS
    # history in the lake (for the bar chart) and a latest tick in Redis for each
    for i, symbol in enumerate(symbols):
        ingest.ingest(
            make_ticks(symbol, 240, start_ns=start, step_ns=15 * NS, price=50.0 + 40 * i, seed=i)
        )

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(api.url + "/")
            await page.wait_for_selector('[data-testid="status"].live', timeout=10_000)
            price_cell = page.locator(f'tr[data-symbol="{symbols[0]}"] .price')
            await price_cell.wait_for(timeout=10_000)
            first = await price_cell.inner_text()

            # ticks flow: publish batches the way ingest does, and watch the cell
            seen = {first}
            for step in range(12):
                batch = []
                for i, symbol in enumerate(symbols):
                    batch += make_ticks(
                        symbol,
                        1,
                        start_ns=time.time_ns(),
                        price=60.0 + 40 * i + step,
                        seed=100 + step,
                    )
                rows = ingest.process(batch)
                ingest.to_redis(rows)
                expected = f"{next(r['price'] for r in rows if r['symbol'] == symbols[0]):.2f}"
                await page.wait_for_function(
                    "([sel, want]) => document.querySelector(sel)?.textContent === want",
                    arg=[f'tr[data-symbol="{symbols[0]}"] .price', expected],
                    timeout=5_000,
                )
                seen.add(await price_cell.inner_text())
                await asyncio.sleep(0.1)
            assert len(seen) >= 10, seen

            row = page.locator(f'tr[data-symbol="{symbols[0]}"]')
            assert (await row.locator(".spark-cell polyline").count()) == 1
            assert (await row.locator(".spread").inner_text()) not in ("", "–")
            assert "%" in await row.locator(".change").inner_text()

            # the bar chart draws the chosen symbol's bars from the lake
            await page.select_option("#chart-symbol", symbols[0])
            await page.wait_for_function(
                "() => /bars/.test(document.getElementById('chart-note').textContent) "
                "&& !/no bars/.test(document.getElementById('chart-note').textContent)",
                timeout=10_000,
            )
            painted = await page.evaluate(
                """() => { const c = document.getElementById('chart');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
            )
            assert errors == []
            assert painted > 1000
            await page.screenshot(path=str(artifacts_dir / "query-board.png"), full_page=True)
            assert errors == []
        finally:
            await browser.close()


async def test_board_asks_for_a_key_keeps_it_in_the_tab_and_shows_only_entitled_symbols(
    secure_api: RunningApi, keys: Keys, ingest: IngestLike, artifacts_dir: Path
) -> None:
    from playwright.async_api import async_playwright

    ent, den = new_symbol("ENT"), new_symbol("DEN")
    start = time.time_ns() - 600 * NS
    for symbol in (ent, den):
        ingest.ingest(make_ticks(symbol, 40, start_ns=start, step_ns=15 * NS))

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(secure_api.url + "/")
            # No key yet: the page asks for one instead of showing data.
            await page.wait_for_selector("#key-form:not([hidden])", timeout=10_000)
            assert await page.locator('[data-testid="status"]').inner_text() == "API key needed"
            assert await page.locator("#rows tr").count() == 0

            await page.fill("#key-input", "tlk_000000000000_" + "x" * 43)
            await page.click('#key-form button[type="submit"]')
            await page.wait_for_function(
                "() => /refused/.test(document.getElementById('key-message').textContent)",
                timeout=10_000,
            )

            await page.fill("#key-input", keys.ent)
            await page.click('#key-form button[type="submit"]')
            await page.wait_for_selector('[data-testid="status"].live', timeout=10_000)
            await page.locator(f'tr[data-symbol="{ent}"] .price').wait_for(timeout=10_000)
            # Live updates arrive over the authenticated stream, for entitled symbols only.
            rows = ingest.process(
                make_ticks(ent, 1, start_ns=time.time_ns(), price=123.45)
                + make_ticks(den, 1, start_ns=time.time_ns(), price=543.21)
            )
            ingest.to_redis(rows)
            expected = f"{next(r['price'] for r in rows if r['symbol'] == ent):.2f}"
            await page.wait_for_function(
                "([sel, want]) => document.querySelector(sel)?.textContent === want",
                arg=[f'tr[data-symbol="{ent}"] .price', expected],
                timeout=5_000,
            )
            await asyncio.sleep(0.5)
            assert await page.locator(f'tr[data-symbol="{den}"]').count() == 0
            shown = await page.locator("#rows tr").evaluate_all(
                "rows => rows.map(r => r.dataset.symbol)"
            )
            assert shown and all(s.startswith("ENT") for s in shown)
            # The key lives in this tab's sessionStorage, nowhere that outlives it.
            stored = await page.evaluate(
                "() => [sessionStorage.getItem('ticklake.apiKey'), "
                "JSON.stringify(localStorage), document.cookie]"
            )
            assert stored[0] == keys.ent and keys.ent not in stored[1] + stored[2]
            await page.screenshot(path=str(artifacts_dir / "query-board-key.png"))

            await page.click("#forget-key")
            await page.wait_for_selector("#key-form:not([hidden])", timeout=5_000)
            assert await page.evaluate("() => sessionStorage.getItem('ticklake.apiKey')") is None
            assert errors == []
        finally:
            await browser.close()
