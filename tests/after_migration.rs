//! After the migration: the gateways each device needs (`gateways`), and whether each migrated
//! device is heard on the target (`watch`).

mod common;

use common::*;
use serde_json::Value;
use ttn_lw_cli_double::{Gateway, Receiver, Traffic};

const MOVED_EUI: &str = "58A0CBFFFE800101";
const CE_ONLY_EUI: &str = "58A0CBFFFE800202";
const IDLE_EUI: &str = "58A0CBFFFE800303";

/// Seeds `dev-1` … `dev-<count>` on Community Edition, each with its own DevEUI.
fn seed_devices(env: &Env, count: usize) {
    for i in 1..=count {
        let mut device = DoubleState::fixture("otaa-eu1");
        device["ids"]["device_id"] = format!("dev-{i}").into();
        device["ids"]["application_ids"]["application_id"] = APP.into();
        device["ids"]["dev_eui"] = format!("70B3D57ED1{i:06X}").into();
        env.state.put_device(CE, &device);
    }
}

fn uplink(env: &Env, deployment: &str, device: &str, heard_by: &[Receiver]) {
    assert!(env
        .state
        .deliver(deployment, APP, device, Traffic::uplink(heard_by)));
}

/// Three gateways: one moved to the target and connected there (its ID changed, its EUI did
/// not), one only on Community Edition, one registered on the target but not connected; and
/// Packet Broker. Four devices heard on the source by different ones.
fn three_gateways_and_packet_broker() -> Env {
    let env = Env::new().with_profiles();
    seed_devices(&env, 4);
    env.state
        .put_gateway(CLOUD, &Gateway::new("gw-moved").eui(MOVED_EUI).connected());
    env.state
        .put_gateway(CLOUD, &Gateway::new("gw-idle").eui(IDLE_EUI));
    let moved = Receiver::gateway("gw-old-name", Some(MOVED_EUI));
    let ce_only = Receiver::gateway("gw-ce", Some(CE_ONLY_EUI));
    let idle = Receiver::gateway("gw-idle", Some(IDLE_EUI));
    let packet_broker = Receiver::packet_broker_from_community("eu1", Some("B827EBFFFE6C2F11"));
    uplink(&env, CE, "dev-1", &[moved, ce_only.clone()]);
    uplink(&env, CE, "dev-2", std::slice::from_ref(&ce_only));
    uplink(&env, CE, "dev-3", &[packet_broker]);
    uplink(&env, CE, "dev-4", &[ce_only, idle]);
    env
}

#[test]
fn gateways_names_the_connected_the_source_only_and_the_packet_broker_gateways() {
    let env = three_gateways_and_packet_broker();
    let run = env
        .run(&["gateways", "app-1"])
        .success()
        .clean_errors()
        .stdout_has("GATEWAY      EUI               DEVICES              ON THE TARGET\n")
        .stdout_has("gw-old-name  58A0CBFFFE800101  dev-1                connected (as gw-moved)\n")
        .stdout_has("gw-ce        58A0CBFFFE800202  dev-1, dev-2, dev-4  not registered\n")
        .stdout_has("gw-idle      58A0CBFFFE800303  dev-4                registered, not connected\n")
        .stdout_has("3 devices heard by no gateway connected to the target:")
        .stdout_has("  dev-2  its gateways are not connected to the target: gw-ce (58A0CBFFFE800202)")
        .stdout_has("  dev-3  heard only through Packet Broker")
        .stdout_says("  dev-4  its gateways are not connected to the target: gw-ce (58A0CBFFFE800202), gw-idle (58A0CBFFFE800303)")
        // Why it matters: the DevAddr check of `migrate`.
        .stdout_has("Gateways: DevAddr outside the prefixes of The Things Stack Cloud");
    assert!(
        !run.stdout.contains("\n  dev-1  "),
        "dev-1 has a connected gateway: {run:#?}"
    );
    // Read-only: nothing was written anywhere.
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    assert!(env.on_ce("dev-1").is_some() && env.on_cloud("dev-1").is_none());
}

#[test]
fn gateways_prints_json_for_named_devices() {
    let env = three_gateways_and_packet_broker();
    let run = env
        .run(&["gateways", "app-1", "dev-1", "dev-3", "--json"])
        .success();
    let doc: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let gateways = doc["gateways"].as_array().unwrap();
    assert_eq!(gateways.len(), 2, "{doc:#}");
    assert_eq!(gateways[0]["gateway"]["eui"], MOVED_EUI);
    assert_eq!(gateways[0]["target"]["state"], "connected");
    assert_eq!(gateways[0]["target"]["detail"]["gateway_id"], "gw-moved");
    assert_eq!(gateways[1]["target"]["state"], "not-registered");
    assert_eq!(doc["unheard"][0]["device_id"], "dev-3");
    assert_eq!(doc["devices"][1]["packet_broker"], true);
}

