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

/// What bash offers for the words typed so far (the last one is being completed), with the
/// script sourced the way bash-completion loads it and the function `complete -p` names.
fn bash_complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let words: Vec<String> = words
        .iter()
        .map(|w| shlex::try_quote(w).unwrap().into_owned())
        .collect();
    let cword = words.len() - 1;
    let program = format!(
        r#"source {script}
function=$(complete -p ttn-session-migrate | sed -E 's/.*-F ([^ ]+).*/\1/')
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
"$function" ttn-session-migrate "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script = shlex::try_quote(script.to_str().unwrap()).unwrap(),
        words = words.join(" "),
    );
    let run = std::process::Command::new("bash")
        .arg("-c")
        .arg(&program)
        .output()
        .expect("bash runs");
    assert!(
        run.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The long options a `--help` lists (the lines that start with an option).
fn long_options_in_help(help: &str) -> Vec<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split([' ', ',', '=']).find(|w| w.starts_with("--")))
        .map(|w| w.trim_end_matches(['.', ':']).to_string())
        .collect()
}

#[test]
fn bash_completes_the_options_of_every_sub_command() {
    let env = Env::new();
    let run = env.run(&["completions", "bash"]).success();
    let script = env.root().join("ttn-session-migrate.bash");
    std::fs::write(&script, &run.stdout).unwrap();

    let offered = |words: &[&str]| bash_complete(&script, words);
    assert!(offered(&["ttn-session-migrate", "mi"]).contains(&"migrate".to_string()));
    assert_eq!(
        offered(&["ttn-session-migrate", "migrate", "app", "--fro"]),
        ["--from"]
    );
    assert_eq!(
        offered(&["ttn-session-migrate", "migrate", "app", "--to-a"]),
        ["--to-application"]
    );
    assert_eq!(
        offered(&["ttn-session-migrate", "login", "ce", "--api"]),
        ["--api-key"]
    );
    assert_eq!(offered(&["ttn-session-migrate", "profile", "a"]), ["add"]);
    assert_eq!(
        offered(&["ttn-session-migrate", "profile", "add", "ce", "--ho"]),
        ["--host"]
    );

    for command in [
        &["migrate"][..],
        &["resume"],
        &["rollback"],
        &["login"],
        &["doctor"],
        &["completions"],
        &["man"],
        &["profile", "add"],
        &["profile", "list"],
    ] {
        let mut help = command.to_vec();
        help.push("--help");
        let documented = long_options_in_help(&env.run(&help).success().stdout);
        assert!(documented.contains(&"--help".to_string()), "{command:?}");
        let mut words = vec!["ttn-session-migrate"];
        words.extend_from_slice(command);
        words.push("--");
        let completed = offered(&words);
        for option in &documented {
            assert!(
                completed.contains(option),
                "`{} <TAB>` does not offer {option}; it offers {completed:?}",
                words.join(" ")
            );
        }
    }
}

