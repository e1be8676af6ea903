// Headless-Chromium check of the admin console (/admin):
//
//   node tests/browser/admin.mjs <base-url> <admin-token> <stream-with-a-viewer> <stream-to-stop> <screenshot-dir>
//
// A wrong token in the link shows the sign-in form with a message (never a blank page); the right token
// typed into the form shows the streams and a session of <stream-with-a-viewer> (the test started that
// viewer); "Kick" on it removes its row within 3 s; "Stop" on <stream-to-stop> shows it stopped, "Start"
// shows it running again. The stream table shows frames per second and a bitrate sparkline. Pushes: one
// added to an endpoint nobody serves shows as retrying, and "Remove" takes it away. Links: a link issued for <stream-with-a-viewer> (label "phone", at most 2
// sessions) shows with its QR code (saved as admin-qr.png for the test to decode), plays in a second page,
// shows in the sessions table by its label, and "Revoke" makes that player stop (its session leaves the
// table and the player says the link no longer works). Keys: "Rotate" adds a key, "Retire" on the older one
// removes it. Host: the facts, every on-call condition and the log panel show. A phone-sized viewport is
// used throughout. Any console error or CSP violation (but for the refused requests of the wrong-token step,
// and the revoked player's) fails the check. Screenshots of each view go to <screenshot-dir>. Prints one
// JSON line: {ok, kicked, link, conditions, steps, errors}.
import { launchChromium } from './chromium.mjs';

const [base, adminToken, watched, stoppable, shots] = process.argv.slice(2);
// Allowed by the test's auth.push_allow; nothing listens there, so the push keeps retrying.
const PUSH_URL = 'http://127.0.0.1:1/whip/nowhere';
if (!shots) {
  console.error('usage: node tests/browser/admin.mjs <base-url> <admin-token> <stream-with-a-viewer> <stream-to-stop> <screenshot-dir>');
  process.exit(2);
}
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, failed: 'watchdog: more than 120 s' }));
  process.exit(1);
}, 120_000);
watchdog.unref();

const browser = await launchChromium({ viewport: { width: 390, height: 844 } });
const errors = [];
const steps = [];
let phase = 'wrong-token';
let out = { ok: false };
try {
  const page = browser.context.pages()[0] || (await browser.context.newPage());
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // The wrong-token step's 401s are what it tests.
    if (phase === 'wrong-token' && /Failed to load resource.*40[13]/.test(m.text())) return;
    errors.push(`${phase}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`${phase}: ${e.message}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });

  await page.goto(`${base}/admin#token=not-the-admin-token`, { waitUntil: 'load' });
  await page.locator('#signin').waitFor({ state: 'visible', timeout: 10_000 });
  const message = await page.locator('#status').textContent();
  if (!/wrong|not the admin/i.test(message)) throw new Error(`wrong token, status says: ${message}`);
  if (new URL(page.url()).hash) throw new Error('the token stayed in the address bar');
  steps.push({ step: 'wrong-token', message });
  await page.screenshot({ path: `${shots}/admin-wrong-token.png`, fullPage: true });

  phase = 'signed-in';
  await page.fill('#token', adminToken);
  await page.press('#token', 'Enter');
  await page.locator('#console').waitFor({ state: 'visible', timeout: 10_000 });
  const row = page.locator(`#sessions tr`, { hasText: watched });
  await row.first().waitFor({ timeout: 10_000 });
  const session = await row.first().getAttribute('data-session');
  await page.locator(`#streams tr[data-stream="${stoppable}"]`).waitFor({ timeout: 10_000 });
  steps.push({ step: 'signed-in', session });
  await page.screenshot({ path: `${shots}/admin-console.png`, fullPage: true });

  phase = 'kick';
  const t0 = Date.now();
  await page.locator(`#sessions tr[data-session="${session}"] button`).click();
  await page.locator(`#sessions tr[data-session="${session}"]`).waitFor({ state: 'detached', timeout: 3_000 });
  steps.push({ step: 'kicked', ms: Date.now() - t0 });

  phase = 'stop-start';
  const streamRow = page.locator(`#streams tr[data-stream="${stoppable}"]`);
  await streamRow.locator('button', { hasText: 'Stop' }).click();
  await page.locator(`#streams tr[data-stream="${stoppable}"] td:nth-child(2)`, { hasText: 'stopped' }).waitFor({ timeout: 10_000 });
  await page.screenshot({ path: `${shots}/admin-stream-stopped.png`, fullPage: true });
  await streamRow.locator('button', { hasText: 'Start' }).click();
  await streamRow.locator('button', { hasText: 'Stop' }).waitFor({ timeout: 15_000 });
  const state = await streamRow.locator('td:nth-child(2)').textContent();
  steps.push({ step: 'restarted', state });

  phase = 'streams-detail';
  steps.push({ step: 'streams-detail', ...(await streamsDetail(page, watched)) });
  phase = 'pushes';
  steps.push({ step: 'pushes', ...(await addAndRemovePush(page, stoppable)) });

  phase = 'links';
  const links = await issueAndRevoke(page, browser.context, watched);
  phase = 'keys';
  steps.push({ step: 'keys', ...(await rotateAndRetire(page)) });
  phase = 'host';
  const conditions = await host(page);

  phase = 'sign-out';
  await page.click('#signout');
  await page.locator('#signin').waitFor({ state: 'visible', timeout: 5_000 });
  const kept = await page.evaluate(() => sessionStorage.length);
  if (kept !== 0) throw new Error('signing out left the token in sessionStorage');
  out = { ok: errors.length === 0, kicked: session, link: links.link, conditions, steps, errors };
} catch (e) {
  out = { ok: false, failed: String(e.message || e), steps, errors };
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);

