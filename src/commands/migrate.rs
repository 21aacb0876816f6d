//! `migrate`, `resume` and `rollback`: each reads as parse → plan → check → confirm → run →
//! report. The batch (checks, question, workers, dry run, summary) is in [`crate::batch`].
//!
//! Exit status (see [`crate::exit`]): an error while parsing is a usage error (2); an error
//! before the first change is a refusal (3); after the run, the devices decide (0, 1, 130).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::canary::Canary;
use super::watch::WatchOptions;
use super::{retry_policy, Context};
use crate::batch::{self, Batch};
use crate::cli::{MigrateArgs, ResumeArgs, RollbackArgs};
use crate::device::{validate_id, ActivationMode};
use crate::exit::{refused, usage, Exit, ResultExt as _};
use crate::journal::{Manifest, WorkDir};
use crate::lifecycle::Goal;
use crate::outcome::{count, first_few, DeviceReport, Outcome};
use crate::output::{self, outln, Activity};
use crate::plan::Migration;
use crate::report::Destination;
use crate::runner::position_of;
use crate::selection::{self, Selection, MAX_PAGE_SIZE};
use crate::status;
use crate::survey::{self, Prefetched};

/// The `--jobs` of a resume whose migration did not record one.
const DEFAULT_JOBS: u32 = 4;

