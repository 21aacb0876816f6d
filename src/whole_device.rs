//! The whole device: the end-device fields the documented export leaves out, read by the
//! detection `get` and merged into the import document, so that a device arrives with more
//! than its session.
//!
//! The documented export (`plan::EXPORT_FLAGS`) keeps its exact flag set. It already carries
//! `mac_settings` whole, so the class B and C settings (`class_b_timeout`, `class_c_timeout`,
//! `ping_slot_*`, `beacon_frequency`, `class_b_c_downlink_interval`) travel with it. What it
//! leaves out, per registry (`pkg/ttnpb/field_mask_validation.go`, the `Get` allowed lists;
//! `cmd/ttn-lw-cli/commands/end_devices_split.go` splits a `get` by them):
//!
//! * Network Server: `supports_class_b`, `supports_class_c` (without them a Class C actuator comes
//!   back as Class A), `min_frequency`, `max_frequency`, `multicast`;
//! * Identity Server: `attributes`, `version_ids` (the Device Repository model), `locations`,
//!   `picture`, `serial_number` and `lora_alliance_profile_ids` (3.24), `label_ids` (3.34);
//! * Application Server: `formatters` (the device's own payload formatters) and
//!   `skip_payload_crypto_override`;
//! * Join Server (OTAA only): the nonce state `last_dev_nonce`, `used_dev_nonces`,
//!   `last_join_nonce`, `last_rj_count_0`, `last_rj_count_1`, and `resets_join_nonces`. The JS
//!   `Set` allows these paths. Its `Get` needs only `RIGHT_APPLICATION_DEVICES_READ` for them
//!   (`pkg/joinserver/grpc_deviceregistry.go`: keys rights only for `root_keys`), so the
//!   detection call stays free of key rights.
//!
//! Left out on purpose: what describes the source deployment or its traffic, not the device
//! (`last_seen_at`, `activated_at`, `last_dev_status_received_at`, `battery_percentage`,
//! `downlink_margin`, `power_state`, `net_id`, `application_server_id`, the KEK labels,
//! `provisioner_id`, `provisioning_data`), the deprecated `service_profile_id` and
//! `skip_payload_crypto`, and `claim_authentication_code` (a secret of the source's claiming).
//!
//! `mac_settings_profile_ids` (3.34) is read only to refuse the device: the profile belongs to
//! the source application and cannot be carried.

use serde_json::Value;

use crate::device::ActivationMode;
use crate::ttn_lw_cli::Version;

/// Which server answers a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    Identity,
    Network,
    Application,
    Join,
}

/// One field the documented export leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtraField {
    /// Top-level `EndDevice` path; the select flag is `--` + path with `_` → `-`.
    pub path: &'static str,
    pub registry: Registry,
    /// The first ttn-lw-cli version with the select flag.
    pub since: Version,
}

const fn field(path: &'static str, registry: Registry, since: (u32, u32, u32)) -> ExtraField {
    ExtraField {
        path,
        registry,
        since: Version(since.0, since.1, since.2),
    }
}

/// Carried to the target (in import-document order of `EndDevice`).
pub const CARRIED: &[ExtraField] = &[
    field("attributes", Registry::Identity, (3, 0, 0)),
    field("version_ids", Registry::Identity, (3, 0, 0)),
    field("locations", Registry::Identity, (3, 0, 0)),
    field("picture", Registry::Identity, (3, 3, 0)),
    field("supports_class_b", Registry::Network, (3, 0, 0)),
    field("supports_class_c", Registry::Network, (3, 0, 0)),
    field("min_frequency", Registry::Network, (3, 0, 0)),
    field("max_frequency", Registry::Network, (3, 0, 0)),
    field("resets_join_nonces", Registry::Join, (3, 0, 0)),
    field("last_dev_nonce", Registry::Join, (3, 0, 0)),
    field("used_dev_nonces", Registry::Join, (3, 0, 0)),
    field("last_join_nonce", Registry::Join, (3, 0, 0)),
    field("last_rj_count_0", Registry::Join, (3, 0, 0)),
    field("last_rj_count_1", Registry::Join, (3, 0, 0)),
    field("formatters", Registry::Application, (3, 0, 0)),
    field("multicast", Registry::Network, (3, 0, 0)),
    field(
        "skip_payload_crypto_override",
        Registry::Application,
        (3, 9, 0),
    ),
    field("serial_number", Registry::Identity, (3, 24, 0)),
    field("lora_alliance_profile_ids", Registry::Identity, (3, 24, 0)),
    field("label_ids", Registry::Identity, (3, 34, 0)),
];

