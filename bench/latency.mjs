// bench/latency: glass-to-glass latency of glasscast, measured with its latency probe; optionally against a
// peer server (gst-plugins-rs whepserversink, bench/peer.rs) on the same harness in the same run.
//
//   node bench/latency.mjs [--seconds 60] [--repeats 6] [--modes 1280x720@60,1920x1080@30] [--bitrate 2500]
//                          [--bin target/release/glasscast] [--port 18600] [--pin] [--no-playout-delay]
//                          [--peer target/release/examples/peer] [--window-seconds 60] [--codec vp8]
//                          [--vp8-churn 10]
//
// For each mode: starts glasscast with a probe-painted test stream (`latency_probe = true`: the wall-clock ms
// is painted into each raw frame before the encoder) and opens /watch/main in headless Chromium. The player
// (web/latency.js) reads the code back from every presented frame (requestVideoFrameCallback + canvas) and
// records the time from painting to the frame's callback, converting clocks with an NTP-style offset to the
// server clock from /healthz round trips. --seconds are split over --repeats page loads (each after a 2 s
// warm-up): the phase between frames and the browser's rendering clock is fixed within a page load and
// differs between them.
// --pin: glasscast on CPU 0, Chromium on CPU 1. --no-playout-delay: the playout-delay RTP header extension is
// taken out of the browser's offer (an A/B of glasscast's zero playout delay).
// --peer BIN: after glasscast, the same mode is served by BIN (whepserversink) and watched by the same player
// (Playwright serves the player's files on the peer's origin and maps /whep/main to its endpoint); for both,
// the clock offset then comes from this process's clock, so the two are measured identically.
// --codec vp8: Chromium offers VP8 only, so glasscast serves its on-demand VP8 encoding (issue 16); the
// server's CPU then includes both encoders.
// --vp8-churn S: while the (H.264) page is measured, a second page offering VP8 only opens and closes every S
// seconds, so the stream's VP8 encoder starts and (LINGER after the page left) stops again and again; the H.264
// page's latency and frames are also reported split by whether the VP8 page was open (issue 16: H.264 viewers
// see no change while the second encoder starts and stops). Windows are then S seconds long.
// --window-seconds W: also report p50/p95/max per W-second window of each page load (does the delay creep
// over a long session? `--seconds 1800 --repeats 1 --window-seconds 60` is one 30-minute session).
// Prints one JSON object on stdout and a summary line per run on stderr.
import { cpuSeconds, launchChromium, machine, parseArgs, percentiles, pinSelf, routePage, sleep, startPeer, startServer } from './lib.mjs';
import { preferVideoCodec } from '../tests/browser/player.mjs';

const opts = parseArgs(process.argv.slice(2), {
  seconds: '60', repeats: '6', modes: '1280x720@60,1920x1080@30', bitrate: '2500', bin: 'target/release/glasscast',
  port: '18600', pin: false, encoder: 'auto', 'no-playout-delay': false, peer: '', 'window-seconds': '0', codec: '',
  'vp8-churn': '0',
});
const churnSeconds = Number(opts['vp8-churn']);
const windowSeconds = churnSeconds > 0 ? churnSeconds : Number(opts['window-seconds']);
const seconds = Number(opts.seconds);
const repeats = Number(opts.repeats);
if (opts.pin) pinSelf('1');

