//! Runs in Chromium (`CHROMEDRIVER=/usr/bin/chromedriver cargo test -p
//! attendance-tracker --target wasm32-unknown-unknown`): the rules give the
//! golden numbers in the browser's wasm build too, and the tracker's JS-facing
//! API reads the server's objects and renders them.
#![cfg(target_arch = "wasm32")]

use attendance_rules::golden::{
    assert_hold, run, run_media, run_shown, run_stay_until, GOLDEN_VECTORS, MEDIA_VECTORS,
    SHOWN_VECTORS, STAY_UNTIL_VECTORS,
};
use attendance_tracker::{
    compute_attendance, count_statuses, stay_until_of, timeline_of, AttendanceTracker,
};
use js_sys::{Date, Object, Reflect, JSON};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(key)).unwrap()
}

fn ms(text: &str) -> f64 {
    Date::parse(text)
}

#[wasm_bindgen_test]
fn this_is_a_browser() {
    let navigator = get(&web_sys::window().unwrap(), "navigator");
    let agent = get(&navigator, "userAgent").as_string().unwrap();
    assert!(agent.contains("Chrome"), "{agent}");
}

#[wasm_bindgen_test]
fn golden_vectors_hold_in_the_browser() {
    assert_hold("golden", run(GOLDEN_VECTORS), 10);
}

#[wasm_bindgen_test]
fn shown_vectors_hold_in_the_browser() {
    assert_hold("shown", run_shown(SHOWN_VECTORS), 15);
}

#[wasm_bindgen_test]
fn stay_until_vectors_hold_in_the_browser() {
    assert_hold("stay-until", run_stay_until(STAY_UNTIL_VECTORS), 20);
}

#[wasm_bindgen_test]
fn media_vectors_hold_in_the_browser() {
    assert_hold("media", run_media(MEDIA_VECTORS), 13);
}

const SESSION: &str = r#"{
  "room": "math-101", "title": "Algebra", "scheduled_at": "2026-11-25T11:00:00Z",
  "duration_minutes": 60, "grace_minutes": 30, "late_after_minutes": 10,
  "present_percent": 80, "heartbeat_stale_seconds": 300,
  "window_end": "2026-11-25T12:30:00Z",
  "created_at": "2026-11-20T09:00:00Z", "updated_at": "2026-11-20T09:00:00Z"
}"#;

const PARTICIPANT: &str = r#"{
  "identity": "student-17", "name": "Ada", "attended_seconds": 0, "duration_minutes": 0,
  "attendance_percentage": 0, "status": "absent", "final": false, "phase": "scheduled",
  "join_count": 3, "in_meeting": false, "is_currently_in_meeting": false,
  "heartbeat_stale": false, "first_join_at": null, "last_leave_at": null,
  "first_counted_at": null, "last_heartbeat_at": null,
  "cycles": [
    {"participant_sid": "PA_x", "joined_at": null, "left_at": "2026-11-25T10:40:00Z", "close_reason": "left"},
    {"participant_sid": "PA_a", "joined_at": "2026-11-25T10:45:00Z", "left_at": "2026-11-25T11:15:00Z", "close_reason": "left"},
    {"participant_sid": "PA_b", "joined_at": "2026-11-25T13:40:00.500+01:00", "left_at": null, "close_reason": null}
  ]
}"#;

