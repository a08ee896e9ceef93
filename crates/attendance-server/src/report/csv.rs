//! Reports as spreadsheet-friendly CSV.

use attendance_rules::Grade;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::classify::Role;
use super::views::{Clock, ParticipantReport, SessionReport};
use crate::domain::SessionRow;

/// Characters that make a spreadsheet read a cell as a formula (OWASP's
/// CSV injection list).
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];
/// Where a spreadsheet may start a new cell inside our text: the field
/// separators of common locales (`,` and `;`), tab (TSV) and line breaks.
const CELL_BREAKS: [char; 5] = [',', ';', '\t', '\r', '\n'];

/// Text a spreadsheet could run as a formula gets a `'` (OWASP's advice
/// against CSV injection), read as "this is text" and otherwise shown as
/// is. Checked wherever a cell may begin, not only at the start: a
/// spreadsheet opening the file with `;` as its separator (many European
/// locales) splits `a;=1+1` into `a` and `=1+1`. So a trigger gets its `'`
/// at the start of the text and after any separator, tab or line break,
/// skipping the spaces and double quotes some spreadsheets drop there
/// (`a; "=1+1"` becomes `a; "'=1+1"`). Other text is unchanged.
fn spreadsheet_safe(text: &str) -> std::borrow::Cow<'_, str> {
    // Copied only once something needs a `'`.
    let mut out: Option<String> = None;
    let mut cell_start = true;
    for (i, c) in text.char_indices() {
        if cell_start && FORMULA_TRIGGERS.contains(&c) {
            out.get_or_insert_with(|| {
                let mut copy = String::with_capacity(text.len() + 4);
                copy.push_str(&text[..i]);
                copy
            })
            .push('\'');
        }
        if let Some(out) = out.as_mut() {
            out.push(c);
        }
        cell_start = CELL_BREAKS.contains(&c) || (cell_start && matches!(c, ' ' | '"'));
    }
    match out {
        Some(out) => out.into(),
        None => text.into(),
    }
}

/// One column means one thing: `attended_minutes` is the time the person
/// attended, `lesson_minutes` the lesson's length. The media columns are
/// seconds each was on, empty when engagement is off.
const CSV_HEADER: [&str; 26] = [
    "room",
    "session_id",
    "title",
    "scheduled_at",
    "lesson_minutes",
    "unscheduled",
    "identity",
    "name",
    "role",
    "rostered",
    "status",
    "computed_status",
    "override_reason",
    "override_by",
    "attended_seconds",
    "attended_minutes",
    "attendance_percentage",
    "join_count",
    "first_join_at",
    "last_leave_at",
    "in_meeting",
    "final",
    "timezone",
    "camera_seconds",
    "microphone_seconds",
    "screen_share_seconds",
];

/// The lesson a row is about.
struct Lesson<'a> {
    room: &'a str,
    id: i64,
    title: &'a str,
    scheduled_at: DateTime<Utc>,
    minutes: u32,
    unscheduled: bool,
}

fn csv_row(
    out: &mut csv::Writer<Vec<u8>>,
    lesson: &Lesson<'_>,
    p: &ParticipantReport,
    clock: Clock,
    extra: &[String],
) -> Result<(), csv::Error> {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let media = |seconds: fn(&attendance_rules::MediaTime) -> i64| {
        p.media
            .as_ref()
            .map_or(String::new(), |m| seconds(m).to_string())
    };
    let role = match p.role {
        Role::Student => "student",
        Role::Teacher => "teacher",
        Role::Excluded => "excluded",
    };
    let fields = [
        &*spreadsheet_safe(lesson.room),
        &lesson.id.to_string(),
        &*spreadsheet_safe(lesson.title),
        &clock.text(Some(lesson.scheduled_at)),
        &lesson.minutes.to_string(),
        yes_no(lesson.unscheduled),
        &*spreadsheet_safe(&p.identity),
        &*spreadsheet_safe(&p.name),
        role,
        yes_no(p.rostered),
        p.status.as_str(),
        p.computed_status.as_str(),
        &*spreadsheet_safe(p.correction.as_ref().map_or("", |o| o.reason.as_str())),
        &*spreadsheet_safe(p.correction.as_ref().map_or("", |o| o.author.as_str())),
        &p.attended_seconds.to_string(),
        &p.duration_minutes.to_string(),
        &format!("{:.1}", p.attendance_percentage),
        &p.join_count.to_string(),
        &clock.text(p.first_join_at),
        &clock.text(p.last_leave_at),
        yes_no(p.in_meeting),
        yes_no(p.is_final),
        clock.zone.map_or("UTC", |z| z.name()),
        &media(|m| m.camera_seconds),
        &media(|m| m.microphone_seconds),
        &media(|m| m.screen_share_seconds),
    ];
    out.write_record(
        fields
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str)),
    )
}