async function runMode(mode, port, server_kind) {
  const m = mode.match(/^(\d+)x(\d+)@(\d+)$/);
  if (!m) throw new Error(`bad mode ${mode} (want WxH@FPS)`);
  const [width, height, fps] = m.slice(1).map(Number);
  const peer = server_kind === 'whepserversink';
  const server = peer ? await startPeer({ bin: opts.peer, port, mode, bitrate: opts.bitrate, pinCpus: opts.pin ? '0' : null }) : await startServer({
    bin: opts.bin, port, pinCpus: opts.pin ? '0' : null,
    stream: { width, height, fps, bitrate_kbps: Number(opts.bitrate), latency_probe: true, encoder: opts.encoder },
  });
  const browser = await launchChromium();
  try {
    const all = { samples: [], receiveSamples: [], misses: 0, frames: 0 };
    // --vp8-churn: the H.264 page's samples and frames, by whether the VP8 page was open in the window.
    const churn = { open: { samples: [], frames: 0, ms: 0 }, closed: { samples: [], frames: 0, ms: 0 }, cycles: 0 };
    let vp8Page = null;
    const perLoad = [];
    const windows = [];
    const cpu0 = cpuSeconds(server.pid);
    const t0 = Date.now();
    for (let i = 0; i < repeats; i++) {
      const page = await browser.context.newPage();
      await routePage(page, { peer, nodeClock: Boolean(opts.peer), stripPlayoutDelay: opts['no-playout-delay'] });
      if (opts.codec) await preferVideoCodec(page, opts.codec);
      await page.goto(`${server.base}/watch/main`, { waitUntil: 'load' });
      for (const tWait = Date.now(); !(await page.evaluate(() => window.glasscast.latency.lastMs !== null));) {
        if (Date.now() - tWait > 20_000) throw new Error(`${server_kind}: no latency code read within 20 s`);
        await sleep(200);
      }
      await sleep(2000); // warm-up
      await page.evaluate(() => window.glasscast.latency.take());
      const frames0 = await page.evaluate(() => window.glasscast.framesRendered);
      const loadMs = (seconds * 1000) / repeats;
      const windowMs = windowSeconds > 0 ? windowSeconds * 1000 : loadMs;
      const loadSamples = [];
      let frames1 = frames0;
      for (let done = 0; done < loadMs; done += windowMs) {
        if (churnSeconds > 0) vp8Page = await toggleVp8Page(browser, vp8Page, server.base, churn);
        const framesAtStart = frames1;
        await sleep(Math.min(windowMs, loadMs - done));
        const got = await page.evaluate(() => ({ ...window.glasscast.latency.take(), frames: window.glasscast.framesRendered }));
        if (churnSeconds > 0) {
          const bucket = vp8Page ? churn.open : churn.closed;
          bucket.samples.push(...got.samples);
          bucket.frames += got.frames - framesAtStart;
          bucket.ms += Math.min(windowMs, loadMs - done);
        }
        all.samples.push(...got.samples);
        all.receiveSamples.push(...got.receiveSamples);
        all.misses += got.misses;
        loadSamples.push(...got.samples);
        frames1 = got.frames;
        if (windowSeconds > 0) {
          const p = percentiles(got.samples) || {};
          windows.push({ page_load: i, end_s: Math.round((done + Math.min(windowMs, loadMs - done)) / 1000), n: p.n, p50: p.p50, p95: p.p95, max: p.max });
        }
      }
      all.frames += frames1 - frames0;
      perLoad.push((percentiles(loadSamples) || {}).p50 ?? null);
      await page.close({ runBeforeUnload: true });
      if (vp8Page) vp8Page = await toggleVp8Page(browser, vp8Page, server.base, churn);
    }
    const cpuWall = (Date.now() - t0) / 1000;
    const cpu1 = cpuSeconds(server.pid);
    const shownAfterReceived = [];
    const n = Math.min(all.samples.length, all.receiveSamples.length);
    for (let i = 0; i < n; i++) shownAfterReceived.push(all.samples[i] - all.receiveSamples[i]);
    return {
      server: server_kind, mode, width, height, fps, bitrate_kbps: Number(opts.bitrate), seconds, page_loads: repeats,
      codec: opts.codec || 'h264',
      zero_playout_delay: !peer && !opts['no-playout-delay'],
      frames_presented: all.frames,
      frames_expected: fps * seconds,
      code_misses: all.misses,
      g2g_ms: percentiles(all.samples),
      g2g_p50_per_page_load_ms: perLoad,
      ...(windowSeconds > 0 ? { g2g_per_window_ms: windows } : {}),
      ...(churnSeconds > 0 ? { vp8_churn: churnReport(churn, fps) } : {}),
      frames_over_100ms: all.samples.filter((x) => x > 100).length,
      painted_to_received_ms: percentiles(all.receiveSamples),
      received_to_shown_ms: percentiles(shownAfterReceived),
      server_cpu_pct_of_core: Math.round(((cpu1 - cpu0) / cpuWall) * 1000) / 10,
    };
  } finally {
    await browser.close();
    await server.stop();
  }
}

// --vp8-churn: opens a VP8-only page on /watch/main when none is open, else closes it (its DELETE ends the
// session; the VP8 encoder stops LINGER later). Returns the open page or null.
async function toggleVp8Page(browser, open, base, churn) {
  if (open) {
    await open.close({ runBeforeUnload: true });
    return null;
  }
  const page = await browser.context.newPage();
  await preferVideoCodec(page, 'VP8');
  await page.goto(`${base}/watch/main`, { waitUntil: 'load' });
  churn.cycles++;
  return page;
}

// The H.264 page with and without the VP8 page open: latency percentiles and frames presented per second.
function churnReport(churn, fps) {
  const side = (b) => ({
    g2g_ms: percentiles(b.samples), seconds: b.ms / 1000,
    presented_fps: b.ms > 0 ? Math.round((b.frames / (b.ms / 1000)) * 10) / 10 : null, expected_fps: fps,
  });
  return { period_s: churnSeconds, vp8_page_opened: churn.cycles, vp8_page_open: side(churn.open), vp8_page_closed: side(churn.closed) };
}

const runs = [];
let port = Number(opts.port);
for (const mode of opts.modes.split(',').map((s) => s.trim())) {
  for (const kind of opts.peer ? ['glasscast', 'whepserversink'] : ['glasscast']) {
    const r = await runMode(mode, port++, kind);
    runs.push(r);
    const g = r.g2g_ms || {};
    console.error(`latency ${r.server} ${r.mode}: g2g p50 ${g.p50} p95 ${g.p95} p99 ${g.p99} max ${g.max} ms over ${g.n} frames` +
      ` (${r.frames_over_100ms} > 100 ms, ${r.code_misses} unreadable); painted->received p50 ` +
      `${(r.painted_to_received_ms || {}).p50} ms; server ${r.server_cpu_pct_of_core}% of a core`);
  }
}
const ratios = [];
if (opts.peer) {
  for (let i = 0; i + 1 < runs.length; i += 2) {
    const [ours, theirs] = [runs[i].g2g_ms || {}, runs[i + 1].g2g_ms || {}];
    const q = (k) => (theirs[k] ? Math.round((ours[k] / theirs[k]) * 100) / 100 : null);
    ratios.push({ mode: runs[i].mode, glasscast_over_peer: { p50: q('p50'), p95: q('p95'), p99: q('p99'), max: q('max') } });
  }
}
console.log(JSON.stringify({
  bench: 'latency', date: new Date().toISOString(), machine: machine(), pinned: opts.pin,
  command: `node bench/latency.mjs ${process.argv.slice(2).join(' ')}`.trim(), runs, ...(opts.peer ? { ratios } : {}),
}, null, 1));