#[wasm_bindgen_test]
fn compute_attendance_reads_the_servers_objects() {
    let session = JSON::parse(SESSION).unwrap();
    let participant = JSON::parse(PARTICIPANT).unwrap();

    // After the window: the early join is capped at 11:00, the cycle without
    // a join is skipped, the open one (12:40:00.5 UTC) is after the window.
    let out = compute_attendance(
        session.clone(),
        participant.clone(),
        ms("2026-11-25T13:00:00Z"),
    )
    .unwrap();
    let out: JsValue = out.into();
    assert_eq!(get(&out, "attended_seconds").as_f64(), Some(900.0));
    assert_eq!(get(&out, "duration_minutes").as_f64(), Some(15.0));
    assert_eq!(get(&out, "attendance_percentage").as_f64(), Some(25.0));
    assert_eq!(get(&out, "status").as_string().unwrap(), "partial");
    assert_eq!(get(&out, "phase").as_string().unwrap(), "ended");
    assert_eq!(get(&out, "final").as_bool(), Some(true));
    assert_eq!(get(&out, "in_meeting").as_bool(), Some(false));
    assert_eq!(get(&out, "join_count").as_f64(), Some(2.0));
    assert_eq!(
        get(&out, "first_counted_at").as_string().unwrap(),
        "2026-11-25T11:00:00.000Z"
    );
    assert_eq!(
        get(&out, "first_join_at").as_string().unwrap(),
        "2026-11-25T10:45:00.000Z"
    );
    // The server's other fields pass through untouched.
    assert_eq!(get(&out, "identity").as_string().unwrap(), "student-17");
    assert_eq!(get(&out, "name").as_string().unwrap(), "Ada");
    assert!(js_sys::Array::is_array(&get(&out, "cycles")));
    // The input object is not modified.
    assert_eq!(get(&participant, "status").as_string().unwrap(), "absent");

    // Live, with an open cycle since 11:20 UTC: 15 + 10 minutes at 11:30.
    let participant = JSON::parse(
        r#"{"identity": "s", "cycles": [
            {"joined_at": "2026-11-25T10:45:00Z", "left_at": "2026-11-25T11:15:00Z"},
            {"joined_at": "2026-11-25T11:20:00Z"}
        ], "last_heartbeat_at": "2026-11-25T11:29:00Z"}"#,
    )
    .unwrap();
    let out: JsValue = compute_attendance(session.clone(), participant, ms("2026-11-25T11:30:00Z"))
        .unwrap()
        .into();
    assert_eq!(get(&out, "attended_seconds").as_f64(), Some(1500.0));
    assert_eq!(get(&out, "phase").as_string().unwrap(), "live");
    assert_eq!(get(&out, "final").as_bool(), Some(false));
    assert_eq!(get(&out, "in_meeting").as_bool(), Some(true));
    assert_eq!(get(&out, "heartbeat_stale").as_bool(), Some(false));

    // No facts yet: absent, and null is accepted as "no participant".
    let out: JsValue = compute_attendance(session, JsValue::NULL, ms("2026-11-25T10:00:00Z"))
        .unwrap()
        .into();
    assert_eq!(get(&out, "attended_seconds").as_f64(), Some(0.0));
    assert_eq!(get(&out, "phase").as_string().unwrap(), "scheduled");
    assert_eq!(get(&out, "status").as_string().unwrap(), "absent");
}