/// The report as a spreadsheet-friendly CSV: one row per student, then
/// per teacher; times local with their offset when a zone is set.
pub fn csv(report: &SessionReport, zone: Option<Tz>) -> Result<String, csv::Error> {
    let clock = Clock { zone };
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_HEADER)?;
    let lesson = Lesson {
        room: &report.room,
        id: report.id,
        title: &report.title,
        scheduled_at: report.scheduled_at,
        minutes: report.lesson_minutes,
        unscheduled: report.unscheduled,
    };
    for p in report.participants.iter().chain(&report.teachers) {
        csv_row(&mut out, &lesson, p, clock, &[])?;
    }
    finish(out)
}

/// Columns a history adds: each lesson's points and the most it gives
/// (empty while not graded), and on the last row the grade over them all.
const GRADE_HEADER: [&str; 3] = ["points", "max_points", "grade_percent"];

/// One student's history across lessons, as CSV: one row per lesson with
/// its points (`grades`, one per row: points and the most possible, `None`
/// when not graded), then a `total` row with the grade over the range.
pub fn history_csv(
    rows: &[(SessionRow, ParticipantReport)],
    grades: &[Option<(u32, u32)>],
    grade: &Grade,
    zone: Option<Tz>,
    now: DateTime<Utc>,
) -> Result<String, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_HEADER.iter().chain(&GRADE_HEADER))?;
    for ((session, p), points) in rows.iter().zip(grades) {
        let clock = Clock::for_session(session, zone);
        let lesson = Lesson {
            room: &session.room,
            id: session.id,
            title: &session.title,
            scheduled_at: session.start(),
            minutes: session.schedule_at(now).duration_minutes,
            unscheduled: session.is_unscheduled(),
        };
        let extra = match points {
            Some((points, max)) => [points.to_string(), max.to_string(), String::new()],
            None => Default::default(),
        };
        csv_row(&mut out, &lesson, p, clock, &extra)?;
    }
    if let Some((_, first)) = rows.first() {
        // The total: the student, their time, and the grade over the range.
        let mut total = vec![String::new(); CSV_HEADER.len()];
        let mut put = |column: &str, value: String| {
            if let Some(i) = CSV_HEADER.iter().position(|c| *c == column) {
                total[i] = value;
            }
        };
        put("title", "total".into());
        put("identity", spreadsheet_safe(&first.identity).into_owned());
        put("name", spreadsheet_safe(&first.name).into_owned());
        let seconds: i64 = rows.iter().map(|(_, p)| p.attended_seconds).sum();
        put("attended_seconds", seconds.to_string());
        put("attended_minutes", (seconds / 60).to_string());
        total.extend([
            grade.points.to_string(),
            grade.max_points.to_string(),
            grade
                .percent
                .map_or_else(String::new, |p| format!("{p:.1}")),
        ]);
        out.write_record(&total)?;
    }
    finish(out)
}

fn finish(out: csv::Writer<Vec<u8>>) -> Result<String, csv::Error> {
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("csv writes UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn formulas_are_neutralised_wherever_a_cell_may_begin() {
        let table = [
            // At the start (OWASP's list).
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t'=1"),
            ("\r=1", "'\r'=1"),
            ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
            // After the separators of `;` and `,` locales, tab, line breaks.
            ("a;=1+1", "a;'=1+1"),
            ("x,=cmd", "x,'=cmd"),
            ("a\t@x", "a\t'@x"),
            ("line\n-2", "line\n'-2"),
            ("a;b;+3", "a;b;'+3"),
            // Spaces and quotes a spreadsheet may drop before the trigger.
            ("  =1", "  '=1"),
            ("a; =1", "a; '=1"),
            ("a;\"=1\"", "a;\"'=1\""),
            ("\"=HYPERLINK(x)\"", "\"'=HYPERLINK(x)\""),
        ];
        for (cell, safe) in table {
            assert_eq!(spreadsheet_safe(cell), safe, "{cell:?}");
        }
    }

    #[test]
    fn harmless_text_is_unchanged() {
        for cell in [
            "",
            "Ada Lovelace",
            "Smith-Jones",
            "student-17",
            "1+1=2",
            "a=b",
            "doctor's note",
            "e-mail: ada@example.org",
            "late; came at 9",
            "x, y",
            "'=already text",
            "a;'=1",
            "Zoë Ñandú",
        ] {
            assert_eq!(spreadsheet_safe(cell), cell, "{cell:?}");
            assert!(matches!(
                spreadsheet_safe(cell),
                std::borrow::Cow::Borrowed(_)
            ));
        }
    }
}
