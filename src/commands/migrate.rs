//! `migrate`, `resume` and `rollback`: each reads as parse → plan → check → confirm → run →
//! report. The batch (checks, question, workers, dry run, summary) is in [`crate::batch`].

use std::path::Path;

use anyhow::{bail, Context as _, Result};

use super::{retry_policy, Context};
use crate::batch::{self, Batch};
use crate::cli::{MigrateArgs, ResumeArgs, RollbackArgs};
use crate::device::{validate_id, ActivationMode};
use crate::journal::{Manifest, WorkDir};
use crate::lifecycle::Goal;
use crate::outcome::DeviceReport;
use crate::output;
use crate::plan::Migration;
use crate::runner::position_of;
use crate::selection::{self, Selection, MAX_PAGE_SIZE};

pub fn migrate(context: &Context, args: &MigrateArgs) -> Result<bool> {
    // Parse.
    validate_id("application ID", &args.application_id)?;
    let target_application = args
        .to_application
        .clone()
        .unwrap_or_else(|| args.application_id.clone());
    validate_id("target application ID", &target_application)?;
    let selection = Selection::of(&args.devices, args.devices_file.as_deref(), args.all);
    let given = selection::given_devices(&selection, &args.exclude)?;
    check_report(args.report.as_deref())?;

    // Plan.
    let store = context.profiles()?;
    let source = store
        .resolve(&args.from)
        .context("source profile (--from)")?;
    let target = store.resolve(&args.to).context("target profile (--to)")?;
    if source.path == target.path && args.application_id == target_application {
        bail!("the source and the target are the same application on the same deployment; check --from, --to and --to-application");
    }
    let cli = context.ttn_lw_cli(Some(&args.calls))?;
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
    };
    let work_path = batch::planned_work_dir(args.work_dir.as_deref());
    WorkDir::check_new(&work_path)?;
    let page_size = args.page_size as usize;
    if args.dry_run {
        batch::print_dry_run_header(&migration);
    }
    let ran = |invocation: &crate::ttn_lw_cli::Invocation, what: &str| {
        if args.dry_run {
            println!("{}  # ran: {what}", cli.render(invocation));
        }
    };
    let devices = match given {
        Some(devices) => devices,
        None => {
            let listed = selection::list_device_ids(
                &cli,
                &migration.source,
                &migration.application_id,
                page_size,
                &mut |list, found| ran(list, &format!("{found} devices on this page")),
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot list application `{}` on the source ({}): {e}. Check the application ID and the login's rights",
                    migration.application_id,
                    migration.source.deployment()
                )
            })?;
            selection::listed_devices(listed, &args.exclude)?
        }
    };
    if devices.is_empty() {
        eprintln!("No devices to migrate: the selection is empty.");
        return Ok(true);
    }

    // Check.
    let gateways = super::checks::before_first_delete(context, args, &cli, &migration)?;
    let conflicts = batch::preflight(
        &cli,
        &migration,
        &devices,
        page_size,
        !args.skip_checks,
        &mut { ran },
    )?;
    if args.dry_run {
        let reports = batch::dry_run(&cli, &migration, &devices, &conflicts, &work_path);
        super::checks::print_dry_run_gateways(gateways.as_ref(), &exported(&reports));
        return Ok(batch::finish_dry_run(&reports));
    }
    let (mut reports, to_run) = batch::split_conflicts(&devices, &conflicts, &migration);

    // Confirm.
    super::checks::warn_before_confirmation(gateways.as_ref(), to_run.len());
    batch::confirm_migration(&migration, &to_run, args.yes)?;

    // Run.
    let work = WorkDir::create(&work_path)?;
    work.write_manifest(&migration.manifest(&devices))?;
    if !context.cli.quiet {
        eprintln!(
            "Work directory: {} (exports and journals; keep it until the devices are verified)",
            work.path().display()
        );
    }
    for report in &reports {
        println!("{}", output::device_line(report));
    }
    let batch = Batch {
        goal: Goal::Migrate,
        jobs: args.jobs,
        fail_fast: args.fail_fast,
        rollback_on_failure: !args.no_rollback,
        retry: retry_policy(&args.calls),
        quiet: context.cli.quiet,
        breaker_after: args.calls.max_target_failures as usize,
    };
    reports.extend(batch::run(&cli, &migration, &work, &to_run, &batch));

    // Report.
    let succeeded = batch::finish(&reports, work.path());
    super::checks::warn_after_run(gateways.as_ref(), &reports);
    batch::write_report(args.report.as_deref(), &reports)?;
    Ok(succeeded)
}

