// End to end in Chromium: the real server (SQLite, demo mode), the student's
// meeting page with the wasm tracker, the teacher dashboard, LiveKit-signed
// webhooks, heartbeats, a server restart, and what a student may see.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { launchBrowser, newPage, screenshot, seconds } from './helpers/browser.mjs';
import { axeViolations } from './helpers/axe.mjs';
import { eventually, startServer } from './helpers/server.mjs';
import { accessToken, participantEvent, unix, webhookToken } from './helpers/livekit.mjs';

const ROOM = 'demo-e2e';
const PAST_ROOM = 'e2e-past';
const nowS = () => Math.floor(Date.now() / 1000);

// Chromium logs refused WebSocket connections while the server restarts.
const EXPECTED_ERRORS = /WebSocket connection to|ERR_CONNECTION_REFUSED|Failed to load resource/;
const unexpected = (page) => page.errors.filter((e) => !EXPECTED_ERRORS.test(e));
const noAxeViolations = async (page, what) => assert.deepEqual(await axeViolations(page), [], `axe-core on ${what}`);

/** The HTTP status a WebSocket upgrade request gets (101 when accepted). */
function upgradeStatus(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, {
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
      timeout: 5000,
    });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve(res.statusCode); });
    req.on('response', (res) => { res.resume(); resolve(res.statusCode); });
    req.on('timeout', () => req.destroy(new Error('upgrade timed out')));
    req.on('error', reject);
  });
}

