//! Profiles and login, against the ttn-lw-cli test double.

mod common;

use common::*;

#[test]
fn profile_add_runs_use_and_keeps_a_credentials_id_per_deployment() {
    let env = Env::new();
    env.run(&["profile", "add", "ce", "--host", CE])
        .success()
        .stdout_has("Community Edition, cluster eu1");
    env.run(&["profile", "add", "cloud", "--host", CLOUD])
        .success()
        .stdout_has("The Things Stack Cloud, tenant acme, cluster eu1");
    let ce = std::fs::read_to_string(env.profile("ce")).unwrap();
    let cloud = std::fs::read_to_string(env.profile("cloud")).unwrap();
    assert!(ce.contains(&format!("credentials-id: {CE}")), "{ce}");
    assert!(
        cloud.contains(&format!("credentials-id: {CLOUD}")),
        "{cloud}"
    );
    // `use` ran in a private directory, never in the operator's.
    assert!(!env.cwd().join(".ttn-lw-cli.yml").exists());
    let use_call = env
        .state
        .calls()
        .into_iter()
        .find(|c| c.command == "use")
        .expect("use ran");
    assert_eq!(use_call.argv.iter().filter(|a| *a == "-c").count(), 1);

    env.run(&["profile", "list"])
        .success()
        .stdout_has("NAME   DEPLOYMENT")
        .stdout_has("ce     The Things Stack Community Edition, cluster eu1  ")
        .stdout_has("cloud  The Things Stack Cloud");
    env.run(&["profile", "show", "cloud"])
        .success()
        .stdout_has(&format!("credentials-id: {CLOUD}"));
}

#[test]
fn profile_add_copies_an_existing_config_file() {
    let env = Env::new();
    let file = env.root().join("my config.yml");
    std::fs::write(
        &file,
        "identity-server-grpc-address: eu1.cloud.thethings.network:8884\nnetwork-server-grpc-address: nam1.cloud.thethings.network:8884\ncredentials-id: mine\n",
    )
    .unwrap();
    env.run(&[
        "profile",
        "add",
        "ce-nam1",
        "--config",
        file.to_str().unwrap(),
    ])
    .success()
    .stdout_has("cluster nam1");
    assert_eq!(
        std::fs::read(env.profile("ce-nam1")).unwrap(),
        std::fs::read(&file).unwrap()
    );
}

#[test]
fn bad_profiles_get_clear_errors_and_nothing_half_written() {
    let env = Env::new();
    env.run(&["profile", "add", "CE", "--host", CE])
        .code(2)
        .stderr_has("invalid profile name `CE`")
        .clean_errors();
    env.run(&["profile", "add", "ce", "--host", "not a host"])
        .failure()
        .stderr_has("invalid_hostname")
        .clean_errors();
    env.run(&[
        "profile",
        "add",
        "ce",
        "--host",
        "eu1.cloud.thethings.industries",
    ])
    .failure()
    .stderr_has("missing_tenant_id")
    .clean_errors();
    let broken = env.root().join("broken.yml");
    std::fs::write(&broken, "identity-server-grpc-address: [").unwrap();
    env.run(&["profile", "add", "x1", "--config", broken.to_str().unwrap()])
        .failure()
        .stderr_has("is not a ttn-lw-cli config file")
        .clean_errors();
    env.run(&["profile", "add", "x2", "--config", "/nowhere.yml"])
        .failure()
        .stderr_has("could not read /nowhere.yml")
        .clean_errors();
    let leftovers: Vec<_> = std::fs::read_dir(env.profiles_dir())
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    env.run(&["profile", "add", "ce", "--host", CE]).success();
    env.run(&["profile", "add", "ce", "--host", CE])
        .failure()
        .stderr_has("profile `ce` already exists");
    env.run(&["profile", "remove", "ce"]).success();
    env.run(&["profile", "show", "ce"])
        .failure()
        .stderr_has("profile `ce` does not exist");
    env.run(&["profile", "add", "ce"]).code(2);
}

