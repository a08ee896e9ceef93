//! Who counts as what: a roster says who is a student or a teacher; without
//! one, LiveKit metadata/attributes (`role`) do; recorders, ingress, SIP
//! bridges, agents and observers are kept as facts but left out of the class
//! statistics.

use std::collections::BTreeMap;

use crate::domain::{CycleRow, RosterEntry};

/// Server-wide choices about who counts.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// LiveKit participant kinds that are not people (e.g. EGRESS, AGENT).
    pub excluded_kinds: Vec<String>,
    /// `role` values (metadata/attributes) left out of statistics.
    pub excluded_roles: Vec<String>,
    /// Whether camera, microphone and screen-share time are reported.
    pub engagement: bool,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            excluded_kinds: ["INGRESS", "EGRESS", "SIP", "AGENT"]
                .map(String::from)
                .to_vec(),
            excluded_roles: vec!["observer".into()],
            engagement: true,
        }
    }
}

/// Student, teacher or excluded: the rules' roles (their thresholds and
/// counts follow from it).
pub use attendance_rules::Role;

/// A participant's role from their LiveKit metadata (JSON with `role`) or
/// attributes (`role`), newest connection first.
fn declared_role(cycles: &[&CycleRow]) -> Option<String> {
    cycles.iter().rev().find_map(|c| {
        let from_metadata = serde_json::from_str::<serde_json::Value>(&c.metadata)
            .ok()
            .and_then(|m| m.get("role")?.as_str().map(str::to_string));
        let from_attributes = serde_json::from_str::<BTreeMap<String, String>>(&c.attributes)
            .ok()
            .and_then(|a| a.get("role").cloned());
        from_attributes.or(from_metadata)
    })
}

impl Classifier {
    pub fn role(
        &self,
        roster: Option<&RosterEntry>,
        has_roster: bool,
        cycles: &[&CycleRow],
    ) -> Role {
        if cycles.iter().any(|c| {
            self.excluded_kinds
                .iter()
                .any(|k| k.eq_ignore_ascii_case(&c.kind))
        }) {
            return Role::Excluded;
        }
        let declared = declared_role(cycles).map(|r| r.to_ascii_lowercase());
        if declared
            .as_ref()
            .is_some_and(|r| self.excluded_roles.contains(r))
        {
            return Role::Excluded;
        }
        match roster {
            Some(entry) if entry.role == "teacher" => Role::Teacher,
            Some(_) => Role::Student,
            // With a roster, only the roster names teachers.
            None if !has_roster && declared.as_deref() == Some("teacher") => Role::Teacher,
            None => Role::Student,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycle(kind: &str, metadata: &str, attributes: &str) -> CycleRow {
        CycleRow {
            participant_sid: "PA_1".into(),
            room: "r".into(),
            room_sid: String::new(),
            identity: "x".into(),
            name: String::new(),
            kind: kind.into(),
            metadata: metadata.into(),
            attributes: attributes.into(),
            joined_at: None,
            left_at: None,
            close_reason: None,
            disconnect_reason: String::new(),
            opened_by: "webhook".into(),
            seen_at: None,
        }
    }

    #[test]
    fn roles_from_kind_metadata_attributes_and_roster() {
        let c = Classifier::default();
        let teacher_entry = RosterEntry {
            identity: "x".into(),
            name: String::new(),
            role: "teacher".into(),
        };
        assert_eq!(
            c.role(None, false, &[&cycle("EGRESS", "", "")]),
            Role::Excluded
        );
        assert_eq!(
            c.role(None, false, &[&cycle("AGENT", "", "")]),
            Role::Excluded
        );
        assert_eq!(
            c.role(None, false, &[&cycle("", r#"{"role":"observer"}"#, "")]),
            Role::Excluded
        );
        assert_eq!(
            c.role(None, false, &[&cycle("", "", r#"{"role":"observer"}"#)]),
            Role::Excluded
        );
        assert_eq!(
            c.role(
                None,
                false,
                &[&cycle("STANDARD", r#"{"role":"teacher"}"#, "")]
            ),
            Role::Teacher
        );
        assert_eq!(
            c.role(
                None,
                true,
                &[&cycle("STANDARD", r#"{"role":"teacher"}"#, "")]
            ),
            Role::Student
        );
        assert_eq!(c.role(Some(&teacher_entry), true, &[]), Role::Teacher);
        assert_eq!(
            c.role(None, false, &[&cycle("STANDARD", "not json", "")]),
            Role::Student
        );
    }
}
