//! `doctor`: every check, one line each, with the command that fixes each problem.

use anyhow::Result;

use super::Context;
use crate::cli::DoctorArgs;
use crate::doctor::{Checkup, Side, Status};
use crate::style::Style;
use crate::ttn_lw_cli::{Invocation, Locator};

/// Runs the checks and prints them. True when nothing is ✗.
pub fn doctor(context: &Context, args: &DoctorArgs) -> Result<bool> {
    let mut ran = |_: &Invocation, _: &str| {};
    let mut checkup = Checkup::new(&mut ran);

    let located = Locator::from_environment(context.cli.ttn_lw_cli.as_deref()).locate();
    let cli = checkup
        .cli(located)
        .map(|cli| cli.with_echo(context.cli.verbose));

    let store = context.profiles()?;
    let source = checkup.profile(&store, Side::Source, &args.from);
    let target = checkup.profile(&store, Side::Target, &args.to);
    if let (Some(source), Some(target)) = (&source, &target) {
        let applications_differ = args
            .to_application
            .as_ref()
            .is_some_and(|to| Some(to) != args.application_id.as_ref());
        checkup.distinct_logins(source, target, applications_differ);
    }

    let target_application = args
        .to_application
        .clone()
        .or_else(|| args.application_id.clone());
    for (side, profile, application) in [
        (Side::Source, &source, args.application_id.as_deref()),
        (Side::Target, &target, target_application.as_deref()),
    ] {
        let what = format!("{} login", side.name());
        let (Some(cli), Some(profile)) = (&cli, profile) else {
            let because = if cli.is_none() {
                "needs a working ttn-lw-cli"
            } else {
                "needs the profile"
            };
            checkup.skipped(&what, because);
            continue;
        };
        let auth = checkup.login(cli, side, profile);
        match (application, auth) {
            (Some(app), Some(auth)) => {
                checkup.scope(side, profile, &auth, app);
                checkup.application(cli, side, profile, app);
            }
            (Some(app), None) => checkup.skipped(
                &format!("application `{app}` on the {}", side.name()),
                "needs a working login",
            ),
            (None, _) => {}
        }
    }
    checkup.environment(std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned()));

    let problems = checkup.problems().len();
    let warnings = checkup.warnings().len();
    if args.json {
        let document = serde_json::json!({
            "ready": problems == 0,
            "problems": problems,
            "warnings": warnings,
            "checks": checkup.findings,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(problems == 0);
    }
    let style = Style::for_stdout();
    for finding in &checkup.findings {
        if !context.cli.quiet || finding.status == Status::Problem {
            // The finding wraps, and its fix under the fix's first word.
            let rendered = finding.render(style);
            let (text, fix) = rendered.split_once('\n').unwrap_or((&rendered, ""));
            println!("{}", crate::terminal::wrap(text));
            if let Some(fix) = fix.strip_prefix("    fix: ") {
                let width = crate::terminal::width();
                println!("{}", crate::terminal::hang("    fix: ", fix, width));
            }
        }
    }
    if problems == 0 {
        println!(
            "\nReady to migrate: no problems{}.",
            match warnings {
                0 => String::new(),
                1 => ", 1 warning".to_string(),
                n => format!(", {n} warnings"),
            }
        );
        if args.application_id.is_none() && !context.cli.quiet {
            println!("Add --application-id APP to check the application on both sides too.");
        }
    } else {
        let closing = format!(
            "\n{problems} problem{} to fix (✗); run `{}` again afterwards.",
            if problems == 1 { "" } else { "s" },
            same_checks_again(args)
        );
        println!("{}", crate::terminal::wrap(&closing));
    }
    Ok(problems == 0)
}

/// The `doctor` command line that repeats these checks, with the options the operator gave.
fn same_checks_again(args: &DoctorArgs) -> String {
    let mut words = vec!["ttn-session-migrate".to_string(), "doctor".into()];
    for (flag, value, default) in [
        ("--from", Some(&args.from), Some("ce")),
        ("--to", Some(&args.to), Some("cloud")),
        ("--application-id", args.application_id.as_ref(), None),
        ("--to-application", args.to_application.as_ref(), None),
    ] {
        if let Some(value) = value.filter(|v| Some(v.as_str()) != default) {
            words.push(flag.into());
            words.push(crate::ttn_lw_cli::quote(value));
        }
    }
    words.join(" ")
}
