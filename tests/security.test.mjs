// The pages under the server's Content-Security-Policy, large classes over
// the live socket's parts, and a token expiring under an open page.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, newPage, screenshot } from './helpers/browser.mjs';
import { eventually, startServer } from './helpers/server.mjs';
import { accessToken, jwt, participantEvent, webhookToken } from './helpers/livekit.mjs';
import { KEY } from './helpers/server.mjs';

const nowS = () => Math.floor(Date.now() / 1000);
// Chromium logs a missing favicon as a failed load; nothing else may show.
const unexpected = (page) => page.errors.filter((e) => !/Failed to load resource/.test(e));

/** A page that also records every CSP violation the browser reports. */
async function watchedPage(browser, options) {
  const page = await newPage(browser, options);
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective}: ${e.blockedURI} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  return page;
}

async function violations(page) {
  const seen = await page.evaluate(() => window.__cspViolations);
  const logged = page.errors.filter((e) => /Content Security Policy|Refused to/i.test(e));
  return [...seen, ...logged];
}

describe('security', { timeout: 180000 }, () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.close();
  });

  test('the pages work under the Content-Security-Policy', async () => {
    const student = await watchedPage(browser, { width: 800, height: 900 });
    const teacher = await watchedPage(browser);
    try {
      const index = await student.goto(`${server.url}/`);
      const csp = index.headers()['content-security-policy'];
      assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.equal(index.headers()['x-frame-options'], 'DENY');
      assert.equal(index.headers()['x-content-type-options'], 'nosniff');
      assert.equal(index.headers()['referrer-policy'], 'no-referrer');

      const page = await student.goto(`${server.url}/meeting.html?room=csp-class&heartbeat=1`);
      assert.ok(page.headers()['content-security-policy']);
      await student.locator('#demo-start').waitFor({ state: 'visible' });
      await student.click('#start');
      const tracker = student.locator('#tracker');
      // The wasm tracker ran ('wasm-unsafe-eval') and its socket connected.
      await tracker.locator('[data-field="connection"][data-value="live"]').waitFor({ timeout: 5000 });
      await student.click('#connect');
      await tracker.locator('[data-field="in-meeting"][data-value="yes"]').waitFor({ timeout: 3000 });

      const href = await student.locator('#dashboard-link').getAttribute('href');
      await teacher.goto(new URL(href, server.url).toString());
      await teacher.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
      await teacher.locator('tr[data-identity="student-1"]').waitFor({ timeout: 2000 });
      // The legend's swatches are styled from the stylesheet, not inline.
      const swatch = await teacher.locator('.legend i.legend-grace').evaluate((e) => getComputedStyle(e).borderStyle);
      assert.equal(swatch, 'dashed');
      await screenshot(teacher, 'csp-dashboard');
      assert.deepEqual(await violations(student), []);
      assert.deepEqual(await violations(teacher), []);
      assert.deepEqual(unexpected(student), []);
      assert.deepEqual(unexpected(teacher), []);
    } finally {
      await student.context().close();
      await teacher.context().close();
    }
  });

  test('a class of 2,000 and a student with 700 join/leave cycles arrive whole, in parts', async () => {
    const room = 'big-e2e';
    const teacherToken = accessToken('ms-big', room, 'teacher');
    const start = new Date(Date.now() - 3 * 3600 * 1000);
    const roster = Array.from({ length: 2000 }, (_, i) => ({ identity: `s${String(i).padStart(4, '0')}`, name: `Student ${i}` }));
    await server.json(`/api/sessions/${room}`, {
      method: 'PUT', token: teacherToken,
      body: { scheduled_at: start.toISOString(), duration_minutes: 240, roster },
    });
    // 700 short visits of one student: her own snapshot is over 64 KiB.
    const first = Math.floor(start.getTime() / 1000);
    const posts = [];
    for (let i = 0; i < 700; i += 1) {
      const who = { room, sid: `PA_flaky_${i}`, identity: 's0007', joinedAt: first + i * 10 };
      posts.push([participantEvent('participant_joined', { ...who, createdAt: who.joinedAt }),
        participantEvent('participant_left', { ...who, createdAt: who.joinedAt + 5 })]);
    }
    for (let i = 0; i < posts.length; i += 25) {
      await Promise.all(posts.slice(i, i + 25).map(async ([join, leave]) => {
        for (const body of [join, leave]) {
          const res = await server.postWebhook(body, webhookToken(body));
          assert.equal(res.status, 200);
        }
      }));
    }
    await server.settle(accessToken('admin', 'any', 'admin'), 30000);

    const teacher = await watchedPage(browser);
    const student = await watchedPage(browser, { width: 800, height: 900 });
    try {
      const frames = [];
      teacher.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(f.payload.length)));
      await teacher.goto(`${server.url}/dashboard.html?room=${room}&token=${encodeURIComponent(teacherToken)}`);
      await teacher.locator('#link[data-value="live"]').waitFor({ timeout: 10000 });
      await eventually(async () => (await teacher.locator('tr[data-identity]').count()) === 2000,
        { timeoutMs: 20000, intervalMs: 250, message: '2,000 rows on the dashboard' });
      assert.ok(frames.length > 10 && Math.max(...frames) <= 64 * 1024, `frames: ${frames.length}, largest ${Math.max(...frames)}`);
      assert.equal(await teacher.locator('tr[data-identity="s0007"] [data-field="join-count"]').textContent(), '700');

      const studentToken = accessToken('s0007', room, 'student');
      await student.goto(`${server.url}/meeting.html?room=${room}&token=${encodeURIComponent(studentToken)}`);
      await student.locator('#tracker [data-field="connection"][data-value="live"]').waitFor({ timeout: 10000 });
      const joins = await eventually(
        () => student.evaluate(() => window.attendanceTracker.attendance()?.join_count),
        { timeoutMs: 10000, message: 'the tracker to read its snapshot' },
      );
      assert.equal(joins, 700);
      assert.deepEqual(await violations(teacher), []);
      assert.deepEqual(await violations(student), []);
      assert.deepEqual(unexpected(teacher), []);
      assert.deepEqual(unexpected(student), []);
    } finally {
      await teacher.context().close();
      await student.context().close();
    }
  });

  test('a page whose token expires is told so, and stops reconnecting', async () => {
    const room = 'expiring';
    await server.json(`/api/sessions/${room}`, {
      method: 'PUT', token: accessToken('t', room, 'teacher'),
      body: { scheduled_at: new Date(Date.now() - 600000).toISOString(), duration_minutes: 60 },
    });
    // 57 s past `exp`: still inside the 60 s leeway, so the socket opens.
    const now = nowS();
    const token = jwt({ iss: KEY, sub: 'late', nbf: now - 3600, exp: now - 57, video: { room, roomJoin: true } });
    const page = await watchedPage(browser, { width: 800, height: 900 });
    try {
      let sockets = 0;
      page.on('websocket', () => { sockets += 1; });
      await page.goto(`${server.url}/meeting.html?room=${room}&token=${encodeURIComponent(token)}`);
      await page.locator('#tracker [data-field="connection"][data-value="expired"]').waitFor({ timeout: 10000 });
      assert.equal(await page.evaluate(() => window.attendanceTracker.tokenExpired), true);
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal(sockets, 1, 'no reconnecting with an expired token');
    } finally {
      await page.context().close();
    }
  });
});
