// bench/latency: glass-to-glass latency of glasscast, measured with its latency probe.
//
//   node bench/latency.mjs [--seconds 60] [--modes 1280x720@60,1920x1080@30] [--bitrate 2500]
//                          [--bin target/release/glasscast] [--port 18600] [--pin]
//
// For each mode: starts glasscast with a probe-painted test stream (`latency_probe = true`: the wall-clock ms
// is painted into each raw frame before the encoder), opens /watch/main in headless Chromium, which reads the
// code back from every presented frame (requestVideoFrameCallback + canvas) and records
// expectedDisplayTime - painted time. Discards a 3 s warm-up, then collects for --seconds.
// --pin puts glasscast on CPU 0 and Chromium on CPU 1.
// Prints one JSON object on stdout and a summary line per mode on stderr.
import { cpuSeconds, launchChromium, machine, parseArgs, percentiles, pinSelf, sleep, startServer } from './lib.mjs';

const opts = parseArgs(process.argv.slice(2), {
  seconds: '60', modes: '1280x720@60,1920x1080@30', bitrate: '2500', bin: 'target/release/glasscast',
  port: '18600', pin: false, encoder: 'auto',
});
const seconds = Number(opts.seconds);
if (opts.pin) pinSelf('1');

async function runMode(mode, port) {
  const m = mode.match(/^(\d+)x(\d+)@(\d+)$/);
  if (!m) throw new Error(`bad mode ${mode} (want WxH@FPS)`);
  const [width, height, fps] = m.slice(1).map(Number);
  const server = await startServer({
    bin: opts.bin, port, pinCpus: opts.pin ? '0' : null,
    stream: { width, height, fps, bitrate_kbps: Number(opts.bitrate), latency_probe: true, encoder: opts.encoder },
  });
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    await page.goto(`${server.base}/watch/main`, { waitUntil: 'load' });
    // Wait for the first decoded code, then warm up.
    const t0 = Date.now();
    while (!(await page.evaluate(() => window.glasscast.latency.lastMs !== null))) {
      if (Date.now() - t0 > 20_000) throw new Error('no latency code read within 20 s');
      await sleep(200);
    }
    await sleep(3000);
    await page.evaluate(() => window.glasscast.latency.take());
    const cpu0 = cpuSeconds(server.pid);
    const frames0 = await page.evaluate(() => window.glasscast.framesRendered);
    await sleep(seconds * 1000);
    const cpu1 = cpuSeconds(server.pid);
    const got = await page.evaluate(() => ({ ...window.glasscast.latency.take(), frames: window.glasscast.framesRendered }));
    const stats = await page.evaluate(() => window.glasscast.stats);
    return {
      mode, width, height, fps, bitrate_kbps: Number(opts.bitrate), seconds,
      frames_presented: got.frames - frames0,
      frames_expected: fps * seconds,
      code_misses: got.misses,
      g2g_ms: percentiles(got.samples),
      frames_over_100ms: got.samples.filter((x) => x > 100).length,
      painted_to_received_ms: percentiles(got.receiveSamples),
      server_cpu_pct_of_core: Math.round(((cpu1 - cpu0) / seconds) * 1000) / 10,
      browser_fps: stats && stats.video ? stats.video.fps : null,
      browser_kbps: stats && stats.video ? Math.round(stats.video.kbps) : null,
    };
  } finally {
    await browser.close();
    await server.stop();
  }
}

const runs = [];
let port = Number(opts.port);
for (const mode of opts.modes.split(',')) {
  const r = await runMode(mode.trim(), port++);
  runs.push(r);
  const g = r.g2g_ms || {};
  console.error(`latency ${r.mode}: g2g p50 ${g.p50} p95 ${g.p95} p99 ${g.p99} max ${g.max} ms over ${g.n} frames` +
    ` (${r.frames_over_100ms} > 100 ms, ${r.code_misses} unreadable); server ${r.server_cpu_pct_of_core}% of a core`);
}
console.log(JSON.stringify({
  bench: 'latency', date: new Date().toISOString(), machine: machine(), pinned: opts.pin,
  command: `node bench/latency.mjs ${process.argv.slice(2).join(' ')}`.trim(), runs,
}, null, 1));
