//! The small attendance card rendered into the host page's element.
//!
//! Plain elements with classes and `data-field` attributes, updated through
//! `textContent` only when a value changes. Styling is the page's business;
//! the words and number formats are the page's too ([`Labels`]).

use attendance_rules::{Assessment, EffectiveStatus, Phase, Schedule, Status, StayUntil};
use chrono::{DateTime, Utc};
use wasm_bindgen::JsValue;
use web_sys::{Document, Element};

use crate::labels::{Labels, Vars};

/// How the tracker currently hears from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Connecting,
    Live,
    /// The socket is down and retried: the numbers are as of the last contact.
    Reconnecting,
    Polling,
    /// Neither the socket nor polling reaches the service.
    Offline,
    Stopped,
    /// The server closed the socket because the token expired (code 4001).
    Expired,
}

impl Link {
    /// Its `data-value`, and the key of its text.
    fn value(self) -> (&'static str, &'static str) {
        match self {
            Link::Connecting => ("connecting", "card.link.connecting"),
            Link::Live => ("live", "card.link.live"),
            Link::Reconnecting => ("reconnecting", "card.link.reconnecting"),
            Link::Polling => ("polling", "card.link.polling"),
            Link::Offline => ("offline", "card.link.offline"),
            Link::Stopped => ("stopped", "card.link.stopped"),
            Link::Expired => ("expired", "card.link.expired"),
        }
    }

    /// The numbers shown are as of the last contact, not now.
    pub(crate) fn stale(self) -> bool {
        matches!(self, Link::Reconnecting | Link::Offline | Link::Expired)
    }
}

