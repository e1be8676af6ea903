// bench/fanout: what each extra viewer costs, and where the knee is.
//
//   node bench/fanout.mjs [--viewers 1,10,50,100,150,200] [--seconds 20] [--mode 1280x720@30] [--bitrate 2500]
//                         [--bin target/release/glasscast]
//                         [--loadclient bench/loadclient/target/release/glasscast-loadclient] [--port 18640]
//                         [--ramp-ms 40] [--audio-frame-ms 10|20] [--transport webrtcbin,forward,forward-nommsg,forward-nogso]
//                         [--full-every 1] [--mux-threads 1] [--server-cpus 0] [--client-cpus 1]
//                         [--nack-history-ms 1000]
//
// For each viewer count: a fresh glasscast (pinned to --server-cpus, default CPU 0) serves the probe-painted test stream; one
// headless Chromium viewer (CPU 1) measures glass-to-glass latency while N load viewers (str0m, a WebRTC
// stack that is not ours, bench/loadclient, CPU 1) receive for --seconds after all of them connected.
// Reports delivery per load viewer, glasscast's own CPU / RSS / threads / fds, Chromium's G2G, and the
// cost per extra viewer against the smallest N. Each transport in --transport (webrtc.transport: one
// webrtcbin per viewer, or the one-port forwarding mux with GSO and sendmmsg; `forward-nommsg`: the mux with
// webrtc.udp_mmsg = false, one sendmsg per viewer per frame, the send path before sendmmsg; `forward-nogso`:
// neither, one sendmsg per packet) is measured over the same Ns in the same run.
// `--full-every K`: only every K-th load viewer decrypts and depacketizes everything; the others count SRTP
// media from the clear RTP headers (bench/loadclient/src/light.rs), so the load client costs less of the
// core it shares. `--mux-threads` (webrtc.mux_threads; default 1: one core's worth) with `--server-cpus`
// (the CPUs glasscast may run on) measures more cores; load client and Chromium run on `--client-cpus`.
// `--nack-history-ms` (webrtc.nack_history_ms; 3000 is str0m's own default) sets how long each viewer's sent
// video packets are kept for its NACKs, which is most of a viewer's memory.
// JSON on stdout, a line per N on stderr.
import { cpuSeconds, launchChromium, machine, parseArgs, percentiles, pinSelf, processFootprint, runLoadClient, sleep, startServer } from './lib.mjs';

const opts = parseArgs(process.argv.slice(2), {
  viewers: '1,10,50,100,150,200', seconds: '20', mode: '1280x720@30', bitrate: '2500',
  bin: 'target/release/glasscast', loadclient: 'bench/loadclient/target/release/glasscast-loadclient',
  port: '18640', 'ramp-ms': '40', 'audio-frame-ms': '10', transport: 'webrtcbin,forward', 'full-every': '1', 'mux-threads': '1', 'server-cpus': '0', 'client-cpus': '1',
  'nack-history-ms': '1000',
});
pinSelf(opts['client-cpus']);
const m = opts.mode.match(/^(\d+)x(\d+)@(\d+)$/);
if (!m) throw new Error(`bad --mode ${opts.mode}`);
const [width, height, fps] = m.slice(1).map(Number);

// The forwarding transport's send counters from /readyz (access control is off here); null on webrtcbin.
async function muxSends(base) {
  try {
    const r = await fetch(`${base}/readyz`);
    return (await r.json()).mux || null;
  } catch {
    return null;
  }
}

