// Headless-Chromium check of the glasscast player page.
//
//   node tests/browser/watch.mjs <watch-url> <expected-width> <expected-height> <screenshot-path> [spki-pin-base64]
//
// Opens the watch page, waits (up to 20 s) until window.glasscast reports >= 30 rendered frames at the expected
// resolution with a live audio track, checks frames keep coming, takes a screenshot, reads getStats(), then
// restarts ICE on the live session and checks it recovers over a new candidate pair without a new POST.
// Prints one line of JSON on stdout; exits 0 if every check passed, 1 otherwise (JSON has ok:false + failed).
// Environment: CHROMIUM = browser binary (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, wArg, hArg, screenshotPath, spkiPin] = process.argv.slice(2);
if (!url || !wArg || !hArg || !screenshotPath) {
  console.error('usage: node tests/browser/watch.mjs <watch-url> <expected-width> <expected-height> <screenshot-path> [spki-pin-base64]');
  process.exit(2);
}
const expectedWidth = Number(wArg);
const expectedHeight = Number(hArg);
const WAIT_MS = 20_000;
const POLL_MS = 100;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Hard stop in case the browser hangs on close.
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, failed: 'watchdog: test took more than 90 s' }));
  process.exit(1);
}, 90_000);
watchdog.unref();

const result = {
  ok: false,
  failed: null,
  framesRendered: 0,
  framesGrew: false,
  videoWidth: 0,
  videoHeight: 0,
  audioTrackLive: false,
  audioPacketsReceived: 0,
  audioSamplesReceived: 0,
  framesDecoded: 0,
  decoderImplementation: null,
  firstFrameMs: null,
  state: null,
  lastError: null,
  connects: 0,
  consoleErrors: [],
};

// Snapshot of the page's test hooks (without the RTCPeerConnection, which is not serialisable).
const snapshotFn = () => {
  const g = window.glasscast;
  if (!g) return null;
  const { pc, stats, latency, restartIce, ...rest } = g;
  return rest;
};

function absorb(snap) {
  if (!snap) return;
  for (const k of ['framesRendered', 'videoWidth', 'videoHeight', 'audioTrackLive', 'state', 'lastError', 'connects']) {
    result[k] = snap[k];
  }
  if (typeof snap.firstFrameAt === 'number') result.firstFrameMs = Math.round(snap.firstFrameAt);
}

const userDataDir = await mkdtemp(join(tmpdir(), 'glasscast-chromium-'));
const args = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--autoplay-policy=no-user-gesture-required',
];
if (spkiPin) args.push(`--ignore-certificate-errors-spki-list=${spkiPin}`);

