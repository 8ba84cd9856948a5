// Drives the gateway's page in Debian's chromium (playwright-core, no bundled browser):
// open the page, press Start with a fake microphone playing a WAV file, report the finals as
// they appear (one JSON line each on stdout), press Stop once the last expected word is shown,
// wait for the socket to close, then print the end state. With a screenshot path, the picture
// is taken mid-stream, once a final and a grey interim are both on the page (else at the end).
//
// node drive-page.mjs <page url> <wav> <last word> [screenshot.png]
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const toolsDir = process.env.BROWSER_TOOLS_DIR || path.resolve(here, "../../../tools/browser");
const { chromium } = createRequire(path.join(toolsDir, "package.json"))("playwright-core");

const [url, wav, lastWord, screenshot] = process.argv.slice(2);
const timeoutMs = Number(process.env.PAGE_TIMEOUT_MS || 90000);
const emit = (event) => console.log(JSON.stringify(event));
const normalize = (text) => text.toLowerCase().replace(/[^a-z0-9' ]/g, " ").split(/\s+/).filter(Boolean);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless=new",
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${wav}%noloop`,
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
  ],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
  page.on("console", (message) => emit({ event: "console", type: message.type(), text: message.text() }));
  page.on("pageerror", (error) => emit({ event: "pageerror", text: String(error) }));
  await page.goto(url);
  // PAGE_TOKEN: typed into the page's Token field, sent as the subprotocol pair.
  if (process.env.PAGE_TOKEN) await page.fill("#token", process.env.PAGE_TOKEN);
  await page.click("#start");
  const deadline = Date.now() + timeoutMs;
  let reported = "";
  let stopped = false;
  let pictured = false;
  for (;;) {
    const finals = await page.textContent("#finals");
    if (finals !== reported) {
      emit({ event: "finals", text: finals });
      reported = finals;
    }
    const words = normalize(finals);
    if (!stopped && words.length && words[words.length - 1] === lastWord) {
      await page.click("#stop");
      stopped = true;
    }
    if (screenshot && !pictured && finals && (await page.textContent("#interim")).trim()) {
      await page.screenshot({ path: screenshot, fullPage: true });
      pictured = true;
    }
    const status = await page.textContent("#status");
    if (status.startsWith("closed")) break;
    if (Date.now() > deadline) {
      emit({ event: "timeout", status });
      failed = true;
      break;
    }
    await page.waitForTimeout(100);
  }
  if (screenshot && !pictured) await page.screenshot({ path: screenshot, fullPage: true });
  emit({
    event: "done",
    status: await page.textContent("#status"),
    finals: await page.textContent("#finals"),
    events: await page.$$eval("#events li", (items) => items.map((item) => item.textContent)),
  });
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