#[test]
fn gateways_says_when_the_target_login_cannot_read_a_gateway_connection() {
    let env = three_gateways_and_packet_broker();
    // An API key of the application: gateways are readable, their connection is not.
    env.state.set_deployment(
        CLOUD,
        ttn_lw_cli_double::DeploymentSettings::default().application_key(
            "NNSXS.CLOUD.SECRET",
            APP,
            &["RIGHT_APPLICATION_ALL"],
        ),
    );
    env.run(&["gateways", "app-1", "dev-1"])
        .success()
        .stdout_says("unknown: registered as gw-moved; reading its connection needs RIGHT_GATEWAY_STATUS_READ on the target login");
}

/// Migrates `dev-1` … `dev-<count>` into work directory `w`.
fn migrate_all(env: &Env, count: usize) {
    seed_devices(env, count);
    env.run(&[
        "migrate",
        "app-1",
        "--all",
        "--yes",
        "--otaa",
        "--jobs",
        "8",
        "--work-dir",
        "w",
    ])
    .success();
    assert_eq!(env.state.device_ids(CLOUD, APP).len(), count);
}

#[test]
fn watch_reports_the_devices_heard_on_the_target_and_the_silent_ones() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 3);
    uplink(
        &env,
        CE,
        "dev-2",
        &[Receiver::gateway("gw-ce", Some(CE_ONLY_EUI))],
    );
    env.run(&["migrate", "app-1", "--all", "--yes", "--work-dir", "w"])
        .success();
    let on_cloud = Receiver::gateway("gw-moved", Some(MOVED_EUI));
    uplink(&env, CLOUD, "dev-1", std::slice::from_ref(&on_cloud));
    // dev-3 is heard while `watch` polls: between its first and second call.
    env.state.deliver_after_call(
        env.state.commands_started() + 1,
        CLOUD,
        APP,
        "dev-3",
        Traffic::uplink(&[on_cloud]),
    );
    let run = env
        .run(&[
            "watch",
            "w",
            "--timeout",
            "3s",
            "--interval",
            "1",
            "--report",
            "heard.json",
        ])
        .failure()
        .clean_errors()
        .stderr_has("heard on the target: 1 of 3")
        .stderr_has("heard on the target: 2 of 3")
        .stdout_has("dev-2  silent  since its import at ")
        .stdout_says("last heard on the source by gw-ce (58A0CBFFFE800202)")
        .stdout_has("2 of 3 heard on the target; 1 silent after 3s.")
        .lines_fit(100);
    let last_seen = env.on_cloud("dev-1").unwrap()["last_seen_at"].clone();
    assert!(
        run.stdout.contains(&format!(
            "dev-1  heard   {} by gw-moved (58A0CBFFFE800101)\n",
            last_seen.as_str().unwrap()
        )),
        "{run:#?}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(env.cwd().join("heard.json")).unwrap())
            .unwrap();
    let statuses: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["heard", "silent", "heard"]);
    assert_eq!(report[2]["heard_by"], "gw-moved (58A0CBFFFE800101)");
    assert_eq!(
        report[1]["source_gateways"]["gateways"][0]["eui"],
        CE_ONLY_EUI
    );
    // No keys: the watch never asks for them.
    for call in env
        .state
        .calls()
        .iter()
        .filter(|c| c.command == "end-devices list")
    {
        assert!(!call
            .argv
            .iter()
            .any(|a| a.starts_with("--session") || a == "--root-keys"));
    }
}

#[test]
fn watch_exits_0_once_every_device_is_heard() {
    let env = Env::new().with_profiles();
    migrate_all(&env, 2);
    for device in ["dev-1", "dev-2"] {
        uplink(
            &env,
            CLOUD,
            device,
            &[Receiver::gateway("gw-moved", Some(MOVED_EUI))],
        );
    }
    env.run(&["watch", "w", "--timeout", "1m"])
        .success()
        .stdout_has("2 of 2 heard on the target.");
}

