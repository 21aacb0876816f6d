//! The migration plan: which deployments and applications, with which options, and the exact
//! ttn-lw-cli command of every step of every device.

use std::path::Path;

use crate::device::{ActivationMode, Rewrite};
use crate::journal::{Manifest, ProfileRecord};
use crate::profile::Profile;
use crate::ttn_lw_cli::{Invocation, Version};
use crate::{gateways, whole_device};

/// The field-selection flags of the documented export, for OTAA (ABP omits `--root-keys`),
/// and `--pending-session`, selected only to refuse a device that re-joined and has sent no
/// uplink since (its `session` is stale). Every CLI version the tool supports has the flag (the
/// select flags are generated from the `EndDevice` fields, which have `pending_session` since
/// 3.0); it needs the rights `--session` needs (the NS's `HasAnyField` also matches
/// `pending_session.queued_application_downlinks`, and the keys need `_READ_KEYS`).
pub const EXPORT_FLAGS: [&str; 11] = [
    "--name",
    "--description",
    "--lorawan-version",
    "--lorawan-phy-version",
    "--frequency-plan-id",
    "--supports-join",
    "--root-keys",
    "--mac-settings",
    "--mac-state",
    "--session",
    "--pending-session",
];

/// One migration: from where to where, and how.
#[derive(Debug, Clone)]
pub struct Migration {
    pub source: Profile,
    pub target: Profile,
    pub application_id: String,
    pub target_application_id: String,
    /// `--otaa`/`--abp`; `None` detects each device's mode on the source.
    pub mode: Option<ActivationMode>,
    pub freeze_downlinks: bool,
    /// The running ttn-lw-cli's version: the detection `get` selects only fields it knows.
    pub cli_version: Version,
}

impl Migration {
    pub fn manifest(&self, devices: &[String]) -> Manifest {
        Manifest {
            format: Manifest::FORMAT,
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            source: ProfileRecord {
                label: self.source.label.clone(),
                path: self.source.path.clone(),
            },
            target: ProfileRecord {
                label: self.target.label.clone(),
                path: self.target.path.clone(),
            },
            application_id: self.application_id.clone(),
            target_application_id: self.target_application_id.clone(),
            mode: self.mode,
            freeze_downlinks: self.freeze_downlinks,
            devices: devices.to_vec(),
            jobs: None,
            target_rate: None,
            target_burst: None,
            learned_target_rate: None,
            ended_at: None,
        }
    }

    fn device_ids(app: &str, device: &str) -> Vec<String> {
        ["--application-id", app, "--device-id", device]
            .map(String::from)
            .to_vec()
    }

    /// Read-only, and no key rights: `supports_join` tells OTAA from ABP; the device fields the
    /// documented export leaves out ([`whole_device::detect_flags`], for this CLI version); the
    /// gateways that heard the device (`mac_state.recent_uplinks`). With `--freeze-downlinks`
    /// it also reads `mac_settings`, to restore `schedule_downlinks` later. One call.
    pub fn detect(&self, device: &str) -> Invocation {
        let mut args = vec!["end-devices".to_string(), "get".to_string()];
        args.extend(Self::device_ids(&self.application_id, device));
        args.push("--supports-join".into());
        if self.freeze_downlinks {
            args.push("--mac-settings".into());
        }
        args.extend(whole_device::detect_flags(self.cli_version));
        args.push(whole_device::SESSION_STARTED_FLAG.into());
        args.push(gateways::SELECT_FLAG.into());
        Invocation::new(&self.source.path, args)
    }

    /// `end-devices set … --mac-settings.schedule-downlinks=<value>` on the source.
    pub fn schedule_downlinks(&self, device: &str, value: bool) -> Invocation {
        let mut args = vec!["end-devices".to_string(), "set".to_string()];
        args.extend(Self::device_ids(&self.application_id, device));
        args.push(format!("--mac-settings.schedule-downlinks={value}"));
        Invocation::new(&self.source.path, args)
    }

    /// The documented export, saved to `file`.
    pub fn export(&self, device: &str, mode: ActivationMode, file: &Path) -> Invocation {
        Invocation::new(
            &self.source.path,
            export_args(&self.application_id, device, mode),
        )
        .stdout_to(file)
    }

    pub fn delete(&self, device: &str) -> Invocation {
        let mut args = vec!["end-devices".to_string(), "delete".to_string()];
        args.extend(Self::device_ids(&self.application_id, device));
        Invocation::new(&self.source.path, args)
    }

    /// One device document on stdin; `--defaults` (on by default) fills in the target's own
    /// server addresses.
    pub fn import(&self, file: &Path) -> Invocation {
        Invocation::new(
            &self.target.path,
            [
                "end-devices",
                "create",
                "--application-id",
                &self.target_application_id,
            ],
        )
        .stdin_file(file)
    }

    /// Reads the session back from the target, for a verification without `create`'s answer.
    pub fn read_target(&self, device: &str, mode: ActivationMode) -> Invocation {
        Invocation::new(
            &self.target.path,
            export_args(&self.target_application_id, device, mode),
        )
    }

    /// Reads the session back from the source (after a re-create).
    pub fn read_source(&self, device: &str, mode: ActivationMode) -> Invocation {
        Invocation::new(
            &self.source.path,
            export_args(&self.application_id, device, mode),
        )
    }