/// Read to refuse the device before any delete.
pub const MAC_SETTINGS_PROFILE: ExtraField =
    field("mac_settings_profile_ids", Registry::Network, (3, 34, 0));

/// The Join Server's nonce state.
pub const JOIN_STATE: [&str; 5] = [
    "last_dev_nonce",
    "used_dev_nonces",
    "last_join_nonce",
    "last_rj_count_0",
    "last_rj_count_1",
];

/// When the device's current session started (no key rights): the detection reads it, so that a
/// device that joined again between its detection and its export is noticed ([`rejoined`]).
pub const SESSION_STARTED_FLAG: &str = "--session.started-at";

/// The select flags the detection `get` adds for CLI `version`: fields it does not know are not
/// requested (an unknown flag fails the whole call). `--join-server-address` tells an external
/// Join Server (none registered) from a nonce state that is all zero.
pub fn detect_flags(version: Version) -> Vec<String> {
    CARRIED
        .iter()
        .chain(std::iter::once(&MAC_SETTINGS_PROFILE))
        .filter(|f| f.since <= version)
        .map(|f| flag(f.path))
        .chain(std::iter::once(flag("join_server_address")))
        .collect()
}

fn flag(path: &str) -> String {
    format!("--{}", path.replace('_', "-"))
}

/// The device refers to a MAC settings profile of the source application: refuse it before
/// any delete.
pub fn refusal(detected: &Value) -> Option<String> {
    let profile = detected.get(MAC_SETTINGS_PROFILE.path)?;
    let id = profile
        .get("profile_id")
        .and_then(Value::as_str)
        .unwrap_or("?");
    Some(format!(
        "the device uses the MAC settings profile `{id}` (mac_settings_profile_ids), which belongs \
         to the source application and cannot be carried to the target; nothing was deleted. \
         Replace the profile by the device's own MAC settings on the source (or create the same \
         profile on the target and assign it after the migration), then migrate the device"
    ))
}

/// Merges the detected extra fields into the import document, in place. Fields the export
/// already holds are left alone; the Join Server's nonce state only for OTAA devices.
pub fn merge_into_import(import: &mut Value, detected: &Value, mode: ActivationMode) {
    let Some(doc) = import.as_object_mut() else {
        return;
    };
    for field in CARRIED {
        if field.registry == Registry::Join && mode != ActivationMode::Otaa {
            continue;
        }
        if doc.contains_key(field.path) {
            continue;
        }
        if let Some(value) = detected.get(field.path) {
            doc.insert(field.path.to_string(), value.clone());
        }
    }
}

/// What is kept of a detection answer (saved next to the journal): the identifiers, the
/// activation fields, the [`CARRIED`] fields, the MAC settings profile, `mac_settings` (read with
/// `--freeze-downlinks`) and `mac_state.recent_uplinks`. None of them is a key; anything else an
/// answer holds (a CLI that printed more than was selected) is dropped, so that the file never
/// holds keys.
pub fn detection_record(detected: &Value) -> Value {
    const KEPT: &[&str] = &[
        "ids",
        "created_at",
        "updated_at",
        "supports_join",
        "join_server_address",
        "mac_settings",
    ];
    let mut kept = serde_json::Map::new();
    for path in KEPT
        .iter()
        .copied()
        .chain(CARRIED.iter().map(|f| f.path))
        .chain(std::iter::once(MAC_SETTINGS_PROFILE.path))
    {
        if let Some(value) = detected.get(path) {
            kept.insert(path.to_string(), value.clone());
        }
    }
    if let Some(started_at) = detected.pointer("/session/started_at") {
        kept.insert(
            "session".into(),
            serde_json::json!({ "started_at": started_at }),
        );
    }
    if let Some(uplinks) = detected.pointer("/mac_state/recent_uplinks") {
        kept.insert(
            "mac_state".into(),
            serde_json::json!({ "recent_uplinks": uplinks }),
        );
    }
    Value::Object(kept)
}

