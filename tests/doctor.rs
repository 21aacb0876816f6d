//! `doctor` against the ttn-lw-cli test double, in each failing state, and the same checks
//! before `migrate` deletes anything.

mod common;

use common::*;
use ttn_lw_cli_double::DeploymentSettings;

/// Replaces one line of a profile's config file.
fn edit_profile(env: &Env, name: &str, key: &str, value: &str) {
    let path = env.profile(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut found = false;
    let edited: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with(&format!("{key}:")) {
                found = true;
                format!("{key}: {value}")
            } else {
                line.to_string()
            }
        })
        .collect();
    assert!(found, "{key} not in {text}");
    std::fs::write(&path, edited.join("\n") + "\n").unwrap();
}

#[test]
fn a_working_setup_passes_every_check() {
    let env = Env::new().with_profiles();
    let run = env
        .run(&["doctor", "--application-id", "app-1"])
        .success()
        .stdout_says("✓ ttn-lw-cli 3.32.1 at ")
        .stdout_says("✓ source profile `ce`: The Things Stack Community Edition, cluster eu1")
        .stdout_says("✓ target profile `cloud`: The Things Stack Cloud, tenant acme, cluster eu1")
        .stdout_says("keep separate logins")
        .stdout_says("✓ source login `ce` works")
        .stdout_says("✓ target login `cloud` works")
        .stdout_says("✓ application `app-1` is on the source")
        .stdout_says("✓ application `app-1` is on the target")
        .stdout_says("Ready to migrate: no problems.")
        .clean_errors();
    assert!(!run.stdout.contains('✗'), "{run:#?}");
    assert!(!run.stdout.contains("\x1b["), "coloured without a terminal");
}

#[test]
fn no_ttn_lw_cli() {
    let env = Env::new().with_profiles();
    env.cmd()
        .args(&["doctor"])
        .env("PATH", "")
        .run()
        .failure()
        .stdout_says("✗ ttn-lw-cli was not found")
        .stdout_says("fix: install The Things Stack CLI")
        .stdout_says("export TTN_LW_CLI=")
        .stdout_says("- source login: not checked (needs a working ttn-lw-cli)")
        .stdout_says("1 problem to fix")
        .clean_errors();
}

#[test]
fn a_ttn_lw_cli_too_old_to_import_sessions() {
    let env = Env::new().with_profiles();
    env.state.set_version("3.11.0");
    env.run(&["doctor"])
        .failure()
        .stdout_says("✗ ttn-lw-cli 3.11.0 at ")
        .stdout_says("too old, importing sessions needs 3.12.0 or newer")
        .stdout_says("fix: install ttn-lw-cli 3.23.0 or newer")
        .clean_errors();
}

#[test]
fn a_ttn_lw_cli_before_the_pending_state_fix_is_a_warning() {
    let env = Env::new().with_profiles();
    env.state.set_version("3.20.0");
    env.run(&["doctor"])
        .success()
        .stdout_says("! ttn-lw-cli 3.20.0 at ")
        .stdout_says("lorawan-stack #5926")
        .stdout_says("; --freeze-downlinks needs 3.21.0 or newer; the gateway check cannot read the target's DevAddr prefixes before 3.21.2")
        .stdout_says("Ready to migrate: no problems, 1 warning.")
        .clean_errors();
}

#[test]
fn missing_profiles() {
    let env = Env::new();
    env.run(&["doctor"])
        .failure()
        .stdout_says("✗ source profile `ce` does not exist")
        .stdout_says("fix: ttn-session-migrate profile add ce --host eu1.cloud.thethings.network")
        .stdout_says("✗ target profile `cloud` does not exist")
        .stdout_says(
            "fix: ttn-session-migrate profile add cloud --host <tenant>.eu1.cloud.thethings.industries",
        )
        .stdout_says("- source login: not checked (needs the profile)")
        .stdout_says("2 problems to fix")
        .clean_errors();
}