#[wasm_bindgen_test]
fn compute_attendance_refuses_a_bad_session() {
    let session = JSON::parse(r#"{"scheduled_at": "tomorrow", "duration_minutes": 60}"#).unwrap();
    assert!(compute_attendance(session, JsValue::NULL, 0.0).is_err());
    let session = JSON::parse(r#"{"scheduled_at": "2026-11-25T11:00:00Z"}"#).unwrap();
    assert!(compute_attendance(session, JsValue::NULL, 0.0).is_err());
}

/// A JWT whose payload is `{"sub":"student-17","video":{"room":"math-101"}}`
/// (the tracker reads `sub` only; the signature is the server's business).
const TOKEN: &str =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzdHVkZW50LTE3IiwidmlkZW8iOnsicm9vbSI6Im1hdGgtMTAxIn19.sig";

/// The pages' English words (`www/i18n/en.js`), as a page passes them in
/// `text`. (Served pages need not: the bundle imports that file beside it
/// when `text` leaves a key out, which the end-to-end tests check; this test
/// runner serves no such file.)
fn english() -> JsValue {
    let module = include_str!("../../../www/i18n/en.js");
    let object = &module[module
        .find("export default")
        .expect("en.js exports its words")
        + "export default".len()..];
    js_sys::Function::new_no_args(&format!(
        "return {}",
        object.trim_end().trim_end_matches(';')
    ))
    .call0(&JsValue::NULL)
    .expect("en.js's words")
}

/// A card in a fresh element of the document, for student-17 in math-101, in
/// English: the document, the element and the tracker's options.
fn card_options() -> (web_sys::Document, web_sys::Element, Object) {
    let document = web_sys::window().unwrap().document().unwrap();
    let host = document.create_element("div").unwrap();
    document.body().unwrap().append_child(&host).unwrap();
    let options = Object::new();
    Reflect::set(&options, &"serverUrl".into(), &"http://127.0.0.1:9".into()).unwrap();
    Reflect::set(&options, &"room".into(), &"math-101".into()).unwrap();
    Reflect::set(&options, &"token".into(), &TOKEN.into()).unwrap();
    Reflect::set(&options, &"element".into(), &host).unwrap();
    Reflect::set(&options, &"text".into(), &english()).unwrap();
    (document, host, options)
}

fn field(host: &web_sys::Element, name: &str) -> String {
    host.query_selector(&format!("[data-field={name}]"))
        .unwrap()
        .unwrap_or_else(|| panic!("no [data-field={name}]"))
        .text_content()
        .unwrap()
}

#[wasm_bindgen_test]
fn tracker_renders_a_snapshot() {
    let (_, host, options) = card_options();
    let tracker = AttendanceTracker::new(&options).unwrap();
    assert_eq!(tracker.identity().as_deref(), Some("student-17"));
    assert!(tracker.attendance().is_null(), "no session known yet");

    // A class that started an hour and a bit ago by the server's clock
    // (which runs 10 minutes ahead of this browser's): ended, final.
    let server_now = Date::now() + 600_000.0;
    let iso = |ms: f64| Date::new(&JsValue::from_f64(ms)).to_iso_string();
    let start = server_now - 2.0 * 3_600_000.0;
    let snapshot = format!(
        r#"{{"type":"attendance.snapshot","room":"math-101","server_time":"{now}",
        "session":{{"room":"math-101","scheduled_at":"{start}","duration_minutes":60,"grace_minutes":30}},
        "participants":[{{"identity":"student-17","name":"Ada","cycles":[
          {{"joined_at":"{start}","left_at":"{left}"}}]}}]}}"#,
        now = String::from(iso(server_now)),
        start = String::from(iso(start)),
        left = String::from(iso(start + 45.0 * 60_000.0 + 7_000.0)),
    );
    tracker.handle_message(&snapshot);
    assert_eq!(field(&host, "attended"), "45:07");
    assert_eq!(field(&host, "percentage"), "75.2%");
    assert_eq!(field(&host, "status"), "Partial");
    assert_eq!(field(&host, "phase"), "Final");
    assert_eq!(field(&host, "in-meeting"), "Not in the meeting");
    let state = tracker.attendance();
    assert_eq!(get(&state, "final").as_bool(), Some(true));
    assert_eq!(get(&state, "name").as_string().unwrap(), "Ada");

    // Rescheduled to start in 5 minutes (server clock): nothing counts yet.
    let start = server_now + 5.0 * 60_000.0;
    let update = format!(
        r#"{{"type":"attendance.updated","room":"math-101","identity":"student-17","server_time":"{now}",
        "session":{{"room":"math-101","scheduled_at":"{start}","duration_minutes":60}},
        "attendance":{{"identity":"student-17","cycles":[{{"joined_at":"{now}"}}]}}}}"#,
        now = String::from(iso(server_now)),
        start = String::from(iso(start)),
    );
    tracker.handle_message(&update);
    assert_eq!(field(&host, "phase"), "Not started");
    assert_eq!(field(&host, "attended"), "00:00");
    assert_eq!(field(&host, "in-meeting"), "In the meeting");
    let local = Date::new(&JsValue::from_f64(start));
    let hhmm = format!("{:02}:{:02}", local.get_hours(), local.get_minutes());
    assert_eq!(field(&host, "note"), format!("Counting starts at {hhmm}"));

    // Someone else's update is not ours.
    tracker.handle_message(
        r#"{"type":"attendance.updated","identity":"student-99","attendance":{"identity":"student-99","cycles":[]}}"#,
    );
    assert_eq!(field(&host, "in-meeting"), "In the meeting");

    tracker.stop();
    assert_eq!(field(&host, "connection"), "Stopped");
}

