// bench/soak: the large counts of issue 17's hardening suites, which make test runs at CI size.
//
//   node bench/soak.mjs [--parts slowloris,junk] [--connections 3000] [--viewers 300] [--junk-rate 100000]
//                       [--seconds 30] [--mode 640x360@30] [--bitrate 1000] [--flood-after-ramp]
//                       [--bin target/release/glasscast]
//                       [--loadclient bench/loadclient/target/release/glasscast-loadclient] [--port 18800]
//
// slowloris: glasscast (plain HTTP, default [server.limits]: header timeout 10 s) gets --connections TCP
// connections from 127.1.x.y (at most 200 per address, under the per-client cap of 256), each sending half
// a request header and then nothing. Reported: how many the server closed and when (seconds after the last
// was opened), how many were still open 15 s after the header timeout, and /healthz (asked every 250 ms
// from 127.0.0.1 meanwhile): answers, failures, latency.
// junk: --viewers load viewers (bench/loadclient, str0m) watch for --seconds while this process sends about
// --junk-rate junk datagrams per second to the mux port (on this machine's first IPv4 address) from 8 sockets (random bytes, RTP-, RTCP- and
// DTLS-looking datagrams, STUN checks for unknown ufrags); 10 more viewers join in the middle. With
// --flood-after-ramp the junk starts once the viewers have joined (ramp + 5 s), else with them. Reported:
// the viewers' delivery, the join, the datagrams sent, glasscast's CPU and send lag.
// The churn suite's large count is bench/churn.mjs (--cycles 25 --viewers 40 --steady 20).
// Prints one JSON object on stdout and a line per part on stderr.
import dgram from 'node:dgram';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { cpuSeconds, machine, parseArgs, percentiles, runLoadClient, sleep, startServer } from './lib.mjs';

const opts = parseArgs(process.argv.slice(2), {
  parts: 'slowloris,junk', connections: '3000', viewers: '300', 'junk-rate': '100000', seconds: '30',
  mode: '640x360@30', bitrate: '1000', bin: 'target/release/glasscast',
  loadclient: 'bench/loadclient/target/release/glasscast-loadclient', port: '18800', 'flood-after-ramp': false,
});
const m = opts.mode.match(/^(\d+)x(\d+)@(\d+)$/);
if (!m) throw new Error(`bad --mode ${opts.mode}`);
const [width, height, fps] = m.slice(1).map(Number);
const HEADER_TIMEOUT_S = 10;

// Asks /healthz every 250 ms until stop() and returns {n, failures, latency_ms}.
function pollHealth(base) {
  const times = [];
  let failures = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      const t0 = performance.now();
      try {
        const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5000) });
        if (r.status === 200) times.push(performance.now() - t0); else failures++;
      } catch { failures++; }
      await sleep(250);
    }
  })();
  return async () => {
    running = false;
    await done;
    return { n: times.length, failures, latency_ms: percentiles(times.map((t) => Math.round(t * 10) / 10)) };
  };
}

async function slowloris(port) {
  const server = await startServer({ bin: opts.bin, port, stream: { width: 320, height: 240, fps: 15, bitrate_kbps: 300 } });
  const health = pollHealth(server.base);
  const n = Number(opts.connections);
  const sockets = [];
  const closedAt = [];
  let openedAt = 0;
  let refused = 0;
  try {
    for (let i = 0; i < n; i++) {
      const localAddress = `127.1.${Math.floor(i / 200) % 250}.${(i % 200) + 1}`;
      const s = net.connect({ host: '127.0.0.1', port, localAddress });
      s.on('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: soak\r\nX-Slow: '));
      s.on('error', () => { refused++; });
      s.on('close', () => closedAt.push(performance.now()));
      s.on('data', () => {});
      sockets.push(s);
      if (i % 100 === 99) await sleep(10);
    }
    openedAt = performance.now();
    await sleep((HEADER_TIMEOUT_S + 15) * 1000);
    const stillOpen = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
    const after = closedAt.map((t) => Math.round((t - openedAt) / 100) / 10);
    return {
      part: 'slowloris', connections: n, header_timeout_s: HEADER_TIMEOUT_S, closed: closedAt.length, errors: refused,
      still_open_after_s: { after: HEADER_TIMEOUT_S + 15, open: stillOpen },
      closed_after_last_opened_s: percentiles(after), healthz: await health(),
    };
  } finally {
    for (const s of sockets) s.destroy();
    await server.stop();
  }
}

