// Headless Chromium as the browser checks and the benches start it: the flags this machine needs (no
// sandbox, no GPU, nothing fetched in the background, autoplay allowed) and a fresh profile, which close()
// removes. `options` go to playwright's launchPersistentContext (ignoreHTTPSErrors, viewport), but for
// `extraArgs`, which are added to the flags.
// Environment: CHROMIUM = browser binary (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function launchChromium({ extraArgs = [], ...options } = {}) {
  const userDataDir = await mkdtemp(join(tmpdir(), 'glasscast-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required',
      ...extraArgs,
    ],
    ...options,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
    },
  };
}
