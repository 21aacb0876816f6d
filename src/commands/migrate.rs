//! `migrate`, `resume` and `rollback`: check the input, check both deployments, ask once,
//! then run the devices through the runner and summarise.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use super::{retry_policy, Context};
use crate::cli::{CallOptions, MigrateArgs, ResumeArgs, RollbackArgs};
use crate::device::{validate_id, ActivationMode, DeviceExport};
use crate::interrupt::Interrupt;
use crate::journal::{Manifest, Position, WorkDir};
use crate::output::{self, Summary};
use crate::plan::Migration;
use crate::runner::{DeviceReport, Goal, Outcome, Runner};
use crate::selection::{self, Selection, MAX_PAGE_SIZE};
use crate::ttn_lw_cli::{Invocation, TtnLwCli};

pub fn migrate(context: &Context, args: &MigrateArgs) -> Result<bool> {
    validate_id("application ID", &args.application_id)?;
    let target_application = args
        .to_application
        .clone()
        .unwrap_or_else(|| args.application_id.clone());
    validate_id("target application ID", &target_application)?;
    let selection = Selection::of(&args.devices, args.devices_file.as_deref(), args.all);
    let given = selection::given_devices(&selection, &args.exclude)?;
    if let Some(report) = &args.report {
        crate::report::check_destination(report)?;
    }

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
    let work_path = args.work_dir.clone().unwrap_or_else(WorkDir::default_path);
    let page_size = args.page_size as usize;
    if args.dry_run {
        print_dry_run_header(&migration);
    }

    let devices = match given {
        Some(devices) => devices,
        None => {
            let listed = selection::list_device_ids(
                &cli,
                &migration.source,
                &migration.application_id,
                page_size,
                &mut |list, found| {
                    if args.dry_run {
                        println!("{}  # ran: {found} devices on this page", cli.render(list));
                    }
                },
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

    let gateways = super::checks::before_first_delete(context, args, &cli, &migration)?;

    if args.dry_run {
        return dry_run(
            &cli,
            &migration,
            &devices,
            &work_path,
            page_size,
            gateways.as_ref(),
            !args.skip_checks,
        );
    }

    let conflicts = preflight(
        &cli,
        &migration,
        &devices,
        page_size,
        !args.skip_checks,
        &mut |_, _| {},
    )?;
    let (conflicting, to_run): (Vec<String>, Vec<String>) =
        devices.iter().cloned().partition(|d| conflicts.contains(d));
    super::checks::warn_before_confirmation(gateways.as_ref(), to_run.len());
    confirm_migration(&migration, &to_run, args.yes)?;

    let work = WorkDir::create(&work_path)?;
    work.write_manifest(&migration.manifest(&devices))?;
    if !context.cli.quiet {
        eprintln!(
            "Work directory: {} (exports and journals; keep it until the devices are verified)",
            work.path().display()
        );
    }
    let mut reports: Vec<DeviceReport> = conflicting
        .iter()
        .map(|d| conflict_report(d, &migration))
        .collect();
    for report in &reports {
        println!("{}", output::device_line(report));
    }
    let batch = Batch {
        goal: Goal::Migrate,
        jobs: args.jobs,
        fail_fast: args.fail_fast,
        rollback_on_failure: !args.no_rollback,
    };
    reports.extend(run_batch(
        context,
        &cli,
        &migration,
        &work,
        &args.calls,
        &to_run,
        batch,
    ));
    let succeeded = finish(&reports, &work);
    super::checks::warn_after_run(gateways.as_ref(), &reports);
    write_report(args.report.as_deref(), &reports)?;
    Ok(succeeded)
}

pub fn resume(context: &Context, args: &ResumeArgs) -> Result<bool> {
    let work = WorkDir::open(&args.work_dir)?;
    let manifest = work.read_manifest()?;
    let mut unfinished = Vec::new();
    let mut finished = Vec::new();
    for device in &manifest.devices {
        let position = match work.has_journal(device) {
            true => work.journal(device)?.position(),
            false => Position::OnSource,
        };
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
        BTreeSet::new()
    } else {
        preflight(
            &cli,
            &migration,
            &fresh,
            MAX_PAGE_SIZE,
            false,
            &mut |_, _| {},
        )?
    };
    let mut reports: Vec<DeviceReport> = Vec::new();
    let to_run: Vec<String> = unfinished
        .into_iter()
        .filter(|d| {
            if conflicts.contains(d) {
                reports.push(conflict_report(d, &migration));
                false
            } else {
                true
            }
        })
        .collect();
    let batch = Batch {
        goal: Goal::Migrate,
        jobs: args.jobs,
        fail_fast: args.fail_fast,
        rollback_on_failure: !args.no_rollback,
    };
    reports.extend(run_batch(
        context,
        &cli,
        &migration,
        &work,
        &args.calls,
        &to_run,
        batch,
    ));
    let succeeded = finish(&reports, &work);
    write_report(args.report.as_deref(), &reports)?;
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
        if work.has_journal(device) {
            work.journal(device)?;
        }
    }
    let migration = recorded_migration(context, &manifest)?;
    let cli = context.ttn_lw_cli(Some(&args.calls))?;
    ask(
        &format!(
            "Put {} back on {} (application {}) from the saved exports, and remove them from {} where this migration created them?",
            list_devices(&devices),
            migration.source.deployment(),
            migration.application_id,
            migration.target.deployment()
        ),
        args.yes,
    )?;
    let batch = Batch {
        goal: Goal::Rollback,
        jobs: 1,
        fail_fast: false,
        rollback_on_failure: false,
    };
    let reports = run_batch(
        context,
        &cli,
        &migration,
        &work,
        &args.calls,
        &devices,
        batch,
    );
    Ok(finish(&reports, &work))
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

/// How a batch of devices runs.
struct Batch {
    goal: Goal,
    jobs: u32,
    fail_fast: bool,
    rollback_on_failure: bool,
}

/// Runs devices with Ctrl-C handling and the progress display in place.
fn run_batch(
    context: &Context,
    cli: &TtnLwCli,
    migration: &Migration,
    work: &WorkDir,
    calls: &CallOptions,
    devices: &[String],
    batch: Batch,
) -> Vec<DeviceReport> {
    let interrupt = Interrupt::install(Some(match batch.goal {
        Goal::Migrate => resume_command(work),
        Goal::Rollback => format!(
            "ttn-session-migrate rollback {} --yes",
            crate::ttn_lw_cli::quote(&work.path().display().to_string())
        ),
    }));
    let progress = output::progress_for(context.cli.quiet, devices.len());
    let runner = Runner {
        cli,
        migration,
        work,
        retry: retry_policy(calls),
        interrupt: &interrupt,
        progress: progress.as_ref(),
        rollback_on_failure: batch.rollback_on_failure,
    };
    run_devices(&runner, devices, batch.goal, batch.jobs, batch.fail_fast)
}

/// Read-only checks of both deployments before anything is deleted: both logins work (run one
/// after the other, since ttn-lw-cli's credential cache has no locking; skipped when the
/// doctor checks already ran them), and the target application exists. Returns the selected
/// devices that are already in the target application.
fn preflight(
    cli: &TtnLwCli,
    migration: &Migration,
    devices: &[String],
    page_size: usize,
    logins_checked: bool,
    ran: &mut dyn FnMut(&Invocation, &str),
) -> Result<BTreeSet<String>> {
    let unchecked = if logins_checked {
        Vec::new()
    } else {
        vec![("source", &migration.source), ("target", &migration.target)]
    };
    for (side, profile) in unchecked {
        let check = Invocation::new(&profile.path, ["auth-info"]);
        cli.run(&check).map_err(|e| {
            anyhow::anyhow!(
                "the {side} login ({}, profile `{}`) does not work: {}. Log in with `ttn-session-migrate login {}`",
                profile.deployment(),
                profile.label,
                e.detail,
                profile.label
            )
        })?;
        ran(&check, "login works");
    }
    let present: BTreeSet<String> = selection::list_device_ids(
        cli,
        &migration.target,
        &migration.target_application_id,
        page_size,
        &mut |list, found| ran(list, &format!("{found} devices on this page")),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot list application `{}` on the target ({}): {e}. Create the application in the target's Console, or check the login's rights",
            migration.target_application_id,
            migration.target.deployment()
        )
    })?
    .into_iter()
    .collect();
    Ok(devices
        .iter()
        .filter(|d| present.contains(*d))
        .cloned()
        .collect())
}

fn conflict_report(device: &str, migration: &Migration) -> DeviceReport {
    let mut report = DeviceReport::new(device, migration);
    report.outcome = Outcome::Conflict;
    report.error = Some(format!(
        "a device with this ID is already in application `{}` on the target; nothing was done",
        migration.target_application_id
    ));
    report.next_action =
        Some("delete or rename the device on the target, then migrate it again".into());
    report
}

/// Prints every command of the plan. Runs only read-only commands, marked as run.
/// The head of a dry run's plan, printed before the first read-only command runs.
fn print_dry_run_header(migration: &Migration) {
    println!("# Dry run: nothing is deleted or created. Commands marked `ran` are read-only and were run to make this plan exact.");
    println!("# Every command runs with the TTN_LW_* variables removed, and TTN_LW_SKIP_VERSION_CHECK=true TTN_LW_TELEMETRY_ENABLE=false.");
    println!(
        "# Source: {} ({}), application {}",
        migration.source.label,
        migration.source.deployment(),
        migration.application_id
    );
    println!(
        "# Target: {} ({}), application {}",
        migration.target.label,
        migration.target.deployment(),
        migration.target_application_id
    );
}

fn dry_run(
    cli: &TtnLwCli,
    migration: &Migration,
    devices: &[String],
    work: &Path,
    page_size: usize,
    gateways: Option<&crate::devaddr::GatewayCheck>,
    logins_checked: bool,
) -> Result<bool> {
    let conflicts = preflight(
        cli,
        migration,
        devices,
        page_size,
        logins_checked,
        &mut |invocation, what| {
            println!("{}  # ran: {what}", cli.render(invocation));
        },
    )?;
    let mut ok = true;
    let mut exported = Vec::new();
    for device in devices {
        println!();
        println!("# device {device}");
        if conflicts.contains(device) {
            println!("# conflict: already in application `{}` on the target; the real run leaves it alone", migration.target_application_id);
            ok = false;
            continue;
        }
        let dir = work.join(device);
        let mode = match migration.mode {
            Some(mode) => mode,
            None => {
                let detect = migration.detect(device);
                let output = cli.run(&detect).map_err(|e| anyhow::anyhow!("{}", e))?;
                let doc: Value = serde_json::from_slice(&output.stdout)
                    .context("ttn-lw-cli printed something that is not JSON")?;
                let mode = ActivationMode::of(&doc);
                println!("{}  # ran: {mode}", cli.render(&detect));
                if let Some(problem) = crate::device::wrong_cluster(&doc, &output.stderr) {
                    println!(
                        "# export refused, the real run stops here for this device: {problem}"
                    );
                    ok = false;
                    continue;
                }
                mode
            }
        };
        if migration.freeze_downlinks {
            println!(
                "{}",
                cli.render(&migration.schedule_downlinks(device, false))
            );
        }
        let export_file = dir.join("export.json");
        let export = migration.export(device, mode, &export_file);
        if migration.freeze_downlinks {
            // The export after a freeze differs from one now: do not run it.
            println!("{}", cli.render(&export));
        } else {
            let output = cli.run(&export).map_err(|e| anyhow::anyhow!("{}", e))?;
            let parsed = DeviceExport::parse(output.stdout)?;
            match parsed.validate(mode, &output.stderr) {
                Ok(()) => {
                    let s = parsed.session_summary();
                    exported.push((device.clone(), s.dev_addr.clone()));
                    println!(
                        "{}  # ran (not saved): complete, DevAddr {}, FCnt up {}, down {}",
                        cli.render(&export),
                        s.dev_addr.as_deref().unwrap_or("-"),
                        s.last_f_cnt_up,
                        s.last_n_f_cnt_down
                    );
                }
                Err(problem) => {
                    println!("{}  # ran (not saved)", cli.render(&export));
                    println!(
                        "# export refused, the real run stops here for this device: {problem}"
                    );
                    ok = false;
                    continue;
                }
            }
        }
        let import_file = dir.join("import.json");
        let rewrite = migration.rewrite_for_target(migration.freeze_downlinks.then_some(None));
        println!(
            "# rewrite {} into {}: {}",
            export_file.display(),
            import_file.display(),
            rewrite.describe()
        );
        println!("{}", cli.render(&migration.delete(device)));
        println!("{}", cli.render(&migration.import(&import_file)));
    }
    super::checks::print_dry_run_gateways(gateways, &exported);
    Ok(ok)
}

fn confirm_migration(migration: &Migration, devices: &[String], yes: bool) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    ask(
        &format!(
            "Migrate {} from {} (profile `{}`, application {}) to {} (profile `{}`, application {})? \
             Each device is deleted from the source once its export is saved.",
            list_devices(devices),
            migration.source.deployment(),
            migration.source.label,
            migration.application_id,
            migration.target.deployment(),
            migration.target.label,
            migration.target_application_id
        ),
        yes,
    )
}

