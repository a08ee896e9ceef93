//! Classes and the lessons they produce: stored, read, and applied to the
//! room as a [`ClassPlan`] says, in one transaction.

use chrono::NaiveDate;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::sessions::{insert_lesson, replace_roster};
use super::sql::{
    bind_schedule, grade_points, grade_points_text, roster_entry_from_row, session_from_row,
    SESSION_SELECT,
};
use super::{Store, StoreResult};
use crate::domain::classes::{ClassPlan, ClassRow, Planned};
use crate::domain::{ms_to_time, RosterEntry, SessionRow};

const CLASS_SELECT: &str =
    "SELECT id, room, title, timezone, starts_on, ends_on, slots, cancelled, \
     grace_minutes, late_after_minutes, present_percent, teacher_present_percent, \
     heartbeat_stale_seconds, has_roster, grade_points, created_at_ms, updated_at_ms FROM classes";

impl Store {
    /// Creates a class (its id is assigned) or replaces one; its roster
    /// too when given.
    pub async fn save_class(
        &self,
        class: &ClassRow,
        roster: Option<&[RosterEntry]>,
        now_ms: i64,
    ) -> StoreResult<i64> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let sql = if class.id == 0 {
            "INSERT INTO classes (room, title, timezone, starts_on, ends_on, slots, cancelled, \
             grace_minutes, late_after_minutes, present_percent, teacher_present_percent, \
             heartbeat_stale_seconds, created_at_ms, updated_at_ms, grade_points) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $15 WHERE $14 = 0 RETURNING id"
        } else {
            "UPDATE classes SET room = $1, title = $2, timezone = $3, starts_on = $4, ends_on = $5, \
             slots = $6, cancelled = $7, grace_minutes = $8, late_after_minutes = $9, \
             present_percent = $10, teacher_present_percent = $11, heartbeat_stale_seconds = $12, \
             updated_at_ms = $13, grade_points = $15 WHERE id = $14 RETURNING id"
        };
        let rules = &class.rules;
        let cancelled: Vec<String> = class.cancelled.iter().map(|d| d.to_string()).collect();
        let id: i64 = sqlx::query(sql)
            .bind(&class.room)
            .bind(&class.title)
            .bind(&class.timezone)
            .bind(class.starts_on.to_string())
            .bind(class.ends_on.to_string())
            .bind(serde_json::to_string(&class.slots).expect("serializable"))
            .bind(serde_json::to_string(&cancelled).expect("serializable"))
            .bind(i64::from(rules.grace_minutes))
            .bind(i64::from(rules.late_after_minutes))
            .bind(i64::from(rules.present_percent))
            .bind(i64::from(class.teacher_present_percent))
            .bind(i64::from(rules.heartbeat_stale_seconds))
            .bind(now_ms)
            .bind(class.id)
            .bind(grade_points_text(class.grade_points.as_ref()))
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
        if let Some(roster) = roster {
            sqlx::query("DELETE FROM class_roster WHERE class_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for entry in roster {
                sqlx::query(
                    "INSERT INTO class_roster (class_id, identity, name, role) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(&entry.identity)
                .bind(&entry.name)
                .bind(&entry.role)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE classes SET has_roster = $2 WHERE id = $1")
                .bind(id)
                .bind(i64::from(class.has_roster))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn class(&self, id: i64) -> StoreResult<Option<ClassRow>> {
        let row = sqlx::query(&format!("{CLASS_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| class_from_row(&r)).transpose()
    }

    /// Every class, or one room's.
    pub async fn classes(&self, room: Option<&str>) -> StoreResult<Vec<ClassRow>> {
        sqlx::query(&format!(
            "{CLASS_SELECT} WHERE ($1 = '' OR room = $1) ORDER BY id"
        ))
        .bind(room.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(class_from_row)
        .collect()
    }

    pub async fn class_roster(&self, id: i64) -> StoreResult<Vec<RosterEntry>> {
        sqlx::query(
            "SELECT identity, name, role FROM class_roster WHERE class_id = $1 ORDER BY identity",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(roster_entry_from_row)
        .collect()
    }

    /// The class's lessons, with their keys and whether they were changed
    /// by hand.
    pub async fn class_lessons(
        &self,
        id: i64,
    ) -> StoreResult<Vec<(SessionRow, Option<i64>, bool)>> {
        let select = SESSION_SELECT.replacen("SELECT ", "SELECT occurrence_ms, customized, ", 1);
        sqlx::query(&format!(
            "{select} WHERE class_id = $1 ORDER BY scheduled_at_ms, id"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                session_from_row(r)?,
                r.try_get::<Option<i64>, _>("occurrence_ms")?,
                r.try_get::<i64, _>("customized")? != 0,
            ))
        })
        .collect()
    }

    /// Applies a class to its lessons as `plan` says, in one transaction;
    /// lessons whose roster is the class's (or that have none) get the
    /// class's roster.
    pub async fn apply_class(
        &self,
        class: &ClassRow,
        plan: &ClassPlan,
        roster: Option<&[RosterEntry]>,
        now_ms: i64,
    ) -> StoreResult<()> {
        let details = class.details();
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let mut touched = Vec::new();
        for (lesson, over) in &plan.create {
            let id = match over {
                Some(id) => {
                    update_lesson(&mut tx, *id, class, lesson, now_ms).await?;
                    *id
                }
                None => {
                    insert_lesson(
                        &mut tx,
                        &class.room,
                        &details,
                        &lesson.schedule,
                        Some((class.id, lesson.key)),
                        now_ms,
                    )
                    .await?
                }
            };
            touched.push(id);
        }
        for (id, lesson) in &plan.update {
            update_lesson(&mut tx, *id, class, lesson, now_ms).await?;
            touched.push(*id);
        }
        if let Some(roster) = roster {
            for id in &touched {
                let own: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM sessions WHERE id = $1 AND has_roster = 1 AND roster_from_class = 0",
                )
                .bind(*id)
                .fetch_optional(&mut *tx)
                .await?;
                if own.is_none() {
                    replace_roster(&mut tx, *id, roster, true).await?;
                    // Teachers alone are no roster: students stay unmarked.
                    sqlx::query("UPDATE sessions SET has_roster = $2 WHERE id = $1")
                        .bind(*id)
                        .bind(i64::from(class.has_roster))
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        for id in &plan.delete {
            for sql in [
                "DELETE FROM roster WHERE session_id = $1",
                "DELETE FROM attendance_overrides WHERE session_id = $1",
                "DELETE FROM sessions WHERE id = $1",
            ] {
                sqlx::query(sql).bind(*id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        self.facts_cache.clear();
        Ok(())
    }

    /// Removes a class and its lessons still to come; its past lessons
    /// stay, with everything recorded in them.
    pub async fn delete_class(&self, id: i64, now_ms: i64) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let future = "SELECT id FROM sessions WHERE class_id = $1 AND scheduled_at_ms > $2";
        for sql in [
            format!("DELETE FROM roster WHERE session_id IN ({future})"),
            format!("DELETE FROM attendance_overrides WHERE session_id IN ({future})"),
            "DELETE FROM sessions WHERE class_id = $1 AND scheduled_at_ms > $2".to_string(),
            "DELETE FROM class_roster WHERE class_id = $1 AND $2 = $2".to_string(),
        ] {
            sqlx::query(&sql)
                .bind(id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        let found = sqlx::query("DELETE FROM classes WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        tx.commit().await?;
        self.facts_cache.clear();
        Ok(found)
    }
}

/// A class's lesson (or an unscheduled session it takes over) set to what
/// the class says.
async fn update_lesson(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    class: &ClassRow,
    lesson: &Planned,
    now_ms: i64,
) -> StoreResult<()> {
    let update = sqlx::query(
        "UPDATE sessions SET room = $2, kind = 'lesson', title = $3, scheduled_at_ms = $4, \
         duration_minutes = $5, grace_minutes = $6, late_after_minutes = $7, present_percent = $8, \
         heartbeat_stale_seconds = $9, window_end_ms = $10, timezone = $11, \
         teacher_present_percent = $12, updated_at_ms = $13, class_id = $14, occurrence_ms = $15, \
         grade_points = $16 WHERE id = $1",
    );
    bind_schedule(
        update.bind(id).bind(&class.room).bind(&class.title),
        &lesson.schedule,
    )
    .bind(&class.timezone)
    .bind(i64::from(class.teacher_present_percent))
    .bind(now_ms)
    .bind(class.id)
    .bind(lesson.key)
    .bind(grade_points_text(class.grade_points.as_ref()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn class_from_row(row: &AnyRow) -> StoreResult<ClassRow> {
    let decode = |e: String| sqlx::Error::Decode(e.into());
    let day = |column: &str| -> StoreResult<NaiveDate> {
        row.try_get::<String, _>(column)?
            .parse()
            .map_err(|e: chrono::ParseError| decode(e.to_string()))
    };
    let small = |column: &str| -> StoreResult<u32> {
        u32::try_from(row.try_get::<i64, _>(column)?).map_err(|e| decode(e.to_string()))
    };
    let cancelled: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("cancelled")?)
        .map_err(|e| decode(e.to_string()))?;
    let mut rules = attendance_rules::Schedule::new(ms_to_time(0), 1);
    rules.grace_minutes = small("grace_minutes")?;
    rules.late_after_minutes = small("late_after_minutes")?;
    rules.present_percent = small("present_percent")?;
    rules.heartbeat_stale_seconds = small("heartbeat_stale_seconds")?;
    Ok(ClassRow {
        id: row.try_get("id")?,
        room: row.try_get("room")?,
        title: row.try_get("title")?,
        timezone: row.try_get("timezone")?,
        starts_on: day("starts_on")?,
        ends_on: day("ends_on")?,
        slots: serde_json::from_str(&row.try_get::<String, _>("slots")?)
            .map_err(|e| decode(e.to_string()))?,
        cancelled: cancelled.iter().filter_map(|d| d.parse().ok()).collect(),
        rules,
        teacher_present_percent: small("teacher_present_percent")?,
        grade_points: grade_points(&row.try_get::<String, _>("grade_points")?)?,
        has_roster: row.try_get::<i64, _>("has_roster")? != 0,
        created_at: ms_to_time(row.try_get("created_at_ms")?),
        updated_at: ms_to_time(row.try_get("updated_at_ms")?),
    })
}