#[test]
fn watch_refuses_a_directory_that_is_not_a_migration() {
    let env = Env::new().with_profiles();
    std::fs::create_dir_all(env.cwd().join("empty")).unwrap();
    env.run(&["watch", "empty"])
        .code(2)
        .clean_errors()
        .stderr_has("is not a work directory of ttn-session-migrate");
}

#[test]
fn a_poll_of_1000_migrated_devices_costs_at_most_3_calls() {
    let env = Env::new().with_profiles();
    // ABP devices without EUIs: the quickest the double imports (no EUI uniqueness scan), so
    // that 1,000 real migrations fit in a test.
    for i in 1..=1000 {
        let mut device = DoubleState::fixture("abp-eu1");
        device["ids"]["device_id"] = format!("dev-{i}").into();
        device["ids"]["application_ids"]["application_id"] = APP.into();
        device["ids"].as_object_mut().unwrap().remove("dev_eui");
        env.state.put_device(CE, &device);
    }
    env.run(&[
        "migrate",
        "app-1",
        "--all",
        "--yes",
        "--abp",
        "--jobs",
        "8",
        "--work-dir",
        "w",
    ])
    .success();
    assert_eq!(env.state.device_ids(CLOUD, APP).len(), 1000);
    for i in (1..=1000).step_by(7) {
        uplink(
            &env,
            CLOUD,
            &format!("dev-{i}"),
            &[Receiver::gateway("gw-moved", None)],
        );
    }
    let before = env.state.calls().len();
    let run = env
        .run(&["watch", "w", "--timeout", "0s"])
        .failure()
        .stdout_has("143 of 1000 heard on the target; 857 silent");
    let polls: Vec<_> = env.state.calls()[before..]
        .iter()
        .filter(|c| c.command != "version")
        .map(|c| c.command.clone())
        .collect();
    assert!(
        polls.len() <= 3 && polls.iter().all(|c| c == "end-devices list"),
        "one poll made {} calls: {polls:?}\n{run:#?}",
        polls.len()
    );
}

#[test]
fn gateways_does_not_mistake_a_device_of_another_cluster_for_a_silent_one() {
    let env = Env::new().with_profiles();
    let mut device = DoubleState::fixture("otaa-nam1");
    device["ids"]["device_id"] = "far-1".into();
    device["ids"]["application_ids"]["application_id"] = APP.into();
    env.state.put_device(CE, &device);
    env.run(&["gateways", "app-1", "far-1"])
        .failure()
        .clean_errors()
        .stderr_has(
            "far-1: could not be read: the device is registered on nam1.cloud.thethings.network",
        );
}

#[test]
fn watch_needs_a_ttn_lw_cli_that_lists_last_seen_at() {
    let env = Env::new().with_profiles();
    migrate_all(&env, 1);
    env.state.set_version("3.18.2");
    env.run(&["watch", "w"])
        .failure()
        .clean_errors()
        .stderr_says("ttn-lw-cli 3.18.2 cannot list when devices were last seen (`end-devices list --last-seen-at` came with 3.19.0)");
    assert!(
        !env.state
            .calls()
            .iter()
            .any(|c| c.argv.contains(&"--last-seen-at".to_string())),
        "nothing was asked of the older CLI"
    );
}

#[test]
fn a_gateway_registered_on_the_target_without_its_eui_is_found_by_id_and_another_eui_is_not_it() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 2);
    env.state
        .put_gateway(CLOUD, &Gateway::new("gw-barn").connected());
    env.state.put_gateway(
        CLOUD,
        &Gateway::new("gw-ce").eui("0102030405060708").connected(),
    );
    uplink(
        &env,
        CE,
        "dev-1",
        &[Receiver::gateway("gw-barn", Some(MOVED_EUI))],
    );
    uplink(
        &env,
        CE,
        "dev-2",
        &[Receiver::gateway("gw-ce", Some(CE_ONLY_EUI))],
    );
    env.run(&["gateways", "app-1"])
        .success()
        .stdout_has("gw-barn  58A0CBFFFE800101  dev-1    connected\n")
        .stdout_has("gw-ce    58A0CBFFFE800202  dev-2    unknown: the target's gateway")
        .stdout_says("gw-ce 58A0CBFFFE800202 dev-2 unknown: the target's gateway gw-ce has another EUI (0102030405060708)")
        .stdout_has("  dev-2  its gateways are not connected to the target");
}