/// One yes/no question on the terminal. Without a terminal, only `--yes` goes on.
fn ask(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to change the deployments without confirmation: no terminal to ask on. Pass --yes, or preview with --dry-run");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        bail!("cancelled; nothing was changed");
    }
    Ok(())
}

fn list_devices(devices: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = format!(
        "{} device{} ({}",
        devices.len(),
        if devices.len() == 1 { "" } else { "s" },
        devices
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    if devices.len() > SHOWN {
        text.push_str(&format!(", and {} more", devices.len() - SHOWN));
    }
    text.push(')');
    text
}

fn resume_command(work: &WorkDir) -> String {
    format!(
        "ttn-session-migrate resume {}",
        crate::ttn_lw_cli::quote(&work.path().display().to_string())
    )
}

/// Runs devices on `jobs` workers. Each device goes through all its steps on one worker, so its
/// import follows its delete at once. One device's failure does not stop the others; with
/// `fail_fast`, no further device starts after a failure and those left are reported as not
/// started (still on the source, so `resume` continues them).
fn run_devices(
    runner: &Runner,
    devices: &[String],
    goal: Goal,
    jobs: u32,
    fail_fast: bool,
) -> Vec<DeviceReport> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<DeviceReport>>> = Mutex::new(vec![None; devices.len()]);
    std::thread::scope(|scope| {
        for _ in 0..(jobs as usize).min(devices.len()) {
            scope.spawn(|| loop {
                if fail_fast && failed.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(device) = devices.get(i) else { break };
                let report = runner.run_device(device, goal);
                if report.outcome == Outcome::Failed {
                    failed.store(true, Ordering::SeqCst);
                }
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(report);
            });
        }
    });
    runner.progress.close();
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(devices)
        .map(|(report, device)| report.unwrap_or_else(|| not_started(device, runner)))
        .collect()
}

