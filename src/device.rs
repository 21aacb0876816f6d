//! The end-device document: identifiers, the export as ttn-lw-cli printed it, its validation,
//! the rewrite into an import document, and the session comparison that verifies an import.
//!
//! Documents are kept as `serde_json::Value` with key order preserved, so every field the
//! export carries reaches the target untouched, whatever the CLI version adds.

use std::fmt;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ttn_lw_cli::{ErrorKind, TtsError};

/// Fields removed before an import: the documentation's three server addresses, and
/// `ids.dev_addr`, which the Join Server rejects for OTAA (lorawan-stack #1957).
pub const STRIPPED_FIELDS: [&str; 4] = [
    "join_server_address",
    "network_server_address",
    "application_server_address",
    "ids.dev_addr",
];

/// Fields the export selects only to check them, never imported: a `pending_session` refuses
/// the export (see [`ExportProblem::PendingSession`]), so an import document never has one.
pub const CHECKED_ONLY_FIELDS: [&str; 2] = ["pending_session", "pending_mac_state"];

/// Checks a The Things Stack identifier: `^[a-z0-9](?:[-]?[a-z0-9]){2,}$`, at most 36 chars.
pub fn validate_id(kind: &str, id: &str) -> Result<()> {
    let bytes = id.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let valid = (3..=36).contains(&bytes.len())
        && allowed(&bytes[0])
        && allowed(&bytes[bytes.len() - 1])
        && bytes.iter().all(|b| allowed(b) || *b == b'-')
        && !id.contains("--");
    if !valid {
        bail!(
            "invalid {kind} `{id}`: The Things Stack IDs are 3 to 36 lower-case letters, digits \
             and single dashes, starting and ending with a letter or digit"
        );
    }
    Ok(())
}

/// OTAA devices joined and carry root keys; ABP devices were personalised with a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationMode {
    Otaa,
    Abp,
}

impl ActivationMode {
    /// From the answer of `end-devices get --supports-join`: the CLI omits `false`, so an
    /// absent `supports_join` means ABP.
    pub fn of(doc: &Value) -> ActivationMode {
        if doc.get("supports_join").and_then(Value::as_bool) == Some(true) {
            ActivationMode::Otaa
        } else {
            ActivationMode::Abp
        }
    }
}

impl fmt::Display for ActivationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActivationMode::Otaa => "OTAA",
            ActivationMode::Abp => "ABP",
        })
    }
}

/// Reads the value at a dotted path.
pub fn at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, key| v.get(key))
}