#[test]
fn a_broken_profile_file() {
    let env = Env::new().with_profiles();
    std::fs::write(env.profile("cloud"), "this: [is not yaml").unwrap();
    env.run(&["doctor"])
        .failure()
        .stdout_says("✗ target profile `cloud`: ")
        .stdout_says("is not a valid ttn-lw-cli config file")
        .stdout_says("fix: ttn-session-migrate profile remove cloud, then ttn-session-migrate profile add cloud")
        .clean_errors();
}

#[test]
fn profiles_sharing_a_credentials_id() {
    let env = Env::new().with_profiles();
    edit_profile(&env, "cloud", "credentials-id", CE);
    env.run(&["doctor"])
        .failure()
        .stdout_says(&format!(
            "✗ profiles `ce` and `cloud` share credentials-id `{CE}`: logging in to one replaces the other's login"
        ))
        .stdout_says(&format!("fix: set `credentials-id: {CLOUD}` in "))
        .stdout_says("then `ttn-session-migrate login cloud`")
        .clean_errors();
}

#[test]
fn not_logged_in() {
    let env = Env::new();
    env.run(&["profile", "add", "ce", "--host", CE]).success();
    env.run(&["profile", "add", "cloud", "--host", CLOUD])
        .success();
    env.run(&["login", "cloud", "--api-key", "NNSXS.CLOUD.SECRET"])
        .success();
    let run = env
        .run(&["doctor", "--application-id", "app-1"])
        .failure()
        .stdout_says(
            "✗ source login `ce`: not logged in to The Things Stack Community Edition, cluster eu1",
        )
        .stdout_says("fix: ttn-session-migrate login ce (OAuth in the browser), or `ttn-session-migrate login ce --api-key <KEY>`")
        .stdout_says("- application `app-1` on the source: not checked (needs a working login)")
        .stdout_says("✓ target login `cloud` works")
        .clean_errors();
    assert!(!run.stdout.contains("✗ target"), "{run:#?}");
}

#[test]
fn a_login_made_for_other_hosts() {
    let env = Env::new().with_profiles();
    edit_profile(
        &env,
        "ce",
        "network-server-grpc-address",
        "nam1.cloud.thethings.network:8884",
    );
    env.run(&["doctor"])
        .failure()
        .stdout_says("✗ source login `ce`: the login was made for other server addresses")
        .stdout_says("(unknown_host)")
        .stdout_says("fix: ttn-session-migrate login ce")
        .clean_errors();
}

#[test]
fn a_missing_target_application() {
    let env = Env::new().with_profiles();
    env.run(&[
        "doctor",
        "--application-id",
        "app-1",
        "--to-application",
        "new-app",
    ])
    .failure()
    .stdout_says("✓ application `app-1` is on the source")
    .stdout_says("✗ application `new-app` does not exist on the target (The Things Stack Cloud, tenant acme, cluster eu1)")
    .stdout_says("fix: create application `new-app` in the Console (https://acme.eu1.cloud.thethings.industries/console/applications/add)")
    .clean_errors();
}

#[test]
fn a_missing_source_application() {
    let env = Env::new().with_profiles();
    env.run(&["doctor", "--application-id", "no-such-app"])
        .failure()
        .stdout_says("✗ application `no-such-app` cannot be read on the source")
        .stdout_says("fix: check the application ID in the Console (https://eu1.cloud.thethings.network/console/applications)")
        .clean_errors();
}

#[test]
fn an_api_key_without_the_key_rights_says_which_right_is_missing() {
    let env = Env::new().with_profiles();
    env.state.set_deployment(
        CLOUD,
        DeploymentSettings::default().api_key(
            "NNSXS.CLOUD.SECRET",
            &[
                "RIGHT_APPLICATION_INFO",
                "RIGHT_APPLICATION_DEVICES_READ",
                "RIGHT_APPLICATION_DEVICES_WRITE",
            ],
        ),
    );
    let run = env
        .run(&["doctor", "--application-id", "app-1"])
        .failure()
        .stdout_says("✗ the API key of `cloud` lacks RIGHT_APPLICATION_TRAFFIC_READ (to read sessions: the Network Server asks for it), RIGHT_APPLICATION_DEVICES_READ_KEYS (to read device keys and sessions), RIGHT_APPLICATION_DEVICES_WRITE_KEYS (to write device keys and sessions)")
        .stdout_says("then `ttn-session-migrate login cloud --api-key <KEY>`")
        .clean_errors()
        .lines_fit(100);
    assert!(!run.stdout.contains("lacks RIGHT_APPLICATION_DEVICES_READ "));
}

