-- Grades from attendance: what each status is worth in this lesson, as
-- JSON {"present": 2, "late": 1, "partial": 1, "absent": 0, "excused": 1};
-- empty: the school's points (`--grade-points`). Numbered 0010: 0009 is
-- taken by the session engagement columns.
ALTER TABLE sessions ADD COLUMN grade_points TEXT NOT NULL DEFAULT '';
