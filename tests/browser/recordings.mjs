// Headless-Chromium check of the admin console's recordings view (/admin, Recordings):
//
//   node tests/browser/recordings.mjs <base-url> <admin-token> <stream> <screenshot-dir>
//
// <stream> records (the test configured it) and has at least two finished files. Signs in with the admin
// token, picks <stream> in Recordings, plays its first finished file in the page's <video> (through the
// link the console gets for it) until the `playing` event, seeks into its middle and waits for `seeked`,
// then until playback has gone on from there (currentTime past the seek point, more decoded frames) and
// reads the picture back through a canvas (its luma range). Downloads that file, deletes another finished
// one (accepting the confirm dialog) and waits for its row to go, and stops the recording (the state says
// stopped, no file is being written). Every response for a recording file is kept (status, Range,
// Content-Range, whether it came through a signed link). Any console error or CSP violation fails the
// check; a screenshot goes to <screenshot-dir>/admin-recordings.png. Prints one JSON line:
// {ok, play, seek, after, luma, download, deleted, dialog, stopped, media, steps, errors, failed?}.
import { stat } from 'node:fs/promises';
import { launchChromium } from './chromium.mjs';
import { scriptArgs } from './player.mjs';

const [base, adminToken, stream, shots] =
  scriptArgs('tests/browser/recordings.mjs <base-url> <admin-token> <stream> <screenshot-dir>', 120_000);

const browser = await launchChromium({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const errors = [];
const media = [];
const steps = [];
let phase = 'sign-in';
let out = { ok: false };
try {
  const page = browser.context.pages()[0] || (await browser.context.newPage());
  watch(page);
  await signIn(page);

  phase = 'list';
  await page.locator('#recordings-heading').scrollIntoViewIfNeeded();
  await page.selectOption('#rec-stream', stream);
  await page.locator('#rec-state[data-state="recording"]').waitFor({ timeout: 10_000 });
  await page.waitForFunction(() => document.querySelectorAll('#recordings tbody tr[data-writing="false"]').length >= 2,
    null, { timeout: 20_000 });
  const finished = page.locator('#recordings tbody tr[data-writing="false"]');
  const files = await page.$$eval('#recordings tbody tr', (trs) => trs.map((t) => ({
    file: t.dataset.file, writing: t.dataset.writing, cells: [...t.cells].slice(0, 3).map((c) => c.textContent),
  })));
  steps.push({ step: 'listed', state: await page.locator('#rec-state').textContent(), files });

  phase = 'play';
  const file = await finished.first().getAttribute('data-file');
  const play = await playFile(page, finished.first());
  phase = 'seek';
  const seek = await seekToMiddle(page);
  const after = await goesOn(page, seek);
  const luma = await picture(page);
  await page.screenshot({ path: `${shots}/admin-recordings.png`, fullPage: true });

  phase = 'download';
  const download = await downloadFile(page, finished.first());
  phase = 'delete';
  const { deleted, dialog } = await deleteFile(page, finished.nth(1));
  phase = 'stop';
  const stopped = await stopRecording(page);
  await page.screenshot({ path: `${shots}/admin-recordings-stopped.png`, fullPage: true });
  out = { ok: errors.length === 0, file, play, seek, after, luma, download, deleted, dialog, stopped, media, steps, errors };
} catch (e) {
  out = { ok: false, failed: `${phase}: ${String(e.message || e)}`, media, steps, errors };
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);

// Console errors, page errors and CSP violations fail the check; responses for recording files are kept.
function watch(page) {
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${phase}: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`${phase}: ${e.message}`));
  page.on('response', async (r) => {
    const url = new URL(r.url());
    if (!/\/recordings\/[^/]+$/.test(url.pathname)) return;
    const headers = await r.request().allHeaders().catch(() => ({}));
    media.push({ file: url.pathname.split('/').pop(), method: r.request().method(), status: r.status(),
      range: headers.range || null, contentRange: r.headers()['content-range'] || null,
      signed: url.searchParams.has('sig'), bearer: 'authorization' in headers });
  });
  return page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
}