// Issues a link, checks its QR code and that it plays in a second page, revokes it from the table and
// waits for that player to stop.
async function issueAndRevoke(page, context, stream) {
  await page.selectOption('#link-stream', stream);
  await page.selectOption('#link-ttl', '3600');
  await page.fill('#link-label', 'phone');
  await page.fill('#link-max', '2');
  await page.click('#issue button[type=submit]');
  await page.locator('#issued').waitFor({ state: 'visible', timeout: 10_000 });
  const link = await page.locator('#issued-link').getAttribute('href');
  if (!link.includes(`/watch/${stream}#token=`)) throw new Error(`issued link: ${link}`);
  await page.waitForFunction(() => document.getElementById('qr').naturalWidth > 0, null, { timeout: 5_000 });
  await page.locator('#qr').screenshot({ path: `${shots}/admin-qr.png` });
  const listed = page.locator('#links tr', { hasText: 'phone' });
  await listed.first().waitFor({ timeout: 5_000 });
  const expires = await listed.first().locator('td:nth-child(4)').textContent();
  await page.screenshot({ path: `${shots}/admin-links.png`, fullPage: true });

  const player = await context.newPage();
  player.on('pageerror', (e) => errors.push(`player: ${e.message}`));
  await player.goto(link, { waitUntil: 'load' });
  await player.waitForFunction(() => (window.glasscast?.framesRendered ?? 0) >= 10, null, { timeout: 20_000 });
  const session = page.locator('#sessions tr', { hasText: 'phone' });
  await session.first().waitFor({ timeout: 5_000 });
  steps.push({ step: 'link-plays', link: link.replace(/token=.*/, 'token=…'), expires });

  const t0 = Date.now();
  await listed.first().locator('button', { hasText: 'Revoke' }).click();
  await page.locator('#links tr', { hasText: 'phone' }).locator('td:nth-child(6)', { hasText: 'revoked' }).waitFor({ timeout: 3_000 });
  await page.locator('#sessions tr', { hasText: 'phone' }).waitFor({ state: 'detached', timeout: 5_000 });
  const gone = Date.now() - t0;
  await player.waitForFunction(() => window.glasscast?.denied === true, null, { timeout: 15_000 });
  const frames = await player.evaluate(() => window.glasscast.framesRendered);
  await new Promise((r) => setTimeout(r, 1000));
  const later = await player.evaluate(() => window.glasscast.framesRendered);
  if (later > frames) throw new Error(`the revoked player still renders: ${frames} then ${later}`);
  steps.push({ step: 'revoked', session_gone_ms: gone, player_denied_ms: Date.now() - t0 - 1000 });
  await player.close();
  return { link };
}

