//! Whole applications: selecting devices (`--all`, `--devices-file`, `--exclude`), running them
//! on several workers, failures that stop only their own device, `--fail-fast`, the JSON report,
//! and progress output without a terminal.

mod common;

use common::*;
use serde_json::Value;

/// Seeds `count` OTAA devices `dev-1` … `dev-<count>` on Community Edition, each with its own
/// DevEUI (the target refuses two devices with the same EUIs).
fn seed_devices(env: &Env, count: usize) -> Vec<Value> {
    (1..=count)
        .map(|i| {
            let mut device = DoubleState::fixture("otaa-eu1");
            device["ids"]["device_id"] = format!("dev-{i}").into();
            device["ids"]["application_ids"]["application_id"] = APP.into();
            device["ids"]["dev_eui"] = format!("70B3D57ED1{i:06X}").into();
            env.state.put_device(CE, &device);
            device
        })
        .collect()
}

/// The `--page` values of the `end-devices list` calls against one deployment, in order.
fn list_pages(env: &Env, deployment: &str) -> Vec<String> {
    env.state
        .calls()
        .into_iter()
        .filter(|c| c.command == "end-devices list" && c.deployment.as_deref() == Some(deployment))
        .filter_map(|c| {
            let i = c.argv.iter().position(|a| a == "--page")?;
            c.argv.get(i + 1).cloned()
        })
        .collect()
}

fn read_report(env: &Env, name: &str) -> Value {
    let text = std::fs::read_to_string(env.cwd().join(name)).expect("report written");
    serde_json::from_str(&text).expect("report is JSON")
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["devices"]
        .as_array()
        .expect("devices array")
        .iter()
        .map(|d| {
            (
                d["device_id"].as_str().unwrap_or_default().to_string(),
                d["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn all_pages_through_the_source_application_and_honours_exclude() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 5);

    env.run(&[
        "migrate",
        "app-1",
        "--all",
        "--exclude",
        "dev-3",
        "--page-size",
        "2",
        "--jobs",
        "2",
        "--yes",
        "--report",
        "report.json",
    ])
    .success()
    .stderr_has("4 migrated, 0 failed, 0 skipped, 0 conflicts");
    let report = read_report(&env, "report.json");
    assert_eq!(report["summary"]["migrated"], 4);
    assert_eq!(report["devices"].as_array().map(Vec::len), Some(4));

    // Pages of 2 devices: 2, 2, then a short page of 1 ends the listing.
    assert_eq!(list_pages(&env, CE), ["1", "2", "3"]);
    for moved in ["dev-1", "dev-2", "dev-4", "dev-5"] {
        assert!(env.on_cloud(moved).is_some(), "{moved} not on the target");
        assert!(env.on_ce(moved).is_none(), "{moved} still on the source");
    }
    assert!(
        env.on_ce("dev-3").is_some(),
        "the excluded device was moved"
    );
    assert!(env.on_cloud("dev-3").is_none());
}

#[test]
fn a_devices_file_skips_blank_lines_and_comments() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 4);
    std::fs::write(
        env.cwd().join("devices.txt"),
        "# building A\ndev-1\n\n   dev-3   # roof sensor\n#dev-4\n",
    )
    .unwrap();

    env.run(&["migrate", "app-1", "--devices-file", "devices.txt", "--yes"])
        .success()
        .stderr_has("2 migrated");

    assert!(env.on_cloud("dev-1").is_some());
    assert!(env.on_cloud("dev-3").is_some());
    assert!(env.on_ce("dev-2").is_some());
    assert!(env.on_ce("dev-4").is_some());
}

#[test]
fn a_devices_file_can_be_standard_input() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 3);

    env.cmd()
        .args(&["migrate", "app-1", "--devices-file", "-", "--yes"])
        .stdin("dev-2\ndev-3\n")
        .run()
        .success()
        .stderr_has("2 migrated");

    assert!(env.on_ce("dev-1").is_some());
    assert!(env.on_cloud("dev-2").is_some());
    assert!(env.on_cloud("dev-3").is_some());
}

#[test]
fn every_bad_id_of_a_devices_file_is_reported_and_nothing_runs() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 2);
    std::fs::write(
        env.cwd().join("devices.txt"),
        "dev-1\nDev_2   # upper case\n\nx\ndev-2\n",
    )
    .unwrap();
    let before = env.state.calls().len();

    env.run(&[
        "migrate",
        "app-1",
        "--devices-file",
        "devices.txt",
        "--exclude",
        "Bad",
        "--yes",
    ])
    .code(2)
    .stderr_has("3 invalid device IDs; nothing was run")
    .stderr_has("`Dev_2` (devices.txt line 2)")
    .stderr_has("`x` (devices.txt line 4)")
    .stderr_has("`Bad` (--exclude)")
    .clean_errors();

    assert_eq!(env.state.calls().len(), before, "ttn-lw-cli was called");
}