async function signIn(page) {
  await page.goto(`${base}/admin`, { waitUntil: 'load' });
  await page.locator('#signin').waitFor({ state: 'visible', timeout: 10_000 });
  await page.fill('#token', adminToken);
  await page.press('#token', 'Enter');
  await page.locator('#console').waitFor({ state: 'visible', timeout: 10_000 });
}

// Clicks Play on `row` and waits for the player's `playing` event with a picture.
async function playFile(page, row) {
  await page.evaluate(() => {
    const v = document.getElementById('rec-player');
    window.recEvents = {};
    for (const e of ['playing', 'seeking', 'seeked', 'ended', 'error']) {
      v.addEventListener(e, () => { window.recEvents[e] = (window.recEvents[e] || 0) + 1; });
    }
  });
  await row.locator('button', { hasText: 'Play' }).click();
  await page.waitForFunction(() => window.recEvents.playing > 0 && document.getElementById('rec-player').videoWidth > 0,
    null, { timeout: 15_000 });
  return page.evaluate(() => {
    const v = document.getElementById('rec-player');
    return { file: v.dataset.file, width: v.videoWidth, height: v.videoHeight, duration: v.duration,
      currentTime: v.currentTime, path: new URL(v.currentSrc).pathname, caption: document.getElementById('rec-playing').textContent };
  });
}

// Seeks to the middle and waits for `seeked`: the target, where it landed and the frames decoded by then.
async function seekToMiddle(page) {
  return page.evaluate(async () => {
    const v = document.getElementById('rec-player');
    if (!Number.isFinite(v.duration) || v.duration <= 0) throw new Error(`no finite duration: ${v.duration}`);
    const target = v.duration / 2;
    const before = v.currentTime;
    const seeked = new Promise((resolve) => v.addEventListener('seeked', resolve, { once: true }));
    v.currentTime = target;
    await seeked;
    return { duration: v.duration, before, target, landed: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames,
      paused: v.paused, ended: v.ended };
  });
}

// Waits until playback went on from the seek point: currentTime past it, and frames decoded since.
async function goesOn(page, seek) {
  const handle = await page.waitForFunction(({ target, frames }) => {
    const v = document.getElementById('rec-player');
    const q = v.getVideoPlaybackQuality();
    if (v.currentTime < target + 0.3 || q.totalVideoFrames <= frames) return false;
    return { currentTime: v.currentTime, frames: q.totalVideoFrames, dropped: q.droppedVideoFrames, events: window.recEvents };
  }, seek, { timeout: 10_000 });
  return handle.jsonValue();
}

// The luma range of the picture shown now (the video drawn on a small canvas): a blank picture has none.
async function picture(page) {
  return page.evaluate(() => {
    const v = document.getElementById('rec-player');
    const c = document.createElement('canvas');
    [c.width, c.height] = [80, 60];
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(v, 0, 0, c.width, c.height);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    const ys = [];
    for (let i = 0; i < px.length; i += 4) ys.push(Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]));
    return { min: Math.min(...ys), max: Math.max(...ys) };
  });
}

async function downloadFile(page, row) {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15_000 }),
    row.locator('button', { hasText: 'Download' }).click()]);
  const path = await download.path();
  return { name: download.suggestedFilename(), bytes: (await stat(path)).size, failure: await download.failure() };
}

// Deletes `row`'s file, accepting the confirm dialog, and waits for the row to go.
async function deleteFile(page, row) {
  const deleted = await row.getAttribute('data-file');
  let dialog = null;
  page.once('dialog', (d) => {
    dialog = { type: d.type(), message: d.message() };
    d.accept();
  });
  await row.locator('button', { hasText: 'Delete' }).click();
  await page.locator(`#recordings tr[data-file="${deleted}"]`).waitFor({ state: 'detached', timeout: 10_000 });
  return { deleted, dialog };
}

// Stop recording: the state says stopped and no file is being written any more.
async function stopRecording(page) {
  await page.click('#rec-stop');
  await page.locator('#rec-state[data-state="stopped"]').waitFor({ timeout: 10_000 });
  await page.waitForFunction(() => !document.querySelector('#recordings tbody tr[data-writing="true"]'), null, { timeout: 10_000 });
  return {
    state: await page.locator('#rec-state').textContent(),
    startEnabled: await page.locator('#rec-start').isEnabled(),
    files: await page.locator('#recordings tbody tr').count(),
  };
}
