//! The SQL both backends share: column lists, row decoding and multi-row
//! statement numbering. sqlx's `Any` driver runs the same text on SQLite and
//! PostgreSQL; where they differ, [`super::Backend`] says so at the call.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Backend, StoreResult};
use crate::domain::{ms_to_time, CycleRow, RosterEntry, SessionKind, SessionRow, StoredEvent};
use attendance_rules::{GradePoints, Schedule};

/// The close reasons that are our own estimates (the sweeper's, and
/// reconciliation's last-seen instant). LiveKit's own word about a
/// participant (`participant_left`, `participant_connection_aborted`)
/// replaces them, whenever it arrives; they never replace LiveKit's.
pub(super) const SWEEPER_REASONS: &str = "('stale_heartbeat', 'session_ended', 'reconciled')";

pub(super) const SESSION_SELECT: &str =
    "SELECT id, room, kind, room_sid, class_id, title, scheduled_at_ms, duration_minutes, grace_minutes, \
     late_after_minutes, present_percent, heartbeat_stale_seconds, created_at_ms, updated_at_ms, \
     timezone, teacher_present_percent, has_roster, grade_points, engagement FROM sessions";

pub(super) const CYCLE_SELECT: &str =
    "SELECT participant_sid, room, room_sid, identity, name, kind, metadata, \
     attributes, joined_at_ms, left_at_ms, close_reason, disconnect_reason, opened_by, seen_at_ms FROM cycles";

/// Placeholders of one statement, handed out in the order they appear in
/// its text: `$1`, `$2`, … on PostgreSQL; anonymous `?` on SQLite, whose
/// values are then bound in that same order. A named or numbered SQLite
/// parameter costs a linear search of the statement's parameter names each
/// time a value is bound, quadratic in a multi-row statement's parameters
/// (hundreds per batch); anonymous ones cost nothing. So every value is
/// bound where it appears, even one that appears in every row.
pub(super) struct Placeholders {
    backend: Backend,
    next: usize,
}

impl Placeholders {
    pub(super) fn new(backend: Backend) -> Placeholders {
        Placeholders { backend, next: 1 }
    }

    /// The next placeholder.
    pub(super) fn one(&mut self) -> String {
        let mut out = String::new();
        self.push(&mut out);
        out
    }

    /// `rows` copies of `row`, comma-separated, each `?` in it the next
    /// placeholder.
    pub(super) fn rows(&mut self, row: &str, rows: usize) -> String {
        let mut out = String::with_capacity(rows * (row.len() + 8));
        for i in 0..rows {
            if i > 0 {
                out.push_str(", ");
            }
            for c in row.chars() {
                if c == '?' {
                    self.push(&mut out);
                } else {
                    out.push(c);
                }
            }
        }
        out
    }

    fn push(&mut self, out: &mut String) {
        match self.backend {
            Backend::Postgres => {
                out.push('$');
                out.push_str(&self.next.to_string());
                self.next += 1;
            }
            Backend::Sqlite => out.push('?'),
        }
    }
}

pub(super) const EVENT_COLUMNS: &str =
    "id, event, room, created_at_ms, body, status, attempts, received_at_ms, last_error";

pub(super) const EVENT_SELECT: &str = "SELECT id, event, room, created_at_ms, body, status, attempts, received_at_ms, last_error FROM webhook_events";

