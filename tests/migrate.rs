//! `migrate`: one device end to end against the ttn-lw-cli test double.

mod common;

use common::*;
use serde_json::Value;

const OTAA_EXPORT: &str = "end-devices get --application-id app-1 --device-id dev-1 --name --description --lorawan-version --lorawan-phy-version --frequency-plan-id --supports-join --root-keys --mac-settings --mac-state --session --pending-session";
const ABP_EXPORT: &str = "end-devices get --application-id app-1 --device-id dev-1 --name --description --lorawan-version --lorawan-phy-version --frequency-plan-id --supports-join --mac-settings --mac-state --session --pending-session";

/// The argv of every call after the first `skip`, without `-c <file>`, as one line each.
fn call_lines(env: &Env, skip: usize) -> Vec<String> {
    env.state
        .calls()
        .into_iter()
        .skip(skip)
        .map(|c| {
            let mut argv = c.argv.clone();
            if let Some(i) = argv.iter().position(|a| a == "-c") {
                argv.drain(i..i + 2);
            }
            argv.join(" ")
        })
        .collect()
}

#[test]
fn an_otaa_device_moves_with_its_session() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    let before = env.state.calls().len();

    let run = env
        .run(&["migrate", "app-1", "dev-1", "--yes"])
        .success()
        .stdout_has("dev-1  OTAA  DevAddr")
        .stdout_has("migrated, session verified")
        .no_keys_of(&seeded);

    assert!(env.on_ce("dev-1").is_none(), "still on the source");
    let moved = env.on_cloud("dev-1").expect("on the target");
    assert_eq!(session_of(&moved), session_of(&seeded));
    assert_eq!(moved["ids"]["dev_eui"], seeded["ids"]["dev_eui"]);
    // The target filled in its own addresses (--defaults).
    assert_eq!(moved["network_server_address"], Value::String(CLOUD.into()));

    let lines = call_lines(&env, before);
    assert!(lines.contains(&OTAA_EXPORT.to_string()), "{lines:#?}");
    assert_eq!(
        env.writes(),
        ["end-devices delete", "end-devices create"],
        "{run:?}"
    );
    assert!(
        lines.contains(&"end-devices delete --application-id app-1 --device-id dev-1".to_string())
    );
    assert!(lines.contains(&"end-devices create --application-id app-1".to_string()));
}

#[test]
fn an_abp_device_is_exported_without_root_keys() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("abp-eu1", "dev-1");
    let before = env.state.calls().len();

    env.run(&["migrate", "app-1", "dev-1", "--yes"])
        .success()
        .stdout_has("dev-1  ABP  DevAddr")
        .no_keys_of(&seeded);

    assert!(env.on_ce("dev-1").is_none());
    let moved = env.on_cloud("dev-1").expect("on the target");
    assert_eq!(session_of(&moved), session_of(&seeded));
    let lines = call_lines(&env, before);
    assert!(lines.contains(&ABP_EXPORT.to_string()), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("--root-keys")));
    assert_eq!(env.writes(), ["end-devices delete", "end-devices create"]);
}

