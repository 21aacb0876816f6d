//! The whole device: what the documented export leaves out (class B/C support, attributes, the
//! device model, formatters, labels, the Join Server's nonce state) arrives on the target too,
//! read by the detection call that every device already costs.

mod common;

use common::*;
use serde_json::{json, Value};

/// The calls of a run that name `device`, as command names (`end-devices get`, …).
fn calls_for(env: &Env, skip: usize, device: &str) -> Vec<String> {
    env.state
        .calls()
        .into_iter()
        .skip(skip)
        .filter(|c| {
            c.argv
                .windows(2)
                .any(|w| w[0] == "--device-id" && w[1] == device)
        })
        .map(|c| c.command)
        .collect()
}

#[test]
fn a_class_c_device_arrives_with_its_class_attributes_model_formatters_and_labels() {
    let env = Env::new().with_profiles();
    env.state.set_version("3.34.0");
    let mut device = DoubleState::fixture("class-c-actuator");
    device["ids"]["device_id"] = "valve-1".into();
    device["ids"]["application_ids"]["application_id"] = APP.into();
    device["label_ids"] = json!(["irrigation", "north-field"]);
    env.state.put_device(CE, &device);
    let seeded = env.on_ce("valve-1").unwrap();

    env.run(&["migrate", "app-1", "valve-1", "--yes", "--work-dir", "w"])
        .success()
        .clean_errors()
        .no_keys_of(&seeded);

    let moved = env.on_cloud("valve-1").expect("on the target");
    assert_eq!(moved["supports_class_c"], true, "Class C stays Class C");
    assert_eq!(moved["attributes"], seeded["attributes"]);
    assert_eq!(moved["version_ids"], seeded["version_ids"]);
    assert_eq!(moved["formatters"], seeded["formatters"]);
    assert_eq!(moved["label_ids"], json!(["irrigation", "north-field"]));
    assert_eq!(moved["mac_settings"]["class_c_timeout"], "300s");
    assert_eq!(moved["used_dev_nonces"], seeded["used_dev_nonces"]);
    for field in [
        "dev_addr",
        "session_key_id",
        "app_s_key",
        "last_f_cnt_up",
        "last_n_f_cnt_down",
        "app_key",
    ] {
        assert_eq!(
            session_of(&moved)[field],
            session_of(&seeded)[field],
            "{field}"
        );
    }
    // The detection answer is kept next to the journal, named by its record, without keys.
    let journal: Value = serde_json::from_str(
        &std::fs::read_to_string(env.cwd().join("w/valve-1/journal.json")).unwrap(),
    )
    .unwrap();
    let detected = journal["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == "detected")
        .expect("a detected record");
    assert_eq!(detected["file"], "detected.json");
    let file = env.cwd().join("w/valve-1/detected.json");
    let answer = std::fs::read_to_string(&file).unwrap();
    for key in keys_of(&seeded) {
        assert!(!answer.contains(&key), "a key in the detection answer");
    }
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert!(answer.get("root_keys").is_none(), "{answer}");
    assert_eq!(
        answer["session"],
        json!({"started_at": seeded["session"]["started_at"]}),
        "of the session, only when it started"
    );
    assert_eq!(answer["supports_class_c"], true);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_lorawan_1_1_otaa_device_arrives_with_its_join_server_nonces() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-1.1", "dev-11");
    env.state.put_device(CE, &{
        let mut device = seeded.clone();
        device["last_rj_count_0"] = json!(3);
        device
    });
    env.run(&["migrate", "app-1", "dev-11", "--yes"])
        .success()
        .clean_errors();
    let moved = env.on_cloud("dev-11").expect("on the target");
    assert_eq!(moved["lorawan_version"], "MAC_V1_1");
    assert_eq!(moved["last_dev_nonce"], 12);
    assert_eq!(moved["used_dev_nonces"], json!([10, 11, 12]));
    assert_eq!(moved["last_join_nonce"], 5);
    assert_eq!(moved["last_rj_count_0"], 3);
}

#[test]
fn an_abp_device_keeps_its_fields_and_gets_no_join_state() {
    let env = Env::new().with_profiles();
    let mut device = DoubleState::fixture("abp-eu1");
    device["ids"]["device_id"] = "abp-1".into();
    device["ids"]["application_ids"]["application_id"] = APP.into();
    device["supports_class_b"] = json!(true);
    device["attributes"] = json!({"room": "3.14"});
    env.state.put_device(CE, &device);
    env.run(&["migrate", "app-1", "abp-1", "--yes"]).success();
    let moved = env.on_cloud("abp-1").unwrap();
    assert_eq!(moved["supports_class_b"], true);
    assert_eq!(moved["attributes"]["room"], "3.14");
    assert!(moved.get("last_dev_nonce").is_none());
}

#[test]
fn a_device_with_a_mac_settings_profile_is_refused_before_its_delete() {
    let env = Env::new().with_profiles();
    env.state.set_version("3.34.0");
    let mut device = env.seed_ce("otaa-eu1", "dev-1");
    device["mac_settings_profile_ids"] = json!({
        "application_ids": {"application_id": APP}, "profile_id": "slow-adr"});
    env.state.put_device(CE, &device);
    env.seed_ce("otaa-eu1", "dev-2");
    env.state.put_device(CE, &{
        let mut other = env.on_ce("dev-2").unwrap();
        other["ids"]["dev_eui"] = "70B3D57ED0000002".into();
        other
    });
    env.run(&["migrate", "app-1", "dev-1", "dev-2", "--yes"])
        .failure()
        .clean_errors()
        .stdout_has("dev-1  FAILED (see below)")
        .stderr_says("dev-1: the device uses the MAC settings profile `slow-adr`")
        .stderr_says("belongs to the source application");
    assert!(env.on_ce("dev-1").is_some(), "never deleted");
    assert!(env.on_cloud("dev-1").is_none());
    assert!(env.on_cloud("dev-2").is_some(), "the others go on");
    assert_eq!(env.writes(), ["end-devices delete", "end-devices create"]);
}

#[test]
fn a_join_state_the_source_will_not_give_is_a_warning_in_the_report() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-1.1", "dev-11");
    // The detection's Join Server part fails; the export (root keys) later succeeds.
    env.state.add_fault(
        Fault::unavailable("end-devices get")
            .in_registry("js")
            .nth(1),
    );
    let run = env
        .run(&["migrate", "app-1", "dev-11", "--yes", "--report", "r.json"])
        .success()
        .stderr_has("Warnings:")
        .stderr_has("dev-11: the Join Server's nonce state could not be read");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(env.cwd().join("r.json")).unwrap()).unwrap();
    let warnings = report["devices"][0]["warnings"].to_string();
    assert!(
        warnings.contains("JoinNonce above the last one"),
        "{warnings}\n{run:#?}"
    );
}

