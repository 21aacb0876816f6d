//! `status WORK_DIR`: where each device is and what `resume` would do, from the journals alone
//! (`--check` also asks the deployments); `resume --dry-run` and `rollback --dry-run` show the
//! plan and change nothing.

mod common;

use common::*;
use serde_json::Value;

/// A migration in `w` that left dev-1 migrated, dev-2 off the source after a refused import
/// (`--no-rollback`), and dev-3 never started (`--fail-fast`).
fn unfinished_migration(env: &Env) {
    for (i, id) in ["dev-1", "dev-2", "dev-3"].iter().enumerate() {
        let mut device = DoubleState::fixture("otaa-eu1");
        device["ids"]["device_id"] = (*id).into();
        device["ids"]["application_ids"]["application_id"] = APP.into();
        device["ids"]["dev_eui"] = format!("70B3D57ED1{i:06X}").into();
        env.state.put_device(CE, &device);
    }
    env.state.add_fault(create_refused_for_rights(2));
    env.run(&[
        "migrate",
        APP,
        "dev-1",
        "dev-2",
        "dev-3",
        "--jobs",
        "1",
        "--fail-fast",
        "--no-rollback",
        "--yes",
        "--gateways-migrated",
        "--work-dir",
        "w",
    ])
    .code(1);
}

#[test]
fn status_says_where_each_device_is_and_what_resume_would_do() {
    let env = Env::new().with_profiles();
    unfinished_migration(&env);
    let calls = env.state.calls().len();

    env.run(&["status", "w"])
        .success()
        .stdout_has("dev-1  on the target, session verified\n")
        .stdout_has(
            "dev-2  deleted from the source; only in the saved export; resume: import into target",
        )
        .stdout_has("dev-3  on the source (not started); resume: detect")
        .stdout_has("1 finished, 1 in progress, 1 not started")
        .stdout_has("Continue with: ttn-session-migrate resume");
    assert_eq!(env.state.calls().len(), calls, "status called ttn-lw-cli");

    let json: Value =
        serde_json::from_str(&env.run(&["status", "w", "--json"]).success().stdout).unwrap();
    let devices = json["devices"].as_array().unwrap();
    assert_eq!(devices[0]["finished"], true);
    assert_eq!(devices[0]["resume"], Value::Null);
    assert_eq!(devices[1]["resume"], "import into target");
    assert_eq!(devices[1]["failed"], true);
    assert_eq!(devices[2]["started"], false);

    // --check asks both deployments, read-only; the longer lines wrap under the device's.
    env.run(&["status", "w", "--check"])
        .success()
        .stdout_says("dev-1  on the target, session verified [source: absent, target: present]")
        .stdout_says("import into target [source: absent, target: absent]")
        .stdout_says("resume: detect [source: present, target: absent]")
        .lines_fit(100);
    let writes_after = env.writes_since(calls);
    assert!(writes_after.is_empty(), "{writes_after:?}");
}

#[test]
fn status_of_a_plain_folder_is_a_usage_error() {
    let env = Env::new();
    std::fs::create_dir(env.cwd().join("otherdir")).unwrap();
    std::fs::write(env.cwd().join("otherdir/notes.txt"), "hi").unwrap();
    env.run(&["status", "otherdir"])
        .code(2)
        .stderr_has("is not a work directory");
    // And migrate does not send the operator to `resume` for it.
    let env = Env::new().with_profiles();
    std::fs::create_dir(env.cwd().join("otherdir")).unwrap();
    std::fs::write(env.cwd().join("otherdir/notes.txt"), "hi").unwrap();
    let run = env
        .run(&["migrate", APP, "dev-1", "--yes", "--work-dir", "otherdir"])
        .code(2)
        .stderr_says("is not empty and is not a work directory of ttn-session-migrate");
    assert!(!run.stderr.contains("resume"), "{run:#?}");
}