#[test]
fn the_export_and_import_documents_are_kept_private_in_the_work_directory() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    env.run(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"])
        .success();
    let dir = env.cwd().join("w/dev-1");
    for file in ["export.json", "import.json", "created.json", "journal.json"] {
        let mode = std::fs::metadata(dir.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let import: Value =
        serde_json::from_slice(&std::fs::read(dir.join("import.json")).unwrap()).unwrap();
    for stripped in [
        "network_server_address",
        "application_server_address",
        "join_server_address",
    ] {
        assert!(import.get(stripped).is_none(), "{stripped}");
    }
    assert!(import["ids"].get("dev_addr").is_none());
    assert!(import["session"].get("dev_addr").is_some());
}

#[test]
fn to_application_puts_the_device_in_another_target_application() {
    let env = Env::new().with_profiles();
    env.state.add_application(CLOUD, "new-app");
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.run(&[
        "migrate",
        "app-1",
        "dev-1",
        "--to-application",
        "new-app",
        "--yes",
    ])
    .success();
    let moved = env
        .state
        .device(CLOUD, "new-app", "dev-1")
        .expect("in new-app");
    assert_eq!(moved["ids"]["application_ids"]["application_id"], "new-app");
    assert_eq!(session_of(&moved), session_of(&seeded));
    assert!(env.on_cloud("dev-1").is_none());
}

#[test]
fn a_dry_run_changes_nothing_and_prints_what_the_real_run_does() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    let snapshot = env.state.snapshot();
    let before = env.state.calls().len();

    let dry = env
        .run(&["migrate", "app-1", "dev-1", "--dry-run", "--work-dir", "w"])
        .success()
        .stdout_has("# rewrite ")
        .stdout_says("remove join_server_address, network_server_address, application_server_address, ids.dev_addr");
    // The commands stay whole to be copied (also where a comment quotes one); the comments
    // between them fit 100 columns.
    let comments = dry
        .stdout
        .lines()
        .filter(|l| l.starts_with('#') && !l.contains("ttn-lw-cli -c "));
    for line in comments {
        assert!(line.chars().count() <= 100, "{line:?}");
    }
    assert_eq!(
        env.state.snapshot(),
        snapshot,
        "a dry run changed a deployment"
    );
    assert!(env.writes().is_empty());
    assert!(
        !env.cwd().join("w").exists(),
        "a dry run wrote the work directory"
    );

    let printed: Vec<Vec<String>> = dry
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let command = l.split("  # ").next().unwrap();
            let command = command
                .split(" < ")
                .next()
                .unwrap()
                .split(" > ")
                .next()
                .unwrap();
            shlex::split(command).expect("a valid shell line")
        })
        .collect();
    let ran_in_dry_run = env.state.calls().len();

    env.run(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"])
        .success();
    let real: Vec<Vec<String>> = env
        .state
        .calls()
        .into_iter()
        .skip(ran_in_dry_run)
        .filter(|c| c.command != "version")
        .map(|c| {
            let mut argv = vec!["ttn-lw-cli".to_string()];
            argv.extend(c.argv);
            argv
        })
        .collect();
    assert_eq!(printed, real);
    assert!(ran_in_dry_run > before);

    // The same lines with their files: the device's section of the dry run against the
    // commands the real run journaled, and every file named there was written.
    // The detection ran before the question; the section names it where the run used it.
    let section: Vec<&str> = dry
        .stdout
        .lines()
        .skip_while(|l| *l != "# device dev-1")
        .map(|l| {
            l.strip_prefix("# answered by the read before the question: ")
                .unwrap_or(l)
        })
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split("  # ").next().unwrap())
        .collect();
    let work = std::fs::canonicalize(env.cwd()).unwrap();
    let journal: Value =
        serde_json::from_slice(&std::fs::read(env.cwd().join("w/dev-1/journal.json")).unwrap())
            .unwrap();
    let mut journaled: Vec<String> = journal["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["command"].as_str())
        .map(|c| c.replace(&format!("{}/", work.display()), ""))
        .collect();
    journaled.dedup();
    assert_eq!(section, journaled);
    let files: Vec<&str> = section
        .iter()
        .filter_map(|l| l.split([' ']).skip_while(|w| *w != ">" && *w != "<").nth(1))
        .collect();
    assert_eq!(files, ["w/dev-1/export.json", "w/dev-1/import.json"]);
    for file in files {
        assert!(env.cwd().join(file).is_file(), "{file} was not written");
    }
}

#[test]
fn a_dry_run_reports_a_failing_device_as_the_real_run_does_and_goes_on() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-no-mac-state", "dev-1");
    env.seed_ce("otaa-eu1", "dev-2");

    let dry = env
        .run(&[
            "migrate",
            "app-1",
            "dev-1",
            "dev-2",
            "--dry-run",
            "--work-dir",
            "w",
        ])
        .failure()
        .stdout_says("# the real run stops here for this device: export refused, nothing was deleted: the export lacks mac_state")
        .stdout_has("# Dry run: 1 would migrate, 1 would fail, 0 conflicts")
        .clean_errors();
    assert!(env.writes().is_empty());
    assert!(!env.cwd().join("w").exists());
    // dev-2, after the failing dev-1, is planned to the end.
    let dev2: Vec<&str> = dry
        .stdout
        .lines()
        .skip_while(|l| *l != "# device dev-2")
        .collect();
    assert!(
        dev2.iter()
            .any(|l| l.contains("end-devices create") && l.ends_with("< w/dev-2/import.json")),
        "{dry:#?}"
    );

    let real = env
        .run(&[
            "migrate",
            "app-1",
            "dev-1",
            "dev-2",
            "--yes",
            "--work-dir",
            "w",
        ])
        .failure();
    // The same error and next step, in the plan and in the real run's summary.
    let error = |text: &str, from: &str, to: &str| {
        let text = words(text);
        let start = text.find(from).expect(from) + from.len();
        let end = text[start..].find(to).expect(to) + start;
        text[start..end].trim().to_string()
    };
    assert_eq!(
        error(&dry.stdout, "this device:", "# next:"),
        error(&real.stderr, "Not migrated: dev-1:", "where:")
    );
    assert!(
        real.stdout
            .lines()
            .any(|l| l.starts_with("dev-1  OTAA  DevAddr") && l.ends_with("FAILED (see below)")),
        "{real:#?}"
    );
    assert!(env.on_cloud("dev-2").is_some());
}

fn assert_refused(fixture: &str, reason: &str) {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce(fixture, "dev-1");
    env.run(&["migrate", "app-1", "dev-1", "--yes"])
        .failure()
        .stderr_has("export refused, nothing was deleted")
        .stderr_says(reason)
        .clean_errors()
        .no_keys_of(&seeded);
    assert_eq!(
        env.on_ce("dev-1"),
        Some(seeded),
        "the source device changed"
    );
    assert!(env.on_cloud("dev-1").is_none());
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}

#[test]
fn a_device_on_another_cluster_is_refused() {
    assert_refused("otaa-nam1", "registered on nam1.cloud.thethings.network");
}

#[test]
fn a_device_without_a_session_is_refused() {
    assert_refused("otaa-pending-session", "pending_session");
}