/// 51 of 60 minutes (85 %), from the start: present at 80 %, partial at 90 %.
const EIGHTY_FIVE: &str = r#"{"identity": "ms-smith", "cycles": [
    {"joined_at": "2026-11-25T11:00:00Z", "left_at": "2026-11-25T11:51:00Z"}]"#;

#[wasm_bindgen_test]
fn compute_attendance_uses_the_participants_threshold() {
    let session = JSON::parse(SESSION).unwrap();
    let at = ms("2026-11-25T13:00:00Z");
    let status = |extra: &str| {
        let participant = JSON::parse(&format!("{EIGHTY_FIVE}{extra}}}")).unwrap();
        let out: JsValue = compute_attendance(session.clone(), participant, at)
            .unwrap()
            .into();
        assert_eq!(get(&out, "attendance_percentage").as_f64(), Some(85.0));
        get(&out, "status").as_string().unwrap()
    };
    // The session's 80 % when the participant carries no threshold.
    assert_eq!(status(""), "present");
    assert_eq!(
        status(r#", "role": "student", "present_percent": 80"#),
        "present"
    );
    // A teacher's stricter threshold, as the server sends it.
    assert_eq!(
        status(r#", "role": "teacher", "present_percent": 90"#),
        "partial"
    );
    // A nonsensical threshold falls back to the session's.
    assert_eq!(status(r#", "present_percent": "ninety""#), "present");
}

#[wasm_bindgen_test]
fn compute_attendance_shows_a_teachers_override() {
    let session = JSON::parse(SESSION).unwrap();
    let at = ms("2026-11-25T13:00:00Z");
    let participant = JSON::parse(
        r#"{"identity": "s", "status": "excused", "computed_status": "absent", "present_percent": 80,
            "cycles": [{"joined_at": "2026-11-25T11:00:00Z", "left_at": "2026-11-25T11:15:00Z"}],
            "override": {"status": "excused", "reason": "Doctor's note", "author": "ms-smith",
                         "at": "2026-11-25T12:00:00Z"}}"#,
    )
    .unwrap();
    let out: JsValue = compute_attendance(session.clone(), participant.clone(), at)
        .unwrap()
        .into();
    assert_eq!(get(&out, "status").as_string().unwrap(), "excused");
    // The rules' own verdict stays visible next to it (and is recomputed).
    assert_eq!(get(&out, "computed_status").as_string().unwrap(), "partial");
    assert_eq!(get(&out, "attended_seconds").as_f64(), Some(900.0));
    let correction = get(&out, "override");
    assert_eq!(
        get(&correction, "reason").as_string().unwrap(),
        "Doctor's note"
    );
    assert_eq!(get(&correction, "author").as_string().unwrap(), "ms-smith");

    // Without an override: the computed status, and `override` is null.
    Reflect::set(&participant, &"override".into(), &JsValue::NULL).unwrap();
    let out: JsValue = compute_attendance(session.clone(), participant, at)
        .unwrap()
        .into();
    assert_eq!(get(&out, "status").as_string().unwrap(), "partial");
    assert_eq!(get(&out, "computed_status").as_string().unwrap(), "partial");
    assert!(get(&out, "override").is_null());
    let out: JsValue = compute_attendance(session, JsValue::NULL, at)
        .unwrap()
        .into();
    assert_eq!(get(&out, "computed_status").as_string().unwrap(), "absent");
    assert!(get(&out, "override").is_null());
}

fn status_value(host: &web_sys::Element) -> String {
    host.query_selector("[data-field=status]")
        .unwrap()
        .unwrap()
        .get_attribute("data-value")
        .unwrap()
}

#[wasm_bindgen_test]
fn tracker_shows_the_effective_status_and_the_teachers_threshold() {
    let (document, host, options) = card_options();
    let tracker = AttendanceTracker::new(&options).unwrap();

    // An ended class; student-17 attended 15 of 60 minutes, and the teacher
    // excused them.
    let now = Date::now();
    let iso = |ms: f64| String::from(Date::new(&JsValue::from_f64(ms)).to_iso_string());
    let start = now - 2.0 * 3_600_000.0;
    let session = format!(
        r#"{{"room":"math-101","scheduled_at":"{}","duration_minutes":60,"grace_minutes":30,"present_percent":80}}"#,
        iso(start)
    );
    let cycles = format!(
        r#"[{{"joined_at":"{}","left_at":"{}"}}]"#,
        iso(start),
        iso(start + 15.0 * 60_000.0)
    );
    let correction = r#"{"status":"excused","reason":"Doctor's note","author":"ms-smith","at":"2026-11-25T12:00:00Z"}"#;
    tracker.handle_message(&format!(
        r#"{{"type":"attendance.snapshot","room":"math-101","server_time":"{}","session":{session},
        "participants":[{{"identity":"student-17","role":"student","present_percent":80,
          "status":"excused","computed_status":"partial","override":{correction},"cycles":{cycles}}}],
        "teachers":[],"excluded":[]}}"#,
        iso(now)
    ));
    assert_eq!(field(&host, "status"), "Excused");
    assert_eq!(status_value(&host), "excused");
    assert!(
        field(&host, "note").ends_with("Status set by your teacher."),
        "{}",
        field(&host, "note")
    );
    assert_eq!(field(&host, "attended"), "15:00");
    let state = tracker.attendance();
    assert_eq!(get(&state, "status").as_string().unwrap(), "excused");
    assert_eq!(
        get(&state, "computed_status").as_string().unwrap(),
        "partial"
    );
    assert_eq!(
        get(&get(&state, "override"), "author").as_string().unwrap(),
        "ms-smith"
    );

    // The teacher removes the correction: the computed status is back.
    tracker.handle_message(&format!(
        r#"{{"type":"attendance.updated","room":"math-101","identity":"student-17","session":{session},
        "attendance":{{"identity":"student-17","role":"student","present_percent":80,"status":"partial",
          "computed_status":"partial","override":null,"cycles":{cycles}}}}}"#
    ));
    assert_eq!(field(&host, "status"), "Partial");
    assert_eq!(status_value(&host), "partial");
    assert!(!field(&host, "note").contains("teacher"));
    assert!(get(&tracker.attendance(), "override").is_null());
    tracker.stop();

    // A teacher's own token finds itself among `teachers`, with its own
    // (stricter) threshold: 51 of 60 minutes is partial at 90 %.
    let host = document.create_element("div").unwrap();
    document.body().unwrap().append_child(&host).unwrap();
    Reflect::set(&options, &"element".into(), &host).unwrap();
    // {"sub":"ms-smith"}
    Reflect::set(
        &options,
        &"token".into(),
        &"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtcy1zbWl0aCJ9.sig".into(),
    )
    .unwrap();
    let tracker = AttendanceTracker::new(&options).unwrap();
    assert_eq!(tracker.identity().as_deref(), Some("ms-smith"));
    let cycles = format!(
        r#"[{{"joined_at":"{}","left_at":"{}"}}]"#,
        iso(start),
        iso(start + 51.0 * 60_000.0)
    );
    tracker.handle_message(&format!(
        r#"{{"type":"attendance.snapshot","room":"math-101","server_time":"{}","session":{session},
        "participants":[{{"identity":"student-17","present_percent":80,"cycles":[]}},
                        {{"identity":"student-18","present_percent":80,"cycles":[]}}],
        "teachers":[{{"identity":"ms-smith","role":"teacher","present_percent":90,"cycles":{cycles}}}],
        "excluded":[]}}"#,
        iso(now)
    ));
    assert_eq!(field(&host, "attended"), "51:00");
    assert_eq!(field(&host, "status"), "Partial");
    assert_eq!(
        get(&tracker.attendance(), "identity").as_string().unwrap(),
        "ms-smith"
    );
    tracker.stop();
}