fn text_at<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    at(doc, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn remove_at(doc: &mut Value, path: &str) {
    let (parent, key) = match path.rsplit_once('.') {
        Some((parent, key)) => (parent, key),
        None => ("", path),
    };
    let parent = if parent.is_empty() {
        Some(doc)
    } else {
        parent.split('.').try_fold(doc, |v, k| v.get_mut(k))
    };
    if let Some(Value::Object(map)) = parent {
        map.shift_remove(key);
    }
}

/// An export: stdout of `end-devices get` exactly as the CLI printed it, and its parse.
#[derive(Debug, Clone)]
pub struct DeviceExport {
    pub doc: Value,
}

impl DeviceExport {
    pub fn parse(raw: Vec<u8>) -> Result<DeviceExport> {
        let doc: Value = serde_json::from_slice(&raw).map_err(|e| {
            anyhow::anyhow!("the export is not a JSON document ({e}); nothing was deleted")
        })?;
        if !doc.is_object() {
            bail!("the export is not a JSON object; nothing was deleted");
        }
        Ok(DeviceExport { doc })
    }

    /// Refuses an export that would not carry the session to the target. `stderr` is what the
    /// export call logged: exit status 0 alone does not prove the export is complete.
    pub fn validate(&self, mode: ActivationMode, stderr: &str) -> Result<(), ExportProblem> {
        let doc = &self.doc;
        if let Some(problem) = wrong_cluster(doc, stderr) {
            return Err(problem);
        }
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("ERROR"))
            .map(|l| l.trim())
            .collect();
        if !errors.is_empty() {
            return Err(ExportProblem::ServerErrors {
                lines: errors.iter().map(|l| l.replace('\t', " ")).collect(),
            });
        }
        // `--otaa`/`--abp` skip the detection: an export that says otherwise (it carries
        // `supports_join`, absent when false) would name the wrong keys as missing.
        let actual = ActivationMode::of(doc);
        if actual != mode {
            return Err(ExportProblem::WrongMode {
                given: mode,
                actual,
            });
        }
        // A re-join the device has not confirmed with an uplink: the NS keeps the old
        // `session` until then (`pkg/networkserver/grpc_gsns.go`), so it is stale.
        if at(doc, "pending_session").is_some() {
            return Err(ExportProblem::PendingSession);
        }
        if at(doc, "session").is_none() {
            return Err(ExportProblem::NoSession { mode });
        }
        if let Some(app_s_key) = at(doc, "session.keys.app_s_key") {
            if text_at(app_s_key, "key").is_none()
                && (app_s_key.get("encrypted_key").is_some()
                    || app_s_key.get("kek_label").is_some())
            {
                return Err(ExportProblem::EncryptedAppSKey);
            }
        }
        let mut missing: Vec<&str> = [
            "session.dev_addr",
            "session.keys.f_nwk_s_int_key.key",
            "session.keys.app_s_key.key",
        ]
        .into_iter()
        .filter(|p| text_at(doc, p).is_none())
        .collect();
        if at(doc, "mac_state").is_none() {
            missing.push("mac_state");
        }
        if mode == ActivationMode::Otaa {
            missing.extend(
                [
                    "ids.join_eui",
                    "session.keys.session_key_id",
                    "root_keys.app_key.key",
                ]
                .into_iter()
                .filter(|p| text_at(doc, p).is_none()),
            );
        }
        if !missing.is_empty() {
            return Err(ExportProblem::Missing {
                fields: missing.iter().map(|s| s.to_string()).collect(),
            });
        }
        Ok(())
    }

    /// What the report shows: no keys.
    pub fn session_summary(&self) -> SessionSummary {
        SessionSummary::of(&self.doc)
    }
}

/// ttn-lw-cli silently leaves out the fields of a server whose address differs from its
/// config, with a `Deselecting … paths` warning: the device is on another cluster.
///
/// Only the Join Server deselected: the device's root keys live on another Join Server (an
/// external one, or another cluster's) while its session is here (real-cli-audit.md D11).
pub fn wrong_cluster(doc: &Value, stderr: &str) -> Option<ExportProblem> {
    let deselected: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("Deselecting"))
        .collect();
    if deselected.is_empty() {
        return None;
    }
    if deselected.iter().all(|l| l.contains("Join Server")) {
        let registered = stderr
            .lines()
            .filter(|l| l.contains("Registered Join Server address"))
            .filter_map(|l| l.rsplit('\t').next())
            .filter_map(|fields| serde_json::from_str::<Value>(fields).ok())
            .find_map(|fields| fields.get("registered")?.as_str().map(str::to_string));
        return Some(ExportProblem::ExternalJoinServer { registered });
    }
    // `WARN<TAB>Registered Network Server address … does not match CLI configuration<TAB>{…}`
    let from_log = stderr
        .lines()
        .filter(|l| l.contains("does not match CLI configuration"))
        .filter_map(|l| l.rsplit('\t').next())
        .filter_map(|fields| serde_json::from_str::<Value>(fields).ok())
        .find_map(|fields| fields.get("registered")?.as_str().map(str::to_string));
    let registered =
        from_log.or_else(|| text_at(doc, "network_server_address").map(str::to_string));
    Some(ExportProblem::WrongCluster { registered })
}

/// A server behind `end-devices get`. The CLI asks the Identity Server first (a failure there
/// fails the command), then splits the selected paths over the JS, AS and NS
/// (`cmd/ttn-lw-cli/commands/end_devices_split.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Identity,
    Network,
    Application,
    Join,
}

