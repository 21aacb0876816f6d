//! Hints that lead somewhere: each next step names a command that can work.

mod common;

use common::*;

#[test]
fn otaa_given_for_an_abp_device_names_the_flag_not_missing_keys() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("abp-eu1", "dev-1");
    let run = env
        .run(&[
            "migrate",
            "app-1",
            "dev-1",
            "--otaa",
            "--yes",
            "--gateways-migrated",
            "--work-dir",
            "w",
        ])
        .failure()
        .stderr_says("the device is ABP on the source, but --otaa was given")
        .stderr_says("in a new migration with --abp")
        .stderr_says("next: nothing was changed; `resume` keeps this migration's options")
        .clean_errors()
        .no_keys_of(&seeded);
    assert!(
        !run.stderr.contains("session_key_id"),
        "no missing keys blamed: {}",
        run.stderr
    );
    assert!(env.on_ce("dev-1").is_some(), "nothing was deleted");
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}

#[test]
fn abp_given_for_an_otaa_device_is_refused_before_the_delete() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    env.run(&[
        "migrate",
        "app-1",
        "dev-1",
        "--abp",
        "--yes",
        "--gateways-migrated",
        "--work-dir",
        "w",
    ])
    .failure()
    .stderr_says("the device is OTAA on the source, but --abp was given")
    .clean_errors();
    assert!(env.on_ce("dev-1").is_some());
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}

/// real-cli-audit.md D11: a device whose root keys are on another Join Server (its session on
/// the source cluster) is not "on another cluster": no advice to make a profile for that host.
#[test]
fn a_device_with_its_keys_on_another_join_server_gets_the_right_advice() {
    let env = Env::new().with_profiles();
    let mut device = DoubleState::fixture("otaa-eu1");
    device["ids"]["device_id"] = "dev-1".into();
    device["ids"]["application_ids"]["application_id"] = APP.into();
    device["join_server_address"] = "join.example.com".into();
    env.state.put_device(CE, &device);
    let run = env
        .run(&["migrate", APP, "dev-1", "--yes"])
        .failure()
        .stderr_says("root keys are on another Join Server (join.example.com)")
        .no_keys_of(&device);
    assert!(!run.stdout.contains("profile add"), "{run:#?}");
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    assert!(env.on_ce("dev-1").is_some());
}
