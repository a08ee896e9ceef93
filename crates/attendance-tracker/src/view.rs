//! The small attendance card rendered into the host page's element.
//!
//! Plain elements with classes and `data-field` attributes, updated through
//! `textContent` only when a value changes. Styling is the page's business.

use attendance_rules::{Attendance, Phase, Schedule};
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
        let attended = stat(&doc, &list, "Attended", "attended")?;
        // A timer is not announced every second; the status below is.
        attended.set_attribute("role", "timer")?;
        let percentage = stat(&doc, &list, "Of the class", "percentage")?;
        let status = stat(&doc, &list, "Status", "status")?;
        status.set_attribute("aria-live", "polite")?;
        let note = el(&doc, "p", "att-note", Some("note"))?;
        note.set_attribute("aria-live", "polite")?;
        let link = el(&doc, "p", "att-link", Some("connection"))?;
        root.append_child(&head)?;
        root.append_child(&list)?;
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
            note,
            link,
        };
        view.render(None, None, Link::Connecting);
        Ok(view)
    }

    /// `correction`: a teacher's status for this student, shown instead of
    /// the computed one.
    pub(crate) fn render(
        &self,
        state: Option<(&Schedule, &Attendance)>,
        correction: Option<&str>,
        link: Link,
    ) {
        let (link_value, link_text) = link.label();
        put(&self.link, link_text, Some(link_value));
        let Some((schedule, att)) = state else {
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
        let status = correction.unwrap_or(att.status.as_str());
        let label = match status {
            "present" => "Present",
            "late" => "Late",
            "partial" => "Partial",
            "absent" => "Absent",
            "excused" => "Excused",
            other => other,
        };
        put(&self.status, label, Some(status));
        let mut note = String::with_capacity(48);
        match att.phase {
            Phase::Scheduled => {
                note.push_str("Counting starts at ");
                note.push_str(&local_time(window.start.timestamp_millis()));
            }
            Phase::Live => {
                note.push_str("Counting until ");
                note.push_str(&local_time(window.end.timestamp_millis()));
            }
            Phase::Ended => {
                note.push_str("Final: counting ended at ");
                note.push_str(&local_time(window.end.timestamp_millis()));
            }
        }
        if correction.is_some() {
            note.push_str(". Status set by your teacher.");
        }
        put(&self.note, &note, None);
        let _ = self.root.set_attribute("data-phase", phase_value);
    }
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