impl Server {
    fn title(self) -> &'static str {
        match self {
            Server::Identity => "Identity Server",
            Server::Network => "Network Server",
            Server::Application => "Application Server",
            Server::Join => "Join Server",
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// One server's failure inside a `get` that exited 0: the CLI logs
/// `ERROR<TAB>Could not get end device from <X> Server<TAB>{"error": "…"}`, leaves that
/// server's fields out and goes on (`end_devices_split.go`, `continueOnError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    pub server: Server,
    /// The error as printed (`error:pkg/ratelimit:rate_limit_exceeded (…)`), or the line.
    pub error: String,
    pub kind: ErrorKind,
}

impl RegistryError {
    /// The server does not hold the device (a partial create or delete): the registries answer
    /// `pkg/redis:not_found`, or their `device_not_found`.
    pub fn device_absent(&self) -> bool {
        self.kind == ErrorKind::NotFound
            || TtsError::parse(&self.error).is_some_and(|e| e.name == "not_found")
    }

    /// Worth asking again: the server was unavailable or rate limited.
    pub fn transient(&self) -> bool {
        self.kind.is_transient()
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.server, self.error)
    }
}

/// The servers that failed inside a `get`, from its log on stderr.
pub fn registry_errors(stderr: &str) -> Vec<RegistryError> {
    stderr
        .lines()
        .filter(|l| l.starts_with("ERROR"))
        .filter_map(|line| {
            let server = [
                Server::Network,
                Server::Application,
                Server::Join,
                Server::Identity,
            ]
            .into_iter()
            .find(|s| line.contains(s.title()))?;
            let error = line
                .rsplit('\t')
                .next()
                .and_then(|fields| serde_json::from_str::<Value>(fields).ok())
                .and_then(|fields| fields.get("error")?.as_str().map(str::to_string))
                .unwrap_or_else(|| line.replace('\t', " "));
            Some(RegistryError {
                server,
                kind: ErrorKind::of_error_text(&error),
                error,
            })
        })
        .collect()
}

/// Why an export cannot be migrated. Each names what is missing and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportProblem {
    WrongCluster {
        registered: Option<String>,
    },
    /// The session is on the source cluster, the root keys on another Join Server.
    ExternalJoinServer {
        registered: Option<String>,
    },
    ServerErrors {
        lines: Vec<String>,
    },
    NoSession {
        mode: ActivationMode,
    },
    /// `--otaa` for an ABP device, or `--abp` for an OTAA one.
    WrongMode {
        given: ActivationMode,
        actual: ActivationMode,
    },
    EncryptedAppSKey,
    /// The device re-joined and has sent no uplink since.
    PendingSession,
    Missing {
        fields: Vec<String>,
    },
}

impl fmt::Display for ExportProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportProblem::WrongCluster { registered: Some(host) } => write!(
                f,
                "the device is registered on {host}, not on the cluster of the source profile, so \
                 ttn-lw-cli left out its session and MAC state. Create a profile for that cluster \
                 (`ttn-session-migrate profile add <NAME> --host {host}`) and migrate this device \
                 in a new migration with --from <NAME> (`resume` keeps this one's source)"
            ),
            ExportProblem::ExternalJoinServer { registered } => write!(
                f,
                "the device's root keys are on another Join Server ({}), not on the source \
                 cluster's, so ttn-lw-cli left them out; its session is on the source. A profile \
                 for another cluster does not help: the target needs the keys on its own Join \
                 Server or the same external one. Leave this device out (--exclude), or move \
                 its keys with that Join Server's operator first",
                registered.as_deref().unwrap_or("address not shown")
            ),
            ExportProblem::WrongMode { given, actual } => {
                let (given_flag, actual_flag) = match given {
                    ActivationMode::Otaa => ("--otaa", "--abp"),
                    ActivationMode::Abp => ("--abp", "--otaa"),
                };
                let actual = match actual {
                    ActivationMode::Otaa => "OTAA",
                    ActivationMode::Abp => "ABP",
                };
                write!(
                    f,
                    "the device is {actual} on the source, but {given_flag} was given. Migrate it \
                     in a new migration with {actual_flag}, or with neither to detect the mode \
                     (`resume` keeps this one's {given_flag})"
                )
            }
            ExportProblem::WrongCluster { registered: None } => write!(
                f,
                "the device is registered on another cluster than the source profile's, so \
                 ttn-lw-cli left out its session and MAC state. Use a source profile for the \
                 device's cluster (eu1, nam1 or au1) with --from"
            ),
            ExportProblem::ServerErrors { lines } => write!(
                f,
                "ttn-lw-cli could not read the whole device ({}); the export is incomplete. Check \
                 that the source login may read device keys and sessions \
                 (RIGHT_APPLICATION_DEVICES_READ_KEYS, RIGHT_APPLICATION_TRAFFIC_READ) and retry",
                lines.join("; ")
            ),
            ExportProblem::NoSession { mode: ActivationMode::Otaa } => write!(
                f,
                "the device has no active session on the source. If it joined recently and has \
                 not sent an uplink yet, its keys are only in pending_session: wait for its first \
                 uplink and retry. A device that never joined has nothing to carry over: register \
                 it on the target and let it join"
            ),
            ExportProblem::NoSession { mode: ActivationMode::Abp } => write!(
                f,
                "the ABP device has no session on the source (no DevAddr or session keys), so there \
                 is nothing to carry over. Check the device in the Console"
            ),
            ExportProblem::PendingSession => write!(
                f,
                "the device re-joined and has sent no uplink since: its new keys are in \
                 pending_session and its session is stale. Wait for its next uplink (the Network \
                 Server then makes the new session current), then retry with `resume`"
            ),
            ExportProblem::EncryptedAppSKey => write!(
                f,
                "the source returned the AppSKey encrypted (kek_label/encrypted_key), so it cannot \
                 be imported elsewhere. The Application Server could not unwrap it: check the \
                 device's Application Server settings in the Console, or migrate it without its \
                 session"
            ),
            ExportProblem::Missing { fields } => write!(
                f,
                "the export lacks {}; the target could not continue the session. Check that the \
                 device has sent an uplink on the source and that the login can read keys, then \
                 retry",
                fields.join(", ")
            ),
        }
    }
}