#[test]
fn a_report_that_cannot_be_written_stops_the_run_before_anything_changes() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 1);
    env.run(&[
        "migrate",
        "app-1",
        "dev-1",
        "--report",
        "missing/report.json",
        "--yes",
    ])
    .code(3)
    .stderr_has("the directory of the report file missing/report.json does not exist")
    .clean_errors();
    assert!(env.writes().is_empty());
    assert!(env.on_ce("dev-1").is_some());
}

#[test]
fn resume_checks_its_report_before_anything_runs() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 1);
    env.state.add_fault(create_refused_as_invalid(1));
    env.run(&[
        "migrate",
        "app-1",
        "dev-1",
        "--no-rollback",
        "--work-dir",
        "w",
        "--yes",
    ])
    .failure();
    let calls = env.state.calls().len();
    env.run(&["resume", "w", "--report", "missing/report.json"])
        .code(3)
        .stderr_has("the directory of the report file missing/report.json does not exist")
        .clean_errors();
    assert_eq!(env.state.calls().len(), calls, "a command ran");
    assert!(env.on_cloud("dev-1").is_none());
}

#[test]
fn selection_methods_exclude_each_other() {
    let env = Env::new().with_profiles();
    for args in [
        &["migrate", "app-1", "dev-1", "--all", "--yes"][..],
        &["migrate", "app-1", "--all", "--devices-file", "f", "--yes"][..],
        &["migrate", "app-1", "--exclude", "dev-1", "--yes"][..],
    ] {
        env.run(args).code(2);
    }
}

#[test]
fn failed_devices_do_not_stop_the_others_and_the_report_says_why() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new().with_profiles();
    let seeded = seed_devices(&env, 6);
    for nth in [2, 5] {
        env.state.add_fault(create_refused_as_invalid(nth));
    }

    let mut run = env
        .run(&[
            "migrate",
            "app-1",
            "--all",
            "--jobs",
            "3",
            "--report",
            "report.json",
            "--yes",
        ])
        .failure()
        .stderr_has("4 migrated, 2 failed")
        .stderr_has("next: ")
        .clean_errors();
    for device in &seeded {
        run = run.no_keys_of(device);
    }

    let mode = std::fs::metadata(env.cwd().join("report.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(env.cwd().join("report.json")).unwrap();
    for device in &seeded {
        for key in keys_of(device) {
            assert!(!text.contains(&key), "a key is in the report");
        }
    }
    let report = read_report(&env, "report.json");
    assert_eq!(report["summary"]["migrated"], 4);
    assert_eq!(report["summary"]["failed"], 2);
    let entries = report["devices"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    for entry in entries {
        assert_eq!(entry["mode"], "otaa");
        assert_eq!(entry["session"]["dev_addr"], "260B1234");
        assert!(entry["steps"].as_array().is_some_and(|s| !s.is_empty()));
        let device = entry["device_id"].as_str().unwrap();
        match entry["outcome"].as_str().unwrap() {
            "migrated" => {
                assert!(entry["error"].is_null());
                assert!(entry["downtime_ms"].is_u64());
                assert!(env.on_cloud(device).is_some());
            }
            "failed" => {
                assert!(
                    entry["error"].as_str().unwrap().contains("mac_state"),
                    "{entry}"
                );
                assert_eq!(entry["error_kind"], "invalid", "{entry}");
                assert_eq!(
                    entry["next_action"]["step"], "fix-target-then-migrate-again",
                    "{entry}"
                );
                assert!(entry["next_action"]["text"].is_string());
                // Put back on the source by the automatic rollback.
                assert!(env.on_ce(device).is_some(), "{device} lost");
                assert!(env.on_cloud(device).is_none());
            }
            other => panic!("unexpected outcome {other}: {entry}"),
        }
    }
}

#[test]
fn fail_fast_starts_no_device_after_the_first_failure() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 4);
    env.state.add_fault(create_refused_as_invalid(1));

    env.run(&[
        "migrate",
        "app-1",
        "dev-1",
        "dev-2",
        "dev-3",
        "dev-4",
        "--jobs",
        "1",
        "--fail-fast",
        "--report",
        "report.json",
        "--yes",
    ])
    .failure()
    .stderr_has("0 migrated, 1 failed")
    .stderr_has("3 not started")
    .stderr_has("Continue with: ttn-session-migrate resume");

    let report = read_report(&env, "report.json");
    let expected: Vec<(String, String)> = [
        ("dev-1", "failed"),
        ("dev-2", "interrupted"),
        ("dev-3", "interrupted"),
        ("dev-4", "interrupted"),
    ]
    .iter()
    .map(|(d, o)| (d.to_string(), o.to_string()))
    .collect();
    assert_eq!(outcomes(&report), expected);
    // Only dev-1 was touched: its delete, the refused create, and the rollback's create.
    assert_eq!(
        env.writes(),
        [
            "end-devices delete",
            "end-devices create",
            "end-devices create"
        ]
    );
    for device in ["dev-1", "dev-2", "dev-3", "dev-4"] {
        assert!(env.on_ce(device).is_some(), "{device} not on the source");
    }
}