#[test]
fn resume_dry_run_plans_from_the_journals_and_changes_nothing() {
    let env = Env::new().with_profiles();
    unfinished_migration(&env);
    let calls = env.state.calls().len();
    let journal = std::fs::read(env.cwd().join("w/dev-2/journal.json")).unwrap();

    env.run(&["resume", "w", "--dry-run"])
        .success()
        .stdout_has("# device dev-2")
        .stdout_has("end-devices create --application-id app-1 < ")
        .stdout_has("# device dev-3")
        .stdout_has("# Dry run: 2 would migrate, 0 would fail");
    let writes_after = env.writes_since(calls);
    assert!(writes_after.is_empty(), "{writes_after:?}");
    assert_eq!(
        std::fs::read(env.cwd().join("w/dev-2/journal.json")).unwrap(),
        journal
    );
    assert!(!env.cwd().join("w/dev-3/journal.json").exists());
}

#[test]
fn rollback_dry_run_plans_the_rollback_and_changes_nothing() {
    let env = Env::new().with_profiles();
    unfinished_migration(&env);
    let calls = env.state.calls().len();

    env.run(&["rollback", "w", "dev-1", "--dry-run"])
        .success()
        .stdout_has("# device dev-1")
        .stdout_has("end-devices delete --application-id app-1 --device-id dev-1")
        .stdout_has("# Dry run: 1 would roll back, 0 would fail");
    let writes_after = env.writes_since(calls);
    assert!(writes_after.is_empty(), "{writes_after:?}");
    assert!(env.on_cloud("dev-1").is_some());
    assert!(!env.cwd().join("w/dev-1/rollback.json").exists());

    // The real rollback speaks of rolling back.
    env.run(&["rollback", "w", "dev-1", "--yes"])
        .success()
        .stdout_has("dev-1  OTAA  DevAddr 260B1234  FCnt 1234/56  rolled back to the source")
        .stderr_has("1 rolled back, 0 failed, 0 skipped");
}

#[test]
fn resume_keeps_the_jobs_of_the_migration_and_reads_manifests_without_them() {
    let env = Env::new().with_profiles();
    unfinished_migration(&env);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(env.cwd().join("w/migration.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["jobs"], 1);
    // One device at a time, as the migration ran: dev-3 starts once dev-2 is done.
    let run = env
        .run(&["resume", "w", "--yes"])
        .success()
        .stderr_has("2 migrated, 0 failed");
    let at = |needle: &str| run.stderr.find(needle).expect(needle);
    assert!(at("dev-3: detect") > at("dev-2: verify"), "{run:#?}");

    // A manifest of an earlier version, without `jobs`, is still read.
    let env = Env::new().with_profiles();
    unfinished_migration(&env);
    let mut old = manifest.clone();
    old.as_object_mut().unwrap().remove("jobs");
    std::fs::write(
        env.cwd().join("w/migration.json"),
        serde_json::to_vec(&old).unwrap(),
    )
    .unwrap();
    env.run(&["status", "w"]).success();
    env.run(&["resume", "w", "--yes"])
        .success()
        .stderr_has("2 migrated, 0 failed");
}

// F31: a removed profile breaks resume and rollback; the error names it and how to bring it back.
#[test]
fn a_removed_profile_is_named_with_the_way_back() {
    let env = Env::new().with_profiles();
    unfinished_migration(&env);
    env.run(&["profile", "remove", "ce"]).success();
    env.run(&["rollback", "w", "--yes"])
        .code(3)
        .stderr_says("source profile `ce` of the migration; re-create it at")
        .stderr_says("(`ttn-session-migrate profile add ce --host HOST`, then log in)");
    env.run(&["status", "w"]).success();
}

/// A delete that stopped between two servers (audit D5) shows as partly there, not present.
#[test]
fn check_tells_a_half_deleted_device_from_a_present_one() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    for nth in 1..=2 {
        env.state
            .add_fault(delete_stopped_after_the_application_server(nth));
    }
    env.run(&[
        "migrate",
        "app-1",
        "dev-1",
        "--yes",
        "--work-dir",
        "w",
        "--retry-delay-ms",
        "10",
    ])
    .failure();
    env.run(&["status", "w", "--check"]).success().stdout_says(
        "[source: partly (a delete or create stopped between servers), target: absent]",
    );
}
