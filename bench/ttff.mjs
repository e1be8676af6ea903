// bench/ttff: time to first frame of a joining viewer, with the stream already running; optionally against a
// peer server (gst-plugins-rs whepserversink, bench/peer.rs) on the same harness in the same run.
//
//   node bench/ttff.mjs [--joins 50] [--mode 1280x720@60] [--bitrate 2500] [--bin target/release/glasscast]
//                       [--port 18620] [--pin] [--peer target/release/examples/peer] [--codec vp8]
//
// Starts glasscast with the test stream, waits until it is producing, then opens /watch/main in a fresh page
// of headless Chromium --joins times, one after the other. For each join the player records (web/player.js,
// window.glasscast.join, performance.now() ms): the WHEP POST sent, the answer received, the peer connection
// connected, the first frame decoded (rVFC receiveTime + processingDuration) and the first frame presented.
// The page is closed after each join (its DELETE ends the session). Reports p50/p95/max from the POST.
// --codec vp8: Chromium offers VP8 only (glasscast's on-demand VP8 encoding, issue 16; it keeps running 5 s
// after a viewer leaves, so only the first join starts the encoder).
// --peer BIN: the same joins against BIN afterwards (the player served on its origin by Playwright).
// Prints one JSON object on stdout and a summary line per server on stderr.
import { launchChromium, machine, parseArgs, percentiles, pinSelf, routePage, sleep, startPeer, startServer } from './lib.mjs';
import { preferVideoCodec } from '../tests/browser/player.mjs';

const opts = parseArgs(process.argv.slice(2), {
  joins: '50', mode: '1280x720@60', bitrate: '2500', bin: 'target/release/glasscast', port: '18620', pin: false,
  peer: '', codec: '',
});
if (opts.pin) pinSelf('1');
const m = opts.mode.match(/^(\d+)x(\d+)@(\d+)$/);
if (!m) throw new Error(`bad --mode ${opts.mode} (want WxH@FPS)`);
const [width, height, fps] = m.slice(1).map(Number);

async function measure(kind, port) {
  const peer = kind === 'whepserversink';
  const server = peer
    ? await startPeer({ bin: opts.peer, port, mode: opts.mode, bitrate: opts.bitrate, pinCpus: opts.pin ? '0' : null })
    : await startServer({
      bin: opts.bin, port, pinCpus: opts.pin ? '0' : null,
      stream: { width, height, fps, bitrate_kbps: Number(opts.bitrate), max_viewers: 10 },
    });
  const browser = await launchChromium();
  const joins = [];
  const failures = [];
  try {
    for (let i = 0; i < Number(opts.joins); i++) {
      const page = await browser.context.newPage();
      try {
        await routePage(page, { peer, nodeClock: false, stripPlayoutDelay: false });
        if (opts.codec) await preferVideoCodec(page, opts.codec);
        await page.goto(`${server.base}/watch/main`, { waitUntil: 'load' });
        const t0 = Date.now();
        let j = null;
        for (;;) {
          j = await page.evaluate(() => window.glasscast.join && { ...window.glasscast.join });
          if (j && j.firstRenderedAt !== null) break;
          if (Date.now() - t0 > 10_000) throw new Error(`no frame within 10 s (${JSON.stringify(j)})`);
          await sleep(20);
        }
        joins.push(j);
      } catch (err) {
        failures.push({ join: i, error: String(err.message || err) });
      } finally {
        await page.close({ runBeforeUnload: true });
      }
      await sleep(300);
    }
  } finally {
    await browser.close();
    await server.stop();
  }
  const since = (key) => joins.filter((j) => typeof j[key] === 'number').map((j) => j[key] - j.postAt);
  const r = {
    server: kind, mode: opts.mode, codec: opts.codec || 'h264', bitrate_kbps: Number(opts.bitrate), joins: joins.length, failures,
    post_to_answer_ms: percentiles(since('answerAt')),
    post_to_connected_ms: percentiles(since('connectedAt')),
    post_to_first_decoded_ms: percentiles(since('firstDecodedAt')),
    post_to_first_presented_ms: percentiles(since('firstRenderedAt')),
    navigation_to_first_presented_ms: percentiles(joins.map((j) => j.firstRenderedAt)),
    per_join: joins.map((j) => Object.fromEntries(['answerAt', 'connectedAt', 'firstDecodedAt', 'firstRenderedAt']
      .map((k) => [k.replace('At', '_ms'), typeof j[k] === 'number' ? Math.round(j[k] - j.postAt) : null]))),
  };
  const d = r.post_to_first_decoded_ms || {};
  const p = r.post_to_first_presented_ms || {};
  console.error(`ttff ${kind} ${opts.mode}: first decoded p50 ${d.p50} p95 ${d.p95} ms, first presented p50 ${p.p50}` +
    ` p95 ${p.p95} ms after the POST, over ${joins.length} joins (${failures.length} failed)`);
  return r;
}

const runs = [await measure('glasscast', Number(opts.port))];
if (opts.peer) runs.push(await measure('whepserversink', Number(opts.port) + 1));
const out = {
  bench: 'ttff', date: new Date().toISOString(), machine: machine(), pinned: opts.pin,
  command: `node bench/ttff.mjs ${process.argv.slice(2).join(' ')}`.trim(), runs,
};
if (opts.peer) {
  const q = (k, s) => (runs[1][k] && runs[1][k][s] ? Math.round((runs[0][k][s] / runs[1][k][s]) * 100) / 100 : null);
  out.glasscast_over_peer = {
    first_decoded: { p50: q('post_to_first_decoded_ms', 'p50'), p95: q('post_to_first_decoded_ms', 'p95') },
    first_presented: { p50: q('post_to_first_presented_ms', 'p50'), p95: q('post_to_first_presented_ms', 'p95') },
  };
}
console.log(JSON.stringify(out, null, 1));
