//! The environment of every ttn-lw-cli call: the operator's terminal settings do not change
//! what the tool reads (real-cli-audit.md P4, D10), and the CLI's version gates are checked
//! before anything is deleted (C14, D9).

mod common;

use common::*;

// pkg/log/zap_handler.go colours the levels whenever COLORTERM is truthy, which most desktop
// terminals set: the export's ERROR line must still be recognised.
#[test]
fn a_colour_terminal_does_not_hide_a_registry_error_in_the_export() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    // Call 1 is the detection, call 2 the export: the NS part of the export fails for good (a
    // transient one, rate limited or unavailable, is asked again: tests/resilience.rs).
    env.state.add_fault(
        Fault::error(
            "end-devices get",
            "pkg/auth/rights",
            "insufficient_application_rights",
            "insufficient rights for application `app-1`",
        )
        .in_registry("ns")
        .on(CE)
        .nth(2),
    );
    let run = env
        .cmd()
        .args(&["migrate", APP, "dev-1", "--yes", "--no-rollback"])
        .env("COLORTERM", "truecolor")
        .run();
    assert!(
        run.stderr
            .contains("Could not get end device from Network Server"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains('\x1b'), "{run:#?}");
    assert!(env.on_ce("dev-1").is_some());
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    let calls = env.state.calls();
    assert!(calls.iter().all(|c| !c.ttn_lw_env.is_empty()
        && c.ttn_lw_env
            .iter()
            .any(|v| v == "TTN_LW_LOG_FORMAT=console")));
}

// api/ttn/lorawan/v3/end_device.proto: schedule_downlinks exists from 3.21.0; an older CLI would
// fail the freeze with `unknown flag`, and the unfreeze the same way.
#[test]
fn freeze_downlinks_with_a_cli_older_than_3_21_is_refused_up_front() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    env.state.set_version("3.20.3");
    env.run(&["migrate", APP, "dev-1", "--yes", "--freeze-downlinks"])
        .code(3)
        .stderr_has("--freeze-downlinks needs ttn-lw-cli 3.21.0 or newer")
        .stderr_has("nothing was deleted")
        .clean_errors();
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    // Without the flag the same CLI migrates.
    env.run(&["migrate", APP, "dev-1", "--yes"]).success();
}