pub fn migrate(context: &Context, args: &MigrateArgs) -> Result<Exit> {
    // Parse.
    validate_id("application ID", &args.application_id).or_usage()?;
    let target_application = args
        .to_application
        .clone()
        .unwrap_or_else(|| args.application_id.clone());
    validate_id("target application ID", &target_application).or_usage()?;
    let selection = Selection::of(&args.devices, args.devices_file.as_deref(), args.all);
    let given = selection::given_devices(&selection, &args.exclude)?;
    let report = report_destination(args.report.as_deref())?;
    let work_path = batch::planned_work_dir(args.work_dir.as_deref());
    WorkDir::check_new(&work_path)?;

    // Plan.
    let store = context.profiles().or_refused()?;
    let source = store
        .resolve(&args.from)
        .context("source profile (--from)")
        .or_refused()?;
    let target = store
        .resolve(&args.to)
        .context("target profile (--to)")
        .or_refused()?;
    if source.path == target.path && args.application_id == target_application {
        return Err(usage("the source and the target are the same application on the same deployment; check --from, --to and --to-application"));
    }
    let cli = context.ttn_lw_cli(Some(&args.calls)).or_refused()?;
    let cli_version = cli.version().or_refused()?;
    let migration = Migration {
        source,
        target,
        application_id: args.application_id.clone(),
        target_application_id: target_application,
        mode: match (args.otaa, args.abp) {
            (true, _) => Some(ActivationMode::Otaa),
            (_, true) => Some(ActivationMode::Abp),
            _ => None,
        },
        freeze_downlinks: args.freeze_downlinks,
        cli_version,
    };
    let page_size = args.page_size as usize;
    if args.dry_run {
        batch::print_dry_run_header(&migration);
    }
    let ran = |invocation: &crate::ttn_lw_cli::Invocation, what: &str| {
        if args.dry_run {
            outln!("{}  # ran: {what}", cli.render(invocation));
        }
    };

    // Check: nothing below changes a deployment; every error is a refusal (or a typo).
    let activity = Activity::start(
        context.cli.quiet || args.dry_run,
        "checking ttn-lw-cli, the profiles and the logins",
    );
    let gateways = super::checks::before_first_delete(context, args, &cli, &migration, &activity)?;
    activity.set(&format!(
        "listing application {} on the source",
        migration.application_id
    ));
    let listed = selection::list_device_ids(
        &cli,
        &migration.source,
        &migration.application_id,
        page_size,
        &mut |list, found| ran(list, &count(found, "device on this page", "devices on this page")),
    )
    .map_err(|e| {
        refused(format!(
            "cannot list application `{}` on the source ({}): {e}. Check the application ID and the login's rights",
            migration.application_id,
            migration.source.deployment()
        ))
    })?;
    let devices = match given {
        Some(devices) => {
            let missing = selection::missing_on_source(&devices, &listed);
            if !missing.is_empty() {
                return Err(usage(format!(
                    "{} not in application `{}` on the source ({}); nothing was run: {}",
                    count(missing.len(), "device is", "devices are"),
                    migration.application_id,
                    migration.source.deployment(),
                    missing.join(", ")
                )));
            }
            devices
        }
        None => selection::listed_devices(listed, &args.exclude)?,
    };
    if devices.is_empty() {
        drop(activity);
        eprintln!("No devices to migrate: the selection is empty.");
        return Ok(Exit::Done);
    }
    activity.set(&format!(
        "listing application {} on the target",
        migration.target_application_id
    ));
    let conflicts = batch::preflight(
        &cli,
        &migration,
        &devices,
        page_size,
        !args.skip_checks,
        &mut { ran },
    )
    .or_refused()?;
    drop(activity);
    if args.dry_run {
        let reports = batch::dry_run(
            &cli,
            &migration,
            &devices,
            &conflicts,
            &work_path,
            Goal::Migrate,
            match args.require_gateways {
                true => batch::Survey::RequireGateways,
                false => batch::Survey::Gateways,
            },
        );
        super::checks::print_dry_run_gateways(gateways.as_ref(), &exported(&reports));
        batch::write_report(report.as_ref(), &reports)?;
        return Ok(batch::finish_dry_run(&reports, Goal::Migrate));
    }
    let (mut reports, mut to_run) = batch::split_conflicts(&devices, &conflicts, &migration);
    for report in &reports {
        output::out_line(&output::device_line(report));
    }
    // The detections, before the question: the gateway summary above it, and the run reuses
    // them. `--otaa`/`--abp` skip the detection, and with it the fields beyond the export.
    // (`--freeze-downlinks` detects anyway, to restore the setting.)
    if let (Some(mode), false, false) = (
        migration.mode,
        migration.freeze_downlinks,
        to_run.is_empty(),
    ) {
        super::checks::warn_without_detection(mode, context.cli.quiet);
    }
    let survey = (survey::wanted(&migration) && !to_run.is_empty())
        .then(|| survey::survey(&cli, &migration, &to_run, args.jobs));
    if let Some(survey) = &survey {
        let summary = survey.summary(&cli, &migration.target.path);
        if !context.cli.quiet {
            crate::terminal::eprint_wrapped(&survey::headline(&migration, survey));
            eprintln!("{}", summary.render(crate::terminal::width()));
        }
        if args.require_gateways {
            let refused = survey.refusals(&summary);
            to_run.retain(|device| !refused.iter().any(|(d, _)| d == device));
            for (device, reason) in &refused {
                let report = survey::refused(&migration, device, reason);
                output::out_line(&output::device_line(&report));
                reports.push(report);
            }
        }
    }
    if to_run.is_empty() {
        // Every device is a conflict or refused: nothing to do, nothing changed.
        let exit = batch::finish(&reports, &work_path, Goal::Migrate);
        batch::write_report(report.as_ref(), &reports)?;
        return Ok(exit);
    }

    // Confirm.
    super::checks::warn_before_confirmation(gateways.as_ref(), to_run.len(), context.cli.quiet);
    batch::confirm_migration(&migration, &to_run, args.yes)?;

    // Run.
    let work = WorkDir::create(&work_path).or_refused()?;
    // Devices refused before the question stay out of the work directory: `resume` never runs
    // them without the gateway check.
    let recorded: Vec<String> = devices
        .iter()
        .filter(|d| to_run.contains(d) || conflicts.contains(*d))
        .cloned()
        .collect();
    let mut manifest = migration.manifest(&recorded);
    manifest.jobs = Some(args.jobs);
    manifest.target_rate = args.target_rate;
    manifest.target_burst = args.target_burst;
    work.write_manifest(&manifest).or_refused()?;
    if !context.cli.quiet {
        crate::terminal::eprint_wrapped(&format!(
            "Work directory: {} (exports with keys, and journals: keep it private until the devices are verified)",
            work.path().display()
        ));
    }
    let batch = Batch {
        goal: Goal::Migrate,
        jobs: args.jobs,
        fail_fast: args.fail_fast,
        rollback_on_failure: !args.no_rollback,
        retry: retry_policy(&args.calls),
        quiet: context.cli.quiet,
        breaker_after: args.calls.max_target_failures as usize,
        target_rate: args.target_rate,
        target_burst: args.target_burst,
        target_emptied: None,
    };
    let calls = Prefetched {
        inner: &cli,
        survey: survey.as_ref(),
        echo: false,
    };
    let canary = match (args.canary, args.watch) {
        (Some(count), Some(watch)) => {
            let (ran, canary) = super::canary::run(
                context,
                &calls,
                &migration,
                &work,
                &to_run,
                &batch,
                count as usize,
                watch,
            )?;
            reports.extend(ran);
            canary
        }
        _ => {
            reports.extend(batch::run(&calls, &migration, &work, &to_run, &batch));
            Canary::WentOn
        }
    };

    // Report.
    let exit = batch::finish(&reports, work.path(), Goal::Migrate);
    super::checks::warn_after_run(gateways.as_ref(), &reports, context.cli.quiet);
    batch::write_report(report.as_ref(), &reports)?;
    if let Canary::Stopped { why, rollback } = canary {
        let mut text = format!("\nStopped after the canaries: {why}.");
        if let Some(rollback) = rollback {
            text.push_str(&format!("\nRoll the canaries back with: {rollback}"));
        }
        text.push_str(&format!(
            "\nOr connect the gateways to the target and continue with: {}",
            batch::resume_command(work.path())
        ));
        crate::terminal::eprint_wrapped(&text);
        return Ok(match exit {
            Exit::Done => Exit::Failed,
            other => other,
        });
    }

    // Heard on the target.
    let heard = match args.watch {
        Some(watch) if reports.iter().any(|r| r.outcome == Outcome::Migrated) => {
            eprintln!();
            super::watch::watch_work_dir(context, &work, &WatchOptions::for_duration(watch))?
        }
        _ => true,
    };
    Ok(match (exit, heard) {
        (Exit::Done, false) => Exit::Failed,
        (exit, _) => exit,
    })
}