#[test]
fn an_unknown_api_key() {
    let env = Env::new().with_profiles();
    env.state.set_deployment(
        CE,
        DeploymentSettings::default().api_key("NNSXS.OTHER.KEY", &["RIGHT_APPLICATION_ALL"]),
    );
    env.run(&["doctor"])
        .failure()
        .stdout_says("✗ source login `ce`: The Things Stack Community Edition, cluster eu1 does not accept the stored API key")
        .stdout_says("fix: ttn-session-migrate login ce --api-key <KEY>")
        .clean_errors();
}

#[test]
fn stray_ttn_lw_variables_are_a_warning() {
    let env = Env::new().with_profiles();
    env.cmd()
        .args(&["doctor"])
        .env("TTN_LW_APPLICATION_ID", "other-app")
        .env("TTN_LW_CONFIG", "/elsewhere.yml")
        .run()
        .success()
        .stdout_says("! TTN_LW_APPLICATION_ID, TTN_LW_CONFIG set in your environment: this tool removes them from its ttn-lw-cli calls")
        .stdout_says("fix: unset TTN_LW_APPLICATION_ID TTN_LW_CONFIG")
        .clean_errors();
}

#[test]
fn quiet_prints_only_the_problems_and_the_summary() {
    let env = Env::new().with_profiles();
    let run = env
        .run(&[
            "-q",
            "doctor",
            "--application-id",
            "app-1",
            "--to-application",
            "new-app",
        ])
        .failure()
        .stdout_says("✗ application `new-app` does not exist on the target")
        .stdout_says("1 problem to fix");
    assert!(!run.stdout.contains('✓'), "{run:#?}");
}

#[test]
fn verbose_shows_each_ttn_lw_cli_command() {
    let env = Env::new().with_profiles();
    env.run(&["-v", "doctor", "--application-id", "app-1"])
        .success()
        .stderr_has("$ ttn-lw-cli -c ")
        .stderr_has(" auth-info")
        .stderr_has(" applications get app-1");
}

#[test]
fn migrate_runs_the_checks_and_a_problem_stops_it_before_any_delete() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    env.state.set_deployment(
        CLOUD,
        DeploymentSettings::default().api_key(
            "NNSXS.CLOUD.SECRET",
            &["RIGHT_APPLICATION_INFO", "RIGHT_APPLICATION_DEVICES_READ"],
        ),
    );
    env.run(&["migrate", "app-1", "dev-1", "--yes"])
        .code(3)
        .stderr_has("the checks before the migration found 1 problem; nothing was deleted")
        .stderr_has("✗ the API key of `cloud` lacks RIGHT_APPLICATION_TRAFFIC_READ")
        .stderr_has("RIGHT_APPLICATION_DEVICES_READ_KEYS (to read device keys and sessions)")
        .stderr_has("fix: in the Console")
        .stderr_has("or pass --skip-checks")
        .clean_errors();
    assert!(env.writes().is_empty());
    assert!(env.on_ce("dev-1").is_some());
}

#[test]
fn skip_checks_runs_none_of_them() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    let before = env.state.calls().len();
    env.run(&["migrate", "app-1", "dev-1", "--yes", "--skip-checks"])
        .success();
    let commands: Vec<String> = env
        .state
        .calls()
        .into_iter()
        .skip(before)
        .map(|c| c.command)
        .collect();
    assert!(
        !commands.iter().any(|c| c == "applications get"),
        "{commands:#?}"
    );
    assert!(env.on_cloud("dev-1").is_some());
}

