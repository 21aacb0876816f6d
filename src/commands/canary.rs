//! `migrate --canary N --watch DURATION`: migrate N devices first, wait until they are heard on
//! the target, and only then go on with the rest. A canary that is not migrated, or stays
//! silent for the whole duration, stops the run before the rest is touched: the operator learns
//! whether the gateways are right before a fleet moves.

use std::time::Duration;

use anyhow::Result;

use super::watch::{watch_work_dir, WatchOptions};
use super::Context;
use crate::batch::{self, Batch};
use crate::journal::WorkDir;
use crate::next_step::NextStep;
use crate::outcome::{self, DeviceReport, Outcome};
use crate::plan::Migration;
use crate::runner::Calls;
use crate::ttn_lw_cli::quote;

/// How the canary phase ended.
pub enum Canary {
    /// Every canary was heard: the rest ran.
    WentOn,
    /// The rest was not touched: why, and the command that rolls the canaries back.
    Stopped {
        why: String,
        rollback: Option<String>,
    },
}

/// Runs the first `count` devices, watches them for `watch`, then the rest if they were heard.
#[allow(clippy::too_many_arguments)]
pub fn run(
    context: &Context,
    calls: &dyn Calls,
    migration: &Migration,
    work: &WorkDir,
    devices: &[String],
    batch: &Batch,
    count: usize,
    watch: Duration,
) -> Result<(Vec<DeviceReport>, Canary)> {
    let (canaries, rest) = devices.split_at(count.min(devices.len()));
    if !context.cli.quiet {
        crate::terminal::eprint_wrapped(&format!(
            "Canary: migrating {} first ({}); the rest ({}) waits until the canaries are heard on the target.",
            outcome::count(canaries.len(), "device", "devices"),
            canaries.join(", "),
            outcome::count(rest.len(), "device", "devices")
        ));
    }
    let mut reports = batch::run(calls, migration, work, canaries, batch);
    let migrated: Vec<&str> = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Migrated)
        .map(|r| r.device_id.as_str())
        .collect();
    let not_migrated: Vec<&str> = reports
        .iter()
        .filter(|r| r.outcome != Outcome::Migrated)
        .map(|r| r.device_id.as_str())
        .collect();
    let rollback = (!migrated.is_empty()).then(|| rollback_command(work, &migrated));
    let why = if !not_migrated.is_empty() {
        let (canary, was) = match not_migrated.len() {
            1 => ("canary", "was"),
            _ => ("canaries", "were"),
        };
        Some(format!(
            "the {canary} {} {was} not migrated (see above), so the rest ({}) was not touched",
            not_migrated.join(", "),
            outcome::count(rest.len(), "device", "devices")
        ))
    } else {
        if !context.cli.quiet {
            crate::terminal::eprint_wrapped(&format!(
                "\nCanary: waiting up to {} for {} to be heard on the target.",
                humantime::format_duration(watch),
                outcome::count(canaries.len(), "device", "devices")
            ));
        }
        let heard = watch_work_dir(context, work, &WatchOptions::for_duration(watch))?;
        (!heard).then(|| {
            format!(
                "a canary stayed silent on the target for {} (see the silent line above): its \
                 gateways do not reach the target yet, so the rest ({}) was not touched: it would \
                 go dark the same way",
                humantime::format_duration(watch),
                outcome::count(rest.len(), "device", "devices")
            )
        })
    };
    // Ctrl-C during the canaries or their watch: the rest does not start.
    let why = why.or_else(|| {
        crate::interrupt::was_interrupted().then(|| {
            format!(
                "stopped by a signal, so the rest ({}) was not touched",
                outcome::count(rest.len(), "device", "devices")
            )
        })
    });
    if let Some(why) = why {
        reports.extend(
            rest.iter()
                .map(|device| not_started(migration, work, device)),
        );
        return Ok((reports, Canary::Stopped { why, rollback }));
    }
    if rest.is_empty() {
        return Ok((reports, Canary::WentOn));
    }
    if !context.cli.quiet {
        crate::terminal::eprint_wrapped(&format!(
            "\nCanary: every canary was heard on the target; migrating the rest ({}).",
            outcome::count(rest.len(), "device", "devices")
        ));
    }
    // At the target's rate the canaries learned, if they met its limit.
    let batch = match work.read_manifest() {
        Ok(manifest) => batch.continued(&manifest),
        Err(_) => batch.clone(),
    };
    reports.extend(batch::run(calls, migration, work, rest, &batch));
    Ok((reports, Canary::WentOn))
}

/// A device the canary phase kept from starting: still on the source; `resume` continues it.
fn not_started(migration: &Migration, work: &WorkDir, device: &str) -> DeviceReport {
    let mut report = DeviceReport::new(
        device,
        &migration.application_id,
        &migration.target_application_id,
    );
    report.outcome = Outcome::Interrupted;
    report.resumable = true;
    report.error = Some("not started: the canaries were not all heard on the target".into());
    report.next_action = Some(NextStep::FixThenResume {
        work_dir: work.path().to_path_buf(),
    });
    report
}

fn rollback_command(work: &WorkDir, devices: &[&str]) -> String {
    let mut command = format!(
        "ttn-session-migrate rollback {}",
        quote(&work.path().display().to_string())
    );
    for device in devices {
        command.push(' ');
        command.push_str(&quote(device));
    }
    command
}
