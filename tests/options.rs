//! Options with limits: durations for the call options, bounds on `--retries` and `--jobs`, and
//! `migrate --help` grouped under headings.

mod common;

use common::*;

#[test]
fn the_timeout_takes_a_duration_and_stops_a_call_that_hangs() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    env.state
        .add_fault(Fault::hang("end-devices get").on(CE).nth(1));
    let started = std::time::Instant::now();
    env.run(&[
        "migrate",
        "app-1",
        "dev-1",
        "--yes",
        "--work-dir",
        "w",
        "--timeout",
        "1s",
        "--retries",
        "0",
        "--retry-delay",
        "50ms",
    ])
    .failure()
    .stderr_has("no answer within 1s")
    .clean_errors();
    // Stopped after the one-second timeout, not after the default two minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(
        env.on_ce("dev-1").is_some(),
        "the device stays on the source"
    );
}

#[test]
fn durations_and_plain_seconds_are_accepted_and_limits_are_named() {
    let env = Env::new();
    // Parsed: the run gets as far as the missing profile.
    for timeout in ["90s", "2m", "1m30s", "120"] {
        env.run(&["migrate", "app-1", "dev-1", "--yes", "--timeout", timeout])
            .code(3)
            .stderr_has("profile `ce` does not exist");
    }
    env.run(&["migrate", "app-1", "dev-1", "--timeout", "0"])
        .code(2)
        .stderr_has("0s is not between 1s and 1h");
    env.run(&["migrate", "app-1", "dev-1", "--timeout", "2h"])
        .code(2)
        .stderr_has("2h is not between 1s and 1h");
    env.run(&["migrate", "app-1", "dev-1", "--timeout", "soon"])
        .code(2)
        .stderr_has("expected a duration such as 90s, 2m or 1m30s");
    env.run(&["migrate", "app-1", "dev-1", "--retries", "100000"])
        .code(2)
        .stderr_has("100000 is not in 0..=10");
    // A negative number is a bad value, not a flag to escape with `--`.
    let negative = env
        .run(&["migrate", "app-1", "dev-1", "--retries", "-1"])
        .code(2)
        .stderr_has("-1 is not in 0..=10");
    assert!(!negative.stderr.contains("to pass '-1' as a value"));
    env.run(&["resume", "w", "--jobs", "65"])
        .code(2)
        .stderr_has("65 is not in 1..=64");
}

#[test]
fn migrate_help_groups_its_options_and_states_the_limits() {
    let env = Env::new();
    let help = env.run(&["migrate", "--help"]).success().stdout;
    let position = |needle: &str| {
        help.find(needle)
            .unwrap_or_else(|| panic!("`migrate --help` lacks {needle}:\n{help}"))
    };
    let headings = [
        "Selection options:",
        "Safety options:",
        "Batch options:",
        "Call options:",
    ];
    let mut last = 0;
    for heading in headings {
        assert!(position(heading) > last, "{heading} out of order");
        last = position(heading);
    }
    // Each option under its heading.
    for (option, heading) in [
        ("--exclude", "Selection options:"),
        ("--to-application", "Selection options:"),
        ("--dry-run", "Safety options:"),
        ("--no-rollback", "Safety options:"),
        ("--jobs", "Batch options:"),
        ("--fail-fast", "Batch options:"),
        ("--timeout", "Call options:"),
        ("--retries", "Call options:"),
    ] {
        let at = position(option);
        let under = headings
            .iter()
            .filter(|h| position(h) < at)
            .max_by_key(|h| position(h));
        assert_eq!(under, Some(&heading), "{option}");
    }
    for limit in ["1 to 64", "0 to 10", "1s to 1h"] {
        position(limit);
    }
    // An unset variable is not shown as an empty value.
    assert!(!help.contains("TTN_SESSION_MIGRATE_PROFILES=]"), "{help}");
}
