// Headless Firefox ESR as the browser checks start it (Pop!_OS's default browser), driven over WebDriver
// BiDi with puppeteer-core: self-signed certificates accepted, autoplay allowed, and OpenH264 off, as on an
// offline box (it cannot be downloaded): WebRTC then offers VP8/VP9/AV1 only, while a <video> still plays
// an MP4's H.264 with the system's libavcodec.
// Environment: FIREFOX = browser binary (default /usr/bin/firefox-esr).
import puppeteer from 'puppeteer-core';

export function launchFirefox() {
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
    headless: true,
    acceptInsecureCerts: true,
    extraPrefsFirefox: {
      'media.gmp-gmpopenh264.enabled': false,
      'media.gmp-manager.updateEnabled': false,
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
    },
  });
}