    /// Which servers of the source hold the device: one field of each, none of them a key
    /// (`--name` IS, `--supports-join` NS, `--formatters` AS, `--resets-join-nonces` JS for
    /// OTAA), so `_DEVICES_READ` suffices. A server that lacks the device logs its not-found
    /// ERROR line; one without the IS entry fails the command with `end_device_not_found`.
    pub fn presence_on_source(&self, device: &str, mode: ActivationMode) -> Invocation {
        Invocation::new(
            &self.source.path,
            presence_args(&self.application_id, device, mode),
        )
    }

    /// The same on the target.
    pub fn presence_on_target(&self, device: &str, mode: ActivationMode) -> Invocation {
        Invocation::new(
            &self.target.path,
            presence_args(&self.target_application_id, device, mode),
        )
    }

    /// Does the device exist? An identifiers-only `get` (the IS only): no keys, no rights
    /// beyond reading.
    pub fn exists_on_target(&self, device: &str) -> Invocation {
        let mut args = vec!["end-devices".to_string(), "get".to_string()];
        args.extend(Self::device_ids(&self.target_application_id, device));
        Invocation::new(&self.target.path, args)
    }

    /// Rollback: the saved export, rewritten, back into the source application.
    pub fn recreate_on_source(&self, file: &Path) -> Invocation {
        Invocation::new(
            &self.source.path,
            [
                "end-devices",
                "create",
                "--application-id",
                &self.application_id,
            ],
        )
        .stdin_file(file)
    }

    pub fn delete_on_target(&self, device: &str) -> Invocation {
        let mut args = vec!["end-devices".to_string(), "delete".to_string()];
        args.extend(Self::device_ids(&self.target_application_id, device));
        Invocation::new(&self.target.path, args)
    }

    /// The rewrite into the target's import document.
    pub fn rewrite_for_target(&self, restore: Option<Option<bool>>) -> Rewrite {
        Rewrite {
            application_id: (self.target_application_id != self.application_id)
                .then(|| self.target_application_id.clone()),
            restore_schedule_downlinks: restore,
        }
    }

    /// The rewrite for a rollback onto the source.
    pub fn rewrite_for_source(&self, restore: Option<Option<bool>>) -> Rewrite {
        Rewrite {
            application_id: None,
            restore_schedule_downlinks: restore,
        }
    }
}

fn presence_args(app: &str, device: &str, mode: ActivationMode) -> Vec<String> {
    let mut args = vec!["end-devices".to_string(), "get".to_string()];
    args.extend(Migration::device_ids(app, device));
    args.extend(["--name", "--supports-join", "--formatters"].map(String::from));
    if mode == ActivationMode::Otaa {
        args.push("--resets-join-nonces".into());
    }
    args
}

fn export_args(app: &str, device: &str, mode: ActivationMode) -> Vec<String> {
    let mut args = vec!["end-devices".to_string(), "get".to_string()];
    args.extend(Migration::device_ids(app, device));
    args.extend(
        EXPORT_FLAGS
            .iter()
            .filter(|f| mode == ActivationMode::Otaa || **f != "--root-keys")
            .map(|f| f.to_string()),
    );
    args
}

/// For unit tests: `app-1` from the `ce` profile (`/ce.yml`) to the `cloud` profile
/// (`/cloud.yml`), modes detected, no freeze, ttn-lw-cli 3.32.1.
#[cfg(test)]
impl Migration {
    pub fn example() -> Migration {
        let profile = |label: &str| Profile {
            label: label.into(),
            path: format!("/{label}.yml").into(),
            config: Default::default(),
        };
        Migration {
            source: profile("ce"),
            target: profile("cloud"),
            application_id: "app-1".into(),
            target_application_id: "app-1".into(),
            mode: None,
            freeze_downlinks: false,
            cli_version: Version(3, 32, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(version: Version) -> Migration {
        Migration {
            cli_version: version,
            ..Migration::example()
        }
    }

    #[test]
    fn the_detection_reads_the_whole_device_and_its_gateways_without_keys() {
        let detect = migration(Version(3, 34, 0)).detect("dev-1").args.join(" ");
        assert!(detect.starts_with("end-devices get --application-id app-1 --device-id dev-1 --supports-join --attributes --version-ids"), "{detect}");
        for flag in [
            "--supports-class-c",
            "--formatters",
            "--last-dev-nonce",
            "--label-ids",
            "--mac-settings-profile-ids",
            "--mac-state.recent-uplinks",
        ] {
            assert!(detect.split(' ').any(|a| a == flag), "{flag}: {detect}");
        }
        for keys in ["--root-keys", "--session", "--mac-state"] {
            assert!(!detect.split(' ').any(|a| a == keys), "{keys}: {detect}");
        }
        let older = migration(Version(3, 32, 1)).detect("dev-1").args.join(" ");
        assert!(!older.contains("--label-ids"), "{older}");
    }

    #[test]
    fn export_flags_are_the_documented_sets() {
        let otaa = export_args("app-1", "dev-1", ActivationMode::Otaa).join(" ");
        assert_eq!(otaa, "end-devices get --application-id app-1 --device-id dev-1 --name --description --lorawan-version --lorawan-phy-version --frequency-plan-id --supports-join --root-keys --mac-settings --mac-state --session --pending-session");
        let abp = export_args("app-1", "dev-1", ActivationMode::Abp).join(" ");
        assert_eq!(abp, "end-devices get --application-id app-1 --device-id dev-1 --name --description --lorawan-version --lorawan-phy-version --frequency-plan-id --supports-join --mac-settings --mac-state --session --pending-session");
    }
}