pub fn resume(context: &Context, args: &ResumeArgs) -> Result<Exit> {
    let report = report_destination(args.report.as_deref())?;
    let work = WorkDir::open(&args.work_dir).or_refused()?;
    let manifest = work.read_manifest().or_refused()?;
    // Every journal first: a damaged one stops everything before anything changes.
    let status = status::of(&work, &manifest, !args.no_rollback).or_refused()?;
    let unfinished: Vec<String> = status
        .devices
        .iter()
        .filter(|d| !d.finished)
        .map(|d| d.device_id.clone())
        .collect();
    if unfinished.is_empty() {
        outln!(
            "Nothing to resume: all {} of {} are finished.",
            count(manifest.devices.len(), "device", "devices"),
            work.path().display()
        );
        for device in &status.devices {
            outln!("  {}: {}", device.device_id, device.location);
        }
        return Ok(Exit::Done);
    }
    let migration = recorded_migration(context, &manifest).or_refused()?;
    let cli = context.ttn_lw_cli(Some(&args.calls)).or_refused()?;
    if !context.cli.quiet {
        crate::terminal::eprint_wrapped(&status::header(&work, &manifest, &status));
    }
    // Devices that never started must pass the same conflict check as in `migrate`.
    let fresh: Vec<String> = unfinished
        .iter()
        .filter(|d| !work.has_journal(d))
        .cloned()
        .collect();
    let conflicts = if fresh.is_empty() {
        Default::default()
    } else {
        let activity = Activity::start(
            context.cli.quiet || args.dry_run,
            &format!(
                "listing application {} on the target",
                migration.target_application_id
            ),
        );
        let conflicts = batch::preflight(
            &cli,
            &migration,
            &fresh,
            MAX_PAGE_SIZE,
            false,
            &mut |_, _| {},
        )
        .or_refused()?;
        drop(activity);
        conflicts
    };
    if args.dry_run {
        batch::print_dry_run_header(&migration);
        let reports = batch::dry_run(
            &cli,
            &migration,
            &unfinished,
            &conflicts,
            work.path(),
            Goal::Migrate,
            batch::Survey::None,
        );
        batch::write_report(report.as_ref(), &reports)?;
        return Ok(batch::finish_dry_run(&reports, Goal::Migrate));
    }
    let (mut reports, to_run) = batch::split_conflicts(&unfinished, &conflicts, &migration);
    for report in &reports {
        output::out_line(&output::device_line(report));
    }
    let starting: Vec<String> = fresh
        .iter()
        .filter(|d| !conflicts.contains(*d))
        .cloned()
        .collect();
    if !starting.is_empty() {
        batch::ask(
            &format!(
                "Start {} that never started ({}), from {} to {}? Each is deleted from the source once its export is saved.",
                count(starting.len(), "device", "devices"),
                first_few(&starting, 5),
                migration.source.deployment(),
                migration.target.deployment()
            ),
            args.yes,
        )?;
    }
    let batch = Batch {
        goal: Goal::Migrate,
        jobs: args.jobs.or(manifest.jobs).unwrap_or(DEFAULT_JOBS),
        fail_fast: args.fail_fast,
        rollback_on_failure: !args.no_rollback,
        retry: retry_policy(&args.calls),
        quiet: context.cli.quiet,
        breaker_after: args.calls.max_target_failures as usize,
        target_rate: args.target_rate.or(manifest.target_rate),
        // A rate given to `resume` comes with the default burst; else the migration's.
        target_burst: match args.target_rate {
            Some(_) => None,
            None => manifest.target_burst,
        },
        target_emptied: None,
    }
    .continued(&manifest);
    reports.extend(batch::run(&cli, &migration, &work, &to_run, &batch));
    let exit = batch::finish(&reports, work.path(), Goal::Migrate);
    batch::write_report(report.as_ref(), &reports)?;
    Ok(exit)
}

