// Headless Firefox ESR check that the admin console plays a recording and seeks in it (Pop!_OS's default
// browser; recordings.mjs is the Chromium one, with download, delete and stop):
//
//   node tests/browser/recordings_firefox.mjs <base-url> <admin-token> <stream>
//
// <stream> records and has at least two finished files. Driven over WebDriver BiDi with puppeteer-core.
// Signs in with the admin token, picks <stream> in Recordings, clicks Play on its first finished file and
// waits for `playing` with a picture, seeks into the middle and waits for `seeked`, then for playback to go
// on from there (currentTime past the seek point, more frames decoded). Firefox decodes the file's H.264 in
// a <video> with the system's libavcodec (not OpenH264, which WebRTC needs). Any console error fails the
// check. Prints one JSON line: {ok, file, play, seek, after, errors, failed?}.
// Environment: FIREFOX = browser binary (default /usr/bin/firefox-esr).
import { launchFirefox } from './firefox_launch.mjs';
import { scriptArgs } from './player.mjs';

const [base, adminToken, stream] =
  scriptArgs('tests/browser/recordings_firefox.mjs <base-url> <admin-token> <stream>', 90_000);

// OpenH264 off, as on an offline appliance: the file's H.264 must still play (libavcodec decodes it).
const browser = await launchFirefox();
const errors = [];
let phase = 'sign-in';
let out = { ok: false };
try {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${phase}: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`${phase}: ${e.message}`));
  await page.goto(`${base}/admin`, { waitUntil: 'load', timeout: 15_000 });
  await page.waitForSelector('#signin', { visible: true, timeout: 10_000 });
  await page.type('#token', adminToken);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#console', { visible: true, timeout: 10_000 });

  phase = 'list';
  await page.waitForFunction((s) => [...document.querySelectorAll('#rec-stream option')].some((o) => o.value === s),
    { timeout: 10_000 }, stream);
  await page.select('#rec-stream', stream);
  await page.waitForFunction(() => document.querySelectorAll('#recordings tbody tr[data-writing="false"]').length >= 2,
    { timeout: 20_000 });

  phase = 'play';
  const file = await page.evaluate(() => {
    const v = document.getElementById('rec-player');
    window.recEvents = {};
    for (const e of ['playing', 'seeked', 'error']) v.addEventListener(e, () => { window.recEvents[e] = (window.recEvents[e] || 0) + 1; });
    const row = document.querySelector('#recordings tbody tr[data-writing="false"]');
    [...row.querySelectorAll('button')].find((b) => b.textContent === 'Play').click();
    return row.dataset.file;
  });
  await page.waitForFunction(() => window.recEvents.error || (window.recEvents.playing > 0 && document.getElementById('rec-player').videoWidth > 0),
    { timeout: 15_000 });
  const play = await page.evaluate(() => {
    const v = document.getElementById('rec-player');
    if (window.recEvents.error) throw new Error(`media error ${v.error && v.error.code}: ${v.error && v.error.message}`);
    return { file: v.dataset.file, width: v.videoWidth, height: v.videoHeight, duration: v.duration, audio: v.mozHasAudio ?? null,
      path: new URL(v.currentSrc).pathname };
  });

  phase = 'seek';
  const seek = await page.evaluate(async () => {
    const v = document.getElementById('rec-player');
    if (!Number.isFinite(v.duration) || v.duration <= 0) throw new Error(`no finite duration: ${v.duration}`);
    const target = v.duration / 2;
    const seeked = new Promise((resolve) => v.addEventListener('seeked', resolve, { once: true }));
    v.currentTime = target;
    await seeked;
    return { duration: v.duration, target, landed: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames };
  });
  phase = 'after';
  const after = await (await page.waitForFunction(({ target, frames }) => {
    const v = document.getElementById('rec-player');
    const q = v.getVideoPlaybackQuality();
    return v.currentTime >= target + 0.3 && q.totalVideoFrames > frames && { currentTime: v.currentTime, frames: q.totalVideoFrames };
  }, { timeout: 10_000 }, seek)).jsonValue();
  out = { ok: errors.length === 0, file, play, seek, after, errors };
} catch (e) {
  out = { ok: false, failed: `${phase}: ${String(e && e.message ? e.message : e)}`, errors };
} finally {
  await browser.close().catch(() => {});
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
