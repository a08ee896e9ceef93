//! The small attendance card rendered into the host page's element.
//!
//! Plain elements with classes and `data-field` attributes, updated through
//! `textContent` only when a value changes. Styling is the page's business.

use attendance_rules::{Assessment, EffectiveStatus, Phase, Schedule, Status, StayUntil};
use chrono::{DateTime, Utc};
use js_sys::Date;
use wasm_bindgen::JsValue;
use web_sys::{Document, Element};

use crate::text;

/// How the tracker currently hears from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Connecting,
    Live,
    Reconnecting,
    Polling,
    Stopped,
    /// The server closed the socket because the token expired (code 4001).
    Expired,
}

impl Link {
    fn label(self) -> (&'static str, &'static str) {
        match self {
            Link::Connecting => ("connecting", "Connecting…"),
            Link::Live => ("live", "Live updates"),
            Link::Reconnecting => ("reconnecting", "Reconnecting…"),
            Link::Polling => ("polling", "Updating every 15 s"),
            Link::Stopped => ("stopped", "Stopped"),
            Link::Expired => ("expired", "Sign-in expired: reload the page"),
        }
    }
}

pub(crate) struct View {
    root: Element,
    phase: Element,
    presence: Element,
    attended: Element,
    percentage: Element,
    status: Element,
    /// One sentence: how long to stay for the best status still reachable
    /// (empty once the session has ended: pages may hide `:empty`).
    stay: Element,
    note: Element,
    link: Element,
}

fn el(doc: &Document, tag: &str, class: &str, field: Option<&str>) -> Result<Element, JsValue> {
    let e = doc.create_element(tag)?;
    e.set_class_name(class);
    if let Some(field) = field {
        e.set_attribute("data-field", field)?;
    }
    Ok(e)
}

/// A `<div><dt>label</dt><dd data-field=…></dd></div>` pair.
fn stat(doc: &Document, list: &Element, label: &str, field: &str) -> Result<Element, JsValue> {
    let group = el(doc, "div", "att-stat", None)?;
    let dt = el(doc, "dt", "att-label", None)?;
    dt.set_text_content(Some(label));
    let dd = el(doc, "dd", "att-value", Some(field))?;
    group.append_child(&dt)?;
    group.append_child(&dd)?;
    list.append_child(&group)?;
    Ok(dd)
}

impl View {
    pub(crate) fn new(host: &Element) -> Result<View, JsValue> {
        let doc = host
            .owner_document()
            .ok_or_else(|| JsValue::from_str("element has no document"))?;
        let root = el(&doc, "div", "att", None)?;
        let head = el(&doc, "p", "att-head", None)?;
        head.set_attribute("aria-live", "polite")?;
        let phase = el(&doc, "span", "att-phase", Some("phase"))?;
        let presence = el(&doc, "span", "att-presence", Some("in-meeting"))?;
        head.append_child(&phase)?;
        head.append_child(&presence)?;
        let list = el(&doc, "dl", "att-stats", None)?;
        // Not a live region: the time ticks every second and is not announced;
        // the status below is. (No role on the `dd`: a `dl` holds only terms
        // and definitions.)
        let attended = stat(&doc, &list, "Attended", "attended")?;
        let percentage = stat(&doc, &list, "Of the class", "percentage")?;
        let status = stat(&doc, &list, "Status", "status")?;
        status.set_attribute("aria-live", "polite")?;
        let stay = el(&doc, "p", "att-stay", Some("stay"))?;
        stay.set_attribute("aria-live", "polite")?;
        let note = el(&doc, "p", "att-note", Some("note"))?;
        note.set_attribute("aria-live", "polite")?;
        let link = el(&doc, "p", "att-link", Some("connection"))?;
        root.append_child(&head)?;
        root.append_child(&list)?;
        root.append_child(&stay)?;
        root.append_child(&note)?;
        root.append_child(&link)?;
        host.set_text_content(None);
        host.append_child(&root)?;
        let view = View {
            root,
            phase,
            presence,
            attended,
            percentage,
            status,
            stay,
            note,
            link,
        };
        view.render(None, false, Link::Connecting);
        Ok(view)
    }

