//! `watch`: poll the target until every migrated device is heard there.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::Context;
use crate::cli::WatchArgs;
use crate::journal::{write_durably, WorkDir};
use crate::ttn_lw_cli::Version;
use crate::watch::{
    count, heard_by, line, migrated_devices, poll, statuses, DeviceWatch, Status, Watched,
    GATEWAY_DETAIL_LIMIT,
};

/// `end-devices list --last-seen-at` exists from this version on (`last_seen_at` joined the
/// `EndDevice` message and the IS read paths in 3.19.0).
pub const LAST_SEEN_AT_SINCE: Version = Version(3, 19, 0);

/// How long and how to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub timeout: Duration,
    pub interval: Duration,
    pub page_size: usize,
    pub report: Option<PathBuf>,
}

impl WatchOptions {
    /// `migrate --watch DURATION`: the defaults of `watch`, no report file.
    pub fn for_duration(timeout: Duration) -> WatchOptions {
        WatchOptions {
            timeout,
            interval: Duration::from_secs(30),
            page_size: 1000,
            report: None,
        }
    }
}

/// `watch WORK_DIR`. True when every watched device was heard.
pub fn watch(context: &Context, args: &WatchArgs) -> Result<bool> {
    let work = WorkDir::open(&args.work_dir)?;
    let options = WatchOptions {
        timeout: args.timeout,
        interval: Duration::from_secs(args.interval),
        page_size: args.page_size as usize,
        report: args.report.clone(),
    };
    watch_work_dir(context, &work, &options)
}

/// Watches the devices a work directory migrated (also after `migrate`, with the directory it
/// holds), prints one line per device and the count. True when every device was heard.
pub fn watch_work_dir(context: &Context, work: &WorkDir, options: &WatchOptions) -> Result<bool> {
    let manifest = work.read_manifest()?;
    let watched = migrated_devices(work, &manifest);
    if watched.is_empty() {
        bail!(
            "{} holds no exported device, so none can be on the target because of this migration",
            work.path().display()
        );
    }
    let cli = context.ttn_lw_cli(None)?;
    let version = cli.version()?;
    if version < LAST_SEEN_AT_SINCE {
        bail!(
            "ttn-lw-cli {version} cannot list when devices were last seen (`end-devices list \
             --last-seen-at` came with 3.19.0): upgrade The Things Stack CLI to watch, or check the \
             devices' last activity in the target's Console"
        );
    }
    let target = &manifest.target.path;
    let app = &manifest.target_application_id;
    let mut results = poll_until_heard(&watched, options, context.cli.quiet, || {
        poll(&cli, target, app, options.page_size, &mut |_| {})
    })?;
    if watched.len() <= GATEWAY_DETAIL_LIMIT {
        for result in results.iter_mut().filter(|r| r.status == Status::Heard) {
            result.heard_by = heard_by(&cli, target, app, &result.device_id);
        }
    }

    let width = results.iter().map(|r| r.device_id.len()).max().unwrap_or(0);
    for result in &results {
        println!("{}", line(result, width, crate::terminal::width()));
    }
    let (heard, on_target) = count(&results);
    let silent = on_target - heard;
    let closing = format!(
        "\n{heard} of {on_target} heard on the target{}",
        if silent == 0 {
            ".".to_string()
        } else {
            format!(
                "; {silent} silent after {}. A silent device needs a gateway connected to the \
                 target within its range: `ttn-session-migrate gateways {} …` shows which.",
                humantime::format_duration(options.timeout),
                manifest.application_id
            )
        }
    );
    println!("{}", crate::terminal::wrap(&closing));
    if let Some(path) = &options.report {
        write_durably(path, &serde_json::to_vec_pretty(&results)?)?;
    }
    Ok(on_target > 0 && results.iter().all(|r| r.status == Status::Heard))
}

/// Polls until every device on the target is heard or the timeout passes; shows the count.
fn poll_until_heard(
    watched: &[Watched],
    options: &WatchOptions,
    quiet: bool,
    mut poll_once: impl FnMut() -> Result<std::collections::BTreeMap<String, crate::watch::Seen>>,
) -> Result<Vec<DeviceWatch>> {
    let deadline = Instant::now() + options.timeout;
    let terminal = std::io::stderr().is_terminal();
    let mut shown = None;
    loop {
        let results = statuses(watched, &poll_once()?);
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
        std::thread::sleep(options.interval.min(deadline - now));
    }
}