#[wasm_bindgen_test]
fn timeline_gives_the_window_and_the_clipped_cycles() {
    let session = JSON::parse(SESSION).unwrap();
    let participant = JSON::parse(PARTICIPANT).unwrap();
    let close = |value: JsValue, want: f64| {
        let got = value.as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    };

    // Live at 11:50: the early join is drawn from 11:00, the cycle without a
    // join is skipped, the open one (12:40 UTC) has not begun by now.
    let out: JsValue = timeline_of(session.clone(), participant, ms("2026-11-25T11:50:00Z"))
        .unwrap()
        .into();
    let text = |key: &str| get(&out, key).as_string().unwrap();
    assert_eq!(text("start"), "2026-11-25T11:00:00.000Z");
    assert_eq!(text("class_end"), "2026-11-25T12:00:00.000Z");
    assert_eq!(text("window_end"), "2026-11-25T12:30:00.000Z");
    assert_eq!(text("phase"), "live");
    assert_eq!(get(&out, "present_percent").as_f64(), Some(80.0));
    assert_eq!(get(&out, "teacher_present_percent").as_f64(), Some(90.0));
    close(get(&out, "now_x"), 50.0 / 90.0);
    close(get(&out, "class_end_x"), 60.0 / 90.0);
    let segments: js_sys::Array = get(&out, "segments").into();
    assert_eq!(segments.length(), 1);
    let segment = segments.get(0);
    assert_eq!(
        get(&segment, "joined_at").as_string().unwrap(),
        "2026-11-25T10:45:00.000Z"
    );
    assert_eq!(
        get(&segment, "left_at").as_string().unwrap(),
        "2026-11-25T11:15:00.000Z"
    );
    assert_eq!(get(&segment, "open").as_bool(), Some(false));
    close(get(&segment, "x1"), 0.0);
    close(get(&segment, "x2"), 15.0 / 90.0);

    // The window alone, after it ended, with the session's own teacher
    // threshold.
    let session = JSON::parse(
        r#"{"scheduled_at": "2026-11-25T11:00:00Z", "duration_minutes": 60, "grace_minutes": 0,
            "present_percent": 75, "teacher_present_percent": 85}"#,
    )
    .unwrap();
    let out: JsValue = timeline_of(session.clone(), JsValue::NULL, ms("2026-11-25T13:00:00Z"))
        .unwrap()
        .into();
    assert_eq!(get(&out, "phase").as_string().unwrap(), "ended");
    assert!(get(&out, "now_x").is_null());
    close(get(&out, "class_end_x"), 1.0);
    assert_eq!(get(&out, "present_percent").as_f64(), Some(75.0));
    assert_eq!(get(&out, "teacher_present_percent").as_f64(), Some(85.0));
    assert_eq!(js_sys::Array::from(&get(&out, "segments")).length(), 0);

    // A teacher is judged against that threshold: 51 of 60 minutes is 85 %.
    let teacher = JSON::parse(&format!("{EIGHTY_FIVE}, \"role\": \"teacher\"}}")).unwrap();
    let out: JsValue = compute_attendance(session, teacher, ms("2026-11-25T13:00:00Z"))
        .unwrap()
        .into();
    assert_eq!(get(&out, "status").as_string().unwrap(), "present");
    assert!(timeline_of(JsValue::NULL, JsValue::NULL, 0.0).is_err());
}

