// A tour of a running dashboard (the demo's, say) in Debian's Chromium: every page at desktop
// and phone size, in Ukrainian and English, saved as screenshots. For looking at the product as
// staff see it, and for the README's picture; not a test (it checks nothing but that each page
// draws).
//
//   node tour.mjs URL NAME PASSWORD OUT_DIR
//
// `kombinat demo` prints URL, NAME and PASSWORD.

import { chromium } from 'playwright-core';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';

const [url, name, password, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node tour.mjs URL NAME PASSWORD OUT_DIR');
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run'],
});
const SIZES = { desktop: { width: 1366, height: 768 }, phone: { width: 390, height: 844 } };
const PAGES = ['plan', 'inside', 'doors', 'log', 'people', 'bookings', 'usage', 'devices', 'staff'];
try {
  const page = await (await browser.newContext({ viewport: SIZES.desktop })).newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(url);
  await page.fill('#login-name', name);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
  await page.waitForSelector('#top', { state: 'visible' });
  for (const lang of ['uk', 'en']) {
    if (await page.evaluate(() => document.documentElement.lang) !== lang) {
      await page.click('#lang');
      await page.waitForFunction((l) => document.documentElement.lang === l, lang);
    }
    for (const [size, viewport] of Object.entries(SIZES)) {
      await page.setViewportSize(viewport);
      for (const route of PAGES) {
        await page.click(`a[data-route="${route}"]`);
        await page.waitForSelector(`body[data-view="${route}"]`);
        await page.waitForTimeout(700);
        const file = join(out, `${route}-${size}-${lang}.png`);
        await page.screenshot({ path: file, fullPage: size === 'phone' });
        console.log(file);
      }
    }
  }
} finally {
  await browser.close();
}
