//! Moving devices to another application of the same deployment, with their session
//! (lorawan-stack#5282): one profile on both sides and `--to-application`.

mod common;

use common::*;

#[test]
fn a_device_moves_to_another_application_of_the_same_deployment() {
    let env = Env::new().with_profiles();
    env.state.add_application(CE, "app-2");
    let seeded = env.seed_ce("otaa-eu1", "dev-1");

    let run = env
        .run(&[
            "migrate",
            "app-1",
            "dev-1",
            "--from",
            "ce",
            "--to",
            "ce",
            "--to-application",
            "app-2",
            "--yes",
            "--work-dir",
            "w",
        ])
        .success()
        .stdout_has("migrated, session verified")
        .clean_errors()
        .no_keys_of(&seeded);
    // The network does not change: no gateway or DevAddr warning, no "same profile" warning.
    for needle in ["Gateways", "DevAddr outside", "same profile"] {
        assert!(
            !run.stderr.contains(needle) && !run.stdout.contains(needle),
            "{needle}: {run:#?}"
        );
    }
    assert!(
        !env.state
            .calls()
            .iter()
            .any(|c| c.command == "end-devices get-dev-addr-prefixes"),
        "no prefixes to compare within one network"
    );

    assert!(env.on_ce("dev-1").is_none(), "gone from app-1");
    let moved = env
        .state
        .device(CE, "app-2", "dev-1")
        .expect("dev-1 is in app-2");
    assert_eq!(session_of(&moved), session_of(&seeded));
}

#[test]
fn doctor_calls_one_profile_with_two_applications_a_move_not_a_warning() {
    let env = Env::new().with_profiles();
    env.state.add_application(CE, "app-2");
    let run = env
        .run(&[
            "doctor",
            "--from",
            "ce",
            "--to",
            "ce",
            "--application-id",
            "app-1",
            "--to-application",
            "app-2",
        ])
        .success()
        .stdout_says("✓ one profile `ce` on both sides: a move between applications of The Things Stack Community Edition, cluster eu1")
        .stdout_has("Ready to migrate: no problems.");
    assert!(!run.stdout.contains("! "), "{}", run.stdout);

    // The same profile and the same application is still worth a warning.
    env.run(&["doctor", "--from", "ce", "--to", "ce"])
        .stdout_has("! the source and the target are the same profile `ce`");
}