/// The rows of the three-gateway table, as `gateways` prints them.
const TABLE: [&str; 4] = [
    "GATEWAY      EUI               DEVICES              ON THE TARGET",
    "gw-old-name  58A0CBFFFE800101  dev-1                connected (as gw-moved)",
    "gw-ce        58A0CBFFFE800202  dev-1, dev-2, dev-4  not registered",
    "gw-idle      58A0CBFFFE800303  dev-4                registered, not connected",
];

#[test]
fn the_summary_stands_above_the_question_before_anything_is_deleted() {
    let env = three_gateways_and_packet_broker();
    // No terminal and no --yes: the question cannot be asked, so the run stops there.
    let run = env
        .run(&["migrate", "app-1", "--all"])
        .code(3)
        .clean_errors()
        .stderr_says("Gateways that heard 4 devices on The Things Stack Community Edition, cluster eu1, and their state on The Things Stack Cloud")
        .stderr_says("  dev-3  heard only through Packet Broker")
        .stderr_says("refusing to change the deployments without confirmation");
    for row in TABLE {
        assert!(run.stderr.contains(&format!("{row}\n")), "{row}\n{run:#?}");
    }
    assert!(
        run.stderr.find(TABLE[1]) < run.stderr.find("refusing to change"),
        "{run:#?}"
    );
    assert!(env.writes().is_empty(), "{:?}", env.writes());

    // The run itself reads nothing more per device for it: each is detected once, and the
    // gateway lookups all come before the first delete.
    let before = env.state.calls().len();
    env.run(&["migrate", "app-1", "--all", "--yes"]).success();
    let calls: Vec<String> = env.state.calls()[before..]
        .iter()
        .map(|c| c.command.clone())
        .collect();
    let first_delete = calls
        .iter()
        .position(|c| c == "end-devices delete")
        .unwrap();
    let last_lookup = calls
        .iter()
        .rposition(|c| c.starts_with("gateways "))
        .unwrap();
    assert!(last_lookup < first_delete, "{calls:#?}");
    assert_eq!(
        calls.iter().filter(|c| *c == "end-devices get").count(),
        8,
        "a detection and an export per device: {calls:#?}"
    );
}

#[test]
fn a_dry_run_prints_the_gateway_summary() {
    let env = three_gateways_and_packet_broker();
    let run = env
        .run(&["migrate", "app-1", "--all", "--dry-run"])
        .success()
        .clean_errors()
        .stdout_has("gateways get --gateway-eui 58A0CBFFFE800101  # ran")
        // The connection is read, never assumed: gw-idle is registered but not connected.
        .stdout_has("gateways get-connection-stats gw-idle  # ran: ")
        .stdout_has("# 3 devices heard by no gateway connected to the target:");
    for row in TABLE {
        assert!(
            run.stdout.contains(&format!("# {row}\n")),
            "{row}\n{run:#?}"
        );
    }
    assert!(env.writes().is_empty());
}

#[test]
fn require_gateways_refuses_the_unheard_devices_before_their_delete() {
    let env = three_gateways_and_packet_broker();
    env.run(&[
        "migrate",
        "app-1",
        "--all",
        "--yes",
        "--require-gateways",
        "--work-dir",
        "w",
    ])
    .failure()
    .clean_errors()
    .stdout_has("dev-1  OTAA  DevAddr")
    .stdout_has("dev-2  FAILED (see below)")
    .stderr_says("dev-3: refused by --require-gateways, nothing was deleted: heard only through Packet Broker")
    .stderr_says("dev-2: refused by --require-gateways, nothing was deleted: its gateways are not connected to the target: gw-ce (58A0CBFFFE800202) where: on the source next: nothing was changed: connect a gateway that hears the device to the target")
    .stderr_says("1 migrated, 3 failed");
    assert!(env.on_cloud("dev-1").is_some());
    for device in ["dev-2", "dev-3", "dev-4"] {
        assert!(env.on_ce(device).is_some(), "{device} was deleted");
        assert!(env.on_cloud(device).is_none(), "{device}");
    }
    assert_eq!(env.writes(), ["end-devices delete", "end-devices create"]);
    // `resume` never runs them without the check: they are not part of the work directory.
    env.run(&["resume", "w"])
        .success()
        .stdout_has("Nothing to resume");
    assert!(env.on_ce("dev-2").is_some());
}

#[test]
fn require_gateways_needs_the_detection() {
    let env = Env::new().with_profiles();
    env.run(&["migrate", "app-1", "dev-1", "--otaa", "--require-gateways"])
        .code(2)
        .stderr_has("cannot be used with");
}