/// The device joined again on the source between its detection and its export (the detection
/// ran before the question): the nonce state read then predates that join. What it means, for an
/// OTAA device whose state was carried.
pub fn rejoined(detected: &Value, export: &Value, mode: ActivationMode) -> Option<String> {
    fn started(doc: &Value) -> Option<&str> {
        doc.pointer("/session/started_at").and_then(Value::as_str)
    }
    if mode != ActivationMode::Otaa || !JOIN_STATE.iter().any(|f| detected.get(*f).is_some()) {
        return None;
    }
    match (started(detected), started(export)) {
        (Some(then), Some(now)) if then != now => Some(format!(
            "the device joined again on the source (session started {now}) after the Join \
             Server's nonce state was read (session started {then}), so the state carried to the \
             target is from before that join: a LoRaWAN 1.0.4 or 1.1 device may not accept a \
             join-accept from the target until its Join Server has counted past the last \
             JoinNonce the device saw"
        )),
        _ => None,
    }
}

/// What the detection call said about the Join Server's nonce state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinState {
    /// ABP: no Join Server.
    NotApplicable,
    /// Read, and merged into the import document.
    Carried,
    /// Read, and all zero (the CLI omits zero values): nothing to carry.
    Zero,
    /// No Join Server address is registered: the device joins through an external Join Server.
    External,
    /// The Join Server answered with an error (the `get` logged an ERROR line for it).
    Unreadable(String),
}

impl JoinState {
    /// From the detection answer and what the call logged.
    pub fn of(detected: &Value, stderr: &str, mode: ActivationMode) -> JoinState {
        if mode != ActivationMode::Otaa {
            return JoinState::NotApplicable;
        }
        if let Some(line) = stderr
            .lines()
            .find(|l| l.starts_with("ERROR") && l.contains("Join Server"))
        {
            return JoinState::Unreadable(line.replace('\t', " ").trim().to_string());
        }
        let registered = detected
            .get("join_server_address")
            .and_then(Value::as_str)
            .is_some_and(|a| !a.is_empty());
        if !registered {
            return JoinState::External;
        }
        if JOIN_STATE.iter().any(|f| detected.get(*f).is_some()) {
            JoinState::Carried
        } else {
            JoinState::Zero
        }
    }

    /// What it means for the device when the state is not carried; `None` when nothing is lost.
    pub fn note(&self, detected: &Value) -> Option<String> {
        let last_join_nonce = detected.get("last_join_nonce").and_then(Value::as_u64);
        let consequence = "a LoRaWAN 1.0.4 or 1.1 device accepts a join-accept only with a \
             JoinNonce above the last one it saw, so after a re-join on the target it may not get \
             a session until the target's Join Server has counted past it; LoRaWAN 1.0.x devices \
             up to 1.0.3 re-join normally, without protection against a replayed join request";
        match self {
            JoinState::NotApplicable | JoinState::Carried | JoinState::Zero => None,
            JoinState::External => Some(
                "no Join Server address is registered on the source: the device joins through an \
                 external Join Server, which keeps its root keys and nonce state; register the \
                 device there for the target network before it re-joins"
                    .to_string(),
            ),
            JoinState::Unreadable(line) => Some(format!(
                "the Join Server's nonce state could not be read ({line}), so the target starts \
                 from zero{}: {consequence}",
                last_join_nonce
                    .map(|n| format!(" (the source was at JoinNonce {n})"))
                    .unwrap_or_default()
            )),
        }
    }
}

