// The pages at the size and in the places schools use them: a class of 40
// (and 200) on a laptop and a phone, light and dark, sorting, filtering and
// search; the connection told truthfully while the service is down and after
// it is back; axe-core on every state; tokens out of the address bar; and the
// whole service behind a proxy under /attendance/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, newPage, screenshot, seconds } from './helpers/browser.mjs';
import { axeViolations } from './helpers/axe.mjs';
import { startProxy } from './helpers/proxy.mjs';
import { eventually, startServer } from './helpers/server.mjs';
import { accessToken, participantEvent, webhookToken } from './helpers/livekit.mjs';

const nowS = () => Math.floor(Date.now() / 1000);
const EXPECTED_ERRORS = /WebSocket connection to|ERR_CONNECTION_REFUSED|Failed to load resource/;
const unexpected = (page) => page.errors.filter((e) => !EXPECTED_ERRORS.test(e));
const pad = (n) => String(n).padStart(3, '0');

const SIZES = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
};

async function noAxeViolations(page, what) {
  const violations = await axeViolations(page);
  assert.deepEqual(violations, [], `axe-core on ${what}`);
}

/** Nothing in the students' box is cut off sideways, focus ring included. */
async function fitsSideways(page, what) {
  const report = await page.evaluate(() => {
    const doc = document.documentElement;
    const wrap = document.querySelector('#class .table-wrap');
    const box = wrap.getBoundingClientRect();
    const clipped = [];
    for (const el of wrap.querySelectorAll('#rows button:not([hidden]), #rows .badge, #rows [data-field="attended"]')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0) continue;
      // 3 px outline + 2 px offset around a focused button.
      const ring = el.tagName === 'BUTTON' ? 5 : 0;
      if (r.left - ring < box.left - 0.5 || r.right + ring > box.right + 0.5) {
        clipped.push(`${el.closest('tr')?.dataset.identity} ${el.dataset.field || el.dataset.action || el.className}`);
      }
    }
    return {
      pageScroll: doc.scrollWidth - doc.clientWidth,
      wrapScroll: wrap.scrollWidth - wrap.clientWidth,
      clipped: clipped.slice(0, 5),
    };
  });
  assert.ok(report.pageScroll <= 0, `${what}: the page scrolls sideways by ${report.pageScroll}px`);
  assert.ok(report.wrapScroll <= 0, `${what}: the table scrolls sideways by ${report.wrapScroll}px`);
  assert.deepEqual(report.clipped, [], `${what}: clipped`);
}

