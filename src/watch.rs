//! Heard on the target: has every migrated device sent an uplink there since its import?
//!
//! A poll reads the whole target application with `end-devices list --last-seen-at`, paged
//! (1,000 devices a page): the Identity Server's `last_seen_at` is the time of the device's last
//! uplink, `created_at` the time of its import. A device is heard when `last_seen_at` is later
//! than `created_at`. No keys are read; `RIGHT_APPLICATION_DEVICES_READ` is enough. The list
//! select flag `--last-seen-at` exists since 3.19.0 (`last_seen_at` joined the IS read paths of
//! `pkg/ttnpb/field_mask_validation.go` then).
//!
//! Which devices to watch comes from the work directory: [`migrated_devices`] is the one place
//! that reads it (the manifest, and each device's newest export for the gateways that heard it
//! on the source).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{anyhow, Result};
use serde::Serialize;
use serde_json::Value;

use crate::gateways::DeviceGateways;
use crate::journal::{Manifest, WorkDir};
use crate::ttn_lw_cli::{Invocation, TtnLwCli};

/// A device to watch: exported by this migration, with the gateways that heard it on the source.
#[derive(Debug, Clone)]
pub struct Watched {
    pub device_id: String,
    pub source: DeviceGateways,
}

/// The devices of a work directory that this migration exported (only those can be on the
/// target because of it). The only function that reads the work directory.
pub fn migrated_devices(work: &WorkDir, manifest: &Manifest) -> Vec<Watched> {
    manifest
        .devices
        .iter()
        .filter_map(|device| {
            let export = newest_export(&work.device_dir(device))?;
            let doc: Value = serde_json::from_slice(&std::fs::read(export).ok()?).ok()?;
            Some(Watched {
                device_id: device.clone(),
                source: DeviceGateways::of(device, &doc),
            })
        })
        .collect()
}

/// `export.json`, `export.2.json`, …: the highest attempt.
fn newest_export(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let attempt = match name.strip_prefix("export")?.strip_suffix(".json")? {
                "" => 1,
                n => n.strip_prefix('.')?.parse::<u32>().ok()?,
            };
            Some((attempt, entry.path()))
        })
        .max_by_key(|(attempt, _)| *attempt)
        .map(|(_, path)| path)
}

/// What the target's Identity Server says about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub created_at: String,
    pub last_seen_at: Option<String>,
}

/// One poll: the target application's devices with `last_seen_at`, page by page. `ran` sees
/// every call.
pub fn poll(
    cli: &TtnLwCli,
    target: &Path,
    application_id: &str,
    page_size: usize,
    ran: &mut dyn FnMut(&Invocation),
) -> Result<BTreeMap<String, Seen>> {
    let mut seen = BTreeMap::new();
    for page in 1.. {
        let list = Invocation::new(
            target,
            [
                "end-devices".to_string(),
                "list".to_string(),
                "--application-id".to_string(),
                application_id.to_string(),
                "--last-seen-at".to_string(),
                "--limit".to_string(),
                page_size.to_string(),
                "--page".to_string(),
                page.to_string(),
            ],
        );
        let output = cli.run(&list).map_err(|e| anyhow!(e.detail))?;
        ran(&list);
        let items: Vec<Value> = serde_json::from_slice(&output.stdout)
            .map_err(|_| anyhow!("ttn-lw-cli printed a device list that is not a JSON array"))?;
        for item in &items {
            let text = |pointer: &str| item.pointer(pointer).and_then(Value::as_str);
            if let Some(id) = text("/ids/device_id") {
                seen.insert(
                    id.to_string(),
                    Seen {
                        created_at: text("/created_at").unwrap_or_default().to_string(),
                        last_seen_at: text("/last_seen_at").map(str::to_string),
                    },
                );
            }
        }
        // A full page is the last one when the CLI does not point to a next page (it does from
        // the total the server reports).
        let next_page = output.stderr.contains("to get the next page of results");
        if items.len() < page_size || !next_page {
            break;
        }
    }
    Ok(seen)
}

/// Up to this many watched devices, the gateway that heard each device on the target is read
/// once it is heard: one `get --mac-state.recent-uplinks` per device, never repeated. A canary
/// or a small batch gets the gateway on its line; a fleet keeps to the paged polls.
pub const GATEWAY_DETAIL_LIMIT: usize = 100;

/// The gateways of the newest uplink of a device on the target (one call, no keys).
pub fn heard_by(
    cli: &TtnLwCli,
    target: &Path,
    application_id: &str,
    device_id: &str,
) -> Option<String> {
    let get = Invocation::new(
        target,
        [
            "end-devices",
            "get",
            "--application-id",
            application_id,
            "--device-id",
            device_id,
            "--mac-state.recent-uplinks",
        ],
    );
    let output = cli.run(&get).ok()?;
    let doc: Value = serde_json::from_slice(&output.stdout).ok()?;
    let newest = doc
        .pointer("/mac_state/recent_uplinks")?
        .as_array()?
        .last()?
        .clone();
    let device = DeviceGateways::of(
        device_id,
        &serde_json::json!({"mac_state": {"recent_uplinks": [newest]}}),
    );
    (!device.gateways.is_empty() || device.packet_broker).then(|| device.heard_on_source())
}