#[wasm_bindgen_test]
fn stay_until_reads_the_servers_objects() {
    let session = JSON::parse(SESSION).unwrap();
    let stay = |participant: &str, now: &str| -> JsValue {
        let participant = JSON::parse(participant).unwrap();
        stay_until_of(session.clone(), participant, ms(now))
            .unwrap()
            .into()
    };
    let text = |out: &JsValue, key: &str| get(out, key).as_string();

    // In since 11:00: 2879 s (79.97 %, shown as 80.0 %) make present.
    let open = r#"{"identity": "s", "cycles": [{"joined_at": "2026-11-25T11:00:00Z"}]}"#;
    let out = stay(open, "2026-11-25T11:20:00Z");
    assert_eq!(text(&out, "reachable_status").unwrap(), "present");
    assert_eq!(
        text(&out, "present_at").unwrap(),
        "2026-11-25T11:47:59.000Z"
    );
    assert!(get(&out, "rejoin_by").is_null());

    // A teacher needs 90 %, as the server states it for them.
    let teacher = r#"{"identity": "t", "role": "teacher", "present_percent": 90,
        "cycles": [{"joined_at": "2026-11-25T11:00:00Z"}]}"#;
    let out = stay(teacher, "2026-11-25T11:20:00Z");
    assert_eq!(
        text(&out, "present_at").unwrap(),
        "2026-11-25T11:53:59.000Z"
    );

    // Left at 11:20: rejoining now, or by 12:02:01 at the latest.
    let left = r#"{"identity": "s", "cycles": [
        {"joined_at": "2026-11-25T11:00:00Z", "left_at": "2026-11-25T11:20:00Z"}]}"#;
    let out = stay(left, "2026-11-25T11:30:00Z");
    assert_eq!(text(&out, "reachable_status").unwrap(), "present");
    assert_eq!(
        text(&out, "present_at").unwrap(),
        "2026-11-25T11:57:59.000Z"
    );
    assert_eq!(text(&out, "rejoin_by").unwrap(), "2026-11-25T12:02:01.000Z");

    // Once the session has ended: nothing.
    let out = stay(open, "2026-11-25T12:30:01Z");
    for key in ["reachable_status", "present_at", "rejoin_by"] {
        assert!(get(&out, key).is_null(), "{key}");
    }
    // No participant yet: joining now.
    let out: JsValue = stay_until_of(session, JsValue::NULL, ms("2026-11-25T11:05:00Z"))
        .unwrap()
        .into();
    assert_eq!(text(&out, "rejoin_by").unwrap(), "2026-11-25T11:10:00.000Z");
}

