//! The gateways each device needs, and whether the target has them.
//!
//! A migrated device keeps its DevAddr, so after the migration it is heard only through
//! gateways connected to the target (`devaddr` explains why). Which gateways those must be is
//! in the device itself: the Network Server keeps its last uplinks in
//! `mac_state.recent_uplinks`, each with `rx_metadata[].gateway_ids` (`gateway_id`, and `eui`
//! where the Gateway Server recorded one). An uplink forwarded by Packet Broker from another
//! network names the gateway `packetbroker` (`pkg/packetbroker/ids.go`), with the forwarder in
//! `packet_broker`: such a device depends on a gateway outside the source deployment, which
//! keeps sending its uplinks to the network that owns the DevAddr.
//!
//! Each gateway is looked up on the target by EUI where one is recorded (IDs may differ between
//! deployments), else by ID: `gateways get` (registered?) then `gateways get-connection-stats`
//! (connected?). Reading a gateway's connection needs `RIGHT_GATEWAY_STATUS_READ`
//! (`pkg/gatewayserver/grpc.go`); without it the gateway shows as registered, status unknown.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::outcome::{count, first_few};
use crate::runner::Calls;
use crate::terminal::hang;
use crate::ttn_lw_cli::Invocation;

/// The gateway ID Packet Broker uplinks carry.
pub const PACKET_BROKER: &str = "packetbroker";

/// The select flag that reads what [`DeviceGateways::of`] needs, with no key rights (NS
/// `appendRequiredDeviceReadRights`: only `RIGHT_APPLICATION_DEVICES_READ`). A detection `get`
/// can carry it, so the gateways cost no call per device.
pub const SELECT_FLAG: &str = "--mac-state.recent-uplinks";

/// A gateway as the source recorded it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Gateway {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eui: Option<String>,
}

impl Gateway {
    /// How the gateway is identified across deployments: its EUI where recorded, else its ID.
    pub fn key(&self) -> String {
        self.eui
            .clone()
            .or_else(|| self.id.clone())
            .unwrap_or_default()
    }
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.id, &self.eui) {
            (Some(id), Some(eui)) => write!(f, "{id} ({eui})"),
            (Some(id), None) => f.write_str(id),
            (None, Some(eui)) => write!(f, "EUI {eui}"),
            (None, None) => f.write_str("?"),
        }
    }
}

/// The gateways that heard one device on the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceGateways {
    pub device_id: String,
    /// Gateways of the source deployment itself, by key, each once.
    pub gateways: Vec<Gateway>,
    /// Some uplink came through Packet Broker.
    pub packet_broker: bool,
    /// No uplink recorded at all (never heard, or no MAC state).
    pub no_uplinks: bool,
}

