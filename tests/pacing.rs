//! Rate limits and a target that does not answer: the tool paces its calls to the limit the
//! target names, deletes a device only when its create can follow, and stops the run (rather
//! than deleting device after device) when the target does not answer.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

/// Seeds `count` OTAA devices `dev-1` … `dev-<count>` on Community Edition.
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

fn device_of(call: &ttn_lw_cli_double::Call) -> Option<String> {
    let i = call.argv.iter().position(|a| a == "--device-id")?;
    call.argv.get(i + 1).cloned()
}

/// Devices whose delete on the source succeeded.
fn deleted_from_source(env: &Env) -> BTreeSet<String> {
    env.state
        .calls()
        .iter()
        .filter(|c| c.command == "end-devices delete" && c.deployment.as_deref() == Some(CE))
        .filter(|c| c.exit_code == Some(0))
        .filter_map(device_of)
        .collect()
}

fn outcomes(env: &Env) -> Vec<String> {
    let text = std::fs::read_to_string(env.cwd().join("report.json")).expect("report written");
    let report: Value = serde_json::from_str(&text).expect("report is JSON");
    report["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["outcome"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The target allows 60 creates a minute and has 2 left. Without pacing, every worker's
/// create would be refused and retried on its own backoff, device after device; paced, only
/// the creates started before the first refusal are refused, and every device migrates.
#[test]
fn a_rate_limited_target_is_paced_and_every_device_migrates() {
    let env = Env::new().with_profiles();
    let devices = seed_devices(&env, 8);
    env.state
        .set_rate_limit("end-devices create", CLOUD, 60, 60_000);
    env.state
        .set_rate_limit_tokens("end-devices create", CLOUD, 2.0);

    env.run(&[
        "migrate",
        APP,
        "--all",
        "--jobs",
        "4",
        "--report",
        "report.json",
        "--yes",
    ])
    .success()
    .stderr_has("8 migrated, 0 failed")
    .stderr_has("Rate limited:")
    .stderr_has("paced target creates at");

    assert_eq!(outcomes(&env), vec!["migrated"; 8]);
    for device in &devices {
        let id = device["ids"]["device_id"].as_str().unwrap();
        let found = env.on_cloud(id).expect("on the target");
        assert_eq!(session_of(&found), session_of(device), "{id}");
        assert!(env.on_ce(id).is_none(), "{id} left on the source");
    }
    // Only the first wave (about one create per worker) meets the empty bucket; without
    // pacing every device would be refused and retried on its own backoff.
    let refused = env.state.rate_limited_calls("end-devices create", CLOUD);
    assert!(
        (1..=5).contains(&refused),
        "{refused} creates refused by the rate limit"
    );
}

/// The same target, nearly at its limit of 60 creates a minute: learned from the first
/// refusals, some devices are refused while off the source; declared with --target-rate, the
/// creates are paced from the first one and none is refused.
#[test]
fn a_declared_target_rate_paces_from_the_first_create_so_none_is_refused() {
    let migrate = |env: &Env, extra: &[&str]| {
        let devices = seed_devices(env, 6);
        env.state
            .set_rate_limit("end-devices create", CLOUD, 60, 60_000);
        env.state
            .set_rate_limit_tokens("end-devices create", CLOUD, 2.0);
        let mut args = vec!["migrate", APP, "--all", "--jobs", "4", "--yes"];
        args.extend_from_slice(extra);
        env.run(&args).success().stderr_has("6 migrated, 0 failed");
        for device in &devices {
            let id = device["ids"]["device_id"].as_str().unwrap();
            let found = env.on_cloud(id).expect("on the target");
            assert_eq!(session_of(&found), session_of(device), "{id}");
        }
        env.state.rate_limited_calls("end-devices create", CLOUD)
    };

    let learned = Env::new().with_profiles();
    assert!(
        migrate(&learned, &[]) > 0,
        "the first wave meets the empty bucket"
    );

    let declared = Env::new().with_profiles();
    assert_eq!(
        // The bucket holds 2 creates now (another client used the rest): declared as such.
        migrate(
            &declared,
            &[
                "--target-rate",
                "60",
                "--target-burst",
                "2",
                "--work-dir",
                "w"
            ]
        ),
        0,
        "a create was refused"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(declared.cwd().join("w/migration.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["target_rate"], 60);
    assert_eq!(manifest["target_burst"], 2);
}

/// `resume` keeps the --target-rate and --target-burst of the migration: dev-2 (left off the source by a refused
/// create) and dev-3 (not started) are created 2 s apart, under a limit of 30 a minute with
/// one create left, and neither is refused.
#[test]
fn resume_keeps_the_declared_target_rate() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 3);
    env.state.add_fault(create_refused_for_rights(2));
    env.run(&[
        "migrate",
        APP,
        "--all",
        "--jobs",
        "1",
        "--fail-fast",
        "--no-rollback",
        "--target-rate",
        "30",
        "--target-burst",
        "1",
        "--work-dir",
        "w",
        "--yes",
    ])
    .code(1);

    env.state
        .set_rate_limit("end-devices create", CLOUD, 30, 60_000);
    env.state
        .set_rate_limit_tokens("end-devices create", CLOUD, 1.0);
    env.run(&["resume", "w", "--yes"])
        .success()
        .stderr_has("2 migrated, 0 failed");
    assert_eq!(env.state.rate_limited_calls("end-devices create", CLOUD), 0);
    assert!(env.on_cloud("dev-3").is_some());
}

/// A limit learned from the target's refusal outlives the run: the summary names the rate and
/// the option that declares it, the work directory keeps it, and `resume`, started at once,
/// paces from its first create as if the bucket were empty when the run ended. Unpaced, the
/// resumed creates (about 0.2 s apart) would meet a bucket that regains one every 0.5 s.
#[test]
fn resume_paces_from_the_rate_the_target_named() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 7);
    env.state
        .set_rate_limit("end-devices create", CLOUD, 120, 60_000);
    env.state
        .set_rate_limit_tokens("end-devices create", CLOUD, 1.0);
    // dev-1 takes the last create; dev-2 is refused once, which names the rate, and waits for
    // the next; dev-3 fails, which stops the run (--fail-fast) with dev-3 in its export.
    env.state.add_fault(create_refused_for_rights(4));
    env.run(&[
        "migrate",
        APP,
        "--all",
        "--jobs",
        "1",
        "--fail-fast",
        "--no-rollback",
        "--work-dir",
        "w",
        "--yes",
    ])
    .code(1)
    .stderr_says("the target allows 120 creates a minute")
    .stderr_says("--target-rate 120")
    // A refusal for the rate is an answer, and says so; the line of its retry gives no advice
    // meant for a failure that stays.
    .stderr_says("dev-2: import into target failed, retrying: could not import the device")
    .stderr_lacks("did not answer")
    .stderr_lacks("retry later with `resume`");
    let refused = env.state.rate_limited_calls("end-devices create", CLOUD);
    assert!(refused >= 1, "the run learned the limit from a refusal");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(env.cwd().join("w/migration.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["learned_target_rate"], 120);
    assert!(manifest["ended_at"].is_string(), "{manifest}");

    env.run(&["resume", "w", "--yes"])
        .success()
        .stderr_has("5 migrated, 0 failed");
    assert_eq!(
        env.state.rate_limited_calls("end-devices create", CLOUD),
        refused,
        "resume had a create refused"
    );
    for i in 1..=7 {
        assert!(env.on_cloud(&format!("dev-{i}")).is_some(), "dev-{i}");
    }
}

/// --target-rate takes creates per minute, at least 1.
#[test]
fn a_target_rate_of_zero_is_refused() {
    let env = Env::new().with_profiles();
    env.run(&["migrate", APP, "--all", "--target-rate", "0", "--yes"])
        .code(2)
        .stderr_has("0 is not in 1..=60000");
}

/// One device, an empty bucket: its refused import shows as a retry with its wait on the
/// progress line, then it migrates.
#[test]
fn a_rate_limited_import_shows_its_retry_on_the_progress_line() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    env.state
        .set_rate_limit("end-devices create", CLOUD, 120, 60_000);
    env.state
        .set_rate_limit_tokens("end-devices create", CLOUD, 0.0);

    env.run(&["migrate", APP, "dev-1", "--yes"])
        .success()
        .stderr_has("dev-1: import into target: rate limited, retry 1 in ")
        .stderr_has("1 migrated, 0 failed");
    assert_eq!(env.state.rate_limited_calls("end-devices create", CLOUD), 1);
}

/// Every create on the target answers `unavailable`. The first devices are deleted, retried
/// and put back; after 3 in a row the run stops with one message and the resume command. No
/// more than --jobs devices were ever deleted, and every device is back on the source, whole.
#[test]
fn a_target_that_does_not_answer_stops_the_run_before_more_devices_are_deleted() {
    let env = Env::new().with_profiles();
    let devices = seed_devices(&env, 20);
    env.state
        .add_fault(Fault::unavailable("end-devices create").on(CLOUD));

    env.run(&[
        "migrate",
        APP,
        "--all",
        "--jobs",
        "4",
        "--retries",
        "1",
        "--retry-delay",
        "100ms",
        "--report",
        "report.json",
        "--yes",
    ])
    .failure()
    .stderr_has(
        "Stopped: the target (The Things Stack Cloud, tenant acme, cluster eu1) is unreachable",
    )
    .stderr_has("devices in a row could not be imported (error:unknown:unknown (connection error")
    .stderr_has("Once the target answers, continue with: ttn-session-migrate resume")
    .stderr_has("put back on the source (listed below) are migrated again with `migrate`");

    let deleted = deleted_from_source(&env);
    assert!(
        (3..=4).contains(&deleted.len()),
        "deleted from the source: {deleted:?}"
    );
    for device in &devices {
        let id = device["ids"]["device_id"].as_str().unwrap();
        let back = env
            .on_ce(id)
            .unwrap_or_else(|| panic!("{id} not on the source"));
        assert_eq!(session_of(&back), session_of(device), "{id}");
        assert!(env.on_cloud(id).is_none(), "{id} on the target");
    }
    let outcomes = outcomes(&env);
    let failed = outcomes.iter().filter(|o| *o == "failed").count();
    let not_started = outcomes.iter().filter(|o| *o == "interrupted").count();
    assert_eq!(failed, deleted.len(), "{outcomes:?}");
    assert_eq!(failed + not_started, 20, "{outcomes:?}");
}

/// --max-target-failures 0 never stops: every device is tried (and put back).
#[test]
fn the_breaker_can_be_turned_off() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 5);
    env.state
        .add_fault(Fault::unavailable("end-devices create").on(CLOUD));

    env.run(&[
        "migrate",
        APP,
        "--all",
        "--jobs",
        "2",
        "--retries",
        "0",
        "--max-target-failures",
        "0",
        "--yes",
    ])
    .failure()
    .stderr_has("0 migrated, 5 failed");
    assert_eq!(deleted_from_source(&env).len(), 5);
    assert_eq!(env.state.device_ids(CE, APP).len(), 5);
}