#[test]
fn migrate_makes_a_constant_number_of_check_calls() {
    let env = Env::new().with_profiles();
    for i in 1..=3 {
        let mut device = DoubleState::fixture("otaa-eu1");
        device["ids"]["device_id"] = format!("dev-{i}").into();
        device["ids"]["application_ids"]["application_id"] = APP.into();
        device["ids"]["dev_eui"] = format!("70B3D57ED3{i:06X}").into();
        env.state.put_device(CE, &device);
    }
    let before = env.state.calls().len();
    env.run(&["migrate", "app-1", "dev-1", "dev-2", "dev-3", "--yes"])
        .success();
    let commands: Vec<String> = env
        .state
        .calls()
        .into_iter()
        .skip(before)
        .map(|c| c.command)
        .collect();
    let count = |name: &str| commands.iter().filter(|c| *c == name).count();
    assert_eq!(count("applications get"), 2, "{commands:#?}");
    assert_eq!(
        count("end-devices get-dev-addr-prefixes"),
        1,
        "{commands:#?}"
    );
}

#[test]
fn an_unreachable_deployment() {
    let env = Env::new().with_profiles();
    env.state
        .add_fault(Fault::unavailable("auth-info").on(CLOUD));
    env.run(&["doctor"])
        .failure()
        .stdout_says(
            "✗ target login `cloud`: cannot reach The Things Stack Cloud, tenant acme, cluster eu1",
        )
        .stdout_says("fix: check the network connection and the addresses in ")
        .stdout_says("(`ttn-session-migrate profile show cloud`)")
        .clean_errors();
}

#[test]
fn doctor_json_gives_every_check_its_status_and_fix() {
    let env = Env::new().with_profiles();
    let run = env
        .run(&["doctor", "--application-id", "app-1", "--json"])
        .success();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    assert_eq!(report["ready"], true);
    assert_eq!(report["problems"], 0);
    let checks = report["checks"].as_array().unwrap();
    assert!(checks
        .iter()
        .all(|c| c["status"] == "ok" || c["status"] == "warning"));
    assert!(checks.iter().any(|c| c["text"]
        .as_str()
        .unwrap()
        .starts_with("source login `ce` works")));

    // A problem: the status, the text and the fix, and the exit status of the text mode.
    let run = env.run(&["doctor", "--to", "nowhere", "--json"]).failure();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    assert_eq!(report["ready"], false);
    assert_eq!(report["problems"], 1);
    let problem = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "problem")
        .expect("one problem");
    assert!(problem["text"]
        .as_str()
        .unwrap()
        .contains("profile `nowhere` does not exist"));
    assert_eq!(
        problem["fix"],
        "ttn-session-migrate profile add nowhere --host <tenant>.eu1.cloud.thethings.industries"
    );
    assert!(run.stdout.trim_end().ends_with('}'), "nothing but JSON");
}

#[test]
fn two_profiles_of_one_host_get_a_fix_that_changes_the_credentials_id() {
    let env = Env::new().with_profiles();
    env.run(&["profile", "add", "ce2", "--host", CE]).success();
    // Both profiles carry `credentials-id: <host>`; setting it to the host again would change
    // nothing, so the fix names a slot of the target's own.
    env.run(&["doctor", "--from", "ce", "--to", "ce2"])
        .failure()
        .stdout_says(&format!(
            "✗ profiles `ce` and `ce2` share credentials-id `{CE}`"
        ))
        .stdout_says("fix: set `credentials-id: ce2` in ");
    edit_profile(&env, "ce2", "credentials-id", "ce2");
    env.run(&["login", "ce2", "--api-key", "NNSXS.CE.SECRET"])
        .success();
    env.run(&["doctor", "--from", "ce", "--to", "ce2"])
        .stdout_says("✓ profiles `ce` and `ce2` keep separate logins");
}

#[test]
fn the_closing_hint_repeats_the_options_given() {
    let env = Env::new().with_profiles();
    env.run(&["doctor", "--to", "nowhere", "--application-id", "app-1"])
        .failure()
        .stdout_says(
            "run `ttn-session-migrate doctor --to nowhere --application-id app-1` again afterwards",
        );
}

/// The six rights a migration needs on each side (real-cli-audit.md D1, D14).
const LEAST: [&str; 6] = [
    "RIGHT_APPLICATION_INFO",
    "RIGHT_APPLICATION_TRAFFIC_READ",
    "RIGHT_APPLICATION_DEVICES_READ",
    "RIGHT_APPLICATION_DEVICES_READ_KEYS",
    "RIGHT_APPLICATION_DEVICES_WRITE",
    "RIGHT_APPLICATION_DEVICES_WRITE_KEYS",
];

