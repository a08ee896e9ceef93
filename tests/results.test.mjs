// Results for teachers and students, in Chromium at laptop and phone sizes:
// a teacher opens the dashboard with their link and no room and gets the
// lessons they teach (today's, upcoming, past) with per-status counts, each
// opening its report, one in a room named in Arabic with spaces, a slash and
// quotes; a student opens their own history with totals and their grade from
// attendance, and downloads it as CSV. axe-core finds nothing on any of it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { launchBrowser, newPage, screenshot } from './helpers/browser.mjs';
import { axeViolations } from './helpers/axe.mjs';
import { eventually, startServer } from './helpers/server.mjs';
import { accessToken, participantEvent, webhookToken } from './helpers/livekit.mjs';

const SIZES = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
};
const EXPECTED_ERRORS = /WebSocket connection to|Failed to load resource/;
const unexpected = (page) => page.errors.filter((e) => !EXPECTED_ERRORS.test(e));

const ROOM = 'رياضيات / "أ" 7';
const ART = 'art-9';
const DAY = 24 * 3600;
const nowS = () => Math.floor(Date.now() / 1000);
/** Unix seconds of 09:00 UTC, `days` from today. */
const nineOn = (days) => {
  const d = new Date();
  d.setUTCHours(9, 0, 0, 0);
  return Math.floor(d.getTime() / 1000) + days * DAY;
};
const iso = (s) => new Date(s * 1000).toISOString();
const seg = encodeURIComponent;

async function noAxeViolations(page, what) {
  assert.deepEqual(await axeViolations(page), [], `axe-core on ${what}`);
}

/** Nothing on the page scrolls sideways. */
async function fitsSideways(page, what) {
  const over = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(over <= 0, `${what}: the page scrolls sideways by ${over}px`);
}

