// Debian's chromium driven by playwright-core (no browser downloads).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT } from './server.mjs';

export const ARTIFACTS = path.join(ROOT, 'tests/artifacts');

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync',
    ],
  });
}

/** A page that records console errors and failed requests for the test to check. */
export async function newPage(browser, {
  width = 1100, height = 800, colorScheme = 'light', locale = 'en-GB', timezoneId = 'UTC',
} = {}) {
  const context = await browser.newContext({
    acceptDownloads: true, viewport: { width, height }, timezoneId, locale, colorScheme,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') page.errors.push(`console: ${m.text()}`);
  });
  return page;
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** `MM:SS` or `H:MM:SS` as seconds. */
export function seconds(clock) {
  const parts = clock.trim().split(':').map(Number);
  if (parts.some((n) => !Number.isFinite(n))) return NaN;
  return parts.reduce((total, n) => total * 60 + n, 0);
}
