//! Failures the real servers answer with, and what the tool makes of them (real-cli-audit.md
//! E1, E3, E6, D4, D8).

mod common;

use common::*;
use ttn_lw_cli_double::errors::defs;

// D4: a token deleted by a parallel refresh (pkg/identityserver:token_not_found) during the
// source delete is a failed login, not a device that is already gone: nothing is imported, the
// device stays on the source only.
#[test]
fn a_deleted_access_token_during_the_delete_is_not_an_absent_device() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    env.state
        .add_fault(Fault::failing("end-devices delete", defs::token_not_found()).on(CE));
    let run = env.run(&["migrate", APP, "dev-1", "--yes"]).failure();
    assert!(run.stderr.contains("token_not_found"), "{run:#?}");
    assert!(env.on_ce("dev-1").is_some());
    assert!(
        env.on_cloud("dev-1").is_none(),
        "imported while still on the source"
    );
    assert!(!env.writes().contains(&"end-devices create".to_string()));
}

// E6: `error reading from server: EOF` is a lost connection: a transient failure the tool retries
// rather than a refusal.
#[test]
fn a_lost_connection_on_the_export_is_retried() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    // Call 1 is the detection, call 2 the export.
    env.state.add_fault(
        Fault::failing("end-devices get", defs::connection_lost())
            .on(CE)
            .nth(2),
    );
    env.run(&["migrate", APP, "dev-1", "--yes", "--retry-delay-ms", "10"])
        .success()
        .clean_errors();
    assert!(env.on_cloud("dev-1").is_some());
}

// pkg/util/store:database_unavailable and pkg/errors:context_deadline_exceeded are transient too.
#[test]
fn an_unavailable_database_and_a_deadline_are_retried() {
    for err in [
        defs::database_unavailable(),
        defs::context_deadline_exceeded(),
    ] {
        let env = Env::new().with_profiles();
        env.seed_ce("otaa-eu1", "dev-1");
        env.state.add_fault(
            Fault::failing("end-devices create", err.clone())
                .on(CLOUD)
                .nth(1),
        );
        env.run(&["migrate", APP, "dev-1", "--yes", "--retry-delay-ms", "10"])
            .success()
            .clean_errors();
        assert!(env.on_cloud("dev-1").is_some(), "{}", err.name);
        assert!(env.on_ce("dev-1").is_none(), "{}", err.name);
    }
}
