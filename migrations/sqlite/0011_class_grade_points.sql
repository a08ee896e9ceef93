-- What each status is worth in a class's lessons (JSON, as on sessions);
-- empty: the school's (`--grade-points`).
ALTER TABLE classes ADD COLUMN grade_points TEXT NOT NULL DEFAULT '';