// The i-th junk datagram (as tests/junk_flood.rs, in brief).
function junk(i) {
  const kind = i % 5;
  if (kind === 3) {
    const user = Buffer.from(`${i.toString(16).padStart(8, '0')}:x`);
    const attrs = Buffer.alloc(4 + Math.ceil(user.length / 4) * 4 + 24);
    attrs.writeUInt16BE(0x0006, 0); attrs.writeUInt16BE(user.length, 2); user.copy(attrs, 4);
    const mi = 4 + Math.ceil(user.length / 4) * 4;
    attrs.writeUInt16BE(0x0008, mi); attrs.writeUInt16BE(20, mi + 2); attrs.fill(0xab, mi + 4);
    const head = Buffer.alloc(20);
    head.writeUInt16BE(0x0001, 0); head.writeUInt16BE(attrs.length, 2); head.writeUInt32BE(0x2112a442, 4);
    head.writeUInt32BE(i >>> 0, 8);
    return Buffer.concat([head, attrs]);
  }
  const size = [200, 100, 120, 0, 64][kind];
  const b = Buffer.alloc(size);
  for (let k = 0; k < size; k += 4) b.writeUInt32LE(((i + 1) * 2654435761 + k * 40503) >>> 0, Math.min(k, size - 4));
  b[0] = [0x80, 0x81, 22, 0, i & 0xff][kind];
  return b;
}

// The mux listens on the machine's addresses, not on loopback: the first non-internal IPv4 one.
function muxHost() {
  const all = Object.values(networkInterfaces()).flat();
  const v4 = all.find((a) => a.family === 'IPv4' && !a.internal);
  if (!v4) throw new Error('no non-loopback IPv4 address for the mux');
  return v4.address;
}

async function junkFlood(port) {
  const muxPort = port + 1;
  const host = muxHost();
  const server = await startServer({
    bin: opts.bin, port, webrtc: { mux_port: muxPort },
    stream: { width, height, fps, bitrate_kbps: Number(opts.bitrate), max_viewers: Number(opts.viewers) + 20 },
  });
  const sockets = await Promise.all([...Array(8)].map(() => new Promise((r) => {
    const s = dgram.createSocket('udp4');
    s.bind(0, () => r(s));
  })));
  let sent = 0;
  let flooding = true;
  let started = !opts['flood-after-ramp'];
  const perTick = Math.round(Number(opts['junk-rate']) / 100);
  const flood = (async () => {
    while (flooding) {
      if (!started) {
        await sleep(100);
        continue;
      }
      const t0 = performance.now();
      for (let k = 0; k < perTick; k++, sent++) sockets[sent % 8].send(junk(sent), muxPort, host);
      await sleep(Math.max(0, 10 - (performance.now() - t0)));
    }
  })();
  try {
    const url = `${server.base}/whep/main`;
    const cpu0 = cpuSeconds(server.pid);
    const t0 = Date.now();
    const watching = runLoadClient({
      bin: opts.loadclient, url,
      args: ['--viewers', opts.viewers, '--duration', opts.seconds, '--ramp-ms', '30', '--expect-fps', String(fps)],
    });
    // --flood-after-ramp: the junk starts once every viewer has had time to join (ramp + 5 s).
    await sleep(Number(opts.viewers) * 30 + 5000);
    started = true;
    const floodFrom = Date.now();
    await sleep((Number(opts.seconds) * 1000) / 3);
    const join = await runLoadClient({ bin: opts.loadclient, url, args: ['--viewers', '10', '--duration', '3', '--ramp-ms', '100', '--expect-fps', String(fps)] });
    const ready = await (await fetch(`${server.base}/readyz`)).json();
    const lc = await watching;
    const wall = (Date.now() - t0) / 1000;
    const floodSeconds = (Date.now() - floodFrom) / 1000;
    const cpu = cpuSeconds(server.pid) - cpu0;
    return {
      part: 'junk', viewers: Number(opts.viewers), connected: lc.connected, delivery_ratio: lc.delivery_ratio,
      viewers_at_99pct: lc.viewers_at_99pct, failed: lc.failed.length,
      failed_first: lc.failed.slice(0, 3).map((f) => `${f.stage}: ${f.error}`),
      join: { connected: join.connected, delivery_ratio: join.delivery_ratio, failed: join.failed },
      flood_after_ramp: Boolean(opts['flood-after-ramp']),
      junk_sent: sent, junk_rate_per_s: Math.round(sent / (opts['flood-after-ramp'] ? floodSeconds : wall)),
      send_lag_ms: ready.streams[0].send_lag_ms ?? null,
      server_cpu_pct_of_core: Math.round((cpu / wall) * 1000) / 10,
    };
  } finally {
    flooding = false;
    await flood;
    for (const s of sockets) s.close();
    await server.stop();
  }
}

const results = [];
let port = Number(opts.port);
for (const part of opts.parts.split(',')) {
  const r = part === 'slowloris' ? await slowloris(port) : await junkFlood(port);
  port += 10;
  results.push(r);
  console.error(`soak ${part}: ${JSON.stringify(r)}`);
}
console.log(JSON.stringify({
  bench: 'soak', date: new Date().toISOString(), machine: machine(),
  command: `node bench/soak.mjs ${process.argv.slice(2).join(' ')}`.trim(), results,
}, null, 1));