describe('browser', { timeout: 120000 }, () => {
  let server;
  let browser;
  let student; // meeting.html
  let dashboard; // dashboard.html for ROOM
  let demo; // the /demo/start reply
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

  async function report(room, token) {
    return server.json(`/api/sessions/${room}/attendance`, { token });
  }

  /** The dashboard row of `identity` as text. */
  async function row(page, identity) {
    const tr = page.locator(`tr[data-identity="${identity}"]`);
    return {
      attended: await tr.locator('[data-field="attended"]').textContent(),
      percentage: await tr.locator('[data-field="percentage"]').textContent(),
      status: await tr.locator('[data-field="status"]').getAttribute('data-value'),
      statusText: await tr.locator('[data-field="status"]').textContent(),
      joins: await tr.locator('[data-field="join-count"]').textContent(),
      inMeeting: await tr.locator('td:nth-child(2) .badge').getAttribute('data-value'),
    };
  }

  test('the landing page and the pages before a demo starts', async () => {
    const page = await newPage(browser);
    try {
      await page.goto(`${server.url}/`);
      assert.match(await page.locator('h1').textContent(), /attendance/i);
      await noAxeViolations(page, 'the landing page');
      await screenshot(page, 'index');
      await page.click('a.button[href="dashboard.html"]');
      await page.locator('#demo-start').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#class').isHidden(), true);
      await noAxeViolations(page, 'the dashboard before a demo');
      await screenshot(page, 'dashboard-start');
      await page.goto(`${server.url}/meeting.html?room=${ROOM}`);
      await page.locator('#demo-start').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#room-name').textContent(), ROOM);
      await noAxeViolations(page, 'the student page before a demo');
      await screenshot(page, 'meeting-start');
      assert.deepEqual(unexpected(page), []);
    } finally {
      await page.context().close();
    }
  });

  test('a page embedding the tracker without words gets the English card of i18n/en.js', async () => {
    const page = await newPage(browser);
    try {
      // Served from the service, as an embedding page loads it: no i18n.js, no `text`.
      await page.goto(`${server.url}/`);
      const shown = await page.evaluate(async () => {
        const wasm = await import('./pkg/attendance_tracker.js');
        await wasm.default();
        const host = document.createElement('div');
        document.body.append(host);
        const tracker = new wasm.AttendanceTracker({
          serverUrl: 'http://127.0.0.1:9', room: 'embedded', token: 'x.eyJzdWIiOiJzLTEifQ.y', element: host,
        });
        const start = new Date(Date.now() - 3 * 3600e3);
        tracker.handleMessage(JSON.stringify({
          type: 'attendance.snapshot', server_time: new Date().toISOString(),
          session: { scheduled_at: start.toISOString(), duration_minutes: 60, grace_minutes: 0 },
          participants: [{ identity: 's-1', cycles: [{ joined_at: start.toISOString(), left_at: new Date(+start + 600e3).toISOString() }] }],
        }));
        const field = (name) => host.querySelector(`[data-field=${name}]`).textContent;
        const out = { status: field('status'), phase: field('phase'), inMeeting: field('in-meeting'), label: host.querySelector('.att-label').textContent };
        tracker.stop();
        return out;
      });
      const en = (await import('../www/i18n/en.js')).default;
      assert.deepEqual(shown, {
        status: en['status.partial'], phase: en['phase.ended'], inMeeting: en['card.out'], label: en['card.attended'],
      });
      assert.deepEqual(unexpected(page), []);
    } finally {
      await page.context().close();
    }
  });

  test('a student joins in demo mode: the page shows it and ticks', async () => {
    student = await newPage(browser, { width: 800, height: 900 });
    await student.goto(`${server.url}/meeting.html?room=${ROOM}&heartbeat=1`);
    await student.locator('#demo-start').waitFor({ state: 'visible' });
    const started = student.waitForResponse((r) => r.url().endsWith('/demo/start'));
    await student.click('#start');
    demo = await (await started).json();
    assert.equal(demo.room, ROOM);
    assert.equal(demo.identity, 'student-1');

    const tracker = student.locator('#tracker');
    await tracker.locator('[data-field="connection"][data-value="live"]').waitFor();
    await tracker.locator('[data-field="phase"][data-value="live"]').waitFor();
    assert.equal(await tracker.locator('[data-field="in-meeting"]').getAttribute('data-value'), 'no');
    // "Stay until", from the rules: by when to join, then until when to stay.
    const staySays = (pattern) => student.waitForFunction(
      (source) => new RegExp(source).test(document.querySelector('#tracker [data-field="stay"]').textContent),
      pattern.source, { timeout: 2000 },
    );
    await staySays(/^Join by \d\d:\d\d to still be counted present$/);

    await student.click('#connect');
    await student.locator('#meeting-state[data-value="yes"]').waitFor({ timeout: 3000 });
    await tracker.locator('[data-field="in-meeting"][data-value="yes"]').waitFor({ timeout: 2000 });
    await staySays(/^Stay until \d\d:\d\d to be counted present$/);

    // The counter ticks every second without any message from the server.
    const attended = tracker.locator('[data-field="attended"]');
    const first = seconds(await attended.textContent());
    assert.ok(Number.isFinite(first), await attended.textContent());
    await student.waitForFunction(
      (before) => {
        const text = document.querySelector('#tracker [data-field="attended"]').textContent;
        const [m, s] = text.split(':').map(Number);
        return m * 60 + s > before;
      },
      first,
      { timeout: 2500 },
    );
    assert.deepEqual(unexpected(student), []);
    await screenshot(student, 'meeting-in-class');
  });

  test('the teacher dashboard shows the student with the server\'s numbers', async () => {
    const href = await student.locator('#dashboard-link').getAttribute('href');
    const url = new URL(href, server.url);
    // The token travels in the fragment (never sent to the server) and leaves the address bar.
    assert.equal(url.searchParams.get('token'), null);
    assert.equal(new URLSearchParams(url.hash.slice(1)).get('token'), demo.teacher_token);
    dashboard = await newPage(browser);
    await dashboard.goto(url.toString());
    await dashboard.waitForFunction(() => !location.href.includes('token'));
    await dashboard.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
    // The row is there within a second of the live connection.
    await dashboard.locator('tr[data-identity="student-1"]').waitFor({ timeout: 1000 });
    await dashboard.locator('tr[data-identity="student-1"] td:nth-child(2) .badge[data-value="yes"]').waitFor({ timeout: 1000 });

    const server1 = (await report(ROOM, demo.teacher_token)).participants.find((p) => p.identity === 'student-1');
    const shown = await row(dashboard, 'student-1');
    assert.ok(server1, 'student-1 in the report');
    assert.ok(Math.abs(seconds(shown.attended) - server1.attended_seconds) <= 2,
      `dashboard ${shown.attended} vs server ${server1.attended_seconds} s`);
    assert.equal(shown.status, server1.status);
    assert.equal(shown.joins, String(server1.join_count));
    assert.equal(shown.joins, '1');
    assert.equal(await dashboard.locator('#sum-in').textContent(), '1');
    assert.match(await dashboard.locator('tr[data-identity="student-1"] .who').textContent(), /Ada Lovelace/);
    assert.deepEqual(unexpected(dashboard), []);
    await screenshot(dashboard, 'dashboard-live');
  });

  test('a classmate\'s signed webhooks in the live room show capped numbers', async () => {
    // Joined ten minutes before the class began, left now: only time since the start counts.
    const start = unix(demo.session.scheduled_at);
    const joinedAt = start - 600;
    const leftAt = Math.max(start, nowS() - 1);
    const who = { room: ROOM, sid: 'PA_e2eGrace0001', identity: 'student-2', name: 'Grace Hopper', joinedAt };
    await postEvent('participant_joined', { ...who, createdAt: joinedAt });
    await postEvent('participant_left', { ...who, createdAt: leftAt });
    await server.settle(admin);
    const expected = (await report(ROOM, demo.teacher_token)).participants.find((p) => p.identity === 'student-2');
    assert.equal(expected.attended_seconds, leftAt - start);
    await dashboard.locator('tr[data-identity="student-2"]').waitFor({ timeout: 2000 });
    await eventually(async () => {
      const shown = await row(dashboard, 'student-2');
      return seconds(shown.attended) === expected.attended_seconds && shown.inMeeting === 'no' && shown;
    }, { timeoutMs: 2000, message: 'student-2 row with the capped numbers' });
    const shown = await row(dashboard, 'student-2');
    assert.equal(shown.status, expected.status);
    assert.equal(shown.joins, '1');
    assert.equal(await dashboard.locator('#sum-total').textContent(), '2');
  });

  test('a past class: the dashboard shows the final, capped report', async () => {
    const teacher = accessToken('ms-smith', PAST_ROOM, 'teacher');
    await server.json(`/api/sessions/${PAST_ROOM}`, {
      method: 'PUT', token: teacher,
      body: { scheduled_at: '2025-11-25T11:00:00Z', duration_minutes: 60, title: 'Algebra (past)' },
    });
    const t = (hhmm) => unix(`2025-11-25T${hhmm}:00Z`);
    // [identity, name, [[sid, join, leave], ...]]; window 11:00-12:30 (30 min grace).
    const people = [
      ['grace', 'Grace Hopper', [['PA_past_g1', '10:45', '11:15']]], // 900 s, 25 %, partial
      ['linus', 'Linus Pauling', [['PA_past_l1', '11:05', '12:45']]], // 5100 s, 100 %, present
      ['kat', 'Katherine Johnson', [['PA_past_k1', '11:20', '12:10']]], // 3000 s, 83.3 %, late
      ['mia', 'Mia Hamm', [['PA_past_m1', '11:00', '11:30'], ['PA_past_m2', '11:10', '11:40']]], // union 2400 s, 66.7 %
    ];
    for (const [identity, name, cycles] of people) {
      for (const [sid, join, leave] of cycles) {
        const who = { room: PAST_ROOM, sid, identity, name, joinedAt: t(join) };
        await postEvent('participant_joined', { ...who, createdAt: t(join) });
        await postEvent('participant_left', { ...who, createdAt: t(leave) });
      }
    }
    await server.settle(admin);
    const rep = await report(PAST_ROOM, teacher);
    const byId = Object.fromEntries(rep.participants.map((p) => [p.identity, p]));
    const expected = {
      grace: [900, 25.0, 'partial', 1],
      linus: [5100, 100.0, 'present', 1],
      kat: [3000, 83.3, 'late', 1],
      mia: [2400, 66.7, 'partial', 2],
    };
    for (const [identity, [secs, pct, status, joins]] of Object.entries(expected)) {
      const p = byId[identity];
      assert.deepEqual([p.attended_seconds, p.attendance_percentage, p.status, p.join_count], [secs, pct, status, joins], identity);
    }

    const page = await newPage(browser);
    try {
      await page.goto(`${server.url}/dashboard.html?room=${PAST_ROOM}&token=${encodeURIComponent(teacher)}`);
      await page.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
      await page.locator('tr[data-identity="mia"]').waitFor({ timeout: 2000 });
      assert.equal(await page.locator('#phase').getAttribute('data-value'), 'ended');
      for (const [identity, p] of Object.entries(byId)) {
        const shown = await row(page, identity);
        assert.equal(seconds(shown.attended), p.attended_seconds, identity);
        assert.equal(shown.percentage, `${p.attendance_percentage.toFixed(1)}%`, identity);
        assert.equal(shown.status, p.status, identity);
        assert.match(shown.statusText, /· final$/, identity);
        assert.equal(shown.joins, String(p.join_count), identity);
        assert.equal(shown.inMeeting, 'no', identity);
      }
      assert.equal(await page.locator('#sum-present').textContent(), '1');
      assert.equal(await page.locator('#sum-late').textContent(), '1');
      assert.equal(await page.locator('#sum-partial').textContent(), '2');
      // The CSV button downloads the same report.
      const downloading = page.waitForEvent('download');
      await page.click('#csv');
      const download = await downloading;
      assert.equal(download.suggestedFilename(), `attendance-${PAST_ROOM}-2025-11-25.csv`);
      const csv = readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/).map((line) => line.split(','));
      const col = (name) => csv[0].indexOf(name);
      const grace = csv.find((r) => r[col('identity')] === 'grace');
      assert.ok(grace, csv.join('\n'));
      assert.deepEqual([grace[col('attended_seconds')], grace[col('status')], grace[col('final')]], ['900', 'partial', 'yes']);
      assert.equal(csv.length, 1 + 4);
      assert.deepEqual(unexpected(page), []);
      await noAxeViolations(page, 'a past class');
      await screenshot(page, 'dashboard-past');
      await page.setViewportSize({ width: 390, height: 844 });
      await screenshot(page, 'dashboard-past-phone');
    } finally {
      await page.context().close();
    }
  });

  test('roster, teachers, a recorder and a teacher\'s correction on the dashboard', async () => {
    const room = 'e2e-roster';
    const teacher = accessToken('ms-smith', room, 'teacher', { name: 'Ms Smith' });
    const start = nowS() - 300;
    await server.json(`/api/sessions/${room}`, {
      method: 'PUT', token: teacher,
      body: {
        scheduled_at: new Date(start * 1000).toISOString(), duration_minutes: 60, grace_minutes: 10,
        title: 'Physics (roster)', timezone: 'Europe/Berlin', teacher_present_percent: 90,
      },
    });
    await server.json(`/api/sessions/${room}/roster`, {
      method: 'PUT', token: teacher,
      body: {
        roster: [
          { identity: 'rose', name: 'Rosalind Franklin' },
          { identity: 'nils', name: 'Niels Bohr', role: 'student' },
          { identity: 'ms-smith', name: 'Ms Smith', role: 'teacher' },
        ],
      },
    });
    const join = (identity, name, sid, extra = {}) => postEvent('participant_joined', {
      room, sid, identity, name, joinedAt: start + 60, createdAt: start + 60, ...extra,
    });
    await join('nils', 'Niels Bohr', 'PA_roster_nils');
    await join('ms-smith', 'Ms Smith', 'PA_roster_smith');
    await join('gus', 'Gus Guest', 'PA_roster_gus');
    await server.settle(admin);

    const page = await newPage(browser, { width: 1280, height: 900 });
    try {
      await page.goto(`${server.url}/dashboard.html?room=${room}&token=${encodeURIComponent(teacher)}`);
      await page.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
      await page.locator('tr[data-identity="rose"]').waitFor({ timeout: 2000 });

      // A rostered student who never joined: listed, highlighted, absent.
      const rose = page.locator('#rows tr[data-identity="rose"]');
      assert.equal(await rose.getAttribute('class'), 'never-joined');
      assert.equal(await rose.locator('td:nth-child(2) .badge').textContent(), 'Never joined');
      assert.equal((await row(page, 'rose')).status, 'absent');
      // A guest is marked as not on the roster; rostered students are not.
      assert.equal(await page.locator('#rows tr[data-identity="gus"] .tag.guest').isVisible(), true);
      assert.equal(await page.locator('#rows tr[data-identity="nils"] .tag.guest').isVisible(), false);
      // The rostered teacher is in the Teachers table, not among students.
      await page.locator('#teachers-wrap').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#teacher-rows tr[data-identity="ms-smith"]').count(), 1);
      assert.equal(await page.locator('#rows tr[data-identity="ms-smith"]').count(), 0);
      assert.match(await page.locator('#teachers caption').textContent(), /90 %/);
      assert.equal((await row(page, 'ms-smith')).inMeeting, 'yes');

      // Times in the session's zone (the browser runs in UTC), and it says so.
      const session = await server.json(`/api/sessions/${room}`, { token: teacher });
      assert.equal(await page.locator('#zone').textContent(), 'Times in Europe/Berlin');
      assert.ok((await page.locator('#window').textContent()).includes(session.scheduled_at_local.slice(11, 16)),
        `${await page.locator('#window').textContent()} vs ${session.scheduled_at_local}`);

      const sums = async () => {
        const out = {};
        for (const k of ['total', 'in', 'present', 'late', 'partial', 'absent', 'excused']) {
          out[k] = await page.locator(`#sum-${k}`).textContent();
        }
        return out;
      };
      const asText = (counts, total, inMeeting) => ({
        total: String(total), in: String(inMeeting),
        ...Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, String(v)])),
      });
      const before = await report(room, teacher);
      assert.deepEqual(before.participants.map((p) => p.identity).sort(), ['gus', 'nils', 'rose']);
      // The guest (gus, not on the roster) is counted apart from the students.
      const gus = before.participants.find((p) => p.identity === 'gus');
      const students = { ...before.counts, [gus.status]: before.counts[gus.status] - 1 };
      assert.deepEqual(await sums(), asText(students, 2, 1));
      assert.equal(await page.locator('#sum-guests').textContent(), '1');
      assert.equal(await page.locator('#sum-teachers').textContent(), '1');

      // A recorder (EGRESS) joins: listed as not counted, no count moves.
      assert.equal(await page.locator('#excluded').isHidden(), true);
      await join('EG_recorder', 'Recorder', 'PA_roster_egress', { participantKind: 'EGRESS' });
      await server.settle(admin);
      await page.locator('#excluded-list li[data-identity="EG_recorder"]').waitFor({ state: 'attached', timeout: 2000 });
      await page.locator('#excluded').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#excluded').getAttribute('open'), null, 'collapsed');
      assert.match(await page.locator('#excluded summary').textContent(), /Not counted: 1/);
      assert.match(await page.locator('#excluded-list li[data-identity="EG_recorder"]').textContent(), /egress.*not counted/);
      assert.equal(await page.locator('tr[data-identity="EG_recorder"]').count(), 0);
      const after = await report(room, teacher);
      assert.deepEqual(after.counts, before.counts);
      assert.deepEqual(after.excluded.map((p) => [p.identity, p.role, p.kind]), [['EG_recorder', 'excluded', 'EGRESS']]);
      assert.deepEqual(await sums(), asText(students, 2, 1));
      await page.click('#excluded summary');
      await noAxeViolations(page, 'a class with a roster, teachers and a recorder');
      await screenshot(page, 'dashboard-roster');

      // The student's own page, to see the correction arrive.
      const own = await newPage(browser, { width: 700, height: 800 });
      const roseToken = accessToken('rose', room, 'student', { name: 'Rosalind Franklin' });
      await own.goto(`${server.url}/meeting.html?room=${room}&token=${encodeURIComponent(roseToken)}`);
      await own.locator('#tracker [data-field="status"][data-value="absent"]').waitFor({ timeout: 5000 });

      // The teacher excuses Rosalind through the dialog.
      await rose.locator('button[data-action="correct"]').click();
      const dialog = page.locator('#correct');
      await dialog.waitFor({ state: 'visible' });
      assert.equal(await page.evaluate(() => document.activeElement.id), 'correct-status');
      await noAxeViolations(page, 'the correction dialog');
      await page.selectOption('#correct-status', 'excused');
      await page.click('#correct-save'); // no reason yet: refused, nothing sent
      assert.match(await page.locator('#correct-error').textContent(), /reason/i);
      assert.equal(await page.evaluate(() => document.activeElement.id), 'correct-reason');
      await page.fill('#correct-reason', 'Doctor\'s note for today');
      await screenshot(page, 'dashboard-correct-dialog');
      await page.click('#correct-save');
      await dialog.waitFor({ state: 'hidden' });
      assert.equal(await page.evaluate(() => document.activeElement.dataset.action), 'correct',
        'focus back on the row\'s button');
      await rose.locator('[data-field="status"][data-value="excused"]').waitFor({ timeout: 2000 });
      assert.equal(await rose.locator('[data-field="override"]').isVisible(), true);
      assert.match(await rose.locator('[data-field="override"]').getAttribute('title'),
        /ms-smith.*Computed status: Absent.*Doctor's note/);
      assert.match(await rose.locator('[data-field="override-detail"]').textContent(), /Was absent · “Doctor's note for today” — ms-smith/);
      assert.match(await page.locator('#feedback').textContent(), /Rosalind Franklin is now excused/);
      assert.equal(await page.locator('#sum-excused').textContent(), '1');
      assert.equal(await page.locator('#sum-absent').textContent(), String(before.counts.absent - 1));
      const corrected = (await report(room, teacher)).participants.find((p) => p.identity === 'rose');
      assert.deepEqual([corrected.status, corrected.computed_status, corrected.override.reason],
        ['excused', 'absent', 'Doctor\'s note for today']);
      await own.locator('#tracker [data-field="status"][data-value="excused"]').waitFor({ timeout: 3000 });
      assert.match(await own.locator('#tracker [data-field="note"]').textContent(), /set by your teacher/);
      await screenshot(own, 'meeting-excused');

      // A later webhook for her does not undo the correction.
      await join('rose', 'Rosalind Franklin', 'PA_roster_rose', { joinedAt: nowS(), createdAt: nowS() });
      await server.settle(admin);
      await rose.locator('td:nth-child(2) .badge[data-value="yes"]').waitFor({ timeout: 2000 });
      assert.equal(await rose.getAttribute('class'), 'overridden');
      assert.equal((await row(page, 'rose')).status, 'excused');
      // Her computed status moves on underneath (absent, then partial after a second).
      await page.waitForFunction(() => /Computed status: Partial/.test(
        document.querySelector('tr[data-identity="rose"] [data-field="override"]').title), null, { timeout: 3000 });
      // "Remove correction" is named by its visible label first (label-content-name-mismatch).
      await noAxeViolations(page, 'a corrected student');
      await noAxeViolations(own, 'the student page, excused');
      await screenshot(page, 'dashboard-excused');

      // Removing it (with a reason) restores the computed status.
      await rose.locator('button[data-action="remove"]').click();
      await dialog.waitFor({ state: 'visible' });
      assert.equal(await page.locator('#correct-status-field').isHidden(), true);
      assert.equal(await page.evaluate(() => document.activeElement.id), 'correct-reason');
      await page.fill('#correct-reason', 'She joined after all');
      await page.click('#correct-save');
      await dialog.waitFor({ state: 'hidden' });
      await rose.locator('[data-field="status"][data-value="partial"]').waitFor({ timeout: 2000 });
      assert.equal(await rose.locator('[data-field="override"]').isHidden(), true);
      assert.equal(await rose.locator('button[data-action="remove"]').isHidden(), true);
      assert.equal(await page.evaluate(() => document.activeElement.dataset.action), 'correct');
      const restored = (await report(room, teacher)).participants.find((p) => p.identity === 'rose');
      assert.deepEqual([restored.status, restored.override], [restored.computed_status, null]);
      assert.equal(await page.locator('#sum-excused').textContent(), '0');
      await own.locator('#tracker [data-field="status"][data-value="partial"]').waitFor({ timeout: 3000 });

      assert.deepEqual(unexpected(page), []);
      assert.deepEqual(unexpected(own), []);
      await own.context().close();
      await page.setViewportSize({ width: 390, height: 844 });
      await screenshot(page, 'dashboard-roster-phone');
    } finally {
      await page.context().close();
    }
  });

  test('heartbeats over the live socket are stored and advance', async () => {
    const path = `/api/sessions/${ROOM}/attendance/student-1`;
    const first = await eventually(async () => {
      const p = await server.json(path, { token: demo.teacher_token });
      return p.last_heartbeat_at;
    }, { timeoutMs: 3000, message: 'a first heartbeat' });
    // ?heartbeat=1 beats every second; the server stores one per 5 s per socket.
    const later = await eventually(async () => {
      const p = await server.json(path, { token: demo.teacher_token });
      return Date.parse(p.last_heartbeat_at) > Date.parse(first) && p.last_heartbeat_at;
    }, { timeoutMs: 9000, intervalMs: 250, message: 'the heartbeat to advance' });
    const gap = Date.parse(later) - Date.parse(first);
    assert.ok(gap >= 4500 && gap < 9000, `heartbeats ${gap} ms apart`);
    // The student's own token reads the same.
    const own = await server.json(path, { token: demo.student_token });
    assert.ok(Date.parse(own.last_heartbeat_at) >= Date.parse(later));
  });

  test('a student sees only their own attendance', async () => {
    // Over the live socket, with the student's token, while classmates change.
    const collecting = student.evaluate(async ({ room, token }) => {
      const messages = [];
      const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/api/sessions/${room}/live?access_token=${encodeURIComponent(token)}`);
      ws.onmessage = (e) => messages.push(e.data);
      await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
      window.__privacyDone = new Promise((resolve) => { window.__finishPrivacy = resolve; });
      ws.send(JSON.stringify({ type: 'heartbeat' }));
      await window.__privacyDone;
      ws.close();
      return messages;
    }, { room: ROOM, token: demo.student_token });
    await student.waitForFunction(() => typeof window.__finishPrivacy === 'function');
    const at = nowS();
    const who = { room: ROOM, sid: 'PA_e2eClass0003', identity: 'student-3', name: 'Hedy Lamarr', joinedAt: at };
    await postEvent('participant_joined', { ...who, createdAt: at });
    await server.settle(admin);
    // The teacher's dashboard gets the classmate: the change was broadcast.
    await dashboard.locator('tr[data-identity="student-3"]').waitFor({ timeout: 2000 });
    await new Promise((r) => setTimeout(r, 300));
    await student.evaluate(() => window.__finishPrivacy());
    const messages = (await collecting).map((m) => JSON.parse(m));

    const snapshot = messages.find((m) => m.type === 'attendance.snapshot');
    assert.ok(snapshot, JSON.stringify(messages));
    assert.deepEqual(snapshot.participants.map((p) => p.identity), ['student-1']);
    assert.ok(messages.some((m) => m.type === 'heartbeat.ack'), 'the socket answers');
    const text = JSON.stringify(messages);
    for (const classmate of ['student-2', 'Grace Hopper', 'student-3', 'Hedy Lamarr']) {
      assert.ok(!text.includes(classmate), `${classmate} leaked over the student's socket`);
    }
    const pageText = await student.locator('body').innerText();
    for (const classmate of ['student-2', 'Grace Hopper', 'student-3', 'Hedy Lamarr']) {
      assert.ok(!pageText.includes(classmate), `${classmate} on the student's page`);
    }

    // Over HTTP: a classmate's numbers and the class report are forbidden.
    for (const path of [`/api/sessions/${ROOM}/attendance/student-2`, `/api/sessions/${ROOM}/attendance`]) {
      const res = await server.fetch(path, { token: demo.student_token });
      assert.equal(res.status, 403, path);
    }
    // Another room's socket is refused too.
    assert.equal(await upgradeStatus(`${server.url}/api/sessions/${PAST_ROOM}/live?access_token=${demo.student_token}`), 403);
    assert.equal(await upgradeStatus(`${server.url}/api/sessions/${ROOM}/live?access_token=${demo.student_token}`), 101);
  });

  test('after a server restart both pages reconnect and get new updates', async () => {
    const port = server.port;
    await server.stop();
    await dashboard.locator('#link[data-value="reconnecting"]').waitFor({ timeout: 5000 });
    await student.locator('#tracker [data-field="connection"][data-value="reconnecting"]').waitFor({ timeout: 5000 });
    await server.restart();
    assert.equal(server.port, port);
    // Backoff is 1 s, 2 s, 4 s (±20 %) after the first failures.
    await dashboard.locator('#link[data-value="live"]').waitFor({ timeout: 15000 });
    await student.locator('#tracker [data-field="connection"][data-value="live"]').waitFor({ timeout: 15000 });

    // A webhook after the restart reaches the dashboard.
    const at = nowS();
    const who = { room: ROOM, sid: 'PA_e2eClass0004', identity: 'student-4', name: 'Alan Turing', joinedAt: at };
    await postEvent('participant_joined', { ...who, createdAt: at });
    await dashboard.locator('tr[data-identity="student-4"] td:nth-child(2) .badge[data-value="yes"]').waitFor({ timeout: 3000 });

    // The student leaves: their page and the dashboard both follow.
    await student.click('#disconnect');
    await student.locator('#meeting-state[data-value="no"]').waitFor({ timeout: 3000 });
    await student.locator('#tracker [data-field="in-meeting"][data-value="no"]').waitFor({ timeout: 3000 });
    await dashboard.locator('tr[data-identity="student-1"] td:nth-child(2) .badge[data-value="no"]').waitFor({ timeout: 3000 });
    await server.settle(admin);
    const rep = await report(ROOM, demo.teacher_token);
    const s1 = rep.participants.find((p) => p.identity === 'student-1');
    assert.equal(s1.is_currently_in_meeting, false);
    const shown = await row(dashboard, 'student-1');
    assert.equal(seconds(shown.attended), s1.attended_seconds);
    assert.equal(seconds(await student.locator('#tracker [data-field="attended"]').textContent()), s1.attended_seconds);
    assert.deepEqual(unexpected(student), []);
    assert.deepEqual(unexpected(dashboard), []);
    await screenshot(dashboard, 'dashboard-after-restart');
    await screenshot(student, 'meeting-after-leave');
  });
});