/// Where a watched device stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// An uplink reached the target after the import.
    Heard,
    /// On the target, no uplink since its import.
    Silent,
    /// Not in the target application (its migration did not finish, or it was rolled back).
    NotOnTarget,
}

/// One device's result: the line and the report entry.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceWatch {
    pub device_id: String,
    pub status: Status,
    pub imported_at: Option<String>,
    pub last_seen_at: Option<String>,
    /// The gateways of its newest uplink on the target, when read (see [`GATEWAY_DETAIL_LIMIT`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heard_by: Option<String>,
    /// The gateways that last heard it on the source.
    pub source_gateways: DeviceGateways,
}

fn time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

/// The status of every watched device after a poll.
pub fn statuses(watched: &[Watched], seen: &BTreeMap<String, Seen>) -> Vec<DeviceWatch> {
    watched
        .iter()
        .map(|device| {
            let on_target = seen.get(&device.device_id);
            let status = match on_target {
                None => Status::NotOnTarget,
                Some(Seen {
                    created_at,
                    last_seen_at: Some(last),
                }) if match (time(last), time(created_at)) {
                    (Some(last), Some(created)) => last > created,
                    _ => last.as_str() > created_at.as_str(),
                } =>
                {
                    Status::Heard
                }
                Some(_) => Status::Silent,
            };
            DeviceWatch {
                device_id: device.device_id.clone(),
                status,
                imported_at: on_target.map(|s| s.created_at.clone()),
                last_seen_at: on_target.and_then(|s| s.last_seen_at.clone()),
                heard_by: None,
                source_gateways: device.source.clone(),
            }
        })
        .collect()
}

/// Heard and watched counts: devices on the target, of which heard.
pub fn count(results: &[DeviceWatch]) -> (usize, usize) {
    let on_target = results
        .iter()
        .filter(|r| r.status != Status::NotOnTarget)
        .count();
    let heard = results.iter().filter(|r| r.status == Status::Heard).count();
    (heard, on_target)
}

/// The line of one device, its ID padded to `width`, wrapped at `columns` under its status.
pub fn line(result: &DeviceWatch, width: usize, columns: usize) -> String {
    let id = format!("{:width$}", result.device_id);
    let (status, text) = match result.status {
        Status::Heard => (
            "heard",
            format!(
                "{}{}",
                result.last_seen_at.as_deref().unwrap_or("-"),
                result
                    .heard_by
                    .as_deref()
                    .map(|g| format!(" by {g}"))
                    .unwrap_or_default()
            ),
        ),
        Status::Silent => (
            "silent",
            format!(
                "since its import at {}; last heard on the source by {}",
                result.imported_at.as_deref().unwrap_or("-"),
                result.source_gateways.heard_on_source()
            ),
        ),
        Status::NotOnTarget => (
            "not on the target:",
            "its migration did not finish here (see `resume`)".to_string(),
        ),
    };
    let prefix = match result.status {
        Status::NotOnTarget => format!("{id}  {status} "),
        _ => format!("{id}  {status:<6}  "),
    };
    crate::terminal::hang(&prefix, &text, columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn watched(id: &str) -> Watched {
        Watched {
            device_id: id.into(),
            source: DeviceGateways::of(
                id,
                &json!({"mac_state": {"recent_uplinks": [{"rx_metadata": [
                    {"gateway_ids": {"gateway_id": "gw-ce", "eui": "AA00000000000002"}}]}]}}),
            ),
        }
    }

    fn seen(created: &str, last: Option<&str>) -> Seen {
        Seen {
            created_at: created.into(),
            last_seen_at: last.map(str::to_string),
        }
    }

    #[test]
    fn heard_means_seen_after_the_import() {
        let devices = [
            watched("heard"),
            watched("before"),
            watched("never"),
            watched("gone"),
        ];
        let mut on_target = BTreeMap::new();
        on_target.insert(
            "heard".into(),
            seen("2026-12-01T10:00:00Z", Some("2026-12-01T10:00:05.5Z")),
        );
        // A stale last_seen_at (older than the import) is not an uplink on the target.
        on_target.insert(
            "before".into(),
            seen("2026-12-01T10:00:00.200Z", Some("2026-12-01T10:00:00.100Z")),
        );
        on_target.insert("never".into(), seen("2026-12-01T10:00:00Z", None));
        let results = statuses(&devices, &on_target);
        let status: Vec<Status> = results.iter().map(|r| r.status.clone()).collect();
        assert_eq!(
            status,
            [
                Status::Heard,
                Status::Silent,
                Status::Silent,
                Status::NotOnTarget
            ]
        );
        assert_eq!(count(&results), (1, 3));
        assert_eq!(
            line(&results[0], 6, 200),
            "heard   heard   2026-12-01T10:00:05.5Z"
        );
        assert_eq!(
            line(&results[2], 5, 200),
            "never  silent  since its import at 2026-12-01T10:00:00Z; last heard on the source by gw-ce (AA00000000000002)"
        );
    }

    #[test]
    fn the_newest_export_is_the_highest_attempt() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(newest_export(dir.path()), None);
        for name in [
            "export.json",
            "export.2.json",
            "import.json",
            "export.x.json",
        ] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        assert_eq!(
            newest_export(dir.path()),
            Some(dir.path().join("export.2.json"))
        );
    }
}