/// Every device in `devices` transmits on the target after each ttn-lw-cli call from now on
/// (an uplink before its import is not heard: the device is not there yet).
fn transmit_on_the_target(env: &Env, devices: &[&str]) {
    let now = env.state.commands_started();
    for call in now..now + 200 {
        for device in devices {
            env.state.deliver_after_call(
                call,
                CLOUD,
                APP,
                device,
                Traffic::uplink(&[Receiver::gateway("gw-moved", Some(MOVED_EUI))]),
            );
        }
    }
}

#[test]
fn a_canary_that_stays_silent_stops_the_run_before_the_rest() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 3);
    let run = env
        .run(&[
            "migrate",
            "app-1",
            "dev-1",
            "dev-2",
            "dev-3",
            "--yes",
            "--canary",
            "1",
            "--watch",
            "1s",
            "--work-dir",
            "w",
        ])
        .failure()
        .clean_errors()
        .stderr_says("Canary: migrating 1 device first (dev-1); the rest (2 devices) waits until the canaries are heard on the target.")
        .stdout_has("dev-1  silent  since its import at ")
        .stderr_says("Stopped after the canaries: a canary stayed silent on the target for 1s")
        .stderr_says("so the rest (2 devices) was not touched: it would go dark the same way")
        .stderr_says("1 migrated, 0 failed, 0 skipped, 0 conflicts, 2 not started");
    assert!(env.on_cloud("dev-1").is_some());
    for device in ["dev-2", "dev-3"] {
        assert!(env.on_ce(device).is_some() && env.on_cloud(device).is_none());
    }
    assert_eq!(env.writes(), ["end-devices delete", "end-devices create"]);
    // The printed command rolls the canary back.
    let rollback = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Roll the canaries back with: "))
        .expect("a rollback command");
    assert!(
        rollback.starts_with("ttn-session-migrate rollback "),
        "{rollback}"
    );
    assert!(rollback.ends_with("/w dev-1"), "{rollback}");
    let words = shlex::split(rollback).unwrap();
    let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    args.push("--yes");
    env.run(&args).success();
    assert!(env.on_ce("dev-1").is_some() && env.on_cloud("dev-1").is_none());
}

#[test]
fn a_canary_that_is_heard_lets_the_rest_go_on() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 3);
    transmit_on_the_target(&env, &["dev-1", "dev-2", "dev-3"]);
    env.run(&[
        "migrate",
        "app-1",
        "dev-1",
        "dev-2",
        "dev-3",
        "--yes",
        "--canary",
        "1",
        "--watch",
        "20s",
        "--work-dir",
        "w",
    ])
    .success()
    .clean_errors()
    .stderr_has("Canary: every canary was heard on the target; migrating the rest (2 devices).")
    .stdout_has("dev-1  heard   ")
    // `--watch` after the whole migration: every device.
    .stdout_has("3 of 3 heard on the target.");
    for device in ["dev-1", "dev-2", "dev-3"] {
        assert!(env.on_cloud(device).is_some() && env.on_ce(device).is_none());
    }
    // The canary was heard before the rest was touched.
    let calls: Vec<String> = env
        .state
        .calls()
        .iter()
        .map(|c| match c.argv.iter().any(|a| a == "--last-seen-at") {
            true => "poll".to_string(),
            false => c.command.clone(),
        })
        .collect();
    let poll = calls.iter().position(|c| c == "poll").unwrap();
    let deletes: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| *c == "end-devices delete")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(deletes.len(), 3);
    assert!(deletes[0] < poll && poll < deletes[1], "{calls:#?}");
}

/// The canaries meet the target's limit of 60 creates a minute (one left): the rest goes on at
/// that rate, from the bucket as the canaries left it, and none of its creates is refused.
/// Unpaced, dev-3's create would come well under a second after dev-2's, before the bucket
/// regained a create.
#[test]
fn the_rest_after_the_canaries_goes_on_at_the_rate_they_learned() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 4);
    transmit_on_the_target(&env, &["dev-1", "dev-2", "dev-3", "dev-4"]);
    env.state
        .set_rate_limit("end-devices create", CLOUD, 60, 60_000);
    env.state
        .set_rate_limit_tokens("end-devices create", CLOUD, 1.0);
    env.run(&[
        "migrate", "app-1", "--all", "--yes", "--jobs", "1", "--canary", "2", "--watch", "20s",
    ])
    .success()
    .stderr_has("Canary: every canary was heard on the target; migrating the rest (2 devices).")
    .stderr_says("the target allows 60 creates a minute");
    assert_eq!(
        env.state.rate_limited_calls("end-devices create", CLOUD),
        1,
        "only the second canary's first create is refused"
    );
    for device in ["dev-1", "dev-2", "dev-3", "dev-4"] {
        assert!(env.on_cloud(device).is_some() && env.on_ce(device).is_none());
    }
}

