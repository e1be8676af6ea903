// bench/churn: does a session leave anything behind? Cycles of N load viewers joining and leaving.
//
//   node bench/churn.mjs [--cycles 8] [--viewers 40] [--seconds 5] [--mode 640x360@30] [--bitrate 1000]
//                        [--steady 0] [--bin target/release/glasscast]
//                        [--loadclient bench/loadclient/target/release/glasscast-loadclient] [--port 18660]
//
// Starts glasscast, then per cycle runs the load client (N str0m viewers, --seconds of media, DELETE at the
// end), waits 2 s for teardown and records glasscast's RSS, threads and open fds. Growth per cycle and per
// session (after the first cycle, which pays one-time allocations) tells whether sessions leak.
// --steady N: N more load viewers watch throughout (one load client started before the first cycle, its
// window covering the cycles); their delivery, frame gaps and longest wait between two frames (a stall)
// are reported as `steady`.
// Prints one JSON object on stdout and a line per cycle on stderr.
import { machine, parseArgs, processFootprint, runLoadClient, sleep, startServer } from './lib.mjs';

const opts = parseArgs(process.argv.slice(2), {
  cycles: '8', viewers: '40', seconds: '5', mode: '640x360@30', bitrate: '1000', bin: 'target/release/glasscast',
  loadclient: 'bench/loadclient/target/release/glasscast-loadclient', port: '18660', steady: '0',
});
const steadyViewers = Number(opts.steady);
const m = opts.mode.match(/^(\d+)x(\d+)@(\d+)$/);
if (!m) throw new Error(`bad --mode ${opts.mode}`);
const [width, height, fps] = m.slice(1).map(Number);

const server = await startServer({
  bin: opts.bin, port: Number(opts.port),
  stream: { width, height, fps, bitrate_kbps: Number(opts.bitrate), max_viewers: Number(opts.viewers) + steadyViewers + 10 },
});
const cycles = [];
try {
  const start = processFootprint(server.pid);
  // The steady viewers' window is meant to cover every cycle: each took --seconds + 4-7 s here (the load
  // client's start, ramp and settling, the media, its DELETEs, 2 s of rest). `steady.cycles_in_window` says
  // how many did end inside it.
  const steadySeconds = Math.ceil(Number(opts.cycles) * (Number(opts.seconds) + 8)) + 5;
  const steady = steadyViewers > 0 ? runLoadClient({
    bin: opts.loadclient, url: `${server.base}/whep/main`,
    args: ['--viewers', opts.steady, '--duration', String(steadySeconds), '--ramp-ms', '20', '--expect-fps', String(fps)],
  }) : null;
  if (steady) await sleep(steadyViewers * 20 + 3000);
  const windowEnds = Date.now() + steadySeconds * 1000;
  for (let i = 0; i < Number(opts.cycles); i++) {
    const lc = await runLoadClient({
      bin: opts.loadclient, url: `${server.base}/whep/main`,
      args: ['--viewers', opts.viewers, '--duration', opts.seconds, '--ramp-ms', '20', '--expect-fps', String(fps)],
    });
    await sleep(2000);
    const f = processFootprint(server.pid);
    const ready = await (await fetch(`${server.base}/readyz`)).json();
    cycles.push({ cycle: i + 1, connected: lc.connected, deletes_ok: lc.deletes_ok, ...f, ready: ready.ready, ended_at: Date.now() });
    console.error(`churn cycle ${i + 1}: ${lc.connected}/${opts.viewers} connected, ${lc.deletes_ok} deleted; ` +
      `glasscast ${f.rss_mib} MiB, ${f.threads} threads, ${f.fds} fds`);
  }
  const s = steady ? await steady : null;
  const first = cycles[0];
  const last = cycles[cycles.length - 1];
  const sessions = (cycles.length - 1) * Number(opts.viewers);
  console.log(JSON.stringify({
    bench: 'churn', date: new Date().toISOString(), machine: machine(), mode: opts.mode,
    command: `node bench/churn.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    idle: start, cycles,
    ...(s ? { steady: { viewers: steadyViewers, connected: s.connected, window_s: s.duration_s,
      cycles_in_window: cycles.filter((c) => c.ended_at <= windowEnds).length,
      delivery_ratio: s.delivery_ratio, video_gaps_total: s.video_gaps_total, max_video_gap_ms: s.max_video_gap_ms,
      failed: s.failed } } : {}),
    after_first_cycle: {
      rss_mib_per_cycle: Math.round(((last.rss_mib - first.rss_mib) / Math.max(1, cycles.length - 1)) * 100) / 100,
      rss_kib_per_session: sessions ? Math.round(((last.rss_mib - first.rss_mib) * 1024) / sessions) : null,
      threads_growth: last.threads - first.threads,
      fds_growth: last.fds - first.fds,
    },
  }, null, 1));
} finally {
  await server.stop();
}