pub fn rollback(context: &Context, args: &RollbackArgs) -> Result<Exit> {
    let work = WorkDir::open(&args.work_dir).or_refused()?;
    let manifest = work.read_manifest().or_refused()?;
    let devices: Vec<String> = if args.devices.is_empty() {
        manifest
            .devices
            .iter()
            .filter(|d| work.has_journal(d))
            .cloned()
            .collect()
    } else {
        named_devices(&args.devices, &manifest, work.path())?
    };
    // Read every journal first: a damaged one stops everything before anything changes.
    for device in &devices {
        position_of(&work, device).or_refused()?;
    }
    let migration = recorded_migration(context, &manifest).or_refused()?;
    let cli = context.ttn_lw_cli(Some(&args.calls)).or_refused()?;
    if args.dry_run {
        batch::print_dry_run_header(&migration);
        let reports = batch::dry_run(
            &cli,
            &migration,
            &devices,
            &BTreeSet::new(),
            work.path(),
            Goal::Rollback,
            batch::Survey::None,
        );
        return Ok(batch::finish_dry_run(&reports, Goal::Rollback));
    }
    batch::confirm_rollback(&migration, &devices, args.yes)?;
    let batch = Batch {
        goal: Goal::Rollback,
        jobs: 1,
        fail_fast: false,
        rollback_on_failure: false,
        retry: retry_policy(&args.calls),
        quiet: context.cli.quiet,
        breaker_after: args.calls.max_target_failures as usize,
        // A rollback creates on the source.
        target_rate: None,
        target_burst: None,
        target_emptied: None,
    };
    let reports = batch::run(&cli, &migration, &work, &devices, &batch);
    Ok(batch::finish(&reports, work.path(), Goal::Rollback))
}

/// Devices named on the command line of `rollback`: each once, each part of the migration.
fn named_devices(named: &[String], manifest: &Manifest, work: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let mut repeated = BTreeSet::new();
    for device in named {
        if !seen.insert(device) && repeated.insert(device) {
            problems.push(format!("`{device}` is given more than once"));
        }
    }
    for device in &seen {
        if !manifest.devices.contains(device) {
            problems.push(format!(
                "`{device}` is not part of the migration in {}",
                work.display()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(usage(format!("nothing was run: {}", problems.join("; "))));
    }
    Ok(named.to_vec())
}

/// `--report` is checked before anything runs; `-` sends the human output to stderr.
fn report_destination(report: Option<&Path>) -> Result<Option<Destination>> {
    let Some(path) = report else { return Ok(None) };
    let destination = crate::report::destination(path)?;
    if destination == Destination::Stdout {
        output::results_to_stderr();
    }
    Ok(Some(destination))
}

/// The devices a dry run exported, with their DevAddr.
fn exported(reports: &[DeviceReport]) -> Vec<(String, Option<String>)> {
    reports
        .iter()
        .filter_map(|r| {
            r.session
                .as_ref()
                .map(|s| (r.device_id.clone(), s.dev_addr.clone()))
        })
        .collect()
}

/// The migration a work directory records, with its profiles resolved again.
pub fn recorded_migration(context: &Context, manifest: &Manifest) -> Result<Migration> {
    let store = context.profiles()?;
    // A removed profile: say which one, and how to bring it back (the path is pinned).
    let resolve = |side: &str, record: &crate::journal::ProfileRecord| {
        store
            .resolve(&record.path.display().to_string())
            .with_context(|| {
                format!(
                    "{side} profile `{}` of the migration; re-create it at {} (`ttn-session-migrate profile add {} --host HOST`, then log in)",
                    record.label,
                    record.path.display(),
                    record.label
                )
            })
    };
    let cli_version = context.ttn_lw_cli(None)?.version()?;
    Ok(Migration {
        source: resolve("source", &manifest.source)?,
        target: resolve("target", &manifest.target)?,
        application_id: manifest.application_id.clone(),
        target_application_id: manifest.target_application_id.clone(),
        mode: manifest.mode,
        freeze_downlinks: manifest.freeze_downlinks,
        cli_version,
    })
}
