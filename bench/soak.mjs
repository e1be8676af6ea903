// bench/soak: the large counts of issue 17's hardening suites, which make test runs at CI size.
//
//   node bench/soak.mjs [--parts slowloris,junk,junkcost] [--connections 3000] [--viewers 300] [--junk-rate 100000]
//                       [--seconds 30] [--mode 640x360@30] [--bitrate 1000] [--flood-after-ramp]
//                       [--bin target/release/glasscast]
//                       [--loadclient bench/loadclient/target/release/glasscast-loadclient] [--port 18800]
//                       [--junk target/release/examples/junk] [--mux-threads 0] [--full-every 1]
//
// slowloris: glasscast (plain HTTP, default [server.limits]: header timeout 10 s) gets --connections TCP
// connections from 127.1.x.y (at most 200 per address, under the per-client cap of 256), each sending half
// a request header and then nothing. Reported: how many the server closed and when (seconds after the last
// was opened), how many were still open 15 s after the header timeout, and /healthz (asked every 250 ms
// from 127.0.0.1 meanwhile): answers, failures, latency.
// junk: --viewers load viewers (bench/loadclient, str0m) watch for --seconds while the junk sender
// (--junk, bench/junk.rs: the mix of tests/load/junk_flood.rs, sendmmsg from 8 sockets) sends about --junk-rate
// datagrams per second to the mux port on this machine's first IPv4 address; 10 more viewers join a third
// of the way in. With
// --flood-after-ramp the junk starts once the viewers have joined (ramp + 5 s), else with them. Reported:
// the viewers' delivery, the join, the datagrams sent, glasscast's CPU and send lag.
// junkcost: glasscast with no viewers, --seconds quiet and then --seconds flooded: its CPU both ways and the
// difference per junk datagram (ns).
// `--mux-threads`: webrtc.mux_threads (0: one per core); `--full-every K`: the load client's light viewers
// (bench/loadclient README).
// The churn suite's large count is bench/churn.mjs (--cycles 25 --viewers 40 --steady 20).
// Prints one JSON object on stdout and a line per part on stderr.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { cpuSeconds, machine, parseArgs, percentiles, runLoadClient, sleep, startServer } from './lib.mjs';