/// What one render shows.
pub(crate) struct Shown<'a> {
    pub(crate) state: Option<(&'a Schedule, &'a Assessment, &'a StayUntil)>,
    /// The status shown is a teacher's correction.
    pub(crate) corrected: bool,
    pub(crate) link: Link,
    /// Since when (unix ms) the numbers are not current, while stale.
    pub(crate) since_ms: Option<i64>,
    /// Camera, microphone and screen-share seconds; `None`: not reported.
    pub(crate) media: Option<[i64; 3]>,
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
    /// "Camera on 12:30 · Microphone on 8:10 · Screen shared 0:00" (empty
    /// when engagement is off).
    media: Element,
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

/// A `<div><dt>label</dt><dd data-field=…></dd></div>` pair, the label
/// the page's text for `key`.
fn stat(
    doc: &Document,
    list: &Element,
    l: &Labels,
    key: &str,
    field: &str,
) -> Result<Element, JsValue> {
    let group = el(doc, "div", "att-stat", None)?;
    let dt = el(doc, "dt", "att-label", None)?;
    l.show(&dt, key, Vars::default(), "");
    let dd = el(doc, "dd", "att-value", Some(field))?;
    group.append_child(&dt)?;
    group.append_child(&dd)?;
    list.append_child(&group)?;
    Ok(dd)
}

impl View {
    pub(crate) fn new(host: &Element, labels: &Labels) -> Result<View, JsValue> {
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
        let attended = stat(&doc, &list, labels, "card.attended", "attended")?;
        let percentage = stat(&doc, &list, labels, "card.share", "percentage")?;
        let status = stat(&doc, &list, labels, "card.status", "status")?;
        status.set_attribute("aria-live", "polite")?;
        let stay = el(&doc, "p", "att-stay", Some("stay"))?;
        stay.set_attribute("aria-live", "polite")?;
        let media = el(&doc, "p", "att-media", Some("media"))?;
        let note = el(&doc, "p", "att-note", Some("note"))?;
        note.set_attribute("aria-live", "polite")?;
        let link = el(&doc, "p", "att-link", Some("connection"))?;
        root.append_child(&head)?;
        root.append_child(&list)?;
        root.append_child(&stay)?;
        root.append_child(&media)?;
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
            media,
            note,
            link,
        };
        view.render(
            labels,
            &Shown {
                state: None,
                corrected: false,
                link: Link::Connecting,
                since_ms: None,
                media: None,
            },
        );
        Ok(view)
    }

    pub(crate) fn render(&self, l: &Labels, shown: &Shown<'_>) {
        let link = shown.link;
        let since = shown.since_ms.map(|ms| l.time(ms)).unwrap_or_default();
        let (value, key) = link.value();
        l.show(
            &self.link,
            key,
            Vars {
                since: &since,
                ..Vars::default()
            },
            value,
        );
        let _ = self
            .root
            .set_attribute("data-stale", if link.stale() { "true" } else { "false" });
        let media = match (shown.media, shown.state) {
            (Some([camera, microphone, screen]), Some(_)) => {
                let time = |seconds| l.clock(seconds);
                let on = |key, seconds| {
                    l.with(
                        key,
                        Vars {
                            time: &time(seconds),
                            ..Vars::default()
                        },
                    )
                };
                let mut line = on("card.media.camera", camera);
                for (key, seconds) in [
                    ("card.media.microphone", microphone),
                    ("card.media.screen", screen),
                ] {
                    line.push_str(" · ");
                    line.push_str(&on(key, seconds));
                }
                line
            }
            _ => String::new(),
        };
        put(&self.media, &media, None);
        let Some((schedule, assessment, stay)) = shown.state else {
            put(&self.stay, "", None);
            l.show(&self.phase, "card.waiting", Vars::default(), "none");
            put(&self.presence, "", None);
            put(&self.attended, "--:--", None);
            put(&self.percentage, "–", None);
            put(&self.status, "–", None);
            let note = if link == Link::Live || link == Link::Polling {
                "card.none.live"
            } else {
                "card.none.wait"
            };
            l.show(&self.note, note, Vars::default(), "");
            return;
        };
        let window = schedule.window();
        let att = &assessment.attendance;
        let phase_value = crate::phase_str(att.phase);
        let phase_key = match att.phase {
            Phase::Scheduled => "phase.scheduled",
            Phase::Live => "phase.live",
            Phase::Ended => "phase.ended",
        };
        l.show(&self.phase, phase_key, Vars::default(), phase_value);
        let (presence_value, presence_key) = if att.in_meeting {
            ("yes", "card.in")
        } else if att.heartbeat_stale {
            ("stale", "card.lost")
        } else {
            ("no", "card.out")
        };
        l.show(
            &self.presence,
            presence_key,
            Vars::default(),
            presence_value,
        );
        put(&self.attended, &l.clock(att.attended_seconds), None);
        put(
            &self.percentage,
            &l.percent(att.attendance_percentage),
            None,
        );
        let status = assessment.status;
        let status_key = match status {
            EffectiveStatus::Present => "status.present",
            EffectiveStatus::Late => "status.late",
            EffectiveStatus::Partial => "status.partial",
            EffectiveStatus::Absent => "status.absent",
            EffectiveStatus::Excused => "status.excused",
        };
        l.show(&self.status, status_key, Vars::default(), status.as_str());
        // The end of the counting window (the grace period included) while
        // live: a fact, not an instruction.
        let (note_key, at) = match att.phase {
            Phase::Scheduled => ("card.note.scheduled", window.start),
            Phase::Live => ("card.note.live", window.end),
            Phase::Ended => ("card.note.ended", window.end),
        };
        let time = l.time(at.timestamp_millis());
        let mut note = l.with(
            note_key,
            Vars {
                time: &time,
                ..Vars::default()
            },
        );
        if shown.corrected {
            note.push_str(". ");
            note.push_str(&l.get("card.corrected"));
        }
        put(&self.note, &note, None);
        // A teacher's correction decides the status: staying changes nothing.
        let sentence = match shown.corrected {
            true => String::new(),
            false => stay_sentence(l, att.status, att.in_meeting, att.join_count, stay),
        };
        put(&self.stay, &sentence, None);
        let _ = self.root.set_attribute("data-phase", phase_value);
    }
}

/// The "stay until" sentence, or nothing once the session has ended:
/// "Stay until 11:48 to be counted present", "Rejoin by 12:02 to still be
/// counted present", "You are counted present", "Present is out of reach; …".
fn stay_sentence(
    l: &Labels,
    now: Status,
    in_meeting: bool,
    joins: usize,
    stay: &StayUntil,
) -> String {
    let Some(reachable) = stay.reachable_status else {
        return String::new();
    };
    let status = match reachable {
        Status::Present => l.get("card.as.present"),
        Status::Late => l.get("card.as.late"),
        Status::Partial | Status::Absent => {
            return l.get(match in_meeting {
                true => "card.stay.out.in",
                false => "card.stay.out.out",
            });
        }
    };
    let (key, time) = match (stay.present_at, stay.rejoin_by) {
        _ if now == reachable => ("card.stay.now", String::new()),
        // Rounded up: leaving at the minute shown is never too early.
        (Some(at), _) if in_meeting => ("card.stay.until", l.time(minute(at, 59_999))),
        // Rounded down: joining at the minute shown is never too late.
        (_, Some(by)) => (
            if joins == 0 {
                "card.stay.join"
            } else {
                "card.stay.rejoin"
            },
            l.time(minute(by, 0)),
        ),
        _ => return String::new(),
    };
    l.with(
        key,
        Vars {
            time: &time,
            status: &status,
            ..Vars::default()
        },
    )
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