impl DeviceGateways {
    /// From a device document with `mac_state.recent_uplinks` (an export, or a narrow `get`).
    pub fn of(device_id: &str, doc: &Value) -> DeviceGateways {
        let uplinks = doc
            .pointer("/mac_state/recent_uplinks")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut gateways: BTreeMap<String, Gateway> = BTreeMap::new();
        let mut packet_broker = false;
        for metadata in uplinks
            .iter()
            .filter_map(|u| u.get("rx_metadata").and_then(Value::as_array))
            .flatten()
        {
            let ids = metadata.get("gateway_ids");
            let text = |key: &str| {
                ids.and_then(|i| i.get(key))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            let (id, eui) = (text("gateway_id"), text("eui").map(|e| e.to_uppercase()));
            if id.as_deref() == Some(PACKET_BROKER) || metadata.get("packet_broker").is_some() {
                packet_broker = true;
                continue;
            }
            if id.is_none() && eui.is_none() {
                continue;
            }
            let gateway = Gateway { id, eui };
            let entry = gateways.entry(gateway.key()).or_insert(gateway.clone());
            if entry.id.is_none() {
                entry.id = gateway.id;
            }
        }
        DeviceGateways {
            device_id: device_id.to_string(),
            gateways: gateways.into_values().collect(),
            packet_broker,
            no_uplinks: uplinks.is_empty(),
        }
    }

    /// Heard only through Packet Broker: no gateway of the source deployment heard it.
    pub fn only_packet_broker(&self) -> bool {
        self.packet_broker && self.gateways.is_empty()
    }

    /// Where it was last heard on the source, in words.
    pub fn heard_on_source(&self) -> String {
        let mut parts: Vec<String> = self.gateways.iter().map(ToString::to_string).collect();
        if self.packet_broker {
            parts.push("Packet Broker".to_string());
        }
        if parts.is_empty() {
            "no uplink recorded on the source".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// A gateway on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "detail")]
pub enum TargetState {
    /// Registered and connected to the target's Gateway Server.
    Connected {
        gateway_id: String,
    },
    RegisteredNotConnected {
        gateway_id: String,
    },
    NotRegistered,
    /// Registered, or the answer was not clear: the reason.
    Unknown(String),
}

impl TargetState {
    pub fn is_connected(&self) -> bool {
        matches!(self, TargetState::Connected { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            TargetState::Connected { .. } => "connected".into(),
            TargetState::RegisteredNotConnected { .. } => "registered, not connected".into(),
            TargetState::NotRegistered => "not registered".into(),
            TargetState::Unknown(why) => format!("unknown: {why}"),
        }
    }
}

/// Looks a gateway up on the target: by EUI where known, else by ID (one `gateways get`), then
/// its connection (one `gateways get-connection-stats`). Read-only.
pub fn look_up(cli: &dyn Calls, target: &Path, gateway: &Gateway) -> TargetState {
    let gateway_id = match registered_id(cli, target, gateway) {
        Ok(Some(id)) => id,
        Ok(None) => return TargetState::NotRegistered,
        Err(state) => return state,
    };
    let stats = Invocation::new(
        target,
        ["gateways", "get-connection-stats", gateway_id.as_str()],
    );
    match cli.run(&stats) {
        Ok(_) => TargetState::Connected { gateway_id },
        Err(e) => match error_name(&e).as_deref() {
            Some("not_connected") => TargetState::RegisteredNotConnected { gateway_id },
            Some("no_gateway_rights") => TargetState::Unknown(format!(
                "registered as {gateway_id}; reading its connection needs RIGHT_GATEWAY_STATUS_READ \
                 on the target login"
            )),
            _ => TargetState::Unknown(format!("registered as {gateway_id}; {}", e.detail)),
        },
    }
}

/// The gateway's ID on the target: by EUI where recorded; by ID when there is no EUI, or when
/// the EUI is not registered but a gateway with the same ID and no EUI is (an ID alone is not
/// proof: a gateway with the same ID and another EUI is another gateway).
fn registered_id(
    cli: &dyn Calls,
    target: &Path,
    gateway: &Gateway,
) -> Result<Option<String>, TargetState> {
    let by_eui = gateway
        .eui
        .as_ref()
        .map(|eui| Invocation::new(target, ["gateways", "get", "--gateway-eui", eui]));
    let by_id = gateway
        .id
        .as_ref()
        .map(|id| Invocation::new(target, ["gateways", "get", id]));
    for get in [by_eui, by_id].into_iter().flatten() {
        match cli.run(&get) {
            Ok(output) => {
                let doc: Value = serde_json::from_slice(&output.stdout).map_err(|_| {
                    TargetState::Unknown("ttn-lw-cli printed a gateway that is not JSON".into())
                })?;
                let text = |pointer: &str| {
                    doc.pointer(pointer)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                let registered_eui = text("/ids/eui");
                if let (Some(ours), Some(theirs)) = (&gateway.eui, &registered_eui) {
                    if !ours.eq_ignore_ascii_case(theirs) {
                        return Err(TargetState::Unknown(format!(
                            "the target's gateway {} has another EUI ({theirs})",
                            text("/ids/gateway_id").unwrap_or_default()
                        )));
                    }
                }
                return text("/ids/gateway_id").map(Some).ok_or_else(|| {
                    TargetState::Unknown("ttn-lw-cli printed a gateway without an ID".into())
                });
            }
            Err(e) if error_name(&e).is_some_and(|n| n.starts_with("gateway_not_found")) => {}
            Err(e) => return Err(TargetState::Unknown(e.detail)),
        }
    }
    Ok(None)
}

fn error_name(e: &crate::ttn_lw_cli::CliError) -> Option<String> {
    e.error.as_ref().map(|t| t.name.clone())
}

/// The summary of devices already read (their gateways, from the detection answers), each
/// gateway looked up on the target once.
pub fn summary_of(cli: &dyn Calls, target: &Path, devices: &[DeviceGateways]) -> Summary {
    Summary::of(devices, |gateway| look_up(cli, target, gateway))
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayRow {
    pub gateway: Gateway,
    pub devices: Vec<String>,
    pub target: TargetState,
}

impl GatewayRow {
    /// The state on the target, with the target's gateway ID when it differs from the source's.
    fn target_cell(&self) -> String {
        let state = self.target.describe();
        match &self.target {
            TargetState::Connected { gateway_id }
            | TargetState::RegisteredNotConnected { gateway_id }
                if self.gateway.id.as_ref() != Some(gateway_id) =>
            {
                format!("{state} (as {gateway_id})")
            }
            _ => state,
        }
    }
}

/// Why a device is not heard by any connected target gateway.
#[derive(Debug, Clone, Serialize)]
pub struct Unheard {
    pub device_id: String,
    pub reason: String,
}

/// The gateways the devices need and their state on the target.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub gateways: Vec<GatewayRow>,
    /// The devices no connected target gateway has heard.
    pub unheard: Vec<Unheard>,
}

impl Summary {
    /// Looks each gateway up once (`look_up` is called once per distinct gateway).
    pub fn of(
        devices: &[DeviceGateways],
        mut look_up: impl FnMut(&Gateway) -> TargetState,
    ) -> Summary {
        let mut rows: BTreeMap<String, GatewayRow> = BTreeMap::new();
        for device in devices {
            for gateway in &device.gateways {
                rows.entry(gateway.key())
                    .or_insert_with(|| GatewayRow {
                        gateway: gateway.clone(),
                        devices: Vec::new(),
                        target: TargetState::NotRegistered,
                    })
                    .devices
                    .push(device.device_id.clone());
            }
        }
        for row in rows.values_mut() {
            row.target = look_up(&row.gateway);
        }
        let unheard = devices
            .iter()
            .filter_map(|device| {
                let connected = device
                    .gateways
                    .iter()
                    .any(|g| rows.get(&g.key()).is_some_and(|r| r.target.is_connected()));
                if connected {
                    return None;
                }
                let reason = if device.no_uplinks {
                    "no uplink recorded on the source".to_string()
                } else if device.gateways.is_empty() && !device.packet_broker {
                    "its recent uplinks on the source name no gateway".to_string()
                } else if device.only_packet_broker() {
                    "heard only through Packet Broker: a gateway of another network, which keeps \
                     routing this DevAddr to the source"
                        .to_string()
                } else {
                    let via_pb = if device.packet_broker {
                        ", and through Packet Broker"
                    } else {
                        ""
                    };
                    format!(
                        "its gateways are not connected to the target: {}{via_pb}",
                        device
                            .gateways
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                Some(Unheard {
                    device_id: device.device_id.clone(),
                    reason,
                })
            })
            .collect();
        Summary {
            gateways: rows.into_values().collect(),
            unheard,
        }
    }

    /// The devices that no connected target gateway has heard (what `--require-gateways`
    /// refuses).
    #[cfg(test)]
    pub fn unheard_devices(&self) -> Vec<&str> {
        self.unheard.iter().map(|u| u.device_id.as_str()).collect()
    }

    /// The table, then the devices without a connected gateway, in `width` columns: the
    /// columns stay aligned, the last cell and the reasons wrap under their first line.
    pub fn render(&self, width: usize) -> String {
        let mut rows = vec![[
            "GATEWAY".to_string(),
            "EUI".to_string(),
            "DEVICES".to_string(),
            "ON THE TARGET".to_string(),
        ]];
        for row in &self.gateways {
            rows.push([
                row.gateway.id.clone().unwrap_or_else(|| "-".into()),
                row.gateway.eui.clone().unwrap_or_else(|| "-".into()),
                first_few(&row.devices, 3),
                row.target_cell(),
            ]);
        }
        let widths: Vec<usize> = (0..3)
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        if self.gateways.is_empty() {
            out.push_str("No gateway of the source recorded an uplink of these devices.\n");
        } else {
            for row in &rows {
                let columns = format!(
                    "{:w0$}  {:w1$}  {:w2$}  ",
                    row[0],
                    row[1],
                    row[2],
                    w0 = widths[0],
                    w1 = widths[1],
                    w2 = widths[2]
                );
                out.push_str(&hang(&columns, &row[3], width));
                out.push('\n');
            }
        }
        if self.unheard.is_empty() {
            out.push_str("\nEvery device was heard by a gateway connected to the target.\n");
        } else {
            out.push_str(&format!(
                "\n{} heard by no gateway connected to the target:\n",
                count(self.unheard.len(), "device", "devices")
            ));
            let id_width = self
                .unheard
                .iter()
                .map(|u| u.device_id.chars().count())
                .max()
                .unwrap_or(0);
            for unheard in &self.unheard {
                let device = format!("  {:id_width$}  ", unheard.device_id);
                out.push_str(&hang(&device, &unheard.reason, width));
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture() -> Value {
        serde_json::from_str(include_str!("../fixtures/devices/class-c-actuator.json")).unwrap()
    }

    #[test]
    fn the_gateways_come_from_the_recent_uplinks_by_eui_and_packet_broker_is_marked() {
        let device = DeviceGateways::of("class-c-actuator", &fixture());
        assert_eq!(
            device.gateways,
            [Gateway {
                id: Some("gw-north".into()),
                eui: Some("58A0CBFFFE800101".into())
            }]
        );
        assert!(device.packet_broker);
        assert!(!device.only_packet_broker());
        assert_eq!(
            device.heard_on_source(),
            "gw-north (58A0CBFFFE800101), Packet Broker"
        );
    }

    #[test]
    fn a_device_heard_only_through_packet_broker_or_never_is_told_apart() {
        let doc = json!({"mac_state": {"recent_uplinks": [{"rx_metadata": [
            {"gateway_ids": {"gateway_id": "packetbroker"}, "packet_broker": {"forwarder_net_id": "000013"}}]}]}});
        let device = DeviceGateways::of("d", &doc);
        assert!(device.only_packet_broker());
        let silent = DeviceGateways::of("s", &json!({"mac_state": {}}));
        assert!(silent.no_uplinks && silent.gateways.is_empty());
        assert_eq!(silent.heard_on_source(), "no uplink recorded on the source");
        // A gateway without EUI is known by its ID.
        let by_id = DeviceGateways::of(
            "i",
            &json!({"mac_state": {"recent_uplinks": [{"rx_metadata": [{"gateway_ids": {"gateway_id": "gw-x"}}]}]}}),
        );
        assert_eq!(by_id.gateways[0].key(), "gw-x");
    }

    #[test]
    fn the_summary_looks_each_gateway_up_once_and_names_the_unheard_devices() {
        let gw = |id: &str, eui: Option<&str>| Gateway {
            id: Some(id.into()),
            eui: eui.map(str::to_string),
        };
        let devices = vec![
            DeviceGateways {
                device_id: "dev-1".into(),
                gateways: vec![gw("gw-cloud", Some("AA00000000000001"))],
                packet_broker: false,
                no_uplinks: false,
            },
            DeviceGateways {
                device_id: "dev-2".into(),
                gateways: vec![
                    gw("gw-cloud", Some("AA00000000000001")),
                    gw("gw-ce", Some("AA00000000000002")),
                ],
                packet_broker: true,
                no_uplinks: false,
            },
            DeviceGateways {
                device_id: "dev-3".into(),
                gateways: vec![gw("gw-ce", Some("AA00000000000002"))],
                packet_broker: false,
                no_uplinks: false,
            },
            DeviceGateways {
                device_id: "dev-4".into(),
                gateways: vec![],
                packet_broker: true,
                no_uplinks: false,
            },
        ];
        let mut asked = Vec::new();
        let summary = Summary::of(&devices, |g| {
            asked.push(g.key());
            if g.key() == "AA00000000000001" {
                TargetState::Connected {
                    gateway_id: "gw-cloud-2".into(),
                }
            } else {
                TargetState::NotRegistered
            }
        });
        assert_eq!(asked, ["AA00000000000001", "AA00000000000002"]);
        assert_eq!(summary.gateways[0].devices, ["dev-1", "dev-2"]);
        assert_eq!(summary.unheard_devices(), ["dev-3", "dev-4"]);
        let text = summary.render(100);
        let narrow = summary.render(60);
        for line in narrow.lines() {
            assert!(line.chars().count() <= 60, "{line:?} in\n{narrow}");
        }
        assert!(
            narrow.contains(
                "  dev-4  heard only through Packet Broker: a gateway of\n         another network"
            ),
            "{narrow}"
        );
        assert!(
            text.contains("gw-cloud  AA00000000000001  dev-1, dev-2  connected"),
            "{text}"
        );
        assert!(
            text.contains("gw-ce     AA00000000000002  dev-2, dev-3  not registered"),
            "{text}"
        );
        assert!(
            text.contains("2 devices heard by no gateway connected to the target"),
            "{text}"
        );
        assert!(
            text.contains("dev-4  heard only through Packet Broker"),
            "{text}"
        );
        // Uplinks recorded without their gateways: said so, not an empty list.
        let nameless = DeviceGateways {
            device_id: "dev-5".into(),
            gateways: vec![],
            packet_broker: false,
            no_uplinks: false,
        };
        let long_name = DeviceGateways {
            device_id: "soil-sensor-12".into(),
            ..nameless.clone()
        };
        let summary = Summary::of(&[nameless, long_name], |_| TargetState::NotRegistered);
        assert_eq!(
            summary.unheard[0].reason,
            "its recent uplinks on the source name no gateway"
        );
        // The reasons start in one column, whatever the length of the device IDs.
        let text = summary.render(100);
        assert!(
            text.contains("  dev-5           its recent uplinks")
                && text.contains("  soil-sensor-12  its recent uplinks"),
            "{text}"
        );
    }
}