const opts = parseArgs(process.argv.slice(2), {
  parts: 'slowloris,junk', connections: '3000', viewers: '300', 'junk-rate': '100000', seconds: '30',
  mode: '640x360@30', bitrate: '1000', bin: 'target/release/glasscast',
  loadclient: 'bench/loadclient/target/release/glasscast-loadclient', port: '18800', 'flood-after-ramp': false,
  junk: 'target/release/examples/junk', 'mux-threads': '0', 'full-every': '1',
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

// Runs the junk sender (bench/junk.rs, `sendmmsg` from 8 sockets) at `rate` for `seconds` against the mux
// port; resolves with its JSON report ({sent, seconds, rate_per_s}).
function sendJunk(to, rate, seconds) {
  return new Promise((resolve, reject) => {
    const child = spawn(opts.junk, ['--to', to, '--rate', String(rate), '--seconds', String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => {
      try { resolve(JSON.parse(out)); } catch { reject(new Error(`junk sender exited ${code}: ${err}`)); }
    });
  });
}

// The mux listens on the machine's addresses, not on loopback: the first non-internal IPv4 one.
function muxHost() {
  const all = Object.values(networkInterfaces()).flat();
  const v4 = all.find((a) => a.family === 'IPv4' && !a.internal);
  if (!v4) throw new Error('no non-loopback IPv4 address for the mux');
  return v4.address;
}

// The kernel's count of UDP datagrams dropped for a full socket receive buffer (all sockets; this run's
// server is the one being flooded).
function rcvbufErrors() {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  return Number(values[names.indexOf('RcvbufErrors')]);
}

async function junkFlood(port) {
  const muxPort = port + 1;
  const to = `${muxHost()}:${muxPort}`;
  const server = await startServer({
    bin: opts.bin, port, webrtc: { mux_port: muxPort, mux_threads: Number(opts['mux-threads']) },
    stream: { width, height, fps, bitrate_kbps: Number(opts.bitrate), max_viewers: Number(opts.viewers) + 20 },
  });
  try {
    const url = `${server.base}/whep/main`;
    const seconds = Number(opts.seconds);
    const rampS = (Number(opts.viewers) * 30) / 1000;
    const cpu0 = cpuSeconds(server.pid);
    const drops0 = rcvbufErrors();
    const t0 = Date.now();
    const watching = runLoadClient({
      bin: opts.loadclient, url,
      args: ['--viewers', opts.viewers, '--duration', opts.seconds, '--ramp-ms', '30', '--expect-fps', String(fps),
        '--full-every', opts['full-every']],
    });
    // --flood-after-ramp: the junk starts once every viewer has had time to join (ramp + 5 s).
    const delayS = opts['flood-after-ramp'] ? rampS + 5 : 0;
    await sleep(delayS * 1000);
    const junk = sendJunk(to, Number(opts['junk-rate']), rampS + seconds - delayS);
    // 10 more viewers join a third of the way into the watch, during the flood.
    await sleep(Math.max(0, (rampS + seconds / 3 - delayS) * 1000));
    const join = await runLoadClient({ bin: opts.loadclient, url, args: ['--viewers', '10', '--duration', '3', '--ramp-ms', '100', '--expect-fps', String(fps)] });
    const ready = await (await fetch(`${server.base}/readyz`)).json();
    const lc = await watching;
    const sent = await junk;
    const wall = (Date.now() - t0) / 1000;
    const cpu = cpuSeconds(server.pid) - cpu0;
    return {
      part: 'junk', viewers: Number(opts.viewers), connected: lc.connected, delivery_ratio: lc.delivery_ratio,
      viewers_at_99pct: lc.viewers_at_99pct, failed: lc.failed.length,
      failed_first: lc.failed.slice(0, 3).map((f) => `${f.stage}: ${f.error}`),
      join: { connected: join.connected, delivery_ratio: join.delivery_ratio, failed: join.failed },
      flood_after_ramp: Boolean(opts['flood-after-ramp']),
      junk_sent: sent.sent, junk_rate_per_s: sent.rate_per_s, udp_rcvbuf_drops: rcvbufErrors() - drops0,
      send_lag_ms: ready.streams[0].send_lag_ms ?? null,
      server_cpu_pct_of_core: Math.round((cpu / wall) * 1000) / 10,
    };
  } finally {
    await server.stop();
  }
}

// junkcost: what the junk alone costs glasscast: its CPU over --seconds with no viewers and no junk, then
// with --junk-rate junk, and the difference per datagram.
async function junkCost(port) {
  const muxPort = port + 1;
  const server = await startServer({ bin: opts.bin, port, webrtc: { mux_port: muxPort }, stream: { width, height, fps, bitrate_kbps: Number(opts.bitrate) } });
  try {
    const seconds = Number(opts.seconds);
    const measure = async (during) => {
      const [c0, t0, d0] = [cpuSeconds(server.pid), Date.now(), rcvbufErrors()];
      const r = await during();
      return { cpu_s: cpuSeconds(server.pid) - c0, wall_s: (Date.now() - t0) / 1000, r, drops: rcvbufErrors() - d0 };
    };
    const quiet = await measure(() => sleep(seconds * 1000));
    const loud = await measure(() => sendJunk(`${muxHost()}:${muxPort}`, Number(opts['junk-rate']), seconds));
    const extra = loud.cpu_s / loud.wall_s - quiet.cpu_s / quiet.wall_s;
    return {
      part: 'junkcost', junk_rate_per_s: loud.r.rate_per_s, junk_sent: loud.r.sent,
      server_cpu_pct_quiet: Math.round((quiet.cpu_s / quiet.wall_s) * 1000) / 10,
      server_cpu_pct_flooded: Math.round((loud.cpu_s / loud.wall_s) * 1000) / 10,
      ns_per_datagram: Math.round((extra / loud.r.rate_per_s) * 1e9), udp_rcvbuf_drops: loud.drops,
    };
  } finally {
    await server.stop();
  }
}

const results = [];
let port = Number(opts.port);
for (const part of opts.parts.split(',')) {
  const run = { slowloris, junk: junkFlood, junkcost: junkCost }[part];
  if (!run) throw new Error(`unknown part ${part} (slowloris, junk, junkcost)`);
  const r = await run(port);
  port += 10;
  results.push(r);
  console.error(`soak ${part}: ${JSON.stringify(r)}`);
}
console.log(JSON.stringify({
  bench: 'soak', date: new Date().toISOString(), machine: machine(),
  command: `node bench/soak.mjs ${process.argv.slice(2).join(' ')}`.trim(), results,
}, null, 1));