/// The four rights the README used to ask for.
const OLD_README_RIGHTS: [&str; 4] = [
    "RIGHT_APPLICATION_DEVICES_READ",
    "RIGHT_APPLICATION_DEVICES_READ_KEYS",
    "RIGHT_APPLICATION_DEVICES_WRITE",
    "RIGHT_APPLICATION_DEVICES_WRITE_KEYS",
];

#[test]
fn application_keys_with_the_least_rights_pass() {
    let env = Env::new().with_profiles();
    env.state.set_deployment(
        CE,
        DeploymentSettings::default().application_key("NNSXS.CE.SECRET", APP, &LEAST),
    );
    env.state.set_deployment(
        CLOUD,
        DeploymentSettings::default().application_key("NNSXS.CLOUD.SECRET", APP, &LEAST),
    );
    env.seed_ce("otaa-eu1", "dev-1");
    env.run(&["doctor", "--application-id", APP])
        .success()
        .stdout_says("✓ the API key of `ce` belongs to application `app-1`")
        .clean_errors();
    env.run(&["migrate", APP, "dev-1", "--yes"]).success();
    assert!(env.on_cloud("dev-1").is_some() && env.on_ce("dev-1").is_none());
}

// D1: `end-devices create` reads the application (RIGHT_APPLICATION_INFO); with the keys the
// README used to describe, every device would be deleted from the source and refused by the
// target.
#[test]
fn a_target_key_that_cannot_create_stops_the_migration_before_any_delete() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    env.state.set_deployment(
        CLOUD,
        DeploymentSettings::default().application_key(
            "NNSXS.CLOUD.SECRET",
            APP,
            &OLD_README_RIGHTS,
        ),
    );
    env.run(&["migrate", APP, "dev-1", "--yes"])
        .code(3)
        .stderr_has("nothing was deleted")
        .stderr_says("✗ the API key of `cloud` lacks RIGHT_APPLICATION_INFO (to read the application, which `end-devices create` does)")
        .stderr_has("RIGHT_APPLICATION_TRAFFIC_READ")
        .clean_errors();
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    assert!(env.on_ce("dev-1").is_some());
}

// The rollback re-creates the device on the source: a source key without INFO could not.
#[test]
fn a_source_key_that_could_not_recreate_stops_the_migration_before_any_delete() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    let without_info: Vec<&str> = LEAST[1..].to_vec();
    env.state.set_deployment(
        CE,
        DeploymentSettings::default().application_key("NNSXS.CE.SECRET", APP, &without_info),
    );
    env.run(&["migrate", APP, "dev-1", "--yes"])
        .code(3)
        .stderr_has("✗ the API key of `ce` lacks RIGHT_APPLICATION_INFO")
        .clean_errors();
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}

// C5: `auth-info` names the entity an API key belongs to.
#[test]
fn an_api_key_of_another_application_is_a_problem() {
    let env = Env::new().with_profiles();
    env.state.add_application(CE, "other-app");
    env.state.set_deployment(
        CE,
        DeploymentSettings::default().application_key("NNSXS.CE.SECRET", "other-app", &LEAST),
    );
    env.run(&["doctor", "--application-id", APP])
        .failure()
        .stdout_says("✗ the API key of `ce` belongs to application `other-app`, not `app-1`: it has no rights on `app-1`")
        .stdout_says("fix: in the Console (https://eu1.cloud.thethings.network/console), add an API key to application `app-1`")
        .clean_errors();
}

// D4: an access token deleted by a parallel refresh is a login problem, not a missing device.
#[test]
fn a_deleted_access_token_says_to_log_in_again() {
    let env = Env::new().with_profiles();
    env.state.add_fault(
        Fault::failing(
            "auth-info",
            ttn_lw_cli_double::errors::defs::token_not_found(),
        )
        .on(CE),
    );
    env.run(&["doctor"])
        .failure()
        .stdout_says("✗ source login `ce`: the OAuth access token is gone (token_not_found)")
        .clean_errors();
}