/// A device that `--fail-fast` kept from starting.
fn not_started(device: &str, runner: &Runner) -> DeviceReport {
    let mut report = DeviceReport::new(device, runner.migration);
    report.outcome = Outcome::Interrupted;
    report.resumable = true;
    report.error = Some("not started: --fail-fast stopped the run after a failure".into());
    report.next_action = Some(format!(
        "fix the failure, then run `{}`",
        resume_command(runner.work)
    ));
    report
}

/// `--report FILE`, written whatever the outcome of the devices.
fn write_report(path: Option<&Path>, reports: &[DeviceReport]) -> Result<()> {
    if let Some(path) = path {
        crate::report::write(path, reports)?;
        eprintln!("Report: {}", path.display());
    }
    Ok(())
}

/// Prints the summary; true when every device succeeded.
fn finish(reports: &[DeviceReport], work: &WorkDir) -> bool {
    let summary = Summary::of(reports);
    eprintln!("\n{summary}");
    let failures = output::failures(reports);
    if !failures.is_empty() {
        eprintln!("Not migrated:");
        for line in failures {
            eprintln!("{line}");
        }
    }
    let unfinished = reports.iter().filter(|r| r.resumable).count();
    if unfinished > 0 {
        eprintln!(
            "Unfinished: {unfinished}. Continue with: {}",
            resume_command(work)
        );
    }
    summary.all_succeeded()
}
