//! The DevAddr / gateway check of `migrate`: a session keeps its DevAddr, and Packet Broker
//! routes by DevAddr block.

mod common;

use common::*;
use ttn_lw_cli_double::DeploymentSettings;

const GATEWAY_DOCS: &str =
    "https://www.thethingsindustries.com/docs/concepts/migration/gateway-migration/";

#[test]
fn a_community_edition_devaddr_outside_the_target_prefixes_is_warned_about() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    env.run(&["migrate", "app-1", "dev-1", "--yes"])
        .success()
        // Before the first delete, from the source's block.
        .stderr_says("Gateways: a migrated session keeps its DevAddr (1 selected device, in 260B0000/16 on the source), outside the target's prefixes (27FF0000/16)")
        // After the run, the exact DevAddr.
        .stderr_says("Gateways: DevAddr outside the prefixes of The Things Stack Cloud, tenant acme, cluster eu1 (27FF0000/16) for 1 of 1 migrated device: dev-1 260B1234.")
        .stderr_has(GATEWAY_DOCS)
        .clean_errors();
    assert!(env.on_cloud("dev-1").is_some(), "the warning never blocks");
}

#[test]
fn a_devaddr_inside_the_target_prefixes_gives_no_warning() {
    let env = Env::new().with_profiles();
    env.state.set_deployment(
        CLOUD,
        DeploymentSettings::default().dev_addr_prefixes(&["27FF0000/16", "260B0000/16"]),
    );
    env.seed_ce("otaa-eu1", "dev-1");
    let run = env.run(&["migrate", "app-1", "dev-1", "--yes"]).success();
    assert!(!run.stderr.contains("Gateways:"), "{run:#?}");
    assert!(!run.stdout.contains("Gateways:"), "{run:#?}");
}

#[test]
fn only_the_devices_outside_the_target_prefixes_are_listed() {
    let env = Env::new().with_profiles();
    env.state.set_deployment(
        CLOUD,
        DeploymentSettings::default().dev_addr_prefixes(&["260B0000/20"]),
    );
    // 260B1234 is outside 260B0000/20 (260B0000-260B0FFF); 260B0ABC is inside.
    env.seed_ce("otaa-eu1", "dev-1");
    env.seed_ce("abp-eu1", "dev-2");
    let run = env
        .run(&["migrate", "app-1", "dev-1", "dev-2", "--yes"])
        .success()
        .stderr_has("for 1 of 2 migrated devices: dev-1 260B1234.");
    assert!(!run.stderr.contains("dev-2 260B0ABC"), "{run:#?}");
}

#[test]
fn gateways_migrated_acknowledges_the_warning() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    let before = env.state.calls().len();
    let run = env
        .run(&["migrate", "app-1", "dev-1", "--yes", "--gateways-migrated"])
        .success();
    assert!(!run.stderr.contains("Gateways:"), "{run:#?}");
    assert!(!env
        .state
        .calls()
        .iter()
        .skip(before)
        .any(|c| c.command == "end-devices get-dev-addr-prefixes"));
}

#[test]
fn a_dry_run_lists_the_devaddrs_outside_the_target_prefixes() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    env.run(&["migrate", "app-1", "dev-1", "--dry-run"])
        .success()
        .stdout_has("end-devices get-dev-addr-prefixes  # ran: target DevAddr prefixes: 27FF0000/16")
        .stdout_says("# Gateways: DevAddr outside the prefixes of The Things Stack Cloud, tenant acme, cluster eu1 (27FF0000/16) for 1 of 1 exported device: dev-1 260B1234.")
        .clean_errors();
    assert!(env.writes().is_empty());
}

#[test]
fn unreadable_prefixes_still_warn_and_never_block() {
    let env = Env::new().with_profiles();
    env.state
        .add_fault(Fault::unavailable("end-devices get-dev-addr-prefixes"));
    env.seed_ce("otaa-eu1", "dev-1");
    env.run(&["migrate", "app-1", "dev-1", "--yes"])
        .success()
        .stderr_says("Gateways: the DevAddr prefixes of The Things Stack Cloud, tenant acme, cluster eu1 could not be read")
        .clean_errors();
    assert!(env.on_cloud("dev-1").is_some());
}
