//! `status WORK_DIR`: where every device is and what `resume` would do, from the journals;
//! `--check` also asks both deployments (read-only `get` calls).

use anyhow::Result;

use super::Context;
use crate::cli::StatusArgs;
use crate::device::{registry_errors, ActivationMode};
use crate::exit::{Exit, ResultExt as _};
use crate::journal::WorkDir;
use crate::status::Found;
use crate::ttn_lw_cli::ErrorKind;

pub fn status(context: &Context, args: &StatusArgs) -> Result<Exit> {
    let work = WorkDir::open(&args.work_dir)?;
    let manifest = work.read_manifest()?;
    let mut status = crate::status::of(&work, &manifest, true)?;
    if args.check {
        let migration = super::migrate::recorded_migration(context, &manifest).or_refused()?;
        let cli = context.ttn_lw_cli(Some(&args.calls)).or_refused()?;
        // Which servers hold the device: a half-done delete or create shows as partly there.
        let found = |invocation| match cli.run(&invocation) {
            Ok(output) => {
                let errors = registry_errors(&output.stderr);
                if errors.is_empty() {
                    Found::Present
                } else if errors.iter().all(|e| e.device_absent()) {
                    Found::Partly
                } else {
                    Found::NoAnswer
                }
            }
            Err(e) if e.kind == ErrorKind::NotFound => Found::Absent,
            Err(_) => Found::NoAnswer,
        };
        for device in &mut status.devices {
            // Before its detection a device has not left the source: its Join Server part is
            // not asked about then.
            let mode = work
                .journal(&device.device_id)
                .ok()
                .and_then(|journal| journal.mode())
                .or(manifest.mode)
                .unwrap_or(ActivationMode::Abp);
            device.on_source = Some(found(migration.presence_on_source(&device.device_id, mode)));
            device.on_target = Some(found(migration.presence_on_target(&device.device_id, mode)));
        }
    }
    if args.json {
        let value = serde_json::json!({
            "work_dir": work.path(),
            "application_id": manifest.application_id,
            "target_application_id": manifest.target_application_id,
            "source": manifest.source.label,
            "target": manifest.target.label,
            "devices": status.devices,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(Exit::Done);
    }
    println!(
        "{}",
        crate::status::render(&manifest, &status, crate::terminal::width())
    );
    if status.finished() < status.devices.len() {
        println!(
            "Continue with: {}",
            crate::batch::resume_command(work.path())
        );
    }
    Ok(Exit::Done)
}