// The stream table's live numbers: frames per second in and out, and the bitrate sparkline once two
// refreshes have passed.
async function streamsDetail(page, stream) {
  const r = page.locator(`#streams tr[data-stream="${stream}"]`);
  await r.locator('svg.spark polyline').waitFor({ state: 'attached', timeout: 10_000 });
  const cells = await r.locator('td').allTextContents();
  if (cells[2] !== 'test pattern') throw new Error(`source: ${cells[2]}`);
  if (!/\d+\.\d \/ \d+\.\d/.test(cells[5])) throw new Error(`frames per second: ${cells[5]}`);
  if (!/\d+ kbit\/s/.test(cells[6])) throw new Error(`bitrate: ${cells[6]}`);
  const session = await page.locator('#sessions tbody tr').first().locator('td').allTextContents();
  return { source: cells[2], fps: cells[5], bitrate: cells[6], keyframes: cells[8], session_path: session[5], session_sent: session[8],
    session_rung: session[12] };
}

// Adds a push of `stream` to an endpoint nobody serves: it shows as retrying; Remove takes it away.
async function addAndRemovePush(page, stream) {
  await page.selectOption('#push-stream', stream);
  await page.fill('#push-url', PUSH_URL);
  await page.click('#push button[type=submit]');
  const r = page.locator('#pushes tbody tr', { hasText: stream }).first();
  await r.waitFor({ timeout: 10_000 });
  const id = (await r.getAttribute('data-push')).split('/')[1];
  // Nothing listens there: the attempt fails (a warning for the host panel's log) and the push retries.
  await page.waitForFunction(() => document.querySelector('#pushes tbody tr')?.dataset.state === 'retrying', null, { timeout: 15_000 });
  const state = await r.getAttribute('data-state');
  await page.screenshot({ path: `${shots}/admin-pushes.png`, fullPage: true });
  await r.locator('button', { hasText: 'Remove' }).click();
  await page.locator(`#pushes tr[data-push="${stream}/${id}"]`).waitFor({ state: 'detached', timeout: 10_000 });
  await page.locator('#pushes-empty').waitFor({ state: 'visible', timeout: 5_000 });
  return { id, state };
}

// Rotates the signing key, then retires the older one from the table.
async function rotateAndRetire(page) {
  const rows = () => page.locator('#keys tbody tr').count();
  const before = await rows();
  await page.click('#rotate');
  await page.waitForFunction((n) => document.querySelectorAll('#keys tbody tr').length === n + 1, before, { timeout: 5_000 });
  const older = page.locator('#keys tbody tr', { hasText: 'older' }).first();
  const kid = await older.getAttribute('data-kid');
  await page.screenshot({ path: `${shots}/admin-keys.png`, fullPage: true });
  await older.locator('button', { hasText: 'Retire' }).click();
  await page.locator(`#keys tr[data-kid="${kid}"]`).waitFor({ state: 'detached', timeout: 5_000 });
  return { before, rotated: before + 1, after: await rows(), retired: kid };
}

// The host panel: its facts and every on-call condition; returns the conditions' names and states.
async function host(page) {
  await page.locator('#host dt', { hasText: 'Uptime' }).waitFor({ timeout: 5_000 });
  const facts = await page.$$eval('#host dt', (dts) => dts.map((d) => [d.textContent, d.nextElementSibling.textContent]));
  const conditions = await page.$$eval('#conditions tbody tr', (trs) => trs.map((t) => ({ alert: t.dataset.alert, holds: t.dataset.holds })));
  const log = await page.locator('#log-note').textContent();
  const logged = await page.$$eval('#log tbody tr', (trs) => trs.map((t) => t.textContent));
  await page.locator('#host').scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${shots}/admin-host.png`, fullPage: true });
  steps.push({ step: 'host', facts: Object.fromEntries(facts), log, logged });
  return conditions;
}