#[test]
fn a_device_without_mac_state_is_refused() {
    assert_refused("otaa-no-mac-state", "lacks mac_state");
}

#[test]
fn an_encrypted_app_s_key_is_refused() {
    assert_refused("otaa-encrypted-appskey", "AppSKey encrypted");
}

#[test]
fn a_device_id_taken_on_the_target_is_caught_before_the_delete() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    let mut other = DoubleState::fixture("abp-eu1");
    other["ids"]["device_id"] = "dev-1".into();
    other["ids"]["application_ids"]["application_id"] = APP.into();
    env.state.put_device(CLOUD, &other);

    // Nothing changed: refused (3).
    env.run(&["migrate", "app-1", "dev-1", "--yes"])
        .code(3)
        .stdout_has("dev-1  conflict")
        .clean_errors();
    assert_eq!(env.on_ce("dev-1"), Some(seeded));
    assert_eq!(env.on_cloud("dev-1"), Some(other));
    assert!(env.writes().is_empty());
}

#[test]
fn an_id_taken_at_import_time_puts_the_device_back_on_the_source() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.state.add_fault(
        Fault::error(
            "end-devices create",
            "pkg/util/store",
            "id_taken",
            "ID already taken, choose a different one and try again",
        )
        .on(CLOUD)
        .nth(1),
    );
    env.run(&["migrate", "app-1", "dev-1", "--yes"])
        .failure()
        .stderr_says("; rolled back to the source")
        .stderr_says("where: back on the source")
        .clean_errors();
    let back = env.on_ce("dev-1").expect("back on the source");
    assert_eq!(session_of(&back), session_of(&seeded));
    assert!(env.on_cloud("dev-1").is_none());
}

#[test]
fn bad_input_runs_nothing() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    let before = env.state.calls().len();
    // Usage (2): what was typed is wrong; refused (3): a profile is missing.
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["migrate", "App_1", "dev-1", "--yes"],
            2,
            "invalid application ID `App_1`",
        ),
        (
            &["migrate", "app-1", "dev-1", "x", "bad_id", "--yes"],
            2,
            "2 invalid device IDs",
        ),
        (
            &["migrate", "app-1", "dev-1", "dev-1", "--yes"],
            2,
            "`dev-1` is given 2 times",
        ),
        (
            &[
                "migrate",
                "app-1",
                "dev-1",
                "--exclude",
                "sensr-000",
                "--yes",
            ],
            2,
            "--exclude sensr-000 matches no device of the selection",
        ),
        (
            &[
                "migrate",
                "app-1",
                "dev-1",
                "--to-application",
                "a",
                "--yes",
            ],
            2,
            "invalid target application ID",
        ),
        (
            &["migrate", "app-1", "dev-1", "--from", "nope", "--yes"],
            3,
            "profile `nope` does not exist",
        ),
        (
            &[
                "migrate",
                "app-1",
                "dev-1",
                "--to",
                "/missing/cloud.yml",
                "--yes",
            ],
            3,
            "config file /missing/cloud.yml does not exist",
        ),
    ];
    for (args, code, message) in cases {
        env.run(args).code(*code).stderr_has(message).clean_errors();
    }
    let run = env.run(&["migrate", "app-1", "dev-1", "x", "bad_id", "--yes"]);
    assert!(
        run.stderr.contains("`bad_id`"),
        "every bad ID is named: {run:?}"
    );
    assert_eq!(env.state.calls().len(), before, "a command ran");
    env.run(&["migrate", "app-1", "dev-1", "--bogus"]).code(2);
}

#[test]
fn without_a_terminal_and_without_yes_nothing_is_deleted() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.run(&["migrate", "app-1", "dev-1"])
        .code(3)
        .stderr_has("Pass --yes");
    assert_eq!(env.on_ce("dev-1"), Some(seeded));
    assert!(env.writes().is_empty());
}

#[test]
fn inherited_ttn_lw_variables_never_reach_ttn_lw_cli() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    let before = env.state.calls().len();
    env.cmd()
        .args(&["migrate", "app-1", "dev-1", "--yes"])
        .env(
            "TTN_LW_NETWORK_SERVER_GRPC_ADDRESS",
            "evil.example.com:8884",
        )
        .env("TTN_LW_CREDENTIALS_ID", "someone-else")
        .run()
        .success();
    for call in env.state.calls().into_iter().skip(before) {
        let mut seen = call.ttn_lw_env.clone();
        seen.sort();
        assert_eq!(
            seen,
            [
                "TTN_LW_LOG_FORMAT=console",
                "TTN_LW_LOG_LEVEL=info",
                "TTN_LW_SKIP_VERSION_CHECK=true",
                "TTN_LW_TELEMETRY_ENABLE=false"
            ],
            "{}",
            call.command
        );
        let expected_stdin = if call.command == "end-devices create" {
            "file"
        } else {
            "null"
        };
        assert_eq!(call.stdin, expected_stdin, "{}", call.command);
        if call.command != "version" {
            assert_eq!(
                call.argv.iter().filter(|a| *a == "-c").count(),
                1,
                "{:?}",
                call.argv
            );
        }
    }
}
