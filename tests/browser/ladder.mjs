// Headless-Chromium viewers of one stream, watched for a while: what a quality ladder's switching looks like
// from the browser (tests/load/ladder.rs, bench/ladder.mjs).
//
//   node tests/browser/ladder.mjs <watch-url> <viewers> <seconds>
//
// Opens <viewers> pages of the watch page in one browser, waits (up to 20 s) until each renders frames, then
// looks every 100 ms for <seconds>: each page's rendered frame count and picture size; every second also its
// inbound video stats (freezes). Prints one line of JSON: {ok, viewers: [{samples: [[unixMs, frames, width,
// height], ...], stats: [[unixMs, {freezeCount, totalFreezesDuration, framesDecoded, ...}], ...]}], failed?}.
// The caller changes the network meanwhile and reads the timeline against its own clock (same machine).
// Environment: CHROMIUM = browser binary (default /usr/bin/chromium).
import { launchChromium } from './chromium.mjs';
import { inboundVideo, open, scriptArgs, sleep } from './player.mjs';

const [url, nArg, sArg] = scriptArgs('tests/browser/ladder.mjs <watch-url> <viewers> <seconds>', 30_000 + Number(process.argv[4] || 0) * 1000 + 60_000);
const [n, seconds] = [Number(nArg), Number(sArg)];

// Every page renders as if in front (a background tab would not draw its video).
const extraArgs = ['--disable-renderer-backgrounding', '--disable-background-timer-throttling',
  '--disable-backgrounding-occluded-windows'];
const browser = await launchChromium({ ignoreHTTPSErrors: true, viewport: { width: 640, height: 360 }, extraArgs });
const out = { ok: false, viewers: [] };
try {
  // The first viewer's tab, then a window of its own for each other (a background tab draws no video).
  const first = browser.context.pages()[0] || (await browser.context.newPage());
  await open(first, url);
  const pages = [first];
  for (let i = 1; i < n; i++) {
    const [page] = await Promise.all([
      browser.context.waitForEvent('page'),
      first.evaluate((u) => { window.open(u, `viewer${Math.random()}`, 'popup,width=640,height=360'); }, url),
    ]);
    await page.waitForLoadState('load');
    pages.push(page);
  }
  const look = (page) => page.evaluate(() => {
    const v = document.getElementById('video');
    const g = window.glasscast;
    return [Date.now(), g ? g.framesRendered : 0, v.videoWidth, v.videoHeight];
  });
  for (const [i, page] of pages.entries()) {
    const t0 = Date.now();
    while ((await look(page))[1] < 10) {
      if (Date.now() - t0 > 20_000) throw new Error(`viewer ${i} rendered no frames in 20 s`);
      await sleep(100);
    }
  }
  const viewers = pages.map(() => ({ samples: [], stats: [] }));
  let nextStats = 0;
  for (const end = Date.now() + seconds * 1000; Date.now() < end; await sleep(100)) {
    for (const [i, page] of pages.entries()) viewers[i].samples.push(await look(page));
    if (Date.now() >= nextStats) {
      nextStats = Date.now() + 1000;
      for (const [i, page] of pages.entries()) viewers[i].stats.push([Date.now(), await inboundVideo(page)]);
    }
  }
  out.viewers = viewers;
  out.ok = true;
} catch (e) {
  out.failed = String(e && e.message);
} finally {
  await browser.close();
}
// (Not process.exit: it would cut a long report off in the pipe.)
console.log(JSON.stringify(out));
process.exitCode = out.ok ? 0 : 1;
