// Names as LiveKit allows them, in the browser: a class named in Arabic with
// spaces, a slash and quotes, and a student whose identity has them too. The
// student's page tracks them (its heartbeats land under the right names) and
// the teacher's dashboard shows them live.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, newPage, screenshot } from './helpers/browser.mjs';
import { eventually, startServer } from './helpers/server.mjs';
import { accessToken, participantEvent, webhookToken } from './helpers/livekit.mjs';

const ROOM = 'رياضيات 101 / "الجبر"';
const STUDENT = 'طالب / o\'brien';
const seg = encodeURIComponent;

describe('names in any script', { timeout: 120000 }, () => {
  let server;
  let browser;
  const admin = accessToken('admin', 'any', 'admin');
  const teacher = accessToken('ms-smith', ROOM, 'teacher', { name: 'Ms Smith' });
  const student = accessToken(STUDENT, ROOM, 'student', { name: 'طالب' });

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    const start = Math.floor(Date.now() / 1000) - 5 * 60;
    await server.json(`/api/sessions/${seg(ROOM)}`, {
      method: 'PUT', token: teacher,
      body: { scheduled_at: new Date(start * 1000).toISOString(), duration_minutes: 60, title: 'الجبر' },
    });
    const body = participantEvent('participant_joined', {
      room: ROOM, sid: 'PA_arabic', identity: STUDENT, name: 'طالب', joinedAt: start + 60, createdAt: start + 60,
    });
    const res = await server.postWebhook(body, webhookToken(body));
    assert.equal(res.status, 200, await res.text());
    await server.settle(admin);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.close();
  });

  test("the student's page shows an Arabic room and identity with their numbers", async () => {
    const page = await newPage(browser, { width: 390, height: 844 });
    try {
      await page.goto(`${server.url}/meeting.html?room=${seg(ROOM)}#token=${seg(student)}`);
      await page.locator('#tracker-card').waitFor({ state: 'visible', timeout: 8000 });
      await eventually(async () => (await page.locator('#room-name').textContent()) === ROOM,
        { timeoutMs: 5000, message: 'the room name unchanged on the page' });
      // The tracker reads the student's own attendance under those names.
      const attended = page.locator('#tracker [data-field="attended"]');
      await eventually(async () => /\d/.test(await attended.textContent()),
        { timeoutMs: 8000, message: 'attended time shown' });
      const mine = `/api/sessions/${seg(ROOM)}/attendance/${seg(STUDENT)}`;
      const report = await server.json(mine, { token: student });
      assert.equal(report.identity, STUDENT);
      assert.equal(report.in_meeting, true);
      await screenshot(page, 'names-student-arabic');
    } finally {
      await page.context().close();
    }
  });

  test('the dashboard shows them live', async () => {
    const page = await newPage(browser, { width: 1280, height: 800 });
    try {
      await page.goto(`${server.url}/dashboard.html?room=${seg(ROOM)}#token=${seg(teacher)}`);
      await page.locator('#link[data-value="live"]').waitFor({ timeout: 8000 });
      const row = page.locator(`#rows tr[data-identity="${STUDENT.replace(/["\\]/g, '\\$&')}"]`);
      await row.waitFor({ timeout: 5000 });
      assert.match(await row.textContent(), /طالب/);
      await screenshot(page, 'names-dashboard-arabic');
    } finally {
      await page.context().close();
    }
  });
});
