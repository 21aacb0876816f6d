//! `gateways`: the gateways the devices need, and their state on the target. Read-only.

use anyhow::{anyhow, Result};
use serde_json::{json, Value};

use super::Context;
use crate::cli::GatewaysArgs;
use crate::devaddr::{read_target_prefixes, GatewayCheck};
use crate::device::{validate_id, wrong_cluster};
use crate::gateways::{look_up, DeviceGateways, Summary, SELECT_FLAG};
use crate::outcome::count;
use crate::selection::list_device_ids;
use crate::ttn_lw_cli::{Invocation, TtnLwCli};

/// Prints the table (or JSON). False when a device could not be read.
pub fn gateways(context: &Context, args: &GatewaysArgs) -> Result<bool> {
    validate_id("application ID", &args.application_id)?;
    for device in &args.devices {
        validate_id("device ID", device)?;
    }
    let cli = context.ttn_lw_cli(Some(&args.calls))?;
    let store = context.profiles()?;
    let source = store.resolve(&args.from)?;
    let target = store.resolve(&args.to)?;
    let app = &args.application_id;

    let device_ids = if args.devices.is_empty() {
        list_device_ids(&cli, &source, app, 1000, &mut |_, _| {})?
    } else {
        args.devices.clone()
    };

    let mut devices = Vec::new();
    let mut dev_addrs = Vec::new();
    let mut unreadable = Vec::new();
    for device in &device_ids {
        // `mac_state.recent_uplinks` and `session.dev_addr` need no key rights.
        let get = Invocation::new(
            &source.path,
            [
                "end-devices",
                "get",
                "--application-id",
                app,
                "--device-id",
                device,
                SELECT_FLAG,
                "--session.dev-addr",
            ],
        );
        match read_device(&cli, &get) {
            Ok(doc) => {
                let dev_addr = doc
                    .pointer("/session/dev_addr")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                dev_addrs.push((device.clone(), dev_addr));
                devices.push(DeviceGateways::of(device, &doc));
            }
            Err(e) => unreadable.push((device.clone(), format!("{e:#}"))),
        }
    }

    let summary = Summary::of(&devices, |gateway| look_up(&cli, &target.path, gateway));
    // Why it matters: the DevAddr check of `migrate`, on the same devices.
    let check = GatewayCheck::new(
        &source,
        &target,
        read_target_prefixes(&cli, &target, &mut |_, _| {}),
    );
    let dev_addr_warning = check.after_export("device", &dev_addrs);

    if args.json {
        let doc = json!({
            "application_id": app,
            "source": source.deployment().to_string(),
            "target": target.deployment().to_string(),
            "gateways": summary.gateways,
            "unheard": summary.unheard,
            "devices": devices,
            "unreadable": unreadable.iter().map(|(d, e)| json!({"device_id": d, "error": e})).collect::<Vec<_>>(),
            "dev_addr_warning": dev_addr_warning,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let heading = format!(
            "Gateways that heard {} of {app} on {}, and their state on {}:",
            count(devices.len(), "device", "devices"),
            source.deployment(),
            target.deployment()
        );
        println!("{}\n", crate::terminal::wrap(&heading));
        print!("{}", summary.render(crate::terminal::width()));
        if let Some(warning) = dev_addr_warning {
            println!("\n{}", crate::terminal::wrap(&warning));
        }
        for (device, error) in &unreadable {
            crate::terminal::eprint_wrapped(&format!("{device}: could not be read: {error}"));
        }
    }
    Ok(unreadable.is_empty())
}

/// The device's answer; a device on another cluster is an error, not one without uplinks
/// (ttn-lw-cli leaves out its MAC state).
fn read_device(cli: &TtnLwCli, get: &Invocation) -> Result<Value> {
    let output = cli.run(get).map_err(|e| anyhow!(e.detail))?;
    let doc = serde_json::from_slice::<Value>(&output.stdout)
        .map_err(|_| anyhow!("ttn-lw-cli printed something that is not JSON"))?;
    match wrong_cluster(&doc, &output.stderr) {
        Some(problem) => Err(anyhow!("{problem}")),
        None => Ok(doc),
    }
}