/// `HH:MM` of `ms`, in the browser's zone, after rounding down to the minute.
fn hhmm(ms: f64) -> String {
    let date = Date::new(&JsValue::from_f64((ms / 60_000.0).floor() * 60_000.0));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

#[wasm_bindgen_test]
fn tracker_says_how_long_to_stay() {
    let (_, host, options) = card_options();
    let tracker = AttendanceTracker::new(&options).unwrap();
    assert_eq!(field(&host, "stay"), "");

    let now = Date::now();
    let iso = |ms: f64| String::from(Date::new(&JsValue::from_f64(ms)).to_iso_string());
    let minute = 60_000.0;
    let show = |start: f64, grace: u32, cycles: &str| {
        tracker.handle_message(&format!(
            r#"{{"type":"attendance.snapshot","room":"math-101","server_time":"{}",
            "session":{{"room":"math-101","scheduled_at":"{}","duration_minutes":60,"grace_minutes":{grace}}},
            "participants":[{{"identity":"student-17","cycles":{cycles}}}]}}"#,
            iso(now),
            iso(start)
        ));
        field(&host, "stay")
    };

    // In since the start, 20 minutes ago: present 47:59 after the start,
    // shown rounded up to the minute.
    let start = now - 20.0 * minute;
    let open = format!(r#"[{{"joined_at":"{}"}}]"#, iso(start));
    let present_at = start + 47.0 * minute + 59_000.0;
    assert_eq!(
        show(start, 30, &open),
        format!(
            "Stay until {} to be counted present",
            hhmm(present_at + 59_999.0)
        )
    );

    // Left after 10 minutes: rejoin by the last minute that still makes it.
    let left = format!(
        r#"[{{"joined_at":"{}","left_at":"{}"}}]"#,
        iso(start),
        iso(start + 10.0 * minute)
    );
    let rejoin_by = start + 90.0 * minute - (37.0 * minute + 59_000.0);
    assert_eq!(
        show(start, 30, &left),
        format!("Rejoin by {} to still be counted present", hhmm(rejoin_by))
    );
    // Never joined, 20 minutes in: late at best.
    assert_eq!(
        show(start, 30, "[]"),
        format!(
            "Join by {} to still be counted late",
            hhmm(start + 90.0 * minute - (47.0 * minute + 59_000.0))
        )
    );

    // Already there for 50 minutes.
    let start = now - 55.0 * minute;
    let enough = format!(
        r#"[{{"joined_at":"{}","left_at":"{}"}}]"#,
        iso(start),
        iso(start + 50.0 * minute)
    );
    assert_eq!(show(start, 30, &enough), "You are counted present");

    // Joined 40 minutes late without grace: present is out of reach.
    let start = now - 45.0 * minute;
    let late = format!(r#"[{{"joined_at":"{}"}}]"#, iso(start + 40.0 * minute));
    assert_eq!(
        show(start, 0, &late),
        "Present is out of reach; staying keeps your time counted"
    );

    // After the class: nothing to say.
    let start = now - 3.0 * 60.0 * minute;
    assert_eq!(show(start, 30, &enough), "");
    tracker.stop();
}

#[wasm_bindgen_test]
fn count_statuses_counts_what_is_shown() {
    let statuses = JSON::parse(r#"["present", "late", "present", "excused", "absent", "nope", 3]"#)
        .unwrap()
        .into();
    let out: JsValue = count_statuses(&statuses).into();
    let n = |key: &str| get(&out, key).as_f64().unwrap();
    assert_eq!(
        [
            n("present"),
            n("late"),
            n("partial"),
            n("absent"),
            n("excused")
        ],
        [2.0, 1.0, 0.0, 1.0, 1.0]
    );
}

/// The card's words and formats come from the page: a template object (or a
/// `t(key, vars)` function) and `format` functions; media time is shown from
/// the participant's figures, and a stand-in livekit-client room attaches.
#[wasm_bindgen_test]
fn tracker_takes_its_words_and_formats_from_the_page() {
    let (_, host, options) = card_options();
    let text = JSON::parse(
        r#"{"status.partial": "جزئي", "card.attended": "مدة الحضور",
            "card.media.camera": "الكاميرا {time}", "card.note.ended": "نهائي {time}"}"#,
    )
    .unwrap();
    // Keys a language leaves out are English, as www/i18n.js merges them.
    let text = Object::assign(&english().into(), &text.into());
    Reflect::set(&options, &"text".into(), &text).unwrap();
    let format = Object::new();
    let clock = js_sys::Function::new_with_args("s", "return 'c' + s;");
    let time = js_sys::Function::new_with_args("ms", "return 't';");
    Reflect::set(&format, &"clock".into(), &clock).unwrap();
    Reflect::set(&format, &"time".into(), &time).unwrap();
    Reflect::set(&options, &"format".into(), &format).unwrap();
    let tracker = AttendanceTracker::new(&options).unwrap();
    let label = host.query_selector(".att-label").unwrap().unwrap();
    assert_eq!(label.text_content().unwrap(), "مدة الحضور");

    let now = Date::now();
    let iso = |ms: f64| String::from(Date::new(&JsValue::from_f64(ms)).to_iso_string());
    let start = now - 2.0 * 3_600_000.0;
    tracker.handle_message(&format!(
        r#"{{"type":"attendance.snapshot","server_time":"{now}",
        "session":{{"scheduled_at":"{start}","duration_minutes":60,"grace_minutes":0}},
        "participants":[{{"identity":"student-17","camera_seconds":750,"microphone_seconds":490,
          "screen_share_seconds":0,"cycles":[{{"joined_at":"{start}","left_at":"{left}"}}]}}]}}"#,
        now = iso(now),
        start = iso(start),
        left = iso(start + 600_000.0),
    ));
    assert_eq!(field(&host, "status"), "جزئي");
    assert_eq!(field(&host, "attended"), "c600");
    assert_eq!(field(&host, "note"), "نهائي t");
    // Untranslated keys are the page's English.
    assert_eq!(
        field(&host, "media"),
        "الكاميرا c750 · Microphone on c490 · Screen shared c0"
    );
    assert_eq!(
        get(&tracker.attendance(), "camera_seconds").as_f64(),
        Some(750.0)
    );

    // A stand-in for livekit-client's Room: `on`/`off` and the local tracks.
    let room = js_sys::Function::new_no_args(
        "const handlers = {};
         return {
           state: 'disconnected', handlers,
           on(name, f) { handlers[name] = f; return this; },
           off(name) { delete handlers[name]; return this; },
           localParticipant: { sid: 'PA_1', trackPublications: new Map([
             ['TR_c', { trackSid: 'TR_c', source: 'camera', isMuted: false }]]) },
         };",
    )
    .call0(&JsValue::NULL)
    .unwrap();
    tracker.attach(&room).unwrap();
    let handlers = get(&room, "handlers");
    for name in [
        "trackMuted",
        "trackUnmuted",
        "localTrackPublished",
        "connected",
    ] {
        assert!(get(&handlers, name).is_function(), "{name}");
    }
    tracker.stop();
    assert!(get(&handlers, "trackMuted").is_undefined());
}