#[test]
fn login_with_an_api_key_stores_it_in_the_profiles_slot_and_never_prints_it() {
    let env = Env::new();
    env.run(&["profile", "add", "ce", "--host", CE]).success();
    env.run(&["profile", "add", "cloud", "--host", CLOUD])
        .success();
    env.run(&["-v", "login", "ce", "--api-key", "NNSXS.CE.SECRET"])
        .success()
        .stdout_has("Logged in to The Things Stack Community Edition")
        .stderr_has("login --api-key '<api-key>'");
    env.cmd()
        .args(&["login", "cloud", "--api-key", "-"])
        .stdin("NNSXS.CLOUD.SECRET\n")
        .run()
        .success();
    let cache = std::fs::read_to_string(env.state.root().join("auth-cache.json")).unwrap();
    let cache: serde_json::Value = serde_json::from_str(&cache).unwrap();
    assert_eq!(cache["by_id"][CE]["api_key"], "NNSXS.CE.SECRET");
    assert_eq!(cache["by_id"][CLOUD]["api_key"], "NNSXS.CLOUD.SECRET");
}

#[test]
fn a_key_the_deployment_does_not_know_is_reported_at_login() {
    let env = Env::new();
    env.state.set_deployment(
        CE,
        ttn_lw_cli_double::DeploymentSettings::default()
            .api_key("NNSXS.GOOD.KEY", &["RIGHT_APPLICATION_ALL"]),
    );
    env.run(&["profile", "add", "ce", "--host", CE]).success();
    env.run(&["login", "ce", "--api-key", "NNSXS.BAD.KEY"])
        .failure()
        .stderr_has("api_key_not_found")
        .clean_errors();
}

#[test]
fn a_missing_ttn_lw_cli_names_every_place_looked() {
    let env = Env::new();
    env.cmd()
        .args(&["profile", "add", "ce", "--host", CE])
        .env("PATH", "/nonexistent")
        .run()
        .failure()
        .stderr_says("--ttn-lw-cli, the TTN_LW_CLI environment variable, and for `ttn-lw-cli`, `tti-lw-cli` and `ttn-lw-stack.ttn-lw-cli` (the snap) on PATH")
        .stderr_has("Install The Things Stack CLI")
        .clean_errors();
    env.cmd()
        .args(&[
            "--ttn-lw-cli",
            "/no/such/ttn-lw-cli",
            "profile",
            "add",
            "ce",
            "--host",
            CE,
        ])
        .run()
        .failure()
        .stderr_has("given by --ttn-lw-cli does not exist")
        .clean_errors();
}

#[test]
fn a_cli_older_than_3_12_is_refused() {
    let env = Env::new();
    env.state.set_version("3.11.2");
    env.run(&["profile", "add", "ce", "--host", CE])
        .failure()
        .stderr_has("ttn-lw-cli 3.11.2")
        .stderr_says("needs 3.12 or newer");
}

#[test]
fn profiles_in_a_directory_with_spaces_work() {
    let env = Env::new();
    let dir = env.root().join("my profiles");
    let dir = dir.to_str().unwrap();
    env.cmd()
        .args(&["--profiles-dir", dir, "profile", "add", "ce", "--host", CE])
        .run()
        .success();
    env.cmd()
        .args(&["login", "ce", "--api-key", "NNSXS.A.B"])
        .env("TTN_SESSION_MIGRATE_PROFILES", dir)
        .run()
        .success();
}