/// Options of the rewrite from export to import document.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    /// Set `ids.application_ids.application_id` (`--to-application`).
    pub application_id: Option<String>,
    /// `mac_settings.schedule_downlinks` as it was before `--freeze-downlinks`: `Some(None)`
    /// means it was not set and must be removed.
    pub restore_schedule_downlinks: Option<Option<bool>>,
}

impl Rewrite {
    /// The import document: the export minus [`STRIPPED_FIELDS`], key order kept.
    pub fn apply(&self, export: &Value) -> Value {
        let mut doc = export.clone();
        for path in STRIPPED_FIELDS.into_iter().chain(CHECKED_ONLY_FIELDS) {
            remove_at(&mut doc, path);
        }
        if let Some(app) = &self.application_id {
            if let Some(ids) = doc.get_mut("ids").and_then(Value::as_object_mut) {
                let mut application_ids = Map::new();
                application_ids.insert("application_id".into(), Value::String(app.clone()));
                ids.insert("application_ids".into(), Value::Object(application_ids));
            }
        }
        if let Some(original) = self.restore_schedule_downlinks {
            match original {
                Some(value) => {
                    if let Some(settings) =
                        doc.get_mut("mac_settings").and_then(Value::as_object_mut)
                    {
                        settings.insert("schedule_downlinks".into(), Value::Bool(value));
                    }
                }
                None => remove_at(&mut doc, "mac_settings.schedule_downlinks"),
            }
        }
        doc
    }

    /// The comment line `--dry-run` prints between the export and the import.
    pub fn describe(&self) -> String {
        let mut text = format!("remove {}", STRIPPED_FIELDS.join(", "));
        if let Some(app) = &self.application_id {
            text.push_str(&format!(
                "; set ids.application_ids.application_id to {app}"
            ));
        }
        if self.restore_schedule_downlinks.is_some() {
            text.push_str(
                "; restore mac_settings.schedule_downlinks to its value before the freeze",
            );
        }
        text
    }
}

/// DevAddr and frame counters: what the report may show (never keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub dev_addr: Option<String>,
    pub last_f_cnt_up: u64,
    pub last_n_f_cnt_down: u64,
    pub last_a_f_cnt_down: u64,
}

impl SessionSummary {
    pub fn of(doc: &Value) -> SessionSummary {
        let counter = |p: &str| at(doc, p).and_then(Value::as_u64).unwrap_or(0);
        SessionSummary {
            dev_addr: text_at(doc, "session.dev_addr")
                .or_else(|| text_at(doc, "ids.dev_addr"))
                .map(str::to_string),
            last_f_cnt_up: counter("session.last_f_cnt_up"),
            last_n_f_cnt_down: counter("session.last_n_f_cnt_down"),
            last_a_f_cnt_down: counter("session.last_a_f_cnt_down"),
        }
    }
}

