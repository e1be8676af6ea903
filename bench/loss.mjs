// bench/loss: what random packet loss on the viewer's network does to a Chromium viewer (issue 17).
//
//   node bench/loss.mjs [--losses 0,1,5,10] [--seconds 30] [--mode 1280x720@30] [--bitrate 2500]
//                       [--bin target/release/glasscast] [--port 18700]
//
// Root only. Builds a network namespace for the viewer (veth: 198.18.30.1 here, 198.18.30.2 there) whose
// nftables drop its inbound UDP at random (`numgen random`, so every packet, media or RTCP, is lost with the
// same chance), and runs headless Chromium inside it. Per loss level: a fresh glasscast (its bitrate starts
// at the configured one) listens on 198.18.30.1 with a probe-painted test stream; the player opens
// /watch/main and, after a 3 s warm-up, is measured for --seconds: glass-to-glass latency (the latency
// probe, as bench/latency.mjs), frames presented, Chromium's inbound video counters over the time (freezes
// and their total time, NACKs and PLIs it sent, packets lost, retransmissions received), glasscast's NACK
// and PLI counters (/metrics) and its encoder bitrate (/readyz every 2 s: lowest and last).
// Prints one JSON object on stdout and a summary line per loss level on stderr.
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium, machine, parseArgs, percentiles, sleep, startServer } from './lib.mjs';
import { inboundVideo, statsDelta } from '../tests/browser/player.mjs';

const opts = parseArgs(process.argv.slice(2), {
  losses: '0,1,5,10', seconds: '30', mode: '1280x720@30', bitrate: '2500', bin: 'target/release/glasscast', port: '18700',
});
const m = opts.mode.match(/^(\d+)x(\d+)@(\d+)$/);
if (!m) throw new Error(`bad --mode ${opts.mode}`);
const [width, height, fps] = m.slice(1).map(Number);
const [HOST, VIEWER] = ['198.18.30.1', '198.18.30.2'];

const sh = (...args) => execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const ns = `gcloss${process.pid % 100000}`;
const [outside, inside] = [`${ns}h`, `${ns}v`];

// The viewer's namespace and its link to this one; a wrapper that runs Chromium inside it.
async function buildTestbed() {
  sh('ip', 'netns', 'add', ns);
  sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  sh('ip', 'link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
  sh('ip', 'link', 'set', inside, 'netns', ns);
  sh('ip', 'addr', 'add', `${HOST}/24`, 'dev', outside);
  sh('ip', 'link', 'set', outside, 'up');
  sh('ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `${VIEWER}/24`, 'dev', inside);
  sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', inside, 'up');
  const dir = await mkdtemp(join(tmpdir(), 'glasscast-loss-'));
  const wrapper = join(dir, 'chromium-in-ns');
  await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${process.env.CHROMIUM || '/usr/bin/chromium'} "$@"\n`);
  await chmod(wrapper, 0o755);
  return { wrapper, dir };
}

function setLoss(percent) {
  try { sh('ip', 'netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'random_loss'); } catch { /* none yet */ }
  const permille = Math.round(percent * 10);
  const rules = `table inet random_loss {\n chain input {\n  type filter hook input priority 0;\n  ` +
    `meta l4proto udp numgen random mod 1000 < ${permille} drop\n }\n}\n`;
  execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: rules });
}

async function metricsOf(port) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (name) => {
    const line = text.split('\n').find((l) => l.startsWith(name) && l.includes('stream="main"'));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  return { nacks: value('glasscast_viewer_nacks_total'), plis: value('glasscast_viewer_plis_total') };
}

async function runLevel(percent, port) {
  setLoss(percent);
  const metricsPort = port + 1000;
  const server = await startServer({
    bin: opts.bin, port, host: HOST, metricsPort,
    stream: { width, height, fps, bitrate_kbps: Number(opts.bitrate), latency_probe: true },
  });
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    await page.goto(`${server.base}/watch/main`, { waitUntil: 'load' });
    for (const t0 = Date.now(); !(await page.evaluate(() => window.glasscast.latency.lastMs !== null));) {
      if (Date.now() - t0 > 30_000) throw new Error(`${percent}% loss: no latency code read within 30 s`);
      await sleep(200);
    }
    await sleep(3000);
    await page.evaluate(() => window.glasscast.latency.take());
    const [frames0, stats0, server0] = [await page.evaluate(() => window.glasscast.framesRendered),
      await inboundVideo(page), await metricsOf(metricsPort)];
    const bitrates = [];
    for (const t0 = Date.now(); Date.now() - t0 < Number(opts.seconds) * 1000;) {
      await sleep(2000);
      const ready = await (await fetch(`${server.base}/readyz`)).json();
      bitrates.push(ready.streams[0].bitrate_kbps);
    }
    const got = await page.evaluate(() => ({ ...window.glasscast.latency.take(), frames: window.glasscast.framesRendered }));
    const [stats1, server1] = [await inboundVideo(page), await metricsOf(metricsPort)];
    const inbound = statsDelta(stats0, stats1);
    return {
      loss_pct: percent, seconds: Number(opts.seconds), mode: opts.mode, bitrate_kbps: Number(opts.bitrate),
      frames_presented: got.frames - frames0, frames_expected: fps * Number(opts.seconds),
      g2g_ms: percentiles(got.samples), code_misses: got.misses,
      freezes: inbound.freezeCount ?? null, freezes_total_s: inbound.totalFreezesDuration ?? null,
      chromium: inbound,
      glasscast: { nacks: server1.nacks - server0.nacks, plis: server1.plis - server0.plis },
      encoder_kbps: { lowest: Math.min(...bitrates), last: bitrates[bitrates.length - 1], every_2s: bitrates },
    };
  } finally {
    await browser.close();
    await server.stop();
  }
}

const { wrapper, dir } = await buildTestbed();
process.env.CHROMIUM = wrapper;
const runs = [];
try {
  let port = Number(opts.port);
  for (const level of opts.losses.split(',').map(Number)) {
    const r = await runLevel(level, port++);
    runs.push(r);
    const g = r.g2g_ms || {};
    console.error(`loss ${level}%: g2g p50 ${g.p50} p95 ${g.p95} ms; ${r.frames_presented}/${r.frames_expected} frames; ` +
      `${r.freezes} freezes (${r.freezes_total_s} s); Chromium NACKs ${r.chromium.nackCount} PLIs ${r.chromium.pliCount} ` +
      `rtx ${r.chromium.retransmittedPacketsReceived}; glasscast NACKs ${r.glasscast.nacks} PLIs ${r.glasscast.plis}; ` +
      `bitrate lowest ${r.encoder_kbps.lowest} last ${r.encoder_kbps.last} kbit/s`);
  }
} finally {
  try { sh('ip', 'link', 'del', outside); } catch { /* gone with the namespace */ }
  try { sh('ip', 'netns', 'del', ns); } catch { /* already gone */ }
  await rm(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({
  bench: 'loss', date: new Date().toISOString(), machine: machine(),
  command: `node bench/loss.mjs ${process.argv.slice(2).join(' ')}`.trim(), runs,
}, null, 1));
