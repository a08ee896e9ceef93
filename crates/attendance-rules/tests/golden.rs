use attendance_rules::golden::{
    assert_hold, run, run_media, run_shown, run_stay_until, GOLDEN_VECTORS, MEDIA_VECTORS,
    SHOWN_VECTORS, STAY_UNTIL_VECTORS,
};

#[test]
fn golden_vectors_hold() {
    assert_hold("golden", run(GOLDEN_VECTORS), 10);
}

#[test]
fn the_runner_reports_a_wrong_expectation() {
    // A runner that cannot fail proves nothing: corrupt one expectation.
    let corrupted =
        GOLDEN_VECTORS.replacen("\"attended_seconds\": 900", "\"attended_seconds\": 1680", 1);
    assert_ne!(corrupted, GOLDEN_VECTORS);
    let (_, failures) = run(&corrupted).unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("attended_seconds"));
}

#[test]
fn shown_vectors_hold() {
    assert_hold("shown", run_shown(SHOWN_VECTORS), 15);
}

#[test]
fn the_shown_runner_reports_a_wrong_expectation() {
    let corrupted = SHOWN_VECTORS.replacen("\"x2\": 0.166667", "\"x2\": 0.2", 1);
    assert_ne!(corrupted, SHOWN_VECTORS);
    let (_, failures) = run_shown(&corrupted).unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("timeline.segments[0].x2"),
        "{failures:?}"
    );
}

#[test]
fn stay_until_vectors_hold() {
    assert_hold("stay-until", run_stay_until(STAY_UNTIL_VECTORS), 20);
}

#[test]
fn the_stay_until_runner_reports_a_wrong_expectation() {
    let corrupted = STAY_UNTIL_VECTORS.replacen("12:02:01Z", "12:02:02Z", 1);
    assert_ne!(corrupted, STAY_UNTIL_VECTORS);
    let (_, failures) = run_stay_until(&corrupted).unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("rejoin_by"), "{failures:?}");
}

#[test]
fn media_vectors_hold() {
    assert_hold("media", run_media(MEDIA_VECTORS), 13);
}

#[test]
fn the_media_runner_reports_a_wrong_expectation() {
    let corrupted =
        MEDIA_VECTORS.replacen("\"camera_seconds\": 2400}", "\"camera_seconds\": 2401}", 1);
    assert_ne!(corrupted, MEDIA_VECTORS);
    let (_, failures) = run_media(&corrupted).unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("camera_seconds"), "{failures:?}");
}