pub(super) fn small(row: &AnyRow, column: &str) -> StoreResult<u32> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub(super) fn session_from_row(row: &AnyRow) -> StoreResult<SessionRow> {
    Ok(SessionRow {
        id: row.try_get("id")?,
        room: row.try_get("room")?,
        kind: SessionKind::parse(&row.try_get::<String, _>("kind")?),
        title: row.try_get("title")?,
        schedule: Schedule {
            scheduled_at: ms_to_time(row.try_get("scheduled_at_ms")?),
            duration_minutes: small(row, "duration_minutes")?,
            grace_minutes: small(row, "grace_minutes")?,
            late_after_minutes: small(row, "late_after_minutes")?,
            present_percent: small(row, "present_percent")?,
            heartbeat_stale_seconds: small(row, "heartbeat_stale_seconds")?,
        },
        timezone: row.try_get("timezone")?,
        teacher_present_percent: small(row, "teacher_present_percent")?,
        has_roster: row.try_get::<i64, _>("has_roster")? != 0,
        created_at: ms_to_time(row.try_get("created_at_ms")?),
        updated_at: ms_to_time(row.try_get("updated_at_ms")?),
        class_id: row.try_get("class_id")?,
        room_sid: row.try_get("room_sid")?,
        ended_at: None,
        cut_at: None,
        grade_points: grade_points(&row.try_get::<String, _>("grade_points")?)?,
        engagement: row.try_get::<i64, _>("engagement")? != 0,
    })
}

/// A lesson's stored grade points: empty for the school's.
pub(super) fn grade_points(text: &str) -> StoreResult<Option<GradePoints>> {
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A lesson's grade points as stored.
pub(super) fn grade_points_text(points: Option<&GradePoints>) -> String {
    points.map_or_else(String::new, |p| {
        serde_json::to_string(p).expect("serializable")
    })
}

pub(super) fn cycle_from_row(row: &AnyRow) -> StoreResult<CycleRow> {
    let joined: Option<i64> = row.try_get("joined_at_ms")?;
    let left: Option<i64> = row.try_get("left_at_ms")?;
    Ok(CycleRow {
        participant_sid: row.try_get("participant_sid")?,
        room: row.try_get("room")?,
        room_sid: row.try_get("room_sid")?,
        identity: row.try_get("identity")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        metadata: row.try_get("metadata")?,
        attributes: row.try_get("attributes")?,
        joined_at: joined.map(ms_to_time),
        left_at: left.map(ms_to_time),
        close_reason: row.try_get("close_reason")?,
        disconnect_reason: row.try_get("disconnect_reason")?,
        opened_by: row.try_get("opened_by")?,
        seen_at: row.try_get::<Option<i64>, _>("seen_at_ms")?.map(ms_to_time),
    })
}

pub(super) fn event_from_row(row: &AnyRow) -> StoreResult<StoredEvent> {
    Ok(StoredEvent {
        id: row.try_get("id")?,
        event: row.try_get("event")?,
        room: row.try_get("room")?,
        created_at_ms: row.try_get("created_at_ms")?,
        body: row.try_get("body")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        received_at: ms_to_time(row.try_get("received_at_ms")?),
        last_error: row.try_get("last_error")?,
    })
}

/// A roster row (a lesson's or a class's: the same columns).
pub(super) fn roster_entry_from_row(row: &AnyRow) -> StoreResult<RosterEntry> {
    Ok(RosterEntry {
        identity: row.try_get("identity")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
    })
}

/// Binds a schedule's columns in their usual order: scheduled_at_ms,
/// duration_minutes, grace_minutes, late_after_minutes, present_percent,
/// heartbeat_stale_seconds, window_end_ms.
pub(super) fn bind_schedule<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    schedule: &Schedule,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(schedule.scheduled_at.timestamp_millis())
        .bind(i64::from(schedule.duration_minutes))
        .bind(i64::from(schedule.grace_minutes))
        .bind(i64::from(schedule.late_after_minutes))
        .bind(i64::from(schedule.present_percent))
        .bind(i64::from(schedule.heartbeat_stale_seconds))
        .bind(schedule.window().end.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_on_postgres_and_anonymous_on_sqlite() {
        let mut pg = Placeholders::new(Backend::Postgres);
        assert_eq!(pg.rows("(?, 0, ?)", 2), "($1, 0, $2), ($3, 0, $4)");
        assert_eq!(pg.one(), "$5");
        let mut sqlite = Placeholders::new(Backend::Sqlite);
        assert_eq!(sqlite.rows("(?, 0, ?)", 2), "(?, 0, ?), (?, 0, ?)");
        assert_eq!(sqlite.one(), "?");
        assert_eq!(Placeholders::new(Backend::Sqlite).rows("?", 0), "");
    }
}