#[test]
fn migrate_watch_runs_the_watch_after_the_migration() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 2);
    transmit_on_the_target(&env, &["dev-1"]);
    env.run(&[
        "migrate", "app-1", "dev-1", "dev-2", "--yes", "--watch", "1s",
    ])
    .failure()
    .stderr_has("2 migrated, 0 failed")
    .stdout_has("dev-1  heard   ")
    .stdout_has("dev-2  silent  since its import at ")
    .stdout_has("1 of 2 heard on the target; 1 silent after 1s.");
}

#[test]
fn a_canary_that_is_not_migrated_stops_the_run_without_waiting() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-no-mac-state", "dev-1");
    env.seed_ce("abp-eu1", "dev-2");
    let started = std::time::Instant::now();
    let run = env
        .run(&[
            "migrate", "app-1", "dev-1", "dev-2", "--yes", "--canary", "1", "--watch", "10m",
        ])
        .failure()
        .clean_errors()
        .stderr_says("Stopped after the canaries: the canary dev-1 was not migrated (see above), so the rest (1 device) was not touched.");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "it waited"
    );
    assert!(!run.stderr.contains("Roll the canaries back"), "{run:#?}");
    assert!(env.on_ce("dev-1").is_some() && env.on_ce("dev-2").is_some());
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}

#[test]
fn ctrl_c_during_the_canaries_keeps_the_rest_from_starting_even_when_they_are_heard() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 2);
    transmit_on_the_target(&env, &["dev-1", "dev-2"]);
    env.state
        .set_command_latency_ms("end-devices create", 1_500);
    let child = env
        .cmd()
        .args(&[
            "migrate", "app-1", "dev-1", "dev-2", "--yes", "--canary", "1", "--watch", "20s",
        ])
        .spawn();
    env.wait_for_ttn_lw_cli(&["end-devices", "create"]);
    assert!(std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Interrupted (130), whatever else the run says.
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        common::words(&stderr).contains("Stopped after the canaries: stopped by a signal, so the rest (1 device) was not touched."),
        "{stderr}"
    );
    assert!(
        env.on_cloud("dev-1").is_some(),
        "the canary in flight finished"
    );
    assert!(env.on_ce("dev-2").is_some() && env.on_cloud("dev-2").is_none());
}

#[test]
fn require_gateways_refuses_a_device_whose_gateways_cannot_be_read() {
    let env = Env::new().with_profiles();
    let mut device = DoubleState::fixture("otaa-nam1");
    device["ids"]["device_id"] = "far-1".into();
    device["ids"]["application_ids"]["application_id"] = APP.into();
    env.state.put_device(CE, &device);
    env.run(&["migrate", "app-1", "far-1", "--yes", "--require-gateways"])
        .failure()
        .clean_errors()
        .stdout_has("far-1  FAILED (see below)")
        .stderr_says("far-1: refused by --require-gateways, nothing was deleted: its gateways could not be read (the device is registered on nam1.cloud.thethings.network");
    assert!(env.on_ce("far-1").is_some());
    assert!(env.writes().is_empty());
}

/// Issue 13: every message fits 100 columns without a terminal, the gateway summary's reasons
/// and the closing warnings too (wrapped under their first line, the table's columns kept).
#[test]
fn the_gateway_summary_and_the_warnings_fit_100_columns() {
    let env = three_gateways_and_packet_broker();
    env.seed_ce("otaa-1.1", "dev-11");
    // The Join Server part of a detection fails: that device moves with a warning.
    env.state.add_fault(
        Fault::unavailable("end-devices get")
            .in_registry("js")
            .nth(1),
    );
    let run = env
        .run(&["migrate", "app-1", "--all", "--yes"])
        .success()
        .clean_errors()
        .stderr_says("  dev-3  heard only through Packet Broker: a gateway of another network, which keeps routing this DevAddr to the source")
        .stderr_has("Warnings:")
        .stderr_says("the Join Server's nonce state could not be read")
        .lines_fit(100);
    for row in TABLE {
        assert!(run.stderr.contains(&format!("{row}\n")), "{row}\n{run:#?}");
    }
}
