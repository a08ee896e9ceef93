// Camera, microphone and screen-share time end to end: LiveKit-signed track
// webhooks, and the student page's tracker attached to a stand-in for
// livekit-client's Room (an event emitter with localParticipant's track
// publications, emitting trackMuted/trackUnmuted as livekit-client does)
// reporting mute and unmute over its live socket. The student sees a media
// line, the teacher media columns that can be hidden. And the student's card
// in Arabic, frozen and marked while the service is down.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, newPage, screenshot, seconds } from './helpers/browser.mjs';
import { axeViolations } from './helpers/axe.mjs';
import { eventually, startServer } from './helpers/server.mjs';
import { accessToken, eventId, participantEvent, webhookToken } from './helpers/livekit.mjs';

const nowS = () => Math.floor(Date.now() / 1000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const EXPECTED_ERRORS = /WebSocket connection to|ERR_CONNECTION_REFUSED|Failed to load resource/;
const unexpected = (page) => page.errors.filter((e) => !EXPECTED_ERRORS.test(e));
const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
/** Arabic-Indic digits as ASCII, for reading clocks on the Arabic page. */
const ascii = (text) => text.replace(/[٠-٩]/g, (d) => String(d.charCodeAt(0) - 0x660));

async function noAxeViolations(page, what) {
  assert.deepEqual(await axeViolations(page), [], `axe-core on ${what}`);
}

/** A track WebhookEvent as LiveKit sends it: participant and room hold only sid and identity/name. */
function trackEvent(kind, { room, sid, identity, createdAt, track }) {
  return JSON.stringify({
    event: kind, id: eventId(), createdAt: String(createdAt),
    room: { sid: `RM_${room}`, name: room }, participant: { sid, identity }, track,
  }).replaceAll(',"', ', "');
}

/** Installs a stand-in livekit-client Room in the page and attaches the tracker to it. */
async function attachStandIn(page, sid) {
  await page.evaluate((participantSid) => {
    const handlers = new Map();
    const publication = (trackSid, source, isMuted) => ({ trackSid, source, isMuted, kind: source === 'microphone' ? 'audio' : 'video' });
    const localParticipant = {
      sid: participantSid, identity: 'ada', isLocal: true,
      trackPublications: new Map([
        ['TR_cam', publication('TR_cam', 'camera', false)],
        ['TR_mic', publication('TR_mic', 'microphone', false)],
      ]),
    };
    const room = {
      state: 'connected',
      localParticipant,
      on(name, f) { if (!handlers.has(name)) handlers.set(name, new Set()); handlers.get(name).add(f); return this; },
      off(name, f) { handlers.get(name)?.delete(f); return this; },
      emit(name, ...args) { for (const f of handlers.get(name) || []) f(...args); return true; },
      /** What livekit-client does when the local user mutes or unmutes a track. */
      setMuted(trackSid, muted) {
        const pub = localParticipant.trackPublications.get(trackSid);
        pub.isMuted = muted;
        this.emit(muted ? 'trackMuted' : 'trackUnmuted', pub, localParticipant);
      },
    };
    window.standInRoom = room;
    window.attendanceTracker.attach(room);
  }, sid);
}

describe('camera, microphone and screen-share time', { timeout: 180000 }, () => {
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

  async function post(body) {
    const res = await server.postWebhook(body, webhookToken(body));
    assert.equal(res.status, 200, await res.text());
  }

  const cameraOf = async (teacher, room) => {
    const report = await server.json(`/api/sessions/${room}/attendance`, { token: teacher });
    return report.participants.find((p) => p.identity === 'ada');
  };

  test('the tracker reports mutes from the attached room; the student line and the dashboard columns show the time', async () => {
    const room = 'media-class';
    const teacher = accessToken('ms-smith', room, 'teacher');
    const student = accessToken('ada', room, 'student', { name: 'Ada' });
    const start = nowS() - 10 * 60;
    await server.json(`/api/sessions/${room}`, {
      method: 'PUT', token: teacher,
      body: { scheduled_at: new Date(start * 1000).toISOString(), duration_minutes: 60, grace_minutes: 0, title: 'Media' },
    });
    const joined = start + 60;
    const who = { room, sid: 'PA_ada', identity: 'ada' };
    await post(participantEvent('participant_joined', { ...who, name: 'Ada', joinedAt: joined, createdAt: joined }));
    await post(trackEvent('track_published', { ...who, createdAt: joined, track: { sid: 'TR_cam', type: 'VIDEO', source: 'CAMERA', width: 640 } }));
    await post(trackEvent('track_published', { ...who, createdAt: joined, track: { sid: 'TR_mic', source: 'MICROPHONE' } }));
    await server.settle(admin);
    assert.ok((await cameraOf(teacher, room)).camera_seconds >= 9 * 60 - 2);

    const page = await newPage(browser, SIZES.desktop);
    try {
      await page.goto(`${server.url}/meeting.html?room=${room}#token=${encodeURIComponent(student)}`);
      await page.locator('#tracker [data-field="connection"][data-value="live"]').waitFor({ timeout: 5000 });
      const line = page.locator('#tracker [data-field="media"]');
      await eventually(async () => /^Camera on \d\d:\d\d · Microphone on \d\d:\d\d · Screen shared 00:00$/.test(await line.textContent()),
        { message: 'the media line' });
      await attachStandIn(page, 'PA_ada');
      const camera = async () => seconds((await line.textContent()).match(/Camera on ([\d:]+)/)[1]);
      // On in the attached room: the camera time ticks with the clock.
      const before = await camera();
      await sleep(3200);
      assert.ok(await camera() >= before + 2, 'the camera time ticks');
      await noAxeViolations(page, 'student page with media time');
      await screenshot(page, 'media-meeting-desktop');

      // The student turns the camera off: the page reports it, the server keeps it.
      await page.evaluate(() => window.standInRoom.setMuted('TR_cam', true));
      const stopped = await eventually(async () => {
        const first = (await cameraOf(teacher, room)).camera_seconds;
        await sleep(1200);
        const second = (await cameraOf(teacher, room)).camera_seconds;
        return first === second ? second : null;
      }, { timeoutMs: 8000, message: 'the camera time to stop on the server' });
      const ada = await cameraOf(teacher, room);
      assert.ok(ada.microphone_seconds > stopped, `microphone ${ada.microphone_seconds} s, camera ${stopped} s`);
      await eventually(async () => (await camera()) === stopped, { message: 'the student line to follow the server' });
      await sleep(1500);
      assert.equal(await camera(), stopped, 'a muted camera does not tick');
      // And on again.
      await page.evaluate(() => window.standInRoom.setMuted('TR_cam', false));
      await eventually(async () => (await cameraOf(teacher, room)).camera_seconds > stopped + 1, { message: 'the camera time to resume' });
      assert.deepEqual(unexpected(page), []);
    } finally {
      await page.context().close();
    }

    // The teacher's dashboard: columns on a laptop, hideable and remembered; hidden on a phone.
    const dash = await newPage(browser, SIZES.desktop);
    try {
      await dash.goto(`${server.url}/dashboard.html?room=${room}#token=${encodeURIComponent(teacher)}`);
      await dash.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
      const cell = dash.locator('#rows tr[data-identity="ada"] [data-field="camera-seconds"] .cell-value');
      await cell.waitFor({ state: 'visible', timeout: 5000 });
      assert.match(await cell.textContent(), /^\d\d:\d\d$/);
      assert.ok(seconds(await cell.textContent()) > 0);
      assert.equal(await dash.locator('#students thead th[data-i18n="col.microphone"]').isVisible(), true);
      assert.equal(await dash.locator('#media-columns').isChecked(), true);
      await noAxeViolations(dash, 'dashboard with media columns');
      await screenshot(dash, 'media-dashboard-desktop');
      await dash.click('#media-columns');
      await cell.waitFor({ state: 'hidden' });
      await dash.reload();
      await dash.locator('#link[data-value="live"]').waitFor({ timeout: 5000 });
      await dash.locator('#rows tr[data-identity="ada"]').waitFor();
      assert.equal(await dash.locator('#media-columns').isChecked(), false, 'the choice is remembered');
      assert.equal(await cell.isHidden(), true);
      await dash.click('#media-columns');
      await cell.waitFor({ state: 'visible' });
    } finally {
      await dash.context().close();
    }
    const phone = await newPage(browser, SIZES.phone);
    try {
      await phone.goto(`${server.url}/dashboard.html?room=${room}#token=${encodeURIComponent(teacher)}`);
      await phone.locator('#rows tr[data-identity="ada"]').waitFor({ timeout: 5000 });
      await phone.locator('#media-toggle').waitFor({ state: 'visible' });
      assert.equal(await phone.locator('#media-columns').isChecked(), false, 'hidden by default on a phone');
      const cell = phone.locator('#rows tr[data-identity="ada"] [data-field="camera-seconds"]');
      assert.equal(await cell.isHidden(), true);
      await screenshot(phone, 'media-dashboard-phone');
      await phone.click('#media-columns');
      await cell.waitFor({ state: 'visible' });
      assert.match(await cell.textContent(), /^Camera \d\d:\d\d$/);
      const sideways = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(sideways <= 0, `the phone page scrolls sideways by ${sideways}px`);
      await noAxeViolations(phone, 'dashboard on a phone with media columns');
      await screenshot(phone, 'media-dashboard-phone-shown');
    } finally {
      await phone.context().close();
    }
    const studentPhone = await newPage(browser, SIZES.phone);
    try {
      await studentPhone.goto(`${server.url}/meeting.html?room=${room}#token=${encodeURIComponent(student)}`);
      await studentPhone.locator('#tracker [data-field="media"]').waitFor({ state: 'visible', timeout: 5000 });
      await noAxeViolations(studentPhone, 'student page on a phone with media time');
      await screenshot(studentPhone, 'media-meeting-phone');
    } finally {
      await studentPhone.context().close();
    }
  });

  test('a lesson with engagement off: no media line, no columns', async () => {
    const room = 'quiet-class';
    const teacher = accessToken('ms-smith', room, 'teacher');
    const student = accessToken('ada', room, 'student');
    const start = nowS() - 5 * 60;
    const session = await server.json(`/api/sessions/${room}`, {
      method: 'PUT', token: teacher,
      body: { scheduled_at: new Date(start * 1000).toISOString(), duration_minutes: 60, engagement: false },
    });
    assert.equal(session.engagement, false);
    const who = { room, sid: 'PA_ada_q', identity: 'ada' };
    await post(participantEvent('participant_joined', { ...who, joinedAt: start + 10, createdAt: start + 10 }));
    await post(trackEvent('track_published', { ...who, createdAt: start + 10, track: { sid: 'TR_c', type: 'VIDEO', source: 'CAMERA' } }));
    await server.settle(admin);
    const page = await newPage(browser, SIZES.desktop);
    const dash = await newPage(browser, SIZES.desktop);
    try {
      await page.goto(`${server.url}/meeting.html?room=${room}#token=${encodeURIComponent(student)}`);
      await page.locator('#tracker [data-field="connection"][data-value="live"]').waitFor({ timeout: 5000 });
      await page.locator('#tracker [data-field="attended"]').waitFor();
      await sleep(500);
      assert.equal(await page.locator('#tracker [data-field="media"]').textContent(), '');
      await dash.goto(`${server.url}/dashboard.html?room=${room}#token=${encodeURIComponent(teacher)}`);
      await dash.locator('#rows tr[data-identity="ada"]').waitFor({ timeout: 5000 });
      assert.equal(await dash.locator('#media-toggle').isHidden(), true);
      assert.equal(await dash.locator('#rows tr[data-identity="ada"] [data-field="camera-seconds"]').isHidden(), true);
    } finally {
      await page.context().close();
      await dash.context().close();
    }
  });

  test('the student card in Arabic, frozen and marked while the service is down, live again after', async () => {
    const own = await startServer();
    const page = await newPage(browser, { ...SIZES.phone, locale: 'ar' });
    try {
      await page.goto(`${own.url}/meeting.html?room=demo-ar-card`);
      await page.click('#start');
      const link = page.locator('#tracker [data-field="connection"]');
      await page.locator('#tracker [data-field="connection"][data-value="live"]').waitFor({ timeout: 5000 });
      await page.click('#connect');
      await page.locator('#meeting-state[data-value="yes"]').waitFor({ timeout: 3000 });
      assert.equal(await link.textContent(), 'تحديثات مباشرة');
      assert.deepEqual(await page.locator('#tracker .att-label').allTextContents(), ['مدة الحضور', 'من الحصة', 'الحالة']);
      await eventually(async () => (await page.locator('#tracker [data-field="in-meeting"]').textContent()) === 'في الاجتماع',
        { message: 'in the meeting, in Arabic' });
      assert.match(await page.locator('#tracker [data-field="note"]').textContent(), /^يُحتسب الوقت في الحصة حتى الساعة /);
      assert.match(await page.locator('#tracker [data-field="stay"]').textContent(), /لتُحتسب (حاضرًا|متأخرًا)|حاضرًا/);
      const body = await page.locator('#tracker').innerText();
      assert.doesNotMatch(body, /[A-Za-z]{3,}/, `English on the Arabic card: ${body}`);
      const attended = async () => seconds(ascii(await page.locator('#tracker [data-field="attended"]').textContent()));
      const first = await attended();
      await sleep(3200);
      assert.ok(await attended() >= first + 2, 'ticks while live');
      await noAxeViolations(page, 'Arabic student card');
      await screenshot(page, 'meeting-ar-card-live');

      await own.stop();
      await page.locator('#tracker [data-field="connection"][data-value="reconnecting"], #tracker [data-field="connection"][data-value="offline"]')
        .waitFor({ timeout: 5000 });
      assert.match(ascii(await link.textContent()), /(إعادة الاتصال|غير متصل).*\d\d:\d\d/);
      assert.equal(await page.locator('#tracker .att').getAttribute('data-stale'), 'true');
      const frozen = await attended();
      assert.ok(frozen >= first + 2, `frozen at the moment the service went away (${frozen} s), not before`);
      await sleep(2500);
      assert.equal(await attended(), frozen, 'frozen while the service is down');
      await noAxeViolations(page, 'Arabic student card offline');
      await screenshot(page, 'meeting-ar-card-offline');

      await own.restart();
      await page.locator('#tracker [data-field="connection"][data-value="live"]').waitFor({ timeout: 35000 });
      assert.equal(await page.locator('#tracker .att').getAttribute('data-stale'), 'false');
      const resumed = await attended();
      assert.ok(resumed >= frozen, `${resumed} after ${frozen}`);
      await sleep(3200);
      assert.ok(await attended() >= resumed + 2, 'ticks again once live');
      assert.deepEqual(unexpected(page), []);
    } finally {
      await page.context().close();
      await own.close();
    }
  });
});
