// Headless-Chromium check of the admin console (/admin):
//
//   node tests/browser/admin.mjs <base-url> <admin-token> <stream-with-a-viewer> <stream-to-stop> <screenshot-dir>
//
// A wrong token in the link shows the sign-in form with a message (never a blank page); the right token
// typed into the form shows the streams and a session of <stream-with-a-viewer> (the test started that
// viewer); "Kick" on it removes its row within 3 s; "Stop" on <stream-to-stop> shows it stopped, "Start"
// shows it running again. A phone-sized viewport is used throughout. Any console error or CSP violation
// (but for the refused requests of the wrong-token step) fails the check. Screenshots of each view go to
// <screenshot-dir>. Prints one JSON line: {ok, kicked, steps, errors}.
import { launchChromium } from './chromium.mjs';

const [base, adminToken, watched, stoppable, shots] = process.argv.slice(2);
if (!shots) {
  console.error('usage: node tests/browser/admin.mjs <base-url> <admin-token> <stream-with-a-viewer> <stream-to-stop> <screenshot-dir>');
  process.exit(2);
}
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, failed: 'watchdog: more than 60 s' }));
  process.exit(1);
}, 60_000);
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

  phase = 'sign-out';
  await page.click('#signout');
  await page.locator('#signin').waitFor({ state: 'visible', timeout: 5_000 });
  const kept = await page.evaluate(() => sessionStorage.length);
  if (kept !== 0) throw new Error('signing out left the token in sessionStorage');
  out = { ok: errors.length === 0, kicked: session, steps, errors };
} catch (e) {
  out = { ok: false, failed: String(e.message || e), steps, errors };
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