describe('class list, student history and grades', { timeout: 180000 }, () => {
  let server;
  let browser;
  const admin = accessToken('admin', 'any', 'admin');
  const teacher = accessToken('ms-lee', ROOM, 'teacher', { name: 'Ms Lee' });
  const student = accessToken('ada', ROOM, 'student', { name: 'Ada' });
  const ids = {};

  async function attend(room, identity, joined, left) {
    const who = { room, sid: `PA_${identity}_${joined}`, identity, name: identity, joinedAt: joined };
    for (const [kind, at] of [['participant_joined', joined], ['participant_left', left]]) {
      if (at === null) continue;
      const body = participantEvent(kind, { ...who, createdAt: at });
      const res = await server.postWebhook(body, webhookToken(body));
      assert.equal(res.status, 200, await res.text());
    }
  }

  async function lesson(room, body) {
    const s = await server.json(`/api/sessions/${seg(room)}`, { method: 'PUT', token: admin, body });
    return s.id;
  }

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    const roster = [
      { identity: 'ada', name: 'Ada' }, { identity: 'bo', name: 'بو / "ب"' },
      { identity: 'ms-lee', name: 'Ms Lee', role: 'teacher' },
    ];
    // Her room: two days ago (final), now (live), in three days (not started).
    ids.past = await lesson(ROOM, {
      scheduled_at: iso(nineOn(-2)), duration_minutes: 60, grace_minutes: 0, title: 'Algebra', roster,
    });
    const liveStart = Math.max(nowS() - 600, nineOn(0) - 9 * 3600);
    ids.today = await lesson(ROOM, {
      scheduled_at: iso(liveStart), duration_minutes: 60, grace_minutes: 0, title: 'Geometry', roster,
    });
    ids.upcoming = await lesson(ROOM, {
      scheduled_at: iso(nineOn(3)), duration_minutes: 60, grace_minutes: 0, title: 'Statistics', roster,
    });
    // Another room whose roster names her as teacher, with its own points.
    ids.art = await lesson(ART, {
      scheduled_at: iso(nineOn(-3)), duration_minutes: 60, grace_minutes: 0, title: 'Drawing',
      roster: [{ identity: 'ada' }, { identity: 'ms-lee', role: 'teacher' }], grade_points: { present: 4, late: 2 },
    });
    // A room that is not hers.
    await lesson('chem', { scheduled_at: iso(nineOn(-1)), duration_minutes: 45, title: 'Chemistry' });
    // Ada present two days ago, late (09:11) in the art lesson; Bo partial.
    await attend(ROOM, 'ada', nineOn(-2), nineOn(-2) + 3600);
    await attend(ROOM, 'bo', nineOn(-2) + 600, nineOn(-2) + 1200);
    await attend(ART, 'ada', nineOn(-3) + 660, nineOn(-3) + 3600);
    await server.settle(admin, 10000);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.close();
  });

  for (const [size, viewport] of Object.entries(SIZES)) {
    test(`a teacher's classes at ${size} size, each opening its report`, async () => {
      const page = await newPage(browser, viewport);
      try {
        await page.goto(`${server.url}/dashboard.html#token=${seg(teacher)}`);
        await page.locator('#classes .lesson-item').first().waitFor({ timeout: 5000 });
        assert.ok(!page.url().includes('token'), page.url());
        assert.equal(await page.locator('h1').textContent(), 'My classes');
        // Hers and the one she teaches by its roster; not chemistry.
        const groups = await page.locator('.lesson-list').evaluateAll((lists) => Object.fromEntries(
          lists.map((ul) => [ul.dataset.group, [...ul.children].map((li) => li.querySelector('.lesson-link').textContent)]),
        ));
        assert.deepEqual(groups, {
          today: ['Geometry'], upcoming: ['Statistics'], past: ['Algebra', 'Drawing'],
        }, 'today, upcoming, then past newest first');
        const past = page.locator(`.lesson-item[data-session="${ids.past}"]`);
        assert.equal(await past.locator('.lesson-room').textContent(), ROOM);
        assert.equal(await past.locator('.badge[data-value="ended"]').textContent(), 'Final');
        const counts = await past.locator('.lesson-counts li[data-status]').evaluateAll((items) => Object.fromEntries(
          items.map((li) => [li.dataset.status, li.querySelector('strong').textContent]),
        ));
        assert.deepEqual(counts, { present: '1', late: '0', partial: '1', absent: '0', excused: '0' });
        assert.equal(await page.locator(`.lesson-item[data-session="${ids.today}"] .badge`).first().getAttribute('data-value'), 'live');
        await fitsSideways(page, `class list, ${size}`);
        await noAxeViolations(page, `class list, ${size}`);
        await screenshot(page, `classes-${size}`);

        // Her lesson in the Arabic-named room opens its final report.
        await past.locator('.lesson-link').click();
        await page.locator('#rows tr[data-identity="ada"]').waitFor({ timeout: 5000 });
        const url = new URL(page.url());
        assert.equal(url.searchParams.get('room'), ROOM);
        assert.equal(url.searchParams.get('session'), String(ids.past));
        assert.ok(!url.hash.includes('token'), 'the token left the address bar');
        assert.equal(await page.locator('#room-name').textContent(), ROOM);
        assert.equal(await page.locator('#sum-present').textContent(), '1');
        await page.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
        await noAxeViolations(page, `a lesson opened from the list, ${size}`);

        // Back to the list, and into the lesson of another room she teaches.
        await page.locator('#my-classes').click();
        await page.locator(`.lesson-item[data-session="${ids.art}"] .lesson-link`).click();
        await page.locator('#rows tr[data-identity="ada"]').waitFor({ timeout: 5000 });
        await page.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
        assert.equal(await page.locator('#room-name').textContent(), ART);
        assert.equal(await page.locator('#sum-late').textContent(), '1');
        assert.deepEqual(unexpected(page), []);
      } finally {
        await page.context().close();
      }
    });
  }

  test('the class list in Arabic on a phone', async () => {
    const page = await newPage(browser, { ...SIZES.phone, locale: 'ar' });
    try {
      await page.goto(`${server.url}/dashboard.html#token=${seg(teacher)}`);
      await page.locator('#classes .lesson-item').first().waitFor({ timeout: 5000 });
      assert.equal(await page.evaluate(() => document.documentElement.dir), 'rtl');
      assert.equal(await page.locator('h1').textContent(), 'صفوفي');
      assert.equal(await page.locator('#group-past').textContent(), 'السابقة');
      // Earlier lessons on request: none older here, the list stays.
      await page.click('#earlier');
      await eventually(async () => (await page.locator('#classes .lesson-item').count()) === 4);
      await fitsSideways(page, 'class list in Arabic');
      await noAxeViolations(page, 'class list in Arabic');
      await screenshot(page, 'classes-ar-phone');
      assert.deepEqual(unexpected(page), []);
    } finally {
      await page.context().close();
    }
  });

  test('a student token lists no classes, and says why', async () => {
    const page = await newPage(browser, SIZES.desktop);
    try {
      await page.goto(`${server.url}/dashboard.html#token=${seg(student)}`);
      await eventually(async () => /teacher/.test(await page.locator('#message').textContent()));
      assert.equal(await page.locator('#classes .lesson-item').count(), 0);
      await noAxeViolations(page, 'class list refused');
    } finally {
      await page.context().close();
    }
  });

  for (const [size, viewport] of Object.entries(SIZES)) {
    test(`a student's own history with grade at ${size} size, and its CSV`, async () => {
      const page = await newPage(browser, viewport);
      try {
        // Asking for someone else's still shows their own.
        await page.goto(`${server.url}/history.html?identity=bo#token=${seg(student)}`);
        await page.locator('#rows tr').first().waitFor({ timeout: 5000 });
        assert.equal(await page.locator('#identity').inputValue(), 'ada');
        assert.equal(await page.locator('#identity').evaluate((el) => el.readOnly), true);
        assert.equal(await page.locator('h1').textContent(), 'History of ada');
        const rows = await page.locator('#rows tr').evaluateAll((trs) => trs.map((tr) => [
          Number(tr.dataset.session), tr.querySelector('.badge').dataset.value, tr.querySelector('[data-field="points"]').textContent,
        ]));
        assert.deepEqual(rows, [
          [ids.art, 'late', '2 of 4'],
          [ids.past, 'present', '2 of 2'],
          [ids.today, 'absent', '–'],
          [ids.upcoming, 'absent', '–'],
        ]);
        assert.equal(await page.locator('#sum-total').textContent(), '4');
        assert.equal(await page.locator('#sum-present').textContent(), '1');
        assert.equal(await page.locator('#sum-late').textContent(), '1');
        assert.equal(await page.locator('#sum-attended').textContent(), '1:49:00');
        assert.equal(await page.locator('#sum-grade').textContent(), '66.7%');
        assert.match(await page.locator('#grade-note').textContent(), /^4 of 6 points\. .*present 2, late 1/);
        // A student gets no links into the teacher's dashboard.
        assert.equal(await page.locator('#rows a').count(), 0);
        await noAxeViolations(page, `student history, ${size}`);
        await screenshot(page, `history-${size}`);

        if (size === 'desktop') {
          const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv')]);
          assert.equal(download.suggestedFilename(), 'attendance-ada.csv');
          const text = readFileSync(await download.path(), 'utf8');
          assert.ok(text.startsWith('\uFEFF'), 'a byte-order mark for Excel');
          const lines = text.trim().split(/\r?\n/);
          assert.match(lines[0], /,points,max_points,grade_percent$/);
          assert.equal(lines.length, 6, 'header, four lessons, the total');
          assert.ok(lines[2].startsWith(`"${ROOM.replaceAll('"', '""')}",${ids.past},`), lines[2]);
          assert.match(lines[5], /,total,.*,4,6,66\.7$/);
        }
        assert.deepEqual(unexpected(page), []);
      } finally {
        await page.context().close();
      }
    });
  }

  test("an administrator reads a student's history in Arabic, each lesson a link", async () => {
    const page = await newPage(browser, { ...SIZES.phone, locale: 'ar' });
    try {
      await page.goto(`${server.url}/history.html?identity=bo#token=${seg(admin)}`);
      await page.locator('#rows tr').first().waitFor({ timeout: 5000 });
      assert.equal(await page.locator('#identity').evaluate((el) => el.readOnly), false);
      assert.equal(await page.locator('#rows tr').count(), 3);
      // Partial two days ago: 1 of 2; the other two not over yet.
      // In the numbers of the page's Arabic locale.
      const [one, two, half] = await page.evaluate(() => {
        const n = new Intl.NumberFormat(navigator.language, { useGrouping: false });
        const p = new Intl.NumberFormat(navigator.language, { style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1 });
        return [n.format(1), n.format(2), p.format(0.5)];
      });
      assert.equal(await page.locator('#rows tr [data-field="points"]').first().textContent(), `${one} من ${two}`);
      assert.equal(await page.locator('#sum-grade').textContent(), half);
      const href = await page.locator(`#rows tr[data-session="${ids.past}"] a`).getAttribute('href');
      const url = new URL(href);
      assert.equal(url.searchParams.get('room'), ROOM);
      assert.equal(url.searchParams.get('session'), String(ids.past));
      await noAxeViolations(page, 'history in Arabic');
      await screenshot(page, 'history-ar-phone');
      assert.deepEqual(unexpected(page), []);
    } finally {
      await page.context().close();
    }
  });
});