async function runOnce(n, port, transport) {
  const server = await startServer({
    bin: opts.bin, port, pinCpus: opts['server-cpus'],
    webrtc: {
      transport: transport.split('-')[0], mux_port: 0, udp_gso: transport !== 'forward-nogso',
      udp_mmsg: transport === 'forward',
      mux_threads: Number(opts['mux-threads']),
      nack_history_ms: Number(opts['nack-history-ms']),
    },
    stream: {
      width, height, fps, bitrate_kbps: Number(opts.bitrate), latency_probe: true, max_viewers: n + 10,
      audio_frame_ms: Number(opts['audio-frame-ms']),
    },
  });
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    await page.goto(`${server.base}/watch/main`, { waitUntil: 'load' });
    for (let t0 = Date.now(); !(await page.evaluate(() => window.glasscast.latency.lastMs !== null));) {
      if (Date.now() - t0 > 20_000) throw new Error('Chromium read no latency code within 20 s');
      await sleep(200);
    }
    const idle = processFootprint(server.pid);
    const load = runLoadClient({
      bin: opts.loadclient, url: `${server.base}/whep/main`, pinCpus: opts['client-cpus'],
      args: ['--viewers', String(n), '--duration', opts.seconds, '--ramp-ms', opts['ramp-ms'], '--expect-fps', String(fps),
        '--server-pid', String(server.pid), '--connect-timeout', '30', '--full-every', opts['full-every']],
    });
    // Align Chromium's window with the load client's: after the ramp (and connects), until it ends.
    await sleep(n * Number(opts['ramp-ms']) + 2000);
    await page.evaluate(() => window.glasscast.latency.take());
    const frames0 = await page.evaluate(() => window.glasscast.framesRendered);
    const loaded = { ...processFootprint(server.pid) };
    const sends0 = await muxSends(server.base);
    const t0 = Date.now();
    const cpu0 = cpuSeconds(server.pid);
    let peak = loaded;
    const sampler = setInterval(() => { try { const f = processFootprint(server.pid); if (f.rss_mib > peak.rss_mib) peak = f; } catch { /* exiting */ } }, 1000);
    const lc = await load;
    clearInterval(sampler);
    const sends1 = await muxSends(server.base);
    const seconds = (Date.now() - t0) / 1000;
    const cpu1 = cpuSeconds(server.pid);
    const lat = await page.evaluate(() => ({ ...window.glasscast.latency.take(), frames: window.glasscast.framesRendered }));
    return {
      transport, viewers: lc.connected + 1, load_viewers: n, connected: lc.connected, failed: (lc.failed || []).length,
      delivery_ratio: lc.delivery_ratio, delivery_ratio_full: lc.delivery_ratio_full, light_viewers: lc.light_viewers,
      viewers_at_99pct: lc.viewers_at_99pct,
      mbit_per_viewer: lc.mbit_per_viewer, video_gaps_total: lc.video_gaps_total,
      first_frame_ms: lc.first_frame_ms,
      server_cpu_pct_of_core: lc.server ? lc.server.cpu_pct : Math.round(((cpu1 - cpu0) / seconds) * 1000) / 10,
      server_idle: idle, server_loaded: peak,
      loadclient_cpu_pct: lc.client_cpu_window_pct,
      // The media port's datagrams and the system calls they took over the window (forward transport).
      mux_sends: sends0 && sends1 ? {
        datagrams: sends1.datagrams_sent - sends0.datagrams_sent, calls: sends1.send_calls - sends0.send_calls,
        datagrams_per_call: Math.round(((sends1.datagrams_sent - sends0.datagrams_sent) / Math.max(1, sends1.send_calls - sends0.send_calls)) * 10) / 10,
      } : null,
      chromium_g2g_ms: percentiles(lat.samples),
      chromium_frames: { presented: lat.frames - frames0, expected: Math.round(fps * seconds), unreadable: lat.misses },
    };
  } finally {
    await browser.close();
    await server.stop();
  }
}

const runs = [];
let port = Number(opts.port);
for (const transport of opts.transport.split(',')) {
  const mine = [];
  for (const n of opts.viewers.split(',').map(Number)) {
    const r = await runOnce(n, port++, transport);
    mine.push(r);
    const d = r.delivery_ratio || {};
    const g = r.chromium_g2g_ms || {};
    console.error(`fanout ${transport} ${r.load_viewers}+1: ${r.connected}/${r.load_viewers} connected, delivery min ${d.min} p50 ${d.p50},` +
      ` ${r.viewers_at_99pct} at >=99%; server ${r.server_cpu_pct_of_core}% of a core, ${r.server_loaded.rss_mib} MiB,` +
      ` ${r.server_loaded.threads} threads, ${r.server_loaded.fds} fds; Chromium G2G p50 ${g.p50} p95 ${g.p95} max ${g.max} ms` +
      (r.mux_sends ? `; ${r.mux_sends.datagrams_per_call} datagrams per send call` : ''));
  }
  // Cost per extra viewer against this transport's smallest run.
  const base = mine[0];
  for (const r of mine.slice(1)) {
    const extra = r.viewers - base.viewers;
    r.per_extra_viewer = {
      cpu_pct_of_core: Math.round(((r.server_cpu_pct_of_core - base.server_cpu_pct_of_core) / extra) * 1000) / 1000,
      rss_mib: Math.round(((r.server_loaded.rss_mib - base.server_loaded.rss_mib) / extra) * 1000) / 1000,
      threads: Math.round(((r.server_loaded.threads - base.server_loaded.threads) / extra) * 100) / 100,
      fds: Math.round(((r.server_loaded.fds - base.server_loaded.fds) / extra) * 100) / 100,
    };
  }
  runs.push(...mine);
}
console.log(JSON.stringify({
  bench: 'fanout', date: new Date().toISOString(), machine: machine(), mode: opts.mode, bitrate_kbps: Number(opts.bitrate),
  audio_frame_ms: Number(opts['audio-frame-ms']), nack_history_ms: Number(opts['nack-history-ms']),
  pinned: `glasscast on CPUs ${opts['server-cpus']} with ${opts['mux-threads']} mux thread(s); load client and Chromium on CPUs ${opts['client-cpus']}`,
  command: `node bench/fanout.mjs ${process.argv.slice(2).join(' ')}`.trim(), runs,
}, null, 1));
