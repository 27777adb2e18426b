// Drives Debian's Chromium (headless, through playwright-core) through echo_gateway's token
// inspector: pastes the demo's valid, expired and no-scope tokens and asserts the verdicts the
// page shows. Run by scripts/check_inspector.sh, which starts the demo and passes:
//   INSPECTOR_URL, VALID_TOKEN, EXPIRED_TOKEN, NO_SCOPE_TOKEN, and optionally SCREENSHOT (a path).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};
const url = env("INSPECTOR_URL");
const origin = new URL(url).origin;

// The flags this machine's Chromium needs (no sandbox as root, no background networking), and
// a fresh, empty profile.
const profile = mkdtempSync(join(tmpdir(), "inspector-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1180, height: 900 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

let failed = false;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("request", (r) => {
    if (!r.url().startsWith(origin)) problems.push(`a request left the page's origin: ${r.url()}`);
  });

  const response = await page.goto(url);
  assert.equal(response.status(), 200);
  const headers = response.headers();
  assert.equal(headers["cache-control"], "no-store");
  assert.match(headers["content-security-policy"], /default-src 'none'/);
  assert.match(headers["content-security-policy"], /frame-ancestors 'none'/);

  async function explain(token) {
    await page.fill("#token", token);
    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/_inspector/explain")),
      page.click("#explain"),
    ]);
    assert.equal(answer.status(), 200);
    assert.equal(answer.headers()["cache-control"], "no-store");
    await page.waitForFunction(() => !document.getElementById("result").hidden);
    const verdict = await page.textContent("#verdict");
    const rows = await page.$$eval("#checks tbody tr", (trs) =>
      trs.map((tr) => ({ check: tr.dataset.check, outcome: tr.dataset.outcome })),
    );
    const failures = rows.filter((r) => r.outcome === "fail").map((r) => r.check);
    return { verdict, rows, failures };
  }

  const valid = await explain(env("VALID_TOKEN"));
  assert.match(valid.verdict, /^200 accepted/);
  assert.deepEqual(valid.failures, []);
  assert.ok(valid.rows.length >= 12, `rows: ${JSON.stringify(valid.rows)}`);
  console.log(`inspector: valid token -> ${valid.verdict}`);

  const noScope = await explain(env("NO_SCOPE_TOKEN"));
  assert.match(noScope.verdict, /^403 insufficient_scope/);
  assert.deepEqual(noScope.failures, ["requirement"]);
  console.log(`inspector: no-scope token -> ${noScope.verdict}`);

  const expired = await explain(env("EXPIRED_TOKEN"));
  assert.match(expired.verdict, /^401 invalid_token \(expired\)/);
  assert.deepEqual(expired.failures, ["expiry"]);
  const claims = JSON.parse(await page.textContent("#claims"));
  assert.equal(claims.sub, "demo-user");
  console.log(`inspector: expired token -> ${expired.verdict}`);

  assert.deepEqual(problems, []);
  if (process.env.SCREENSHOT) {
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
    console.log(`inspector: screenshot written to ${process.env.SCREENSHOT}`);
  }
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