describe('pages for real classes', { timeout: 240000 }, () => {
  let server;
  let browser;
  const admin = accessToken('admin', 'any', 'admin');

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.close();
  });

  async function postEvent(kind, who) {
    const body = participantEvent(kind, who);
    const res = await server.postWebhook(body, webhookToken(body));
    assert.equal(res.status, 200, await res.text());
  }

  /**
   * A live lesson that started 20 minutes ago (60 min, no grace) with `size`
   * students on the roster: a third joined at the start and are still in, a
   * third joined at the start and left 10 minutes ago, the rest never joined;
   * plus a guest and the teacher.
   */
  async function classOf(room, size) {
    const teacher = accessToken('ms-smith', room, 'teacher', { name: 'Ms Smith' });
    const start = nowS() - 20 * 60;
    await server.json(`/api/sessions/${room}`, {
      method: 'PUT', token: teacher,
      body: { scheduled_at: new Date(start * 1000).toISOString(), duration_minutes: 60, grace_minutes: 0, title: `Class of ${size}` },
    });
    const roster = Array.from({ length: size }, (_, i) => ({ identity: `s${pad(i + 1)}`, name: `Student ${pad(i + 1)}` }));
    roster.push({ identity: 'ms-smith', name: 'Ms Smith', role: 'teacher' });
    await server.json(`/api/sessions/${room}/roster`, { method: 'PUT', token: teacher, body: { roster } });
    const join = (identity, name, at) => postEvent('participant_joined', {
      room, sid: `PA_${room}_${identity}`, identity, name, joinedAt: at, createdAt: at,
    });
    const jobs = [];
    for (let i = 0; i < size; i += 1) {
      const { identity, name } = roster[i];
      if (i % 3 === 2) continue;
      jobs.push(join(identity, name, start + 30).then(() => (i % 3 === 1
        ? postEvent('participant_left', {
          room, sid: `PA_${room}_${identity}`, identity, name, joinedAt: start + 30, createdAt: nowS() - 600,
        })
        : null)));
      if (jobs.length >= 10) await Promise.all(jobs.splice(0));
    }
    await Promise.all(jobs);
    await join('parent-1', 'A Parent', start + 60);
    await join('ms-smith', 'Ms Smith', start);
    await server.settle(admin, 20000);
    return teacher;
  }

  test('a class of 40 at 1280 px and 390 px, light and dark: fits, sorts, filters, searches', async () => {
    const room = 'class-40';
    const teacher = await classOf(room, 40);
    for (const [size, viewport] of Object.entries(SIZES)) {
      for (const colorScheme of ['light', 'dark']) {
        const page = await newPage(browser, { ...viewport, colorScheme });
        try {
          await page.goto(`${server.url}/dashboard.html?room=${room}#token=${encodeURIComponent(teacher)}`);
          await page.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
          await page.locator('#rows tr[data-identity="s040"]').waitFor({ timeout: 3000 });
          assert.ok(!page.url().includes('token'), `the token left the address bar: ${page.url()}`);
          assert.equal(await page.locator('#rows tr').count(), 41, '40 students and a guest');
          // Guests and teachers are counted apart from the students.
          assert.equal(await page.locator('#sum-total').textContent(), '40');
          assert.equal(await page.locator('#sum-guests').textContent(), '1');
          assert.equal(await page.locator('#sum-teachers').textContent(), '1');
          assert.equal(await page.locator('#sum-in').textContent(), '14');
          assert.equal(await page.locator('#sum-absent').textContent(), '13');
          // Who can no longer be present (never joined, 20 of 60 minutes gone),
          // and who must rejoin by when (left with 20 minutes counted).
          const never = page.locator('#rows tr[data-identity="s003"] [data-field="reach"]');
          assert.equal(await never.getAttribute('data-value'), 'unreachable');
          assert.equal(await never.isVisible(), true);
          const left = page.locator('#rows tr[data-identity="s002"] [data-field="reach"]');
          assert.equal(await left.getAttribute('data-value'), 'rejoin');
          assert.match(await left.textContent(), /Must rejoin by \d\d:\d\d to be present/);
          await fitsSideways(page, `${size} ${colorScheme}`);
          if (size === 'phone') {
            // Each student's name, status and attended time in view without scrolling sideways.
            const inView = await page.evaluate(() => [...document.querySelectorAll('#rows tr')].slice(0, 5).every((tr) => {
              const parts = [tr.querySelector('.name'), tr.querySelector('[data-field="status"]'), tr.querySelector('[data-field="attended"]')];
              return parts.every((el) => {
                const r = el.getBoundingClientRect();
                return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth && el.scrollWidth <= el.clientWidth + 1;
              });
            }));
            assert.ok(inView, 'name, status and attended time in view on a phone');
          }
          await noAxeViolations(page, `dashboard, class of 40, ${size}, ${colorScheme}`);
          await screenshot(page, `dashboard-40-${size}-${colorScheme}`);

          if (size === 'desktop' && colorScheme === 'light') {
            // A keyboard-focused button's ring is inside the box too.
            await page.locator('#rows tr[data-identity="s001"] button[data-action="correct"]').focus();
            await fitsSideways(page, 'focused');
            // Sort by status: absent first, then by name.
            await page.selectOption('#sort', 'status');
            await eventually(async () => (await page.locator('#rows tr').first().getAttribute('data-identity')) === 's003',
              { message: 'absent first' });
            // Sort by attended time, most first.
            await page.selectOption('#sort', 'attended-desc');
            await eventually(async () => {
              const first = await page.locator('#rows tr').nth(0).locator('[data-field="attended"]').textContent();
              const last = await page.locator('#rows tr').nth(40).locator('[data-field="attended"]').textContent();
              return seconds(first) >= seconds(last) && seconds(last) === 0;
            }, { message: 'most attended first' });
            // Filter: not in the meeting now (left, never joined).
            await page.selectOption('#filter', 'not-in-meeting');
            await eventually(async () => (await page.locator('#rows tr').count()) === 26, { message: '26 not in the meeting' });
            const badges = await page.locator('#rows tr td:nth-child(2) .badge').evaluateAll((els) => els.map((e) => e.dataset.value));
            assert.ok(badges.every((v) => v !== 'yes'), badges.join());
            assert.equal(await page.locator('#shown-count').textContent(), 'Showing 26 of 41');
            // Search by name, within the filter.
            await page.fill('#search', 'student 00');
            await eventually(async () => (await page.locator('#rows tr').count()) === 6, { message: 's002,3,5,6,8,9' });
            await page.selectOption('#filter', 'all');
            await page.fill('#search', 'parent');
            await eventually(async () => (await page.locator('#rows tr').count()) === 1, { message: 'the guest' });
            assert.equal(await page.locator('#rows tr[data-identity="parent-1"] .tag.guest').isVisible(), true);
            await page.fill('#search', 'nobody here');
            await page.locator('#empty').waitFor({ state: 'visible' });
            assert.equal(await page.locator('#empty').textContent(), 'No student matches.');
            await noAxeViolations(page, 'dashboard, no match');
            await page.fill('#search', '');
            await eventually(async () => (await page.locator('#rows tr').count()) === 41, { message: 'all again' });
          }
          assert.deepEqual(unexpected(page), []);
        } finally {
          await page.context().close();
        }
      }
    }
  });

  test('a class of 200 stays readable on a phone', async () => {
    const room = 'class-200';
    const teacher = await classOf(room, 200);
    const page = await newPage(browser, SIZES.phone);
    try {
      await page.goto(`${server.url}/dashboard.html?room=${room}#token=${encodeURIComponent(teacher)}`);
      await page.locator('#rows tr[data-identity="s200"]').waitFor({ timeout: 5000 });
      assert.equal(await page.locator('#sum-total').textContent(), '200');
      await fitsSideways(page, 'class of 200 on a phone');
      // A tick redraws only what changed: well under a second for 200 rows.
      const tick = await page.evaluate(async () => {
        const t0 = performance.now();
        await new Promise((r) => setTimeout(r, 2100));
        return performance.now() - t0;
      });
      assert.ok(tick < 4000, `ticks kept the page busy: ${tick} ms`);
      await page.selectOption('#filter', 'unreachable');
      await eventually(async () => (await page.locator('#rows tr').count()) === 66, { message: '66 cannot be present' });
      await noAxeViolations(page, 'dashboard, class of 200, filtered');
      await screenshot(page, 'dashboard-200-phone-unreachable');
    } finally {
      await page.context().close();
    }
  });

  test('the student page: rules in plain words, focus kept on Enter, a demo banner, the token kept out of links', async () => {
    for (const colorScheme of ['light', 'dark']) {
      const page = await newPage(browser, { ...SIZES.phone, colorScheme });
      try {
        await page.goto(`${server.url}/meeting.html?room=demo-pages-${colorScheme}`);
        await page.locator('#demo-start').waitFor({ state: 'visible' });
        assert.equal(await page.locator('#demo-banner').isVisible(), true);
        await noAxeViolations(page, `student page before the demo, ${colorScheme}`);
        await page.fill('#identity', `pupil-${colorScheme}`);
        await page.click('#start');
        await page.locator('#tracker [data-field="connection"][data-value="live"]').waitFor({ timeout: 5000 });
        assert.match(await page.locator('#rules').textContent(), /present from 80 % of the lesson; .*more than 10 minutes after the start counts as late/);
        assert.doesNotMatch(await page.locator('body').innerText(), /\?livekit=|wss:\/\//);
        const href = await page.locator('#dashboard-link').getAttribute('href');
        assert.ok(!new URL(href).search.includes('token'), href);
        assert.ok(new URL(href).hash.startsWith('#token='), href);
        // Enter on "Join the meeting": focus moves to "Leave the meeting".
        await page.locator('#connect').focus();
        await page.keyboard.press('Enter');
        await page.locator('#meeting-state[data-value="yes"]').waitFor({ timeout: 3000 });
        assert.equal(await page.evaluate(() => document.activeElement.id), 'disconnect');
        await noAxeViolations(page, `student page in the meeting, ${colorScheme}`);
        await screenshot(page, `meeting-phone-${colorScheme}`);
        await page.keyboard.press('Enter');
        await page.locator('#meeting-state[data-value="no"]').waitFor({ timeout: 3000 });
        assert.equal(await page.evaluate(() => document.activeElement.id), 'connect');
        assert.deepEqual(unexpected(page), []);
      } finally {
        await page.context().close();
      }
    }
  });

  test('offline told truthfully: frozen numbers, polling fallback, errors cleared, a failed leave', async () => {
    const own = await startServer();
    const student = await newPage(browser, SIZES.desktop);
    const dash = await newPage(browser, SIZES.desktop);
    try {
      await student.goto(`${own.url}/meeting.html?room=demo-offline`);
      await student.click('#start');
      await student.locator('#tracker [data-field="connection"][data-value="live"]').waitFor({ timeout: 5000 });
      await student.click('#connect');
      await student.locator('#meeting-state[data-value="yes"]').waitFor({ timeout: 3000 });
      await dash.goto(await student.locator('#dashboard-link').getAttribute('href'));
      await dash.waitForFunction(() => !location.href.includes('token'));
      await dash.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
      await dash.locator('tr[data-identity="student-1"] td:nth-child(2) .badge[data-value="yes"]').waitFor({ timeout: 3000 });
      assert.equal(await dash.locator('#demo-banner').isVisible(), true);
      // A reload keeps working: the token is in sessionStorage, not the URL.
      await dash.reload();
      await dash.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });

      await own.stop();
      await dash.locator('#link[data-value="reconnecting"]').waitFor({ timeout: 5000 });
      await dash.locator('#stale').waitFor({ state: 'visible' });
      assert.match(await dash.locator('#stale').textContent(), /Not current: these numbers are as of \d\d:\d\d/);
      // Numbers frozen while not current.
      await new Promise((r) => setTimeout(r, 1100));
      const frozen = await dash.locator('tr[data-identity="student-1"] [data-field="attended"]').textContent();
      await new Promise((r) => setTimeout(r, 2200));
      assert.equal(await dash.locator('tr[data-identity="student-1"] [data-field="attended"]').textContent(), frozen);
      // After three failed sockets it polls; the poll fails too: offline since HH:MM.
      await dash.locator('#link[data-value="offline"]').waitFor({ timeout: 15000 });
      assert.match(await dash.locator('#link').textContent(), /^Offline since \d\d:\d\d$/);
      await noAxeViolations(dash, 'dashboard offline');
      await screenshot(dash, 'dashboard-offline');

      // The student page says it is offline, and since when.
      await student.locator('#tracker-stale').waitFor({ state: 'visible', timeout: 5000 });
      assert.match(await student.locator('#tracker-stale').textContent(), /^Offline since \d\d:\d\d: /);
      // Leaving fails while the service is down: the page still says "in the meeting".
      await student.locator('#disconnect').focus();
      await student.keyboard.press('Enter');
      await student.locator('#message.error').waitFor({ timeout: 5000 });
      assert.match(await student.locator('#message').textContent(), /Could not leave the meeting.*still counted in the meeting/);
      assert.equal(await student.locator('#meeting-state').getAttribute('data-value'), 'yes');
      assert.equal(await student.evaluate(() => document.activeElement.id), 'disconnect');
      await noAxeViolations(student, 'student page, leave failed');
      await screenshot(student, 'meeting-leave-failed');

      await own.restart();
      await dash.locator('#link[data-value="live"], #link[data-value="polling"]').waitFor({ timeout: 35000 });
      await dash.locator('#stale').waitFor({ state: 'hidden' });
      await eventually(async () => (await dash.locator('#message').textContent()) === '', { message: 'the error cleared' });
      await dash.locator('#link[data-value="live"]').waitFor({ timeout: 35000 });
      await student.locator('#tracker-stale').waitFor({ state: 'hidden', timeout: 35000 });
      // The student leaves now, and the page follows.
      await student.keyboard.press('Enter');
      await student.locator('#meeting-state[data-value="no"]').waitFor({ timeout: 5000 });
      assert.equal(await student.locator('#message').textContent(), '');
      await dash.locator('tr[data-identity="student-1"] td:nth-child(2) .badge[data-value="no"]').waitFor({ timeout: 5000 });
      await noAxeViolations(dash, 'dashboard back online');
      assert.deepEqual(unexpected(dash), []);
    } finally {
      await student.context().close();
      await dash.context().close();
      await own.close();
    }
  });

  test('sockets that open and close before a snapshot still lead to polling', async () => {
    const room = 'class-40';
    const teacher = accessToken('ms-smith', room, 'teacher', { name: 'Ms Smith' });
    const page = await newPage(browser, SIZES.desktop);
    let sockets = 0;
    try {
      // Every live socket is accepted, then closed by the "server" with a reason, before any snapshot.
      await page.routeWebSocket(/\/live(\?|$)/, (ws) => {
        sockets += 1;
        setTimeout(() => ws.close({ code: 1009, reason: 'message too big' }), 50);
      });
      await page.goto(`${server.url}/dashboard.html?room=${room}#token=${encodeURIComponent(teacher)}`);
      await page.locator('#link[data-value="polling"]').waitFor({ timeout: 15000 });
      assert.ok(sockets >= 3, `${sockets} sockets before polling`);
      await page.locator('#rows tr[data-identity="s040"]').waitFor({ timeout: 5000 });
      assert.equal(await page.locator('#sum-total').textContent(), '40');
      assert.equal(await page.locator('#stale').isHidden(), true, 'polled numbers are current');
      await noAxeViolations(page, 'dashboard polling');
      await screenshot(page, 'dashboard-polling');
    } finally {
      await page.context().close();
    }
  });

  test('Arabic: chosen by the browser, right to left, numbers and times by Intl; the switch goes back to English', async () => {
    const room = 'class-40';
    const teacher = accessToken('ms-smith', room, 'teacher', { name: 'Ms Smith' });
    for (const [size, viewport] of Object.entries(SIZES)) {
      for (const colorScheme of ['light', 'dark']) {
        const page = await newPage(browser, { ...viewport, colorScheme, locale: 'ar-EG' });
        try {
          await page.goto(`${server.url}/dashboard.html?room=${room}#token=${encodeURIComponent(teacher)}`);
          await page.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
          await page.locator('#rows tr[data-identity="s040"]').waitFor({ timeout: 3000 });
          assert.equal(await page.evaluate(() => document.documentElement.dir), 'rtl');
          assert.equal(await page.evaluate(() => document.documentElement.lang), 'ar');
          assert.equal(await page.locator('#link').textContent(), 'تحديثات مباشرة');
          assert.equal(await page.locator('label[for="search"]').textContent(), 'ابحث بالاسم');
          // Numbers in the locale's digits (Egyptian Arabic: Arabic-Indic).
          assert.equal(await page.locator('#sum-total').textContent(), '٤٠');
          assert.match(await page.locator('#rows tr[data-identity="s003"] [data-field="status"]').textContent(), /غائب/);
          // The name column is on the right.
          const [nameX, statusX] = await page.evaluate(() => {
            const tr = document.querySelector('#rows tr');
            return [tr.querySelector('.name').getBoundingClientRect().right, tr.querySelector('[data-field="status"]').getBoundingClientRect().right];
          });
          assert.ok(nameX > statusX, `name at ${nameX}, status at ${statusX}`);
          await fitsSideways(page, `Arabic ${size} ${colorScheme}`);
          await noAxeViolations(page, `dashboard in Arabic, ${size}, ${colorScheme}`);
          await screenshot(page, `dashboard-40-ar-${size}-${colorScheme}`);
          if (size === 'desktop' && colorScheme === 'light') {
            await page.selectOption('#lang', 'en');
            await page.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
            assert.equal(await page.evaluate(() => document.documentElement.dir), 'ltr');
            assert.equal(await page.locator('#link').textContent(), 'Live updates');
            assert.equal(await page.locator('#sum-total').textContent(), '40');
          }
          assert.deepEqual(unexpected(page), []);
        } finally {
          await page.context().close();
        }
      }
    }
    const page = await newPage(browser, { ...SIZES.phone, locale: 'ar' });
    try {
      await page.goto(`${server.url}/meeting.html?room=demo-arabic`);
      await page.locator('#demo-start').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#start').textContent(), 'ابدأ التجربة');
      await page.click('#start');
      await page.locator('#tracker [data-field="connection"][data-value="live"]').waitFor({ timeout: 5000 });
      assert.match(await page.locator('#rules').textContent(), /تُحتسب حاضرًا من/);
      await noAxeViolations(page, 'student page in Arabic');
      await screenshot(page, 'meeting-ar-phone');
      await page.goto(`${server.url}/`);
      assert.equal(await page.locator('h1').textContent(), 'حضور عادل ومباشر للحصص عبر الإنترنت');
      assert.equal(await page.evaluate(() => document.documentElement.dir), 'rtl');
      await noAxeViolations(page, 'landing page in Arabic');
      await screenshot(page, 'index-ar-phone');
    } finally {
      await page.context().close();
    }
  });

  test('every language file has every string of the English one, and no other', async () => {
    const en = (await import('../www/i18n/en.js')).default;
    const ar = (await import('../www/i18n/ar.js')).default;
    assert.deepEqual(Object.keys(ar).sort(), Object.keys(en).sort());
    for (const [key, text] of Object.entries(en)) {
      const want = [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      const have = [...ar[key].matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      assert.deepEqual(have, want, `placeholders of ${key}`);
    }
  });

  test('served under /attendance/ through a proxy: pages, API and live sockets', async () => {
    const proxy = await startProxy(server.url, '/attendance/');
    const page = await newPage(browser, SIZES.desktop);
    try {
      await page.goto(`${proxy.url}meeting.html?room=demo-subpath`);
      await page.click('#start');
      await page.locator('#tracker [data-field="connection"][data-value="live"]').waitFor({ timeout: 5000 });
      await page.click('#connect');
      await page.locator('#tracker [data-field="in-meeting"][data-value="yes"]').waitFor({ timeout: 3000 });
      const href = await page.locator('#dashboard-link').getAttribute('href');
      assert.ok(href.startsWith(proxy.url), href);
      const dash = await page.context().newPage();
      await dash.goto(href);
      await dash.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
      await dash.locator('tr[data-identity="student-1"] td:nth-child(2) .badge[data-value="yes"]').waitFor({ timeout: 3000 });
      const outside = proxy.requests.filter((url) => !url.startsWith('/attendance/'));
      assert.deepEqual(outside, [], 'every request stays under the sub-path');
      assert.ok(proxy.requests.some((url) => url.includes('/live')), 'the live socket went through the proxy');
      assert.deepEqual(unexpected(page), []);
      await screenshot(dash, 'dashboard-subpath');
    } finally {
      await page.context().close();
      await proxy.close();
    }
  });
});