    /// `corrected`: the status shown is a teacher's correction.
    pub(crate) fn render(
        &self,
        state: Option<(&Schedule, &Assessment, &StayUntil)>,
        corrected: bool,
        link: Link,
    ) {
        let (link_value, link_text) = link.label();
        put(&self.link, link_text, Some(link_value));
        let Some((schedule, assessment, stay)) = state else {
            put(&self.stay, "", None);
            put(&self.phase, "Waiting", Some("none"));
            put(&self.presence, "", None);
            put(&self.attended, "--:--", None);
            put(&self.percentage, "–", None);
            put(&self.status, "–", None);
            let note = if link == Link::Live || link == Link::Polling {
                "No class is scheduled in this room yet."
            } else {
                "Waiting for the attendance service…"
            };
            put(&self.note, note, None);
            return;
        };
        let window = schedule.window();
        let att = &assessment.attendance;
        let (phase_value, phase_text) = match att.phase {
            Phase::Scheduled => ("scheduled", "Not started"),
            Phase::Live => ("live", "Live"),
            Phase::Ended => ("ended", "Final"),
        };
        put(&self.phase, phase_text, Some(phase_value));
        let (presence_value, presence_text) = if att.in_meeting {
            ("yes", "In the meeting")
        } else if att.heartbeat_stale {
            ("stale", "Connection lost")
        } else {
            ("no", "Not in the meeting")
        };
        put(&self.presence, presence_text, Some(presence_value));
        put(&self.attended, &text::clock(att.attended_seconds), None);
        put(
            &self.percentage,
            &text::percent(att.attendance_percentage),
            None,
        );
        let status = assessment.status;
        let label = match status {
            EffectiveStatus::Present => "Present",
            EffectiveStatus::Late => "Late",
            EffectiveStatus::Partial => "Partial",
            EffectiveStatus::Absent => "Absent",
            EffectiveStatus::Excused => "Excused",
        };
        put(&self.status, label, Some(status.as_str()));
        let mut note = String::with_capacity(48);
        match att.phase {
            Phase::Scheduled => {
                note.push_str("Counting starts at ");
                note.push_str(&local_time(window.start.timestamp_millis()));
            }
            Phase::Live => {
                // The end of the counting window (the grace period included):
                // a fact, not an instruction.
                note.push_str("Time in the lesson counts until ");
                note.push_str(&local_time(window.end.timestamp_millis()));
            }
            Phase::Ended => {
                note.push_str("Final: counting ended at ");
                note.push_str(&local_time(window.end.timestamp_millis()));
            }
        }
        if corrected {
            note.push_str(". Status set by your teacher.");
        }
        put(&self.note, &note, None);
        // A teacher's correction decides the status: staying changes nothing.
        let sentence = match corrected {
            true => String::new(),
            false => stay_sentence(att.status, att.in_meeting, att.join_count, stay),
        };
        put(&self.stay, &sentence, None);
        let _ = self.root.set_attribute("data-phase", phase_value);
    }
}

/// The "stay until" sentence, or nothing once the session has ended:
/// "Stay until 11:48 to be counted present", "Rejoin by 12:02 to still be
/// counted present", "You are counted present", "Present is out of reach; …".
fn stay_sentence(now: Status, in_meeting: bool, joins: usize, stay: &StayUntil) -> String {
    let Some(reachable) = stay.reachable_status else {
        return String::new();
    };
    let best = match reachable {
        Status::Present | Status::Late => reachable.as_str(),
        Status::Partial | Status::Absent => {
            return String::from(match in_meeting {
                true => "Present is out of reach; staying keeps your time counted",
                false => "Present is out of reach; rejoining still adds to your time",
            });
        }
    };
    let mut out = String::with_capacity(48);
    match (stay.present_at, stay.rejoin_by) {
        _ if now == reachable => out.push_str("You are counted "),
        (Some(at), _) if in_meeting => {
            out.push_str("Stay until ");
            // Rounded up: leaving at the minute shown is never too early.
            out.push_str(&local_time(minute(at, 59_999)));
            out.push_str(" to be counted ");
        }
        (_, Some(by)) => {
            out.push_str(if joins == 0 { "Join by " } else { "Rejoin by " });
            // Rounded down: joining at the minute shown is never too late.
            out.push_str(&local_time(minute(by, 0)));
            out.push_str(" to still be counted ");
        }
        _ => return out,
    }
    out.push_str(best);
    out
}

/// `at` in ms, rounded down to its minute after adding `up` ms.
fn minute(at: DateTime<Utc>, up: i64) -> i64 {
    (at.timestamp_millis() + up).div_euclid(60_000) * 60_000
}

/// Sets text (and `data-value`) only when they changed.
fn put(e: &Element, text: &str, value: Option<&str>) {
    if e.text_content().as_deref() != Some(text) {
        e.set_text_content(Some(text));
    }
    if let Some(value) = value {
        if e.get_attribute("data-value").as_deref() != Some(value) {
            let _ = e.set_attribute("data-value", value);
        }
    }
}

/// `HH:MM` in the browser's time zone.
fn local_time(ms: i64) -> String {
    let date = Date::new(&JsValue::from_f64(ms as f64));
    text::hour_minute(date.get_hours(), date.get_minutes())
}
