//! The tool in scripts: one exit status per situation (documented in every `--help` and the
//! README), `--report -` on standard output with the human output on standard error, a report
//! written through a named pipe or a symlink without replacing it, and typos that stop the run
//! before anything runs.

mod common;

use common::*;
use serde_json::Value;

fn seed(env: &Env, ids: &[&str]) {
    for (i, id) in ids.iter().enumerate() {
        let mut device = DoubleState::fixture("otaa-eu1");
        device["ids"]["device_id"] = (*id).into();
        device["ids"]["application_ids"]["application_id"] = APP.into();
        device["ids"]["dev_eui"] = format!("70B3D57ED1{i:06X}").into();
        env.state.put_device(CE, &device);
    }
}

const CODES: [(i32, &str); 5] = [
    (0, "done"),
    (1, "some devices failed"),
    (2, "usage"),
    (3, "refused before anything changed"),
    (130, "interrupted"),
];

#[test]
fn every_help_and_the_readme_document_the_same_exit_codes() {
    let env = Env::new();
    for command in [
        &["--help"][..],
        &["migrate", "--help"],
        &["resume", "--help"],
        &["rollback", "--help"],
        &["status", "--help"],
        &["doctor", "--help"],
        &["login", "--help"],
        &["profile", "add", "--help"],
    ] {
        let run = env.run(command).success();
        assert!(run.stdout.contains("Exit status:"), "{command:?}");
        for (code, meaning) in CODES {
            assert!(
                run.stdout.contains(&format!("  {code:<4} {meaning}")),
                "{command:?} --help lacks {code} {meaning}:\n{}",
                run.stdout
            );
        }
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (code, meaning) in CODES {
        assert!(
            readme.contains(&format!("| {code} | {meaning}")),
            "README lacks | {code} | {meaning}"
        );
    }
}

#[test]
fn each_situation_has_its_own_exit_code() {
    let env = Env::new().with_profiles();
    seed(&env, &["dev-1", "dev-2", "dev-3"]);
    // 2: usage, found before any call.
    let before = env.state.calls().len();
    env.run(&["migrate", APP, "Dev-1", "--yes"]).code(2);
    env.run(&["migrate", APP, "dev-1", "--exclude", "dev-9", "--yes"])
        .code(2);
    assert_eq!(env.state.calls().len(), before);
    // 3: refused before anything changed: no terminal to ask on, all conflicts.
    env.run(&["migrate", APP, "dev-1"])
        .code(3)
        .stderr_has("Pass --yes");
    let mut taken = DoubleState::fixture("abp-eu1");
    taken["ids"]["device_id"] = "dev-3".into();
    taken["ids"]["application_ids"]["application_id"] = APP.into();
    env.state.put_device(CLOUD, &taken);
    env.run(&["migrate", APP, "dev-3", "--yes", "--gateways-migrated"])
        .code(3)
        .stderr_has("0 migrated, 0 failed, 0 skipped, 1 conflict\n");
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    // 0: done.
    env.run(&["migrate", APP, "dev-1", "--yes", "--gateways-migrated"])
        .code(0);
    // 1: some devices failed.
    env.state.add_fault(create_refused_as_invalid(1));
    env.run(&["migrate", APP, "dev-2", "--yes", "--gateways-migrated"])
        .code(1);
    // 130: see resilience.rs (a graceful Ctrl-C) and terminal.rs (at a terminal).
}

#[test]
fn report_dash_puts_the_json_on_stdout_and_everything_else_on_stderr() {
    let env = Env::new().with_profiles();
    seed(&env, &["dev-1", "dev-2"]);
    let run = env
        .run(&[
            "migrate",
            APP,
            "--all",
            "--yes",
            "--report",
            "-",
            "--gateways-migrated",
        ])
        .success()
        .stderr_has("dev-1  OTAA  DevAddr 260B1234")
        .stderr_has("2 migrated, 0 failed");
    let report: Value = serde_json::from_str(&run.stdout).expect("stdout is only the JSON report");
    assert_eq!(report["format"], 2);
    assert_eq!(report["summary"]["migrated"], 2);
    assert!(!env.cwd().join("-").exists(), "a file named - was written");
}

#[test]
fn the_report_has_an_error_kind_and_the_next_step_as_data() {
    let env = Env::new().with_profiles();
    seed(&env, &["dev-1"]);
    env.state.add_fault(create_refused_for_rights(1));
    let run = env
        .run(&[
            "migrate",
            APP,
            "dev-1",
            "--yes",
            "--no-rollback",
            "--work-dir",
            "w",
            "--report",
            "-",
            "--gateways-migrated",
        ])
        .code(1);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let device = &report["devices"][0];
    assert_eq!(device["error_kind"], "permission_denied", "{device}");
    assert_eq!(device["next_action"]["step"], "resume-or-rollback");
    let work = env.cwd().join("w").canonicalize().unwrap();
    assert_eq!(
        device["next_action"]["command"],
        format!("ttn-session-migrate resume {}", work.display())
    );
    assert!(device["next_action"]["text"]
        .as_str()
        .unwrap()
        .contains("rollback"));
}

#[test]
fn a_report_into_a_named_pipe_behind_a_symlink_is_written_through_and_never_replaced() {
    let env = Env::new().with_profiles();
    seed(&env, &["dev-1"]);
    let fifo = env.root().join("pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // Like /dev/stdout: a symlink to something that is not a regular file.
    let link = env.cwd().join("out");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    env.run(&[
        "migrate",
        APP,
        "dev-1",
        "--yes",
        "--gateways-migrated",
        "--report",
        "out",
    ])
    .success();
    let text = reader.join().unwrap();
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["summary"]["migrated"], 1);
    let link_type = std::fs::symlink_metadata(&link).unwrap().file_type();
    assert!(link_type.is_symlink(), "the symlink was replaced");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn a_device_missing_on_the_source_is_found_by_one_listing_before_anything_runs() {
    let env = Env::new().with_profiles();
    seed(&env, &["dev-1"]);
    std::fs::write(env.cwd().join("devices.txt"), "dev-1\nnosuchdevice\n").unwrap();
    for args in [
        &["migrate", APP, "dev-1", "nosuchdevice", "--yes"][..],
        &["migrate", APP, "--devices-file", "devices.txt", "--yes"],
        &["migrate", APP, "dev-1", "nosuchdevice", "--dry-run"],
    ] {
        env.run(args)
            .code(2)
            .stderr_says("1 device is not in application `app-1` on the source")
            .stderr_has("nothing was run: nosuchdevice")
            .clean_errors();
    }
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    let gets = env
        .state
        .calls()
        .iter()
        .filter(|c| c.command == "end-devices get")
        .count();
    assert_eq!(gets, 0, "a device was looked up one by one");
    assert!(env.on_ce("dev-1").is_some());
}

#[test]
fn a_repeated_rollback_device_is_named_once_and_nothing_runs() {
    let env = Env::new().with_profiles();
    seed(&env, &["dev-1"]);
    env.run(&[
        "migrate",
        APP,
        "dev-1",
        "--yes",
        "--gateways-migrated",
        "--work-dir",
        "w",
    ])
    .success();
    let calls = env.state.calls().len();
    let run = env
        .run(&["rollback", "w", "dev-1", "dev-1", "dev-1", "--yes"])
        .code(2)
        .stderr_has("`dev-1` is given more than once");
    assert_eq!(run.stderr.matches("dev-1").count(), 1, "{run:#?}");
    env.run(&["rollback", "w", "dev-9", "--yes"])
        .code(2)
        .stderr_has("`dev-9` is not part of the migration");
    assert_eq!(env.state.calls().len(), calls, "a command ran");
    assert!(env.on_cloud("dev-1").is_some());
}

#[test]
fn quiet_keeps_the_results_and_drops_progress_and_warnings() {
    let env = Env::new().with_profiles();
    seed(&env, &["dev-1"]);
    let run = env
        .run(&["-q", "migrate", APP, "dev-1", "--yes"])
        .success()
        .stdout_has("dev-1  OTAA  DevAddr 260B1234  FCnt 1234/56  migrated, session verified")
        .stderr_has("1 migrated, 0 failed");
    assert!(!run.stderr.contains("Gateways"), "{run:#?}");
    assert!(!run.stderr.contains("dev-1: export"), "{run:#?}");
    assert!(!run.stderr.contains("Work directory"), "{run:#?}");
}

#[test]
fn plain_output_fits_100_columns_and_a_result_line_fits_80() {
    let env = Env::new().with_profiles();
    seed(&env, &["sensor-007"]);
    let run = env
        .run(&["migrate", APP, "sensor-007", "--yes"])
        .success()
        .lines_fit(100);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("sensor-007"))
        .unwrap();
    assert!(line.chars().count() <= 80, "{line:?}");
}
