//! `completions`, `man` and `--help`: generated from the one clap definition.

mod common;

use common::*;

#[test]
fn bash_completions_are_a_valid_script() {
    let env = Env::new();
    let run = env
        .run(&["completions", "bash"])
        .success()
        .stdout_has("ttn-session-migrate")
        .stdout_has("doctor");
    let script = env.root().join("completions.bash");
    std::fs::write(&script, &run.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert!(
        check.status.success(),
        "bash -n rejected the script: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn every_shell_gets_completions() {
    let env = Env::new();
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        env.run(&["completions", shell])
            .success()
            .stdout_has("migrate");
    }
    env.run(&["completions", "tcsh"])
        .code(2)
        .stderr_has("invalid value 'tcsh'");
}

#[test]
fn the_man_page_is_roff_of_the_same_definition() {
    let env = Env::new();
    env.run(&["man"])
        .success()
        .stdout_has(".TH ttn-session-migrate 1")
        .stdout_has("doctor")
        .stdout_has("TTN_SESSION_MIGRATE_PROFILES");
}

#[test]
fn man_out_dir_writes_one_page_per_sub_command() {
    let env = Env::new();
    env.run(&["man", "--out-dir", "man1"]).success();
    for page in [
        "ttn-session-migrate.1",
        "ttn-session-migrate-migrate.1",
        "ttn-session-migrate-doctor.1",
    ] {
        let text = std::fs::read_to_string(env.cwd().join("man1").join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page} is not roff");
    }
}

#[test]
fn every_sub_command_help_has_a_summary_an_example_and_the_environment() {
    let env = Env::new();
    for command in [
        &["migrate"][..],
        &["resume"],
        &["rollback"],
        &["login"],
        &["doctor"],
        &["completions"],
        &["man"],
        &["profile", "add"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let run = env.run(&args).success();
        let summary = run.stdout.lines().next().unwrap_or_default();
        assert!(
            !summary.is_empty() && !summary.starts_with("Usage"),
            "{command:?}: no summary line:\n{}",
            run.stdout
        );
        for needle in [
            "Example",
            "TTN_LW_CLI",
            "TTN_SESSION_MIGRATE_PROFILES",
            "NO_COLOR",
        ] {
            assert!(
                run.stdout.contains(needle),
                "{command:?} --help lacks {needle}:\n{}",
                run.stdout
            );
        }
    }
}

#[test]
fn errors_are_sentences_not_debug_output() {
    let env = Env::new();
    env.run(&["migrate", "app-1", "dev-1", "--yes"])
        .failure()
        .stderr_has("error: source profile (--from): profile `ce` does not exist")
        .clean_errors();
    env.cmd()
        .args(&["migrate", "app-1", "dev-1", "--yes"])
        .env("TTN_SESSION_MIGRATE_PROFILES", "/nonexistent/dir")
        .run()
        .failure()
        .clean_errors();
}
