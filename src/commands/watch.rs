//! `watch`: poll the target until every migrated device is heard there.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::Context;
use crate::cli::WatchArgs;
use crate::journal::{write_durably, WorkDir};
use crate::watch::{
    count, heard_by, line, migrated_devices, poll, statuses, DeviceWatch, Status, Watched,
    GATEWAY_DETAIL_LIMIT,
};

/// True when every watched device was heard.
pub fn watch(context: &Context, args: &WatchArgs) -> Result<bool> {
    let work = WorkDir::open(&args.work_dir)?;
    let manifest = work.read_manifest()?;
    let watched = migrated_devices(&work, &manifest);
    if watched.is_empty() {
        bail!(
            "{} holds no exported device, so none can be on the target because of this migration",
            args.work_dir.display()
        );
    }
    let cli = context.ttn_lw_cli(None)?;
    let target = &manifest.target.path;
    let app = &manifest.target_application_id;
    let mut results = watch_devices(&watched, args, context.cli.quiet, |ran| {
        poll(&cli, target, app, args.page_size as usize, ran)
    })?;
    if watched.len() <= GATEWAY_DETAIL_LIMIT {
        for result in results.iter_mut().filter(|r| r.status == Status::Heard) {
            result.heard_by = heard_by(&cli, target, app, &result.device_id);
        }
    }

    let width = results.iter().map(|r| r.device_id.len()).max().unwrap_or(0);
    for result in &results {
        println!("{}", line(result, width));
    }
    let (heard, on_target) = count(&results);
    let silent = on_target - heard;
    println!(
        "\n{heard} of {on_target} heard on the target{}",
        if silent == 0 {
            ".".to_string()
        } else {
            format!(
                "; {silent} silent after {}. A silent device needs a gateway connected to the \
                 target within its range: `ttn-session-migrate gateways {} …` shows which.",
                humantime::format_duration(args.timeout),
                manifest.application_id
            )
        }
    );
    if let Some(path) = &args.report {
        write_durably(path, &serde_json::to_vec_pretty(&results)?)?;
    }
    Ok(on_target > 0 && silent == 0 && results.iter().all(|r| r.status == Status::Heard))
}

/// Polls until every device on the target is heard or the timeout passes; shows the count.
fn watch_devices(
    watched: &[Watched],
    args: &WatchArgs,
    quiet: bool,
    mut poll_once: impl FnMut(
        &mut dyn FnMut(&crate::ttn_lw_cli::Invocation),
    ) -> Result<std::collections::BTreeMap<String, crate::watch::Seen>>,
) -> Result<Vec<DeviceWatch>> {
    let deadline = Instant::now() + args.timeout;
    let terminal = std::io::stderr().is_terminal();
    let mut shown = None;
    loop {
        let seen = poll_once(&mut |_| {})?;
        let results = statuses(watched, &seen);
        let (heard, on_target) = count(&results);
        if !quiet && shown != Some(heard) {
            let text = format!("heard on the target: {heard} of {on_target}");
            if terminal {
                eprint!("\r{text}");
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("{text}");
            }
            shown = Some(heard);
        }
        let now = Instant::now();
        if heard == on_target || now >= deadline {
            if terminal && !quiet {
                eprintln!();
            }
            return Ok(results);
        }
        std::thread::sleep(Duration::from_secs(args.interval).min(deadline - now));
    }
}
