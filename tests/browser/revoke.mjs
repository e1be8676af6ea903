// Headless-Chromium check that an issued viewer link plays and that revoking its token stops the page.
//
//   node tests/browser/revoke.mjs <watch-url-with-#token> [stream]
//
// With [stream], the link is a stream list's (a `*` token's, `/#token=...`): it waits for the list to show
// that stream, checks the list's links carry the token, and clicks it. Then it waits (up to 20 s) for >= 10 rendered frames, then prints {"phase":"playing",...} and
// waits for a line on stdin (the test revokes the token, then writes "revoked"). From then on it watches the
// page for up to 15 s and prints the result as one JSON line: how long frames kept coming while the player
// was playing after the revocation (the video element may present one more frame when the player tears the
// session down), and whether the player gave up with its "link no longer works" state
// (window.glasscast.denied).
// Environment: CHROMIUM = browser binary (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const [url, viaIndex] = process.argv.slice(2);
if (!url) {
  console.error('usage: node tests/browser/revoke.mjs <watch-url-with-#token>');
  process.exit(2);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ phase: 'done', ok: false, failed: 'watchdog: more than 60 s' }));
  process.exit(1);
}, 60_000);
watchdog.unref();

const snapshot = () => {
  const g = window.glasscast;
  return g ? { frames: g.framesRendered, state: g.state, denied: Boolean(g.denied), lastError: g.lastError } : null;
};

const userDataDir = await mkdtemp(join(tmpdir(), 'glasscast-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required',
  ],
});
let out = { phase: 'done', ok: false };
try {
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
  if (viaIndex) {
    const link = page.locator('#streams a', { hasText: viaIndex }).first();
    await link.waitFor({ timeout: 10_000 });
    const listed = await page.$$eval('#streams a', (as) => as.map((a) => ({ text: a.textContent, href: a.href })));
    const token = new URL(url).hash;
    if (!listed.every((l) => l.href.endsWith(token))) throw new Error(`a list link lost the token: ${JSON.stringify(listed)}`);
    console.log(JSON.stringify({ phase: 'listed', streams: listed.map((l) => l.text) }));
    await link.click();
    await page.waitForURL(/\/watch\//, { timeout: 10_000 });
  }
  let snap = null;
  for (const t0 = Date.now(); Date.now() - t0 < 20_000; await sleep(100)) {
    snap = await page.evaluate(snapshot);
    if (snap && snap.frames >= 10) break;
  }
  if (!snap || snap.frames < 10) throw new Error(`the link did not play: ${JSON.stringify(snap)}`);
  console.log(JSON.stringify({ phase: 'playing', frames: snap.frames }));

  const lines = createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once('line', resolve));
  const t0 = Date.now();
  const atRevoke = (await page.evaluate(snapshot)).frames;
  let lastGrowthMs = 0;
  let lastPlayingFrameMs = 0;
  let prev = atRevoke;
  let deniedMs = null;
  const growth = [];
  while (Date.now() - t0 < 15_000) {
    await sleep(100);
    snap = await page.evaluate(snapshot);
    if (snap.frames > prev) {
      lastGrowthMs = Date.now() - t0;
      growth.push([lastGrowthMs, snap.frames - prev, snap.state]);
      if (snap.state === 'playing') lastPlayingFrameMs = lastGrowthMs;
    }
    prev = snap.frames;
    if (snap.denied && deniedMs === null) deniedMs = Date.now() - t0;
    if (deniedMs !== null && Date.now() - t0 - lastGrowthMs > 2000) break;
  }
  out = {
    phase: 'done', ok: true, framesAtRevoke: atRevoke, framesAfter: prev - atRevoke, lastFrameAfterRevokeMs: lastGrowthMs,
    lastPlayingFrameAfterRevokeMs: lastPlayingFrameMs,
    deniedAfterMs: deniedMs, state: snap.state, lastError: snap.lastError, growth,
  };
} catch (err) {
  out = { phase: 'done', ok: false, failed: err.message.split('\n')[0] };
} finally {
  await context.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