/// The session's identity: what an import must carry over unchanged, and what tells our device
/// from another with the same ID.
const IDENTITY_FIELDS: [&str; 6] = [
    "session.dev_addr",
    "session.keys.session_key_id",
    "session.keys.f_nwk_s_int_key.key",
    "session.keys.s_nwk_s_int_key.key",
    "session.keys.nwk_s_enc_key.key",
    "session.keys.app_s_key.key",
];

/// The frame counters. A live Network Server and Application Server raise them with every
/// uplink and downlink (`pkg/networkserver/grpc_gsns.go`, `downlink.go`), so a device that
/// lived since the import has higher ones; lower ones are a different (reset) session.
/// Absent counters are zero.
const COUNTERS: [&str; 3] = [
    "session.last_f_cnt_up",
    "session.last_n_f_cnt_down",
    "session.last_a_f_cnt_down",
];

/// Compares the session a deployment now holds with the one imported: the paths whose value
/// differs from the import's (never the values: they are keys). The identity (DevAddr, session
/// key ID, session keys, and for OTAA the root key) must be equal; a frame counter may have
/// advanced with traffic since the import, never gone back. Equal identity is what makes the
/// device "ours".
pub fn session_differences(imported: &Value, target: &Value, mode: ActivationMode) -> Vec<String> {
    let mut differences = identity_differences(imported, target, mode);
    let counter = |doc: &Value, path: &str| at(doc, path).and_then(Value::as_u64).unwrap_or(0);
    differences.extend(
        COUNTERS
            .into_iter()
            .filter(|path| counter(target, path) < counter(imported, path))
            .map(str::to_string),
    );
    differences
}

/// An OTAA device that joined again since the import: the same DevEUI, JoinEUI and root keys,
/// another session. Only a device registered with these keys can have joined with them.
pub fn rejoined(imported: &Value, target: &Value) -> bool {
    let same = |path: &str| {
        let norm = |doc: &Value| text_at(doc, path).map(str::to_ascii_uppercase);
        norm(imported) == norm(target)
    };
    ActivationMode::of(imported) == ActivationMode::Otaa
        && text_at(imported, "root_keys.app_key.key").is_some()
        && [
            "ids.dev_eui",
            "ids.join_eui",
            "root_keys.app_key.key",
            "root_keys.nwk_key.key",
        ]
        .into_iter()
        .all(same)
}

