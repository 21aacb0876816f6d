//! What `migrate` checks before its first delete, and what it tells about gateways.
//!
//! 1. `doctor`'s checks (unless `--skip-checks`): a ✗ stops the migration before anything is
//!    deleted; a ! is printed and the migration goes on.
//! 2. The DevAddr / gateway check (unless `--gateways-migrated`, or the source and the target
//!    are one network): the target's prefixes are read once; the warning is printed above the
//!    confirmation, worded from the source's DevAddr block, and again after the run with the
//!    exact DevAddrs of the migrated devices. A dry run prints the exact list, since it exports
//!    every device.
//!
//! Every call here is read-only, costs O(1) per migration, and is printed by a dry run.

use anyhow::Result;

use super::Context;
use crate::cli::MigrateArgs;
use crate::devaddr::{self, GatewayCheck};
use crate::doctor;
use crate::exit::refused;
use crate::outcome::{DeviceReport, Outcome};
use crate::output::{outln, Activity};
use crate::plan::Migration;
use crate::style::{Colour, Style};
use crate::ttn_lw_cli::{Invocation, TtnLwCli};

/// Runs the checks; returns the gateway check for the warnings, or `None` when acknowledged.
pub fn before_first_delete(
    context: &Context,
    args: &MigrateArgs,
    cli: &TtnLwCli,
    migration: &Migration,
    activity: &Activity,
) -> Result<Option<GatewayCheck>> {
    let mut ran = |invocation: &Invocation, what: &str| {
        if args.dry_run {
            outln!("{}  # ran: {what}", cli.render(invocation));
        }
    };
    if let Some(problem) = cli
        .version()
        .ok()
        .and_then(|version| doctor::unsupported_by(version, migration))
    {
        return Err(refused(problem));
    }
    if !args.skip_checks {
        let checkup = doctor::before_migration(cli, migration, &mut ran);
        if !checkup.problems().is_empty() {
            return Err(refused(doctor::refusal(&checkup)));
        }
        if !context.cli.quiet {
            let style = Style::for_stderr();
            for warning in checkup.warnings() {
                activity.println(&warning.render(style));
            }
        }
    }
    // Within one network (a move between applications of one deployment) the DevAddr stays
    // routed where it is: there is no gateway to move.
    if args.gateways_migrated || devaddr::same_network(&migration.source, &migration.target) {
        return Ok(None);
    }
    activity.set("reading the target's DevAddr prefixes");
    let prefixes = devaddr::read_target_prefixes(cli, &migration.target, &mut ran);
    Ok(Some(GatewayCheck::new(
        &migration.source,
        &migration.target,
        prefixes,
    )))
}

/// `--otaa`/`--abp` skip the detection call: say what stays behind (printed with `--yes` too; not with `--quiet`).
pub fn warn_without_detection(mode: crate::device::ActivationMode, quiet: bool) {
    if quiet {
        return;
    }
    let flag = match mode {
        crate::device::ActivationMode::Otaa => "--otaa",
        crate::device::ActivationMode::Abp => "--abp",
    };
    eprintln!(
        "{}",
        warning_text(&format!(
            "{flag} skips the detection call, so only the documented export's fields travel: \
             class B/C support, attributes, the device model (version_ids), payload formatters, \
             labels and the Join Server's nonce state stay behind, and no gateway summary is \
             shown. Leave {flag} out to carry the whole device (one more read per device)."
        ))
    );
}

/// The warning above the confirmation (printed with `--yes` too; not with `--quiet`).
pub fn warn_before_confirmation(gateways: Option<&GatewayCheck>, devices: usize, quiet: bool) {
    if devices == 0 || quiet {
        return;
    }
    if let Some(warning) = gateways.and_then(|g| g.before_migration(devices)) {
        eprintln!("{}", warning_text(&warning));
    }
}

/// The exact list after the run: the migrated devices whose DevAddr is outside the target's
/// prefixes.
pub fn warn_after_run(gateways: Option<&GatewayCheck>, reports: &[DeviceReport], quiet: bool) {
    let Some(gateways) = gateways.filter(|_| !quiet) else {
        return;
    };
    let migrated: Vec<(String, Option<String>)> = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Migrated)
        .map(|r| {
            (
                r.device_id.clone(),
                r.session.as_ref().and_then(|s| s.dev_addr.clone()),
            )
        })
        .collect();
    if let Some(warning) = gateways.after_export("migrated device", &migrated) {
        eprintln!("{}", warning_text(&warning));
    }
}

/// The exact list of a dry run, as comment lines.
pub fn print_dry_run_gateways(
    gateways: Option<&GatewayCheck>,
    exported: &[(String, Option<String>)],
) {
    let Some(warning) = gateways.and_then(|g| g.after_export("exported device", exported)) else {
        return;
    };
    outln!();
    let text = format!("{warning}\nThe real run asks before its first delete; pass --gateways-migrated once the gateways are moved.");
    outln!("{}", crate::terminal::comment(&text));
}

/// `! Gateways: …`, wrapped to the terminal (the mark is painted after wrapping).
fn warning_text(warning: &str) -> String {
    let width = crate::terminal::width();
    let wrapped: Vec<String> = warning
        .lines()
        .enumerate()
        .map(|(i, line)| match i {
            0 => crate::terminal::wrap_with(&format!("! {line}"), width, 2),
            _ => crate::terminal::wrap_with(&format!("  {line}"), width, 0),
        })
        .collect();
    let wrapped = wrapped.join("\n");
    let mark = Style::for_stderr().paint(Colour::Yellow, "!");
    format!("{mark}{}", &wrapped[1..])
}