#[test]
fn a_rejected_api_key_never_replaces_the_working_login() {
    let env = Env::new();
    env.state.set_deployment(
        CE,
        ttn_lw_cli_double::DeploymentSettings::default()
            .api_key("NNSXS.GOOD.KEY", &["RIGHT_APPLICATION_ALL"]),
    );
    env.run(&["profile", "add", "ce", "--host", CE]).success();
    env.cmd()
        .args(&["login", "ce", "--api-key", "-"])
        .stdin("NNSXS.GOOD.KEY\n")
        .run()
        .success()
        .stdout_has("with an API key (profile `ce`)");

    env.cmd()
        .args(&["login", "ce", "--api-key", "-"])
        .stdin("NNSXS.TYPO.KEY\n")
        .run()
        .failure()
        .stderr_has("does not accept this API key")
        .stderr_has("api_key_not_found")
        .stderr_has("the login of profile `ce` is unchanged")
        .clean_errors();
    // An empty key is a usage error (2), before anything is called.
    env.cmd()
        .args(&["login", "ce", "--api-key", "-"])
        .stdin("\n")
        .run()
        .code(2)
        .stderr_has("the API key is empty");

    // The working key is still the profile's login, and it still works.
    let cache: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.state.root().join("auth-cache.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cache["by_id"][CE]["api_key"], "NNSXS.GOOD.KEY");
    // The rejected key was checked in a slot of its own, and is not left in the cache.
    assert!(!cache.to_string().contains("TYPO"), "{cache}");
    env.run(&["doctor", "--from", "ce", "--to", "ce"])
        .stdout_has("source login `ce` works on");
    let logins_checked = env
        .state
        .calls()
        .into_iter()
        .filter(|c| c.command == "auth-info")
        .count();
    assert!(
        logins_checked >= 3,
        "each key was checked before it was stored"
    );
    // No copy of the profile is left behind.
    let left: Vec<_> = std::fs::read_dir(env.profiles_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["ce.yml"]);
}

#[test]
fn profile_list_json_names_each_deployment() {
    let env = Env::new();
    env.run(&["profile", "list", "--json"])
        .success()
        .stdout_has("[]");
    env.run(&["profile", "add", "ce", "--host", CE]).success();
    env.run(&["profile", "add", "cloud", "--host", CLOUD])
        .success();
    std::fs::write(env.profile("broken"), "identity-server-grpc-address: [").unwrap();
    let run = env.run(&["profile", "list", "--json"]).success();
    let list: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["name"], "broken");
    assert!(list[0]["error"].as_str().unwrap().contains("YAML error"));
    assert_eq!(list[1]["name"], "ce");
    assert_eq!(list[1]["kind"], "community_edition");
    assert_eq!(list[1]["cluster"], "eu1");
    assert_eq!(list[1]["credentials_id"], CE);
    assert_eq!(
        list[1]["file"].as_str().unwrap(),
        env.profile("ce").to_str().unwrap()
    );
    assert_eq!(list[2]["kind"], "cloud");
    assert_eq!(list[2]["tenant"], "acme");
    assert_eq!(
        list[2]["deployment"],
        "The Things Stack Cloud, tenant acme, cluster eu1"
    );
}

#[test]
fn a_failed_oauth_login_names_this_tools_flag_not_ttn_lw_clis() {
    let env = Env::new();
    env.run(&["profile", "add", "ce", "--host", CE]).success();
    // The double has no browser flow: ttn-lw-cli fails and suggests `--callback=false`.
    env.run(&["login", "ce"])
        .failure()
        .stderr_says("`ttn-session-migrate login ce --no-callback`")
        .stderr_says("`ttn-session-migrate login ce --api-key -`");
    env.run(&["login", "ce", "--callback=false"]).code(2);
}

// F30: a header, aligned columns, and profiles sharing one login are marked.
#[test]
fn profile_list_aligns_columns_and_marks_a_shared_login() {
    let env = Env::new();
    env.run(&["profile", "add", "ce", "--host", CE]).success();
    let ce = env.profile("ce").display().to_string();
    env.run(&["profile", "add", "ce2", "--config", &ce])
        .success();
    let run = env.run(&["profile", "list"]).success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME "), "{run:#?}");
    let column = |line: &str| line.find("The Things Stack");
    assert_eq!(column(lines[1]), column(lines[2]), "{run:#?}");
    assert!(lines[1].contains("(shared with ce2)"), "{run:#?}");
    assert!(lines[2].contains("(shared with ce)"), "{run:#?}");
}

/// real-cli-audit.md P7/D13: `-c` takes comma-separated values, so a profile path with a comma
/// would name two files. The tool says so instead of passing it on.
#[test]
fn a_profile_path_with_a_comma_is_refused_with_the_reason() {
    let env = Env::new();
    let config = env.root().join("home/conf,ig");
    std::fs::create_dir_all(&config).unwrap();
    let with_comma = |args: &[&str]| env.cmd().args(args).env("XDG_CONFIG_HOME", &config).run();
    with_comma(&["profile", "add", "ce", "--host", CE]).success();
    with_comma(&["login", "ce", "--api-key", "NNSXS.CE.SECRET"])
        .failure()
        .stderr_has("reads as a list of files")
        .clean_errors();
    assert!(
        env.state.calls().iter().all(|c| c.command != "login"),
        "{:?}",
        env.state.calls()
    );
}