let context;
try {
  // Playwright refuses --user-data-dir in args; launchPersistentContext passes our fresh dir as --user-data-dir
  // (which --ignore-certificate-errors-spki-list requires).
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args,
    viewport: { width: 1280, height: 720 },
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location().url || '';
    if (/\/favicon\.ico$/.test(where)) return; // the browser's own favicon probe, not the page's fault
    result.consoleErrors.push(where ? `${msg.text()} (${where})` : msg.text());
  });
  page.on('pageerror', (err) => result.consoleErrors.push(`pageerror: ${err.message}`));

  try {
    await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
  } catch (err) {
    const check = `navigate: ${err.message.split('\n')[0]}`;
    throw Object.assign(new Error(check), { check });
  }

  // 1. Wait for enough frames at the right size with live audio.
  const deadline = Date.now() + WAIT_MS;
  let snap = null;
  const good = (s) =>
    s && s.framesRendered >= 30 && s.videoWidth === expectedWidth && s.videoHeight === expectedHeight && s.audioTrackLive === true;
  for (;;) {
    snap = await page.evaluate(snapshotFn);
    absorb(snap);
    if (good(snap) || Date.now() > deadline) break;
    await sleep(POLL_MS);
  }
  if (!good(snap)) {
    let check;
    if (!snap) check = 'hooks: window.glasscast missing (player.js did not run)';
    else if (snap.framesRendered < 30) check = `framesRendered: ${snap.framesRendered} < 30 after ${WAIT_MS / 1000} s`;
    else if (snap.videoWidth !== expectedWidth || snap.videoHeight !== expectedHeight) {
      check = `resolution: ${snap.videoWidth}x${snap.videoHeight} != ${expectedWidth}x${expectedHeight}`;
    } else check = 'audioTrackLive: no live audio track';
    await page.screenshot({ path: screenshotPath }).catch(() => {});
    throw Object.assign(new Error(check), { check });
  }

  // 2. Frames still coming?
  const before = snap.framesRendered;
  await sleep(1000);
  absorb(await page.evaluate(snapshotFn));
  result.framesGrew = result.framesRendered > before;

  // 3. Screenshot.
  await page.screenshot({ path: screenshotPath });

  // 4. Decoder / audio stats straight from getStats(). Chromium's report has the remote certificate a
  //    little after the transport connects, so a report without it is asked again (up to 3 s).
  const readStats = () => page.evaluate(async () => {
    const pc = window.glasscast && window.glasscast.pc;
    if (!pc) return null;
    const out = { framesDecoded: 0, decoderImplementation: null, audioPacketsReceived: 0, audioSamplesReceived: 0, serverCertificate: null };
    const report = await pc.getStats();
    report.forEach((r) => {
      if (r.type === 'transport' && r.remoteCertificateId) {
        const c = report.get(r.remoteCertificateId);
        if (c) out.serverCertificate = `${c.fingerprintAlgorithm} ${c.fingerprint}`;
      }
      if (r.type !== 'inbound-rtp') return;
      const kind = r.kind || r.mediaType;
      if (kind === 'video') {
        out.framesDecoded = r.framesDecoded || 0;
        out.decoderImplementation = r.decoderImplementation || null;
      } else if (kind === 'audio') {
        out.audioPacketsReceived = r.packetsReceived || 0;
        out.audioSamplesReceived = r.totalSamplesReceived || 0;
      }
    });
    if (!out.serverCertificate) {
      // Not in the report (seen now and then on the webrtcbin transport): the DTLS transport's own copy.
      const transport = pc.getReceivers().map((r) => r.transport).find(Boolean);
      const der = transport && transport.getRemoteCertificates ? transport.getRemoteCertificates()[0] : null;
      if (der) {
        const hex = [...new Uint8Array(await crypto.subtle.digest('SHA-256', der))].map((b) => b.toString(16).padStart(2, '0'));
        out.serverCertificate = `sha-256 ${hex.join(':')}`;
      }
    }
    return out;
  });
  let stats = await readStats();
  for (const t0 = Date.now(); stats && !stats.serverCertificate && Date.now() - t0 < 3000; await sleep(200)) stats = await readStats();
  if (stats) Object.assign(result, stats);

  // 4b. The latency probe (when the stream paints it): codes read from presented frames, shown in the overlay.
  await page.keyboard.press('s');
  await sleep(1100); // the overlay refreshes once a second
  Object.assign(result, await page.evaluate(() => ({
    latencySamples: window.glasscast.latency.samples.length,
    latencyMisses: window.glasscast.latency.misses,
    overlay: document.getElementById('stats').textContent,
  })));

  // 5. ICE restart on the live session: new credentials both ways, a newly selected candidate pair, no new POST,
  //    and frames keep coming.
  const framesBeforeRestart = (await page.evaluate(snapshotFn)).framesRendered;
  result.iceRestart = await page.evaluate(async () => {
    const g = window.glasscast;
    const transport = async () => {
      let t = null;
      (await g.pc.getStats()).forEach((r) => { if (r.type === 'transport') t = r; });
      return t || {};
    };
    const serverUfrag = () => (g.pc.remoteDescription.sdp.match(/a=ice-ufrag:(\S+)/) || [])[1];
    // TURN REST usernames are `EXPIRY:name`: the restart's must be newer (fresh credentials).
    const turnUsername = () => ((g.pc.getConfiguration().iceServers || []).find((s) => s.username) || {}).username || null;
    // Relayed candidates the restarted agent gathered (a TURN allocation made with the credentials it
    // had): in the local description once gathering is complete.
    const relayCandidates = () => ((g.pc.localDescription && g.pc.localDescription.sdp) || '')
      .split(/\r?\n/).filter((l) => l.startsWith('a=candidate:') && / typ relay /.test(l)).length;
    const turnBefore = turnUsername();
    const before = await transport();
    const ufragBefore = serverUfrag();
    const res = await g.restartIce();
    const t0 = performance.now();
    let after = before;
    while (performance.now() - t0 < 10_000) {
      after = await transport();
      if ((after.selectedCandidatePairChanges || 0) > (before.selectedCandidatePairChanges || 0)
          && g.pc.connectionState === 'connected') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 0; i < 150 && turnBefore && g.pc.iceGatheringState !== 'complete'; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const relayed = relayCandidates();
    return {
      ok: res.ok, error: res.error || null,
      turnUsernameBefore: turnBefore, turnUsernameAfter: turnUsername(), relayCandidatesAfter: relayed,
      pairChangesBefore: before.selectedCandidatePairChanges ?? null, pairChangesAfter: after.selectedCandidatePairChanges ?? null,
      serverUfragChanged: serverUfrag() !== ufragBefore,
      localUfragChanged: !!after.iceLocalUsernameFragment && after.iceLocalUsernameFragment !== before.iceLocalUsernameFragment,
      connectionState: g.pc.connectionState, attempts: g.attempts, iceRestarts: g.iceRestarts,
    };
  });
  await sleep(1000);
  absorb(await page.evaluate(snapshotFn));
  const r = result.iceRestart;
  r.framesAfter = result.framesRendered - framesBeforeRestart;

  if (!result.framesGrew) result.failed = 'framesGrew: no new frames rendered within 1 s';
  else if (!stats) result.failed = 'stats: window.glasscast.pc missing';
  else if (!(result.framesDecoded > 0)) result.failed = 'framesDecoded: 0';
  else if (!(result.audioPacketsReceived > 0 || result.audioSamplesReceived > 0)) result.failed = 'audio: no packets received';
  else if (!r.ok) result.failed = `iceRestart: ${r.error}`;
  else if (!r.serverUfragChanged) result.failed = 'iceRestart: the server kept its ICE credentials';
  else if (!(r.pairChangesAfter > r.pairChangesBefore)) result.failed = 'iceRestart: no candidate pair selected after the restart';
  else if (r.attempts !== 1 || r.iceRestarts !== 1) result.failed = `iceRestart: expected 1 POST and 1 restart, saw ${r.attempts} / ${r.iceRestarts}`;
  else if (!(r.framesAfter >= 10)) result.failed = `iceRestart: only ${r.framesAfter} frames in the 1 s after the restart`;
  result.ok = result.failed === null;
} catch (err) {
  result.ok = false;
  result.failed = err.check || `error: ${err.message}`;
} finally {
  if (context) await context.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}

if (result.ok) delete result.failed;
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