/// Whether a shell is installed (zsh and fish are optional on a CI machine).
fn has_shell(shell: &str) -> bool {
    std::process::Command::new(shell)
        .arg("-c")
        .arg("exit 0")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The command lines, and one option each must offer, checked in every shell.
const TYPED: [(&str, &str); 6] = [
    ("ttn-session-migrate mi", "migrate"),
    ("ttn-session-migrate migrate my-app dev-1 --fro", "--from"),
    (
        "ttn-session-migrate migrate my-app --to-a",
        "--to-application",
    ),
    ("ttn-session-migrate rollback w dev-1 --y", "--yes"),
    ("ttn-session-migrate login ce --api", "--api-key"),
    ("ttn-session-migrate profile add ce --ho", "--host"),
];

/// Types a line into an interactive zsh on a pseudo-terminal (zpty), presses TAB, and prints
/// every candidate the completion system adds.
const ZSH_CAPTURE: &str = r#"zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT= ; fpath=($2 \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'comppostfuncs=(_capture_end); _capture_end() { print -r -- "<EN""D>" }'
zpty -w z 'compadd () { builtin compadd -O __hits "$@"; print -rl -- "<HI""T>"${^__hits}; builtin compadd "$@" }'
zpty -w z "bindkey '^I' complete-word"
zpty -n -w z "$1"$'\t'
while zpty -r z line; do
  [[ $line == *'<END>'* ]] && break
  [[ $line == *'<HIT>'* ]] && print -r -- "${${line##*<HIT>}%%$'\r'}"
done
zpty -d z
"#;

#[test]
fn zsh_completes_the_options_of_sub_commands() {
    if !has_shell("zsh") {
        eprintln!("zsh is not installed: zsh completions not driven");
        return;
    }
    let env = Env::new();
    let functions = env.root().join("zsh-functions");
    std::fs::create_dir_all(&functions).unwrap();
    let run = env.run(&["completions", "zsh"]).success();
    std::fs::write(functions.join("_ttn-session-migrate"), &run.stdout).unwrap();
    let capture = env.root().join("capture.zsh");
    std::fs::write(&capture, ZSH_CAPTURE).unwrap();
    for (line, expected) in TYPED {
        let out = std::process::Command::new("timeout")
            .args(["30", "zsh", "-f"])
            .arg(&capture)
            .arg(line)
            .arg(&functions)
            .output()
            .expect("zsh runs");
        let offered = String::from_utf8_lossy(&out.stdout);
        assert!(
            offered.lines().any(|l| l.trim() == expected),
            "zsh: `{line}<TAB>` does not offer {expected}; it offers {offered:?}"
        );
    }
}

#[test]
fn fish_completes_the_options_of_sub_commands() {
    if !has_shell("fish") {
        eprintln!("fish is not installed: fish completions not driven");
        return;
    }
    let env = Env::new();
    let run = env.run(&["completions", "fish"]).success();
    let script = env.root().join("ttn-session-migrate.fish");
    std::fs::write(&script, &run.stdout).unwrap();
    for (line, expected) in TYPED {
        let out = std::process::Command::new("fish")
            .arg("--no-config")
            .arg("-c")
            .arg(format!(
                "source {}; complete -C {}",
                shlex::try_quote(script.to_str().unwrap()).unwrap(),
                shlex::try_quote(line).unwrap()
            ))
            .output()
            .expect("fish runs");
        let offered = String::from_utf8_lossy(&out.stdout);
        assert!(
            offered
                .lines()
                .any(|l| l.split('\t').next() == Some(expected)),
            "fish: `{line}<TAB>` does not offer {expected}; it offers {offered:?}"
        );
    }
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
    let page = env
        .run(&["man"])
        .success()
        .stdout_has(".TH ttn-session-migrate 1")
        .stdout_has("doctor")
        .stdout_has("TTN_SESSION_MIGRATE_PROFILES")
        .stdout;
    // The one page holds every sub-command with its own options and examples.
    for needle in [
        ".SH \"TTN-SESSION-MIGRATE MIGRATE\"",
        "\\-\\-to\\-application",
        ".SH \"TTN-SESSION-MIGRATE LOGIN\"",
        "\\-\\-api\\-key",
        ".SH \"TTN-SESSION-MIGRATE PROFILE ADD\"",
        "\\-\\-host",
        "rollback ./ttn\\-migrate\\-20261124T101500 my\\-device",
        ".SH ENVIRONMENT",
        ".SH \"EXIT STATUS\"",
        "130  interrupted (Ctrl\\-C)",
    ] {
        assert!(page.contains(needle), "the man page lacks {needle}");
    }
    // The global options once (synopsis and options list), not under every sub-command.
    assert_eq!(page.matches("\\-\\-profiles\\-dir").count(), 2);
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
        .code(3)
        .stderr_has("error: source profile (--from): profile `ce` does not exist")
        .clean_errors();
    env.cmd()
        .args(&["migrate", "app-1", "dev-1", "--yes"])
        .env("TTN_SESSION_MIGRATE_PROFILES", "/nonexistent/dir")
        .run()
        .code(3)
        .clean_errors();
}
