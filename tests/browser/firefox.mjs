// Headless Firefox ESR check that the built-in player plays a stream (issue 16).
//
//   node tests/browser/firefox.mjs <watch-url> <expected-width> <expected-height> <screenshot.png>
//
// Driven over WebDriver BiDi with puppeteer-core (nothing downloads a browser). The profile is fresh and its
// OpenH264 plugin is disabled, as on an offline or air-gapped appliance: Firefox then offers VP8/VP9/AV1 and
// no H.264. Waits (up to 30 s) for >= 20 rendered frames at the expected size, opens the stats overlay
// (key "s") and waits for numbers in it, checks the audio track is live, and saves a screenshot. Then the
// controls: an ICE restart (the PATCH path; Firefox moves to new ports: >= 30 frames within 4 s after it), a
// reconnect after the server ends the session (admin API with ADMIN_TOKEN; the stream's access control must
// be off, as the page has no link token: a new POST, frames again), Unmute (the video is unmuted after) and Fullscreen (the page is
// fullscreen, then not). Prints one line of JSON: {ok, frames, width, height, codec, audio, stats, controls,
// failed?}.
// Environment: FIREFOX = browser binary (default /usr/bin/firefox-esr); ADMIN_TOKEN = the server's admin token.
import { launchFirefox } from './firefox_launch.mjs';
import { scriptArgs, sleep, waitPlaying } from './player.mjs';

const [url, wArg, hArg, shot] =
  scriptArgs('tests/browser/firefox.mjs <watch-url> <expected-width> <expected-height> <screenshot.png>', 90_000);
const [width, height] = [Number(wArg), Number(hArg)];

const frames = (page) => page.evaluate(() => window.glasscast.framesRendered);

// Waits up to `ms` for `check()` to be true.
async function until(check, ms) {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await sleep(100)) if (await check()) return true;
  return check();
}

// The player's controls, one after another; throws naming the first that does not work.
async function controls(page) {
  const seen = {};
  const fail = (what) => { throw Object.assign(new Error(what), { seen }); };
  // ICE restart on the live session (PATCH, no new POST): Firefox gathers new ports for it, so the server
  // must move to the new candidate pair, not keep sending to the old one until that times out.
  const localPort = () => page.evaluate(async () => {
    let port = null;
    const stats = await window.glasscast.pc.getStats();
    stats.forEach((p) => {
      if (p.type === 'candidate-pair' && p.nominated && p.state === 'succeeded') port = (stats.get(p.localCandidateId) || {}).port ?? port;
    });
    return port;
  });
  const portBefore = await localPort();
  const restart = await page.evaluate(async () => {
    const g = window.glasscast;
    const attempts = g.attempts;
    const res = await g.restartIce();
    return { ok: res.ok, error: res.error || null, newPost: g.attempts !== attempts, iceRestarts: g.iceRestarts };
  });
  const atRestart = await frames(page);
  seen.iceRestart = { ...restart, portBefore };
  if (!restart.ok || restart.newPost || restart.iceRestarts !== 1) fail(`iceRestart: ${JSON.stringify(restart)}`);
  seen.iceRestart.playing = await until(async () => (await frames(page)) >= atRestart + 30, 4_000);
  seen.iceRestart.portAfter = await localPort();
  if (!seen.iceRestart.playing) fail(`iceRestart: fewer than 30 frames in the 4 s after it (${(await frames(page)) - atRestart})`);
  // The server ends the session; the player connects again by itself.
  const origin = new URL(url).origin;
  const admin = { headers: { authorization: `Bearer ${process.env.ADMIN_TOKEN}` } };
  const sessions = await (await fetch(`${origin}/api/v1/sessions`, admin)).json();
  if (!Array.isArray(sessions)) fail(`the admin API's session list: ${JSON.stringify(sessions)}`);
  for (const s of sessions) await fetch(`${origin}/api/v1/sessions/${s.id}`, { method: 'DELETE', ...admin });
  seen.kicked = sessions.length;
  const reconnected = await until(() => page.evaluate(() => window.glasscast.connects >= 2 && window.glasscast.attempts >= 2), 20_000);
  const after = await frames(page);
  seen.reconnect = reconnected && (await until(async () => (await frames(page)) >= after + 10, 10_000));
  if (!seen.reconnect) fail('reconnect: the player did not play again after the server ended its session');
  if (await page.evaluate(() => !document.getElementById('unmute').hidden)) await page.click('#unmute');
  seen.muted = await page.evaluate(() => document.getElementById('video').muted);
  if (seen.muted) fail('unmute: the video is still muted');
  await page.click('#fullscreen');
  seen.fullscreen = await until(() => page.evaluate(() => document.fullscreenElement !== null), 3000);
  if (!seen.fullscreen) fail('fullscreen: the page did not go fullscreen');
  await page.click('#fullscreen');
  if (!(await until(() => page.evaluate(() => document.fullscreenElement === null), 3000))) fail('fullscreen: no way out');

  return seen;
}

const browser = await launchFirefox();
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
  out.controls = await controls(page);
  out.ok = true;
} catch (e) {
  out.failed = String(e && e.message ? e.message : e);
  if (e && e.seen) out.controls = e.seen;
} finally {
  await browser.close().catch(() => {});
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
