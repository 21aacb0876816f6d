//! ttn-lw-cli installed as the `ttn-lw-stack` snap: found under its snap name, given profiles it
//! can read (the snap cannot open hidden folders of home, like the profiles' `~/.config`, nor the
//! caller's `/tmp`), and import documents through a pipe.

mod common;

use common::*;

fn migrate_through(env: &Env) {
    env.seed_ce("otaa-eu1", "dev-1");
    env.run(&["migrate", APP, "dev-1", "--yes"])
        .success()
        .clean_errors();
    assert!(env.on_ce("dev-1").is_none());
    assert!(env.on_cloud("dev-1").is_some());
}

#[test]
fn the_snap_command_name_is_found_and_migrates() {
    let env = Env::new().with_snap_cli(false).with_profiles();
    env.run(&["doctor", "--application-id", APP])
        .success()
        .stdout_has("ttn-lw-stack.ttn-lw-cli on PATH")
        .stdout_has("the ttn-lw-stack snap")
        .clean_errors();
    migrate_through(&env);
    let creates: Vec<_> = env
        .state
        .calls()
        .into_iter()
        .filter(|c| c.command == "end-devices create")
        .collect();
    assert!(!creates.is_empty());
    assert!(creates.iter().all(|c| c.stdin == "pipe"), "{creates:?}");
}

#[test]
fn an_aliased_snap_is_recognised_too() {
    let env = Env::new().with_snap_cli(true).with_profiles();
    env.run(&["doctor"])
        .success()
        .stdout_has("ttn-lw-cli on PATH")
        .stdout_has("the ttn-lw-stack snap")
        .clean_errors();
    migrate_through(&env);
}
