//! A class's recurring slots (iCalendar RRULE, RFC 5545, via the `rrule`
//! crate) turned into lesson start instants, in the class's time zone: a
//! 09:00 slot stays at 09:00 local time across daylight-saving changes.
//! Pure: no I/O, no clock.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Most lessons one class may produce.
pub const MAX_LESSONS: u16 = 1000;

/// One recurring slot as stored: an RRULE (without `DTSTART`), a local
/// start time and a length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// e.g. `FREQ=WEEKLY;BYDAY=MO,WE`.
    pub rrule: String,
    /// Local time of day, `HH:MM`.
    pub start: String,
    pub duration_minutes: u32,
}

/// One lesson a class produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub start: DateTime<Utc>,
    pub duration_minutes: u32,
}

/// Weekday names people write, as RRULE's two letters.
pub fn weekday_code(day: &str) -> Option<&'static str> {
    let day = day.trim().to_ascii_lowercase();
    let codes = [
        ("mo", "MO"),
        ("tu", "TU"),
        ("we", "WE"),
        ("th", "TH"),
        ("fr", "FR"),
        ("sa", "SA"),
        ("su", "SU"),
    ];
    codes
        .iter()
        .find(|(prefix, _)| day.len() >= 2 && day.starts_with(prefix))
        .map(|(_, code)| *code)
}

/// `HH:MM` (or `HH:MM:SS`).
pub fn parse_time(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .map_err(|_| format!("start time `{text}` must be HH:MM"))
}

/// Every lesson the slots produce from `starts_on` to `ends_on` (local
/// dates, both included) in `zone`, leaving out `cancelled` dates; by start.
pub fn occurrences(
    slots: &[Slot],
    zone: Tz,
    starts_on: NaiveDate,
    ends_on: NaiveDate,
    cancelled: &[NaiveDate],
) -> Result<Vec<Occurrence>, String> {
    let mut all = Vec::new();
    for slot in slots {
        let time = parse_time(&slot.start)?;
        let rule = slot.rrule.trim();
        let rule = rule.strip_prefix("RRULE:").unwrap_or(rule);
        if rule.contains(['\n', '\r']) || rule.to_ascii_uppercase().contains("DTSTART") {
            return Err("a slot's rrule is one RRULE line, without DTSTART".into());
        }
        let text = format!(
            "DTSTART;TZID={}:{}T{}\nRRULE:{rule}",
            zone.name(),
            starts_on.format("%Y%m%d"),
            time.format("%H%M%S"),
        );
        let set: rrule::RRuleSet = text
            .parse()
            .map_err(|e| format!("invalid rrule `{rule}`: {e}"))?;
        let after_end = local_midnight(zone, ends_on.succ_opt().unwrap_or(ends_on));
        let result = set
            .before(after_end.with_timezone(&rrule::Tz::Tz(zone)))
            .all(MAX_LESSONS + 1);
        if result.dates.len() > usize::from(MAX_LESSONS) {
            return Err(format!(
                "a class produces at most {MAX_LESSONS} lessons; shorten its dates"
            ));
        }
        for start in result.dates {
            let day = start.with_timezone(&zone).date_naive();
            if day < starts_on || day > ends_on || cancelled.contains(&day) {
                continue;
            }
            all.push(Occurrence {
                start: start.with_timezone(&Utc),
                duration_minutes: slot.duration_minutes,
            });
        }
    }
    all.sort_by_key(|o| o.start);
    all.dedup_by_key(|o| o.start);
    Ok(all)
}

/// The first instant of a local day.
fn local_midnight(zone: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_time(NaiveTime::MIN);
    zone.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| midnight.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_weekly_slot_keeps_its_local_time_across_a_dst_change() {
        let slot = Slot {
            rrule: "FREQ=WEEKLY;BYDAY=MO,WE".into(),
            start: "09:00".into(),
            duration_minutes: 60,
        };
        let zone: Tz = "Europe/Berlin".parse().unwrap();
        let lessons = occurrences(
            &[slot],
            zone,
            day("2026-03-23"),
            day("2026-04-01"),
            &[day("2026-03-25")],
        )
        .unwrap();
        let starts: Vec<String> = lessons.iter().map(|o| o.start.to_rfc3339()).collect();
        assert_eq!(
            starts,
            vec![
                "2026-03-23T08:00:00+00:00", // CET
                "2026-03-30T07:00:00+00:00", // CEST after 29 March
                "2026-04-01T07:00:00+00:00",
            ]
        );
        assert_eq!(weekday_code("Monday"), Some("MO"));
        assert_eq!(weekday_code("x"), None);
    }
}
