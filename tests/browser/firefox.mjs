// Headless Firefox ESR check that the built-in player plays a stream (issue 16).
//
//   node tests/browser/firefox.mjs <watch-url> <expected-width> <expected-height> <screenshot.png>
//
// Driven over WebDriver BiDi with puppeteer-core (nothing downloads a browser). The profile is fresh and its
// OpenH264 plugin is disabled, as on an offline or air-gapped appliance: Firefox then offers VP8/VP9/AV1 and
// no H.264. Waits (up to 30 s) for >= 20 rendered frames at the expected size, opens the stats overlay
// (key "s") and waits for numbers in it, checks the audio track is live, and saves a screenshot. Prints one
// line of JSON: {ok, frames, width, height, codec, audio, stats, failed?}.
// Environment: FIREFOX = browser binary (default /usr/bin/firefox-esr).
import puppeteer from 'puppeteer-core';
import { sleep, waitPlaying } from './player.mjs';

const [url, wArg, hArg, shot] = process.argv.slice(2);
if (!url || !wArg || !hArg || !shot) {
  console.error('usage: node tests/browser/firefox.mjs <watch-url> <expected-width> <expected-height> <screenshot.png>');
  process.exit(2);
}
const [width, height] = [Number(wArg), Number(hArg)];
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, failed: 'watchdog: more than 90 s' }));
  process.exit(1);
}, 90_000);
watchdog.unref();

const browser = await puppeteer.launch({
  browser: 'firefox',
  executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
  headless: true,
  acceptInsecureCerts: true,
  extraPrefsFirefox: {
    'media.gmp-gmpopenh264.enabled': false,
    'media.gmp-manager.updateEnabled': false,
    'media.autoplay.default': 0,
    'media.autoplay.blocking_policy': 0,
  },
});
let out = { ok: false };
try {
  const page = await browser.newPage();
  await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
  try {
    out = { ...out, ...(await waitPlaying(page, width, height, 30_000)) };
  } catch (e) {
    out = { ...out, ...e.snap };
    throw e;
  }
  const media = await page.evaluate(async () => {
    const v = document.getElementById('video');
    const tracks = v.srcObject ? v.srcObject.getAudioTracks() : [];
    const pc = window.glasscast && window.glasscast.pc;
    let codec = null;
    if (pc) {
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === 'video') codec = (stats.get(s.codecId) || {}).mimeType || null;
      });
    }
    return { codec, audio: tracks.length ? tracks[0].readyState : null };
  });
  out = { ...out, ...media };
  await page.keyboard.press('s');
  let stats = '';
  for (const t0 = Date.now(); Date.now() - t0 < 5_000; await sleep(250)) {
    stats = await page.evaluate(() => document.getElementById('stats').textContent);
    if (/video\s+\d+x\d+ @ \d/.test(stats) && /bitrate\s+\d+ kbit/.test(stats)) break;
  }
  out.stats = stats;
  await page.screenshot({ path: shot });
  if (!/video\s+\d+x\d+ @ \d/.test(stats)) throw new Error(`the stats overlay shows no numbers: ${stats}`);
  out.ok = true;
} catch (e) {
  out.failed = String(e && e.message ? e.message : e);
} finally {
  await browser.close().catch(() => {});
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