/// The identity fields that differ (see [`session_differences`]).
fn identity_differences(imported: &Value, target: &Value, mode: ActivationMode) -> Vec<String> {
    let mut paths: Vec<&str> = IDENTITY_FIELDS.to_vec();
    if mode == ActivationMode::Otaa {
        paths.push("root_keys.app_key.key");
    }
    let normalised = |doc: &Value, path: &str| -> Option<String> {
        match at(doc, path) {
            Some(Value::String(s)) if path.ends_with("key") || path.ends_with("dev_addr") => {
                Some(s.to_ascii_uppercase())
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => Some(other.to_string()),
            None => None,
        }
    };
    let f_nwk = "session.keys.f_nwk_s_int_key.key";
    paths
        .into_iter()
        .filter(|path| {
            let mut expected = normalised(imported, path);
            // LoRaWAN 1.0.x: the Network Server copies the one NwkSKey into the other two.
            if expected.is_none()
                && (path.ends_with("s_nwk_s_int_key.key") || path.ends_with("nwk_s_enc_key.key"))
            {
                if normalised(target, path).is_none() {
                    return false;
                }
                expected = normalised(imported, f_nwk);
            }
            expected != normalised(target, path)
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn otaa_export() -> Value {
        json!({
            "ids": {"device_id": "dev-1", "application_ids": {"application_id": "app-1"},
                    "dev_eui": "70B3D57ED0000001", "join_eui": "0000000000000000", "dev_addr": "260B1234"},
            "created_at": "2023-05-01T10:00:00.123Z",
            "name": "Sensor 1",
            "network_server_address": "eu1.cloud.thethings.network",
            "application_server_address": "eu1.cloud.thethings.network",
            "join_server_address": "eu1.cloud.thethings.network",
            "lorawan_version": "MAC_V1_0_3",
            "supports_join": true,
            "root_keys": {"app_key": {"key": "00112233445566778899AABBCCDDEEFF"}},
            "mac_settings": {"supports_32_bit_f_cnt": true},
            "mac_state": {"lorawan_version": "MAC_V1_0_3"},
            "session": {"dev_addr": "260B1234", "keys": {
                "session_key_id": "AYrD", "f_nwk_s_int_key": {"key": "11111111111111111111111111111111"},
                "s_nwk_s_int_key": {"key": "11111111111111111111111111111111"},
                "nwk_s_enc_key": {"key": "11111111111111111111111111111111"},
                "app_s_key": {"key": "22222222222222222222222222222222"}},
                "last_f_cnt_up": 1234, "last_n_f_cnt_down": 56, "last_a_f_cnt_down": 12}
        })
    }

    fn export(doc: Value) -> DeviceExport {
        DeviceExport::parse(serde_json::to_vec(&doc).unwrap()).unwrap()
    }

    #[test]
    fn ids_follow_the_things_stack_rules() {
        for good in ["abc", "my-app-1", "a1b", &"a".repeat(36)] {
            assert!(validate_id("device ID", good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "a--b",
            "ABC",
            "a_b",
            "a.b",
            &"a".repeat(37),
            "dev 1",
        ] {
            assert!(validate_id("device ID", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn activation_mode_follows_supports_join() {
        assert_eq!(
            ActivationMode::of(&json!({"supports_join": true})),
            ActivationMode::Otaa
        );
        assert_eq!(ActivationMode::of(&json!({"ids": {}})), ActivationMode::Abp);
    }

    #[test]
    fn rewrite_strips_addresses_and_ids_dev_addr_and_keeps_order() {
        let doc = Rewrite::default().apply(&otaa_export());
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "ids",
                "created_at",
                "name",
                "lorawan_version",
                "supports_join",
                "root_keys",
                "mac_settings",
                "mac_state",
                "session"
            ]
        );
        assert!(at(&doc, "ids.dev_addr").is_none());
        assert_eq!(text_at(&doc, "session.dev_addr"), Some("260B1234"));
        let ids: Vec<&String> = doc["ids"].as_object().unwrap().keys().collect();
        assert_eq!(ids, ["device_id", "application_ids", "dev_eui", "join_eui"]);
    }

    #[test]
    fn rewrite_sets_the_target_application_and_restores_downlinks() {
        let mut source = otaa_export();
        source["mac_settings"]["schedule_downlinks"] = json!(false);
        let rewrite = Rewrite {
            application_id: Some("new-app".into()),
            restore_schedule_downlinks: Some(None),
        };
        let doc = rewrite.apply(&source);
        assert_eq!(
            text_at(&doc, "ids.application_ids.application_id"),
            Some("new-app")
        );
        assert!(at(&doc, "mac_settings.schedule_downlinks").is_none());
        let doc = Rewrite {
            restore_schedule_downlinks: Some(Some(true)),
            ..Default::default()
        }
        .apply(&source);
        assert_eq!(
            at(&doc, "mac_settings.schedule_downlinks"),
            Some(&json!(true))
        );
    }

    #[test]
    fn validation_accepts_a_complete_export() {
        assert_eq!(
            export(otaa_export()).validate(ActivationMode::Otaa, "INFO\tx"),
            Ok(())
        );
    }

    #[test]
    fn validation_refuses_incomplete_exports() {
        let deselected = "WARN\tRegistered Network Server address of end device \"dev-1\" does not match CLI configuration\nWARN\tDeselecting Network Server paths\n";
        assert!(matches!(
            export(otaa_export()).validate(ActivationMode::Otaa, deselected),
            Err(ExportProblem::WrongCluster { registered: Some(h) }) if h == "eu1.cloud.thethings.network"
        ));
        let with_fields = "WARN\tRegistered Network Server address of end device \"dev-1\" does not match CLI configuration\t{\"configured\": \"eu1.cloud.thethings.network\", \"registered\": \"nam1.cloud.thethings.network\"}\nWARN\tDeselecting Network Server paths\n";
        assert!(matches!(
            export(json!({"ids": {}})).validate(ActivationMode::Otaa, with_fields),
            Err(ExportProblem::WrongCluster { registered: Some(h) }) if h == "nam1.cloud.thethings.network"
        ));
        let mut doc = otaa_export();
        doc.as_object_mut().unwrap().shift_remove("mac_state");
        assert_eq!(
            export(doc).validate(ActivationMode::Otaa, ""),
            Err(ExportProblem::Missing {
                fields: vec!["mac_state".into()]
            })
        );
        let mut doc = otaa_export();
        doc["session"]["keys"]["app_s_key"] = json!({"kek_label": "as:x", "encrypted_key": "AAAA"});
        assert_eq!(
            export(doc).validate(ActivationMode::Otaa, ""),
            Err(ExportProblem::EncryptedAppSKey)
        );
        let mut doc = otaa_export();
        doc.as_object_mut().unwrap().shift_remove("session");
        assert_eq!(
            export(doc).validate(ActivationMode::Otaa, ""),
            Err(ExportProblem::NoSession {
                mode: ActivationMode::Otaa
            })
        );
        let mut doc = otaa_export();
        doc["session"]["keys"]
            .as_object_mut()
            .unwrap()
            .shift_remove("session_key_id");
        doc.as_object_mut().unwrap().shift_remove("root_keys");
        assert_eq!(
            export(doc.clone()).validate(ActivationMode::Otaa, ""),
            Err(ExportProblem::Missing {
                fields: vec![
                    "session.keys.session_key_id".into(),
                    "root_keys.app_key.key".into()
                ]
            })
        );
        // The same document validated as ABP: its `supports_join` says OTAA.
        assert_eq!(
            export(doc.clone()).validate(ActivationMode::Abp, ""),
            Err(ExportProblem::WrongMode {
                given: ActivationMode::Abp,
                actual: ActivationMode::Otaa
            })
        );
        doc.as_object_mut().unwrap().shift_remove("supports_join");
        assert_eq!(export(doc).validate(ActivationMode::Abp, ""), Ok(()));
        assert!(matches!(
            export(otaa_export()).validate(
                ActivationMode::Otaa,
                "ERROR\tCould not get end device from Network Server\t{\"error\":\"x\"}"
            ),
            Err(ExportProblem::ServerErrors { .. })
        ));
    }

    #[test]
    fn verification_compares_session_fields_without_revealing_them() {
        let imported = Rewrite::default().apply(&otaa_export());
        let mut created = imported.clone();
        created["attributes"] = json!({});
        assert!(session_differences(&imported, &created, ActivationMode::Otaa).is_empty());
        created["session"]["last_n_f_cnt_down"] = json!(50);
        created["session"]["keys"]["app_s_key"]["key"] = json!("33333333333333333333333333333333");
        assert_eq!(
            session_differences(&imported, &created, ActivationMode::Otaa),
            ["session.keys.app_s_key.key", "session.last_n_f_cnt_down"]
        );
    }

    /// D2: the target raises the counters with every uplink and downlink. A device that lived
    /// since the import is still ours; one whose counters went back, or with another DevAddr
    /// or session key ID, is not.
    #[test]
    fn a_device_that_lived_since_the_import_is_still_ours() {
        let imported = Rewrite::default().apply(&otaa_export());
        let mut lived = imported.clone();
        lived["session"]["last_f_cnt_up"] = json!(1240);
        lived["session"]["last_n_f_cnt_down"] = json!(60);
        lived["session"]["last_a_f_cnt_down"] = json!(13);
        assert!(session_differences(&imported, &lived, ActivationMode::Otaa).is_empty());
        let mut other = lived.clone();
        other["session"]["dev_addr"] = json!("260B9999");
        other["session"]["keys"]["session_key_id"] = json!("BBBB");
        assert_eq!(
            session_differences(&imported, &other, ActivationMode::Otaa),
            ["session.dev_addr", "session.keys.session_key_id"]
        );
        let mut reset = imported.clone();
        reset["session"]["last_f_cnt_up"] = json!(3);
        assert_eq!(
            session_differences(&imported, &reset, ActivationMode::Otaa),
            ["session.last_f_cnt_up"]
        );
    }

    /// D3: an OTAA export must carry what a join needs on the target, the JoinEUI too.
    #[test]
    fn an_otaa_export_without_a_join_eui_is_refused() {
        let mut doc = otaa_export();
        doc["ids"].as_object_mut().unwrap().shift_remove("join_eui");
        assert_eq!(
            export(doc.clone()).validate(ActivationMode::Otaa, ""),
            Err(ExportProblem::Missing {
                fields: vec!["ids.join_eui".into()]
            })
        );
        // An ABP device needs none.
        doc.as_object_mut().unwrap().shift_remove("supports_join");
        doc.as_object_mut().unwrap().shift_remove("root_keys");
        assert_eq!(export(doc).validate(ActivationMode::Abp, ""), Ok(()));
    }

    /// D11: only the Join Server deselected is not "another cluster".
    #[test]
    fn a_join_server_elsewhere_is_not_called_another_cluster() {
        let js_only = "WARN\tRegistered Join Server address of end device \"dev-1\" does not match CLI configuration\t{\"configured\": \"eu1.cloud.thethings.network\", \"registered\": \"join.example.com\"}\nWARN\tDeselecting Join Server paths\n";
        let problem = export(otaa_export())
            .validate(ActivationMode::Otaa, js_only)
            .unwrap_err();
        assert_eq!(
            problem,
            ExportProblem::ExternalJoinServer {
                registered: Some("join.example.com".into())
            }
        );
        assert!(!problem.to_string().contains("profile add"));
    }

    #[test]
    fn a_rejoin_keeps_the_root_keys_and_changes_the_session() {
        let imported = Rewrite::default().apply(&otaa_export());
        let mut joined = imported.clone();
        joined["session"]["dev_addr"] = json!("260B9999");
        joined["session"]["keys"]["session_key_id"] = json!("BBBB");
        assert!(rejoined(&imported, &joined));
        let mut other_key = joined.clone();
        other_key["root_keys"]["app_key"]["key"] = json!("FFEEDDCCBBAA99887766554433221100");
        assert!(!rejoined(&imported, &other_key));
        let mut abp = imported.clone();
        abp.as_object_mut().unwrap().shift_remove("supports_join");
        assert!(!rejoined(&abp, &joined));
    }

    #[test]
    fn registry_errors_name_the_server_and_the_kind() {
        let stderr = "INFO\tx\nERROR\tCould not get end device from Network Server\t{\"error\": \"error:pkg/ratelimit:rate_limit_exceeded (rate limit of `10` accesses per minute exceeded for resource `x`)\"}\nERROR\tCould not get end device from Application Server\t{\"error\": \"error:pkg/redis:not_found (entity not found)\"}\n";
        let errors = registry_errors(stderr);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].server, Server::Network);
        assert!(errors[0].transient() && !errors[0].device_absent());
        assert_eq!(errors[1].server, Server::Application);
        assert!(errors[1].device_absent() && !errors[1].transient());
        assert!(registry_errors("WARN\tDeselecting Network Server paths").is_empty());
    }

    #[test]
    fn a_pending_session_refuses_the_export_and_never_reaches_an_import_document() {
        let mut doc = otaa_export();
        doc["pending_session"] = json!({"dev_addr": "260B9999"});
        assert_eq!(
            export(doc.clone()).validate(ActivationMode::Otaa, ""),
            Err(ExportProblem::PendingSession)
        );
        assert!(at(&Rewrite::default().apply(&doc), "pending_session").is_none());
    }

    #[test]
    fn verification_accepts_the_network_servers_copy_of_the_1_0_nwk_s_key() {
        let mut imported = Rewrite::default().apply(&otaa_export());
        let keys = imported["session"]["keys"].as_object_mut().unwrap();
        keys.shift_remove("s_nwk_s_int_key");
        keys.shift_remove("nwk_s_enc_key");
        let created = Rewrite::default().apply(&otaa_export());
        assert!(session_differences(&imported, &created, ActivationMode::Otaa).is_empty());
    }

    #[test]
    fn summary_has_counters_and_dev_addr_only() {
        let summary = export(otaa_export()).session_summary();
        assert_eq!(summary.dev_addr.as_deref(), Some("260B1234"));
        assert_eq!(
            (
                summary.last_f_cnt_up,
                summary.last_n_f_cnt_down,
                summary.last_a_f_cnt_down
            ),
            (1234, 56, 12)
        );
    }
}