pub fn resume(context: &Context, args: &ResumeArgs) -> Result<bool> {
    check_report(args.report.as_deref())?;
    let work = WorkDir::open(&args.work_dir)?;
    let manifest = work.read_manifest()?;
    let mut unfinished = Vec::new();
    let mut finished = Vec::new();
    // Every journal first: a damaged one stops everything before anything changes.
    for device in &manifest.devices {
        let position = position_of(&work, device)?;
        if position.is_final() {
            finished.push(format!("{device}: {}", position.describe()));
        } else {
            unfinished.push(device.clone());
        }
    }
    if unfinished.is_empty() {
        println!(
            "Nothing to resume: all {} devices of {} are finished.",
            manifest.devices.len(),
            work.path().display()
        );
        for line in finished {
            println!("  {line}");
        }
        return Ok(true);
    }
    let migration = recorded_migration(context, &manifest)?;
    let cli = context.ttn_lw_cli(Some(&args.calls))?;
    // Devices that never started must pass the same conflict check as in `migrate`.
    let fresh: Vec<String> = unfinished
        .iter()
        .filter(|d| !work.has_journal(d))
        .cloned()
        .collect();
    let conflicts = if fresh.is_empty() {
        Default::default()
    } else {
        batch::preflight(
            &cli,
            &migration,
            &fresh,
            MAX_PAGE_SIZE,
            false,
            &mut |_, _| {},
        )?
    };
    let (mut reports, to_run) = batch::split_conflicts(&unfinished, &conflicts, &migration);
    let batch = Batch {
        goal: Goal::Migrate,
        jobs: args.jobs,
        fail_fast: args.fail_fast,
        rollback_on_failure: !args.no_rollback,
        retry: retry_policy(&args.calls),
        quiet: context.cli.quiet,
        breaker_after: args.calls.max_target_failures as usize,
    };
    reports.extend(batch::run(&cli, &migration, &work, &to_run, &batch));
    let succeeded = batch::finish(&reports, work.path());
    batch::write_report(args.report.as_deref(), &reports)?;
    Ok(succeeded)
}

pub fn rollback(context: &Context, args: &RollbackArgs) -> Result<bool> {
    let work = WorkDir::open(&args.work_dir)?;
    let manifest = work.read_manifest()?;
    let devices: Vec<String> = if args.devices.is_empty() {
        manifest
            .devices
            .iter()
            .filter(|d| work.has_journal(d))
            .cloned()
            .collect()
    } else {
        for device in &args.devices {
            if !manifest.devices.contains(device) {
                bail!(
                    "device `{device}` is not part of the migration in {}",
                    work.path().display()
                );
            }
        }
        args.devices.clone()
    };
    // Read every journal first: a damaged one stops everything before anything changes.
    for device in &devices {
        position_of(&work, device)?;
    }
    let migration = recorded_migration(context, &manifest)?;
    let cli = context.ttn_lw_cli(Some(&args.calls))?;
    batch::confirm_rollback(&migration, &devices, args.yes)?;
    let batch = Batch {
        goal: Goal::Rollback,
        jobs: 1,
        fail_fast: false,
        rollback_on_failure: false,
        retry: retry_policy(&args.calls),
        quiet: context.cli.quiet,
        breaker_after: args.calls.max_target_failures as usize,
    };
    let reports = batch::run(&cli, &migration, &work, &devices, &batch);
    Ok(batch::finish(&reports, work.path()))
}

/// `--report FILE` is checked before anything runs.
fn check_report(report: Option<&Path>) -> Result<()> {
    match report {
        Some(path) => crate::report::check_destination(path),
        None => Ok(()),
    }
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
fn recorded_migration(context: &Context, manifest: &Manifest) -> Result<Migration> {
    let store = context.profiles()?;
    Ok(Migration {
        source: store
            .resolve(&manifest.source.path.display().to_string())
            .context("source profile of the migration")?,
        target: store
            .resolve(&manifest.target.path.display().to_string())
            .context("target profile of the migration")?,
        application_id: manifest.application_id.clone(),
        target_application_id: manifest.target_application_id.clone(),
        mode: manifest.mode,
        freeze_downlinks: manifest.freeze_downlinks,
    })
}