/// The detected fields worth a line in a plan or report (never keys: none of these is one).
pub fn describe(detected: &Value, mode: ActivationMode) -> String {
    let mut carried: Vec<&str> = CARRIED
        .iter()
        .filter(|f| mode == ActivationMode::Otaa || f.registry != Registry::Join)
        .filter(|f| detected.get(f.path).is_some())
        .map(|f| f.path)
        .collect();
    carried.dedup();
    if carried.is_empty() {
        "no fields beyond the documented export".to_string()
    } else {
        format!("also carry {}", carried.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    /// The Class C fixture, as the detection `get` of 3.32.1 answers it.
    fn detected_class_c() -> Value {
        let stored: Value =
            serde_json::from_str(include_str!("../fixtures/devices/class-c-actuator.json"))
                .unwrap();
        let mut detected = Map::new();
        for key in [
            "ids",
            "created_at",
            "updated_at",
            "supports_join",
            "join_server_address",
        ] {
            detected.insert(key.into(), stored[key].clone());
        }
        for field in CARRIED {
            if let Some(value) = stored.get(field.path) {
                detected.insert(field.path.into(), value.clone());
            }
        }
        Value::Object(detected)
    }

    #[test]
    fn the_detection_flags_follow_the_cli_version() {
        let old = detect_flags(Version(3, 23, 0));
        assert!(old.contains(&"--supports-class-c".to_string()));
        assert!(old.contains(&"--last-dev-nonce".to_string()));
        assert!(old.contains(&"--formatters".to_string()));
        assert!(old.contains(&"--join-server-address".to_string()));
        assert!(!old.contains(&"--serial-number".to_string()), "3.24 on");
        assert!(!old.contains(&"--label-ids".to_string()));
        let current = detect_flags(Version(3, 32, 1));
        assert!(current.contains(&"--lora-alliance-profile-ids".to_string()));
        assert!(!current.contains(&"--mac-settings-profile-ids".to_string()));
        let newer = detect_flags(Version(3, 34, 0));
        assert!(newer.contains(&"--label-ids".to_string()));
        assert!(newer.contains(&"--mac-settings-profile-ids".to_string()));
        // The documented export's flags are not repeated.
        for flag in crate::plan::EXPORT_FLAGS {
            assert!(!newer.contains(&flag.to_string()), "{flag}");
        }
    }

    #[test]
    fn a_class_c_device_keeps_its_class_attributes_model_formatters_and_nonces() {
        let detected = detected_class_c();
        let mut import = json!({"ids": {"device_id": "class-c-actuator"}, "name": "Valve",
                                "description": "from the export"});
        merge_into_import(&mut import, &detected, ActivationMode::Otaa);
        assert_eq!(import["supports_class_c"], true);
        assert_eq!(import["attributes"]["site"], "north-field");
        assert_eq!(import["version_ids"]["model_id"], "the-things-uno");
        assert_eq!(import["formatters"]["up_formatter"], "FORMATTER_JAVASCRIPT");
        assert_eq!(import["used_dev_nonces"], json!([4709, 4710, 4711]));
        assert_eq!(import["last_join_nonce"], detected["last_join_nonce"]);
        assert_eq!(
            import["description"], "from the export",
            "export fields win"
        );
        assert!(
            import.get("join_server_address").is_none(),
            "never an address"
        );
        assert_eq!(
            JoinState::of(&detected, "", ActivationMode::Otaa),
            JoinState::Carried
        );
    }

    #[test]
    fn a_lorawan_1_1_device_carries_its_join_nonces() {
        let stored: Value =
            serde_json::from_str(include_str!("../fixtures/devices/otaa-1.1.json")).unwrap();
        // As the detection `get` answers: JS fields, and the JS address the IS holds.
        let detected = json!({
            "join_server_address": stored["join_server_address"],
            "last_dev_nonce": stored["last_dev_nonce"],
            "used_dev_nonces": stored["used_dev_nonces"],
            "last_join_nonce": stored["last_join_nonce"],
        });
        let mut import = json!({"ids": {"device_id": "otaa-1-1"}, "lorawan_version": "MAC_V1_1"});
        merge_into_import(&mut import, &detected, ActivationMode::Otaa);
        assert_eq!(import["last_dev_nonce"], 12);
        assert_eq!(import["used_dev_nonces"], json!([10, 11, 12]));
        assert_eq!(import["last_join_nonce"], 5);
        assert_eq!(
            JoinState::of(&detected, "", ActivationMode::Otaa),
            JoinState::Carried
        );
    }

    #[test]
    fn an_abp_device_gets_no_join_state() {
        let detected = detected_class_c();
        let mut import = json!({"ids": {"device_id": "x"}});
        merge_into_import(&mut import, &detected, ActivationMode::Abp);
        assert_eq!(import["supports_class_c"], true);
        assert!(import.get("last_dev_nonce").is_none());
        assert!(import.get("used_dev_nonces").is_none());
        assert_eq!(
            JoinState::of(&detected, "", ActivationMode::Abp),
            JoinState::NotApplicable
        );
    }

    #[test]
    fn a_mac_settings_profile_is_refused_with_its_reason() {
        let mut detected = detected_class_c();
        assert!(refusal(&detected).is_none());
        detected["mac_settings_profile_ids"] =
            json!({"application_ids": {"application_id": "ce-app"}, "profile_id": "slow-adr"});
        let why = refusal(&detected).unwrap();
        assert!(why.contains("`slow-adr`"), "{why}");
        assert!(why.contains("belongs to the source application"), "{why}");
        assert!(why.contains("nothing was deleted"), "{why}");
    }

    #[test]
    fn a_join_state_that_cannot_be_read_is_explained() {
        let mut detected = detected_class_c();
        let stderr = "ERROR\tCould not get end device from Join Server\t{\"error\": \"error:pkg/errors:unavailable\"}\n";
        let state = JoinState::of(&detected, stderr, ActivationMode::Otaa);
        let note = state.note(&detected).unwrap();
        assert!(note.contains("could not be read"), "{note}");
        assert!(note.contains("JoinNonce above the last one"), "{note}");

        detected
            .as_object_mut()
            .unwrap()
            .remove("join_server_address");
        let state = JoinState::of(&detected, "", ActivationMode::Otaa);
        assert_eq!(state, JoinState::External);
        assert!(state
            .note(&detected)
            .unwrap()
            .contains("external Join Server"));

        let mut zero = detected_class_c();
        for f in JOIN_STATE {
            zero.as_object_mut().unwrap().remove(f);
        }
        let state = JoinState::of(&zero, "", ActivationMode::Otaa);
        assert_eq!(state, JoinState::Zero);
        assert!(state.note(&zero).is_none());
    }

    #[test]
    fn the_saved_detection_answer_never_holds_keys() {
        let stored: Value =
            serde_json::from_str(include_str!("../fixtures/devices/class-c-actuator.json"))
                .unwrap();
        // Even a whole device document (a CLI printing more than was selected) loses its keys.
        let record = detection_record(&stored);
        let text = record.to_string();
        assert!(record.get("root_keys").is_none());
        assert!(!text.contains("\"key\""), "{text}");
        assert_eq!(record["supports_class_c"], true);
        assert_eq!(record["attributes"]["site"], "north-field");
        assert!(record["mac_state"]["recent_uplinks"].is_array(), "{text}");
        assert!(record["mac_state"].get("current_parameters").is_none());
        assert_eq!(
            record["session"],
            json!({"started_at": stored["session"]["started_at"]})
        );
    }

    #[test]
    fn a_join_after_the_detection_is_noticed() {
        let detected =
            json!({"last_join_nonce": 5, "session": {"started_at": "2026-12-01T10:00:00Z"}});
        let same = json!({"session": {"started_at": "2026-12-01T10:00:00Z"}});
        let later = json!({"session": {"started_at": "2026-12-01T10:05:00Z"}});
        assert_eq!(rejoined(&detected, &same, ActivationMode::Otaa), None);
        let note = rejoined(&detected, &later, ActivationMode::Otaa).unwrap();
        assert!(note.contains("joined again on the source"), "{note}");
        assert_eq!(rejoined(&detected, &later, ActivationMode::Abp), None);
        assert_eq!(
            rejoined(&json!({}), &later, ActivationMode::Otaa),
            None,
            "no state carried"
        );
    }

    #[test]
    fn the_description_names_the_carried_fields() {
        let text = describe(&detected_class_c(), ActivationMode::Otaa);
        assert!(text.contains("supports_class_c"), "{text}");
        assert!(text.contains("last_dev_nonce"), "{text}");
        assert_eq!(
            describe(&json!({}), ActivationMode::Otaa),
            "no fields beyond the documented export"
        );
    }
}