#[test]
fn conflicts_are_found_with_one_target_listing_before_any_delete() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 4);
    for taken in ["dev-2", "dev-4"] {
        let mut other = DoubleState::fixture("abp-eu1");
        other["ids"]["device_id"] = taken.into();
        other["ids"]["application_ids"]["application_id"] = APP.into();
        other["ids"]["dev_eui"] = format!("70B3D57ED2{}", &taken[4..].repeat(6)).into();
        env.state.put_device(CLOUD, &other);
    }

    env.run(&[
        "migrate",
        "app-1",
        "--all",
        "--report",
        "report.json",
        "--yes",
    ])
    .failure()
    .stderr_has("2 migrated, 0 failed, 0 skipped, 2 conflicts")
    .stdout_has("dev-2  conflict (see below)")
    .stderr_has("Not migrated:\n  dev-2: a device with this ID is already in application `app-1`");

    let calls = env.state.calls();
    let target_list = calls
        .iter()
        .position(|c| c.command == "end-devices list" && c.deployment.as_deref() == Some(CLOUD))
        .expect("the target was listed");
    let first_delete = calls
        .iter()
        .position(|c| c.command == "end-devices delete")
        .expect("something was deleted");
    assert!(target_list < first_delete);
    assert_eq!(list_pages(&env, CLOUD), ["1"], "one listing of the target");
    let gets_on_target = calls
        .iter()
        .filter(|c| c.command == "end-devices get" && c.deployment.as_deref() == Some(CLOUD))
        .count();
    assert_eq!(gets_on_target, 0, "conflicts were looked up one by one");
    for taken in ["dev-2", "dev-4"] {
        assert!(env.on_ce(taken).is_some(), "{taken} left the source");
    }
    let report = read_report(&env, "report.json");
    assert_eq!(report["summary"]["conflicts"], 2);
}

#[test]
fn progress_without_a_terminal_is_plain_lines() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 3);

    let run = env
        .cmd()
        .args(&["migrate", "app-1", "--all", "--jobs", "2", "--yes"])
        .env_remove("NO_COLOR")
        .run()
        .success()
        .stderr_has("dev-2: export")
        .stderr_has("dev-2: import into target")
        .stdout_has("dev-3  OTAA  DevAddr 260B1234");
    assert!(
        !run.stdout.contains('\x1b'),
        "escape code on stdout:\n{run:#?}"
    );
    assert!(
        !run.stderr.contains('\x1b'),
        "escape code on stderr:\n{run:#?}"
    );
}

#[test]
fn progress_on_a_terminal_draws_bars_and_still_prints_each_result() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 3);
    let coloured = env
        .cmd()
        .args(&["migrate", "app-1", "--all", "--jobs", "2", "--yes"])
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .in_terminal()
        .run()
        .success()
        .stdout_has("devices")
        .stdout_has("dev-3  OTAA  DevAddr 260B1234")
        .stdout_has("3 migrated, 0 failed");
    // The overall bar is drawn (its position updates at most every 250 ms, longer than this
    // whole run), and results appear between its redraws.
    assert!(coloured.stdout.contains("/3 devices"), "{coloured:#?}");
    let steps = [
        "detect",
        "export",
        "delete from source",
        "import into target",
        "verify",
    ];
    assert!(
        (1..=3).any(|i| steps
            .iter()
            .any(|step| coloured.stdout.contains(&format!("dev-{i}: {step}")))),
        "no spinner line per device:\n{coloured:#?}"
    );
    assert!(
        coloured.stdout.contains("\x1b[36m"),
        "no colour on a terminal:\n{coloured:#?}"
    );

    let env = Env::new().with_profiles();
    seed_devices(&env, 3);
    let plain = env
        .cmd()
        .args(&["migrate", "app-1", "--all", "--jobs", "2", "--yes"])
        .env("TERM", "xterm")
        .in_terminal()
        .run()
        .success()
        .stdout_has("/3 devices");
    assert!(
        !plain.stdout.contains("\x1b[36m"),
        "colour despite NO_COLOR:\n{plain:#?}"
    );
}
