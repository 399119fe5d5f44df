// Drives the status page of a running relay in headless Chromium (Debian's, through playwright-core) for
// tests/it/status_page.rs. Protocol: one JSON object per line on stdout per step; the test answers on stdin.
//   argv: <admin base URL> <screenshot path>
//   stdin lines (JSON): {"expect": {...}} first; later {"stopped": url}, {"hashcheck": key},
//   {"preview": {section, server, action}}, {"apply": true}, {"done": true}
"use strict";
const path = require("path");
const readline = require("readline");
const dir = process.env.PLAYWRIGHT_DIR || "/work/.cache/playwright";
const { chromium } = require(path.join(dir, "node_modules/playwright-core"));

const [base, screenshot] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const lines = readline.createInterface({ input: process.stdin });
const queue = [];
let waiting = null;
lines.on("line", (l) => { const m = JSON.parse(l); if (waiting) { const w = waiting; waiting = null; w(m); } else queue.push(m); });
const next = () => queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => { waiting = r; });

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    const requests = [];
    page.on("request", (r) => requests.push(r.url()));
    page.on("dialog", (d) => { say({ step: "dialog", message: d.message() }); d.accept(); });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    const expect = (await next()).expect;
    await page.goto(base + "/");
    // Every section and member rendered, and non-zero rates in the sections that get traffic.
    await page.waitForFunction((e) => {
      const secs = [...document.querySelectorAll("[data-section]")].map((s) => s.dataset.section);
      if (e.sections.some((s) => !secs.includes(s))) return false;
      const members = [...document.querySelectorAll("[data-member]")].map((m) => m.dataset.member);
      if (e.members.some((m) => !members.includes(m))) return false;
      return e.busy.every((s) => {
        const r = document.querySelector(`[data-section="${s}"] [data-rate="received"]`);
        return r && /[1-9]/.test(r.textContent.split(" ")[1] || "");
      });
    }, expect, { timeout: 30000, polling: 100 });
    const seen = await page.evaluate(() => ({
      sections: [...document.querySelectorAll("[data-section]")].map((s) => s.dataset.section),
      members: Object.fromEntries([...document.querySelectorAll("[data-member]")].map((m) => [
        m.closest("[data-section]").dataset.section + " " + m.dataset.member, m.dataset.state])),
      rates: Object.fromEntries([...document.querySelectorAll("[data-section]")].map((s) => [s.dataset.section,
        Object.fromEntries([...s.querySelectorAll("[data-rate]")].map((r) => [r.dataset.rate, r.textContent]))])),
      accumulators: [...document.querySelectorAll("[data-accumulator]")].map((a) => a.textContent),
      charts: [...document.querySelectorAll("svg.chart")].map((c) => c.getAttribute("aria-label")),
      headings: [...document.querySelectorAll("h1, h2, h3")].map((h) => h.textContent),
      unlabelled: [...document.querySelectorAll("input, select")].filter((i) => !i.labels || i.labels.length === 0).map((i) => i.id),
    }));
    say({ step: "loaded", ...seen });

    const stopped = (await next()).stopped;
    const t0 = Date.now();
    await page.waitForFunction((url) => {
      const rows = [...document.querySelectorAll("[data-member]")].filter((m) => m.dataset.member === url);
      return rows.length > 0 && rows.every((m) => m.dataset.state === "down");
    }, stopped, { timeout: 30000, polling: 100 });
    say({ step: "down", after_ms: Date.now() - t0, ...await page.evaluate(() => ({
      all_down: [...document.querySelectorAll("section.all-down")].map((s) => s.dataset.section),
      alerts: [...document.querySelectorAll("[data-section] [role=alert]")].map((a) => a.closest("[data-section]").dataset.section),
    })) });

    const key = (await next()).hashcheck;
    await page.fill("#hc-key", key);
    await page.click("#hashcheck button[type=submit]");
    await page.waitForSelector("[data-hashcheck]");
    say({ step: "hashcheck", servers: await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("[data-hashcheck]")]
      .map((r) => [r.dataset.hashcheck, JSON.parse(r.querySelector("[data-servers]").dataset.servers)]))) });

    const p = (await next()).preview;
    await page.selectOption("#rc-section", p.section);
    await page.selectOption("#rc-action", p.action);
    await page.fill("#rc-server", p.server);
    await page.click("#ringchange button[type=submit]");
    await page.waitForSelector("[data-moved]");
    say({ step: "preview", moved: Number(await page.getAttribute("[data-moved]", "data-moved")),
      moves: await page.evaluate(() => [...document.querySelectorAll("[data-move]")].map((m) => m.dataset.move)) });

    await next(); // apply
    await page.click("#rc-result button.danger");
    await page.waitForSelector("[data-applied]");
    await page.waitForFunction((url) => [...document.querySelectorAll("[data-member]")].some((m) => m.dataset.member === url),
      p.server, { timeout: 30000, polling: 100 });
    say({ step: "applied", answer: await page.textContent("[data-applied]") });

    await next(); // done
    await page.screenshot({ path: screenshot, fullPage: true });
    say({ step: "done", requests, errors });
  } finally {
    await browser.close();
  }
  process.exit(0); // stdin stays open
})().catch((e) => { say({ step: "error", error: String(e && e.stack || e) }); process.exit(1); });