#[test]
fn each_device_still_costs_one_detection_export_delete_and_create() {
    let env = Env::new().with_profiles();
    for (i, id) in ["dev-1", "dev-2", "dev-3"].iter().enumerate() {
        let mut device = DoubleState::fixture("class-c-actuator");
        device["ids"]["device_id"] = (*id).into();
        device["ids"]["application_ids"]["application_id"] = APP.into();
        device["ids"]["dev_eui"] = format!("70B3D57ED000C0C{i}").into();
        env.state.put_device(CE, &device);
    }
    let before = env.state.calls().len();
    env.run(&["migrate", "app-1", "--all", "--yes"]).success();
    // A detection `get`, the export `get` and the delete name the device; the create reads
    // its document from stdin.
    for id in ["dev-1", "dev-2", "dev-3"] {
        assert_eq!(
            calls_for(&env, before, id),
            ["end-devices get", "end-devices get", "end-devices delete"],
            "{id}"
        );
        assert_eq!(env.on_cloud(id).unwrap()["supports_class_c"], true);
    }
    let creates = env.state.calls()[before..]
        .iter()
        .filter(|c| c.command == "end-devices create")
        .count();
    assert_eq!(creates, 3);

    // `--otaa` skips the detection: three calls, and it says what stays behind.
    let env = Env::new().with_profiles();
    let mut device = DoubleState::fixture("class-c-actuator");
    device["ids"]["device_id"] = "dev-1".into();
    device["ids"]["application_ids"]["application_id"] = APP.into();
    env.state.put_device(CE, &device);
    let before = env.state.calls().len();
    env.run(&["migrate", "app-1", "dev-1", "--yes", "--otaa"])
        .success()
        .stderr_has(
            "--otaa skips the detection call, so only the documented export's fields travel",
        );
    assert_eq!(
        calls_for(&env, before, "dev-1"),
        ["end-devices get", "end-devices delete"]
    );
    assert_eq!(env.writes(), ["end-devices delete", "end-devices create"]);
    assert!(env
        .on_cloud("dev-1")
        .unwrap()
        .get("supports_class_c")
        .is_none());
}

#[test]
fn a_rollback_puts_the_whole_device_back_on_the_source() {
    let env = Env::new().with_profiles();
    let mut device = DoubleState::fixture("class-c-actuator");
    device["ids"]["device_id"] = "valve-1".into();
    device["ids"]["application_ids"]["application_id"] = APP.into();
    env.state.put_device(CE, &device);
    env.run(&["migrate", "app-1", "valve-1", "--yes", "--work-dir", "w"])
        .success();
    env.run(&["rollback", "w", "--yes"]).success();
    let back = env.on_ce("valve-1").expect("back on the source");
    assert_eq!(back["supports_class_c"], true);
    assert_eq!(back["attributes"]["site"], "north-field");
    assert_eq!(back["formatters"], device["formatters"]);
    assert!(env.on_cloud("valve-1").is_none());
}
