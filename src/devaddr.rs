//! DevAddrs, DevAddr prefixes, and what they mean for the gateways.
//!
//! A migrated session keeps its DevAddr. Packet Broker routes an uplink by its DevAddr to the
//! network that owns the DevAddr's block, so a device that keeps a Community Edition DevAddr
//! (The Things Network's NetID 000013, `26000000/7`; the clusters use `260B0000/16` eu1,
//! `260C0000/16` nam1 and `260D0000/16` au1) has its uplinks sent to Community Edition by every
//! gateway that is not on the target. On the target it is heard only through gateways connected
//! to the target itself. This module reads the target's prefixes (one call,
//! `end-devices get-dev-addr-prefixes`) and words that warning. It informs and never blocks.
//!
//! When the DevAddrs are known: the tool reads each device (detect, export) right before its
//! delete, so before the confirmation only the source's block is known; the warning there is
//! worded from it. After the run, the exported DevAddrs give the exact list. A dry run exports
//! every device and so gives the exact list beforehand.

use std::fmt;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::outcome::{count, first_few};
use crate::profile::{Deployment, Profile};
use crate::ttn_lw_cli::{Invocation, TtnLwCli};

/// Where the steps to move gateways are documented.
pub const GATEWAY_MIGRATION_URL: &str =
    "https://www.thethingsindustries.com/docs/concepts/migration/gateway-migration/";

/// A 32-bit LoRaWAN device address, written as 8 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevAddr(u32);

impl DevAddr {
    pub fn parse(text: &str) -> Option<DevAddr> {
        let text = text.trim();
        if text.len() != 8 {
            return None;
        }
        u32::from_str_radix(text, 16).ok().map(DevAddr)
    }
}

impl fmt::Display for DevAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}", self.0)
    }
}

/// A DevAddr block: `260B0000/16` is every address whose first 16 bits are `260B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    address: u32,
    length: u8,
}

impl Prefix {
    pub fn parse(text: &str) -> Option<Prefix> {
        let (address, length) = text.trim().split_once('/')?;
        let address = DevAddr::parse(address)?.0;
        let length: u8 = length.parse().ok()?;
        if length > 32 {
            return None;
        }
        Some(Prefix { address, length })
    }

    fn mask(&self) -> u32 {
        match self.length {
            0 => 0,
            n => u32::MAX << (32 - u32::from(n)),
        }
    }

    pub fn contains(&self, dev_addr: DevAddr) -> bool {
        dev_addr.0 & self.mask() == self.address & self.mask()
    }

    /// Whether every address of `other` is in this block.
    pub fn covers(&self, other: &Prefix) -> bool {
        self.length <= other.length && self.contains(DevAddr(other.address))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}/{}", self.address & self.mask(), self.length)
    }
}

/// The block The Things Network Community Edition assigns DevAddrs from on a cluster.
/// Whether the source and the target are one network (the same Network Server), as in a move
/// between two applications of one deployment: the DevAddr stays where it is routed, so the
/// gateways need not move.
pub fn same_network(source: &Profile, target: &Profile) -> bool {
    source.path == target.path
        || source
            .config
            .network_server_host()
            .is_some_and(|host| Some(host) == target.config.network_server_host())
}

pub fn community_edition_block(cluster: &str) -> Option<Prefix> {
    let block = match cluster {
        "eu1" => "260B0000/16",
        "nam1" => "260C0000/16",
        "au1" => "260D0000/16",
        // Another cluster: only The Things Network's whole block is known.
        _ => "26000000/7",
    };
    Prefix::parse(block)
}

/// `end-devices get-dev-addr-prefixes` against a profile: no authentication, read-only.
pub fn prefixes_invocation(target: &Profile) -> Invocation {
    Invocation::new(&target.path, ["end-devices", "get-dev-addr-prefixes"])
}

/// The DevAddr prefixes of the target's Network Server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPrefixes(pub Vec<Prefix>);

impl TargetPrefixes {
    /// Parses `{"dev_addr_prefixes": ["27FF0000/16"]}` (`{}` when there are none).
    pub fn from_output(stdout: &[u8]) -> Result<TargetPrefixes> {
        let doc: Value = serde_json::from_slice(stdout)
            .context("ttn-lw-cli printed DevAddr prefixes that are not JSON")?;
        let mut prefixes = Vec::new();
        if let Some(items) = doc.get("dev_addr_prefixes").and_then(Value::as_array) {
            for item in items {
                let text = item.as_str().unwrap_or_default();
                match Prefix::parse(text) {
                    Some(prefix) => prefixes.push(prefix),
                    None => bail!(
                        "ttn-lw-cli printed a DevAddr prefix that is not ADDRESS/LENGTH: {item}"
                    ),
                }
            }
        }
        Ok(TargetPrefixes(prefixes))
    }

    pub fn contains(&self, dev_addr: DevAddr) -> bool {
        self.0.iter().any(|p| p.contains(dev_addr))
    }

    pub fn covers(&self, block: &Prefix) -> bool {
        self.0.iter().any(|p| p.covers(block))
    }
}

impl fmt::Display for TargetPrefixes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let list: Vec<String> = self.0.iter().map(Prefix::to_string).collect();
        f.write_str(&list.join(", "))
    }
}

/// Reads the target's prefixes. A failure (an older ttn-lw-cli, 3.21.2 added the command; the
/// network) is kept as its reason: the check informs and never stops a migration.
pub fn read_target_prefixes(
    cli: &TtnLwCli,
    target: &Profile,
    ran: &mut dyn FnMut(&Invocation, &str),
) -> Result<TargetPrefixes, String> {
    let call = prefixes_invocation(target);
    let prefixes = cli.run(&call).map_err(|e| e.detail).and_then(|output| {
        TargetPrefixes::from_output(&output.stdout).map_err(|e| format!("{e:#}"))
    });
    match &prefixes {
        Ok(list) => ran(&call, &format!("target DevAddr prefixes: {list}")),
        Err(why) => ran(&call, &format!("failed, the DevAddr check is vague: {why}")),
    }
    prefixes
}

/// What the tool knows about DevAddrs and routing for one migration.
#[derive(Debug, Clone)]
pub struct GatewayCheck {
    /// The target's prefixes, or why they could not be read.
    pub prefixes: Result<TargetPrefixes, String>,
    /// The source deployment and the block its devices' DevAddrs come from, when known.
    pub source_block: Option<(Deployment, Prefix)>,
    pub target: Deployment,
}

impl GatewayCheck {
    pub fn new(
        source: &Profile,
        target: &Profile,
        prefixes: Result<TargetPrefixes, String>,
    ) -> Self {
        let source_deployment = source.deployment();
        let source_block = match &source_deployment {
            Deployment::CommunityEdition { cluster } => {
                community_edition_block(cluster).map(|block| (source_deployment.clone(), block))
            }
            _ => None,
        };
        GatewayCheck {
            prefixes,
            source_block,
            target: target.deployment(),
        }
    }

    /// The warning for the confirmation, before any device is read: from the source's block.
    /// `None` when the target's prefixes cover the source's block, or when nothing is known.
    pub fn before_migration(&self, device_count: usize) -> Option<String> {
        let devices = count(device_count, "selected device", "selected devices");
        match (&self.prefixes, &self.source_block) {
            (Ok(prefixes), Some((_, block))) if !prefixes.covers(block) => Some(format!(
                "Gateways: a migrated session keeps its DevAddr ({devices}, in {block} on the \
                 source), outside the target's prefixes ({prefixes}): once moved, the devices \
                 are heard only through gateways connected to the target.\n\
                 Move those gateways first: {GATEWAY_MIGRATION_URL}\n\
                 --dry-run lists each DevAddr; --gateways-migrated turns this warning off."
            )),
            (Err(why), _) => Some(format!(
                "Gateways: the DevAddr prefixes of {} could not be read ({why}).\nA migrated \
                 session keeps its DevAddr ({devices}); outside the target's prefixes, the \
                 devices are heard only through gateways connected to the target.\nMove the \
                 gateways first: {GATEWAY_MIGRATION_URL}\n--gateways-migrated turns this \
                 warning off.",
                self.target
            )),
            _ => None,
        }
    }

    /// The devices, among `(device, DevAddr)`, whose DevAddr is outside the target's prefixes.
    pub fn outside<'a>(
        &self,
        devices: &'a [(String, Option<String>)],
    ) -> Vec<&'a (String, Option<String>)> {
        let Ok(prefixes) = &self.prefixes else {
            return Vec::new();
        };
        devices
            .iter()
            .filter(|(_, dev_addr)| {
                dev_addr
                    .as_deref()
                    .and_then(DevAddr::parse)
                    .is_some_and(|a| !prefixes.contains(a))
            })
            .collect()
    }

    /// The warning once DevAddrs are known, from the exports of `devices` (the noun says which,
    /// e.g. "migrated device"): `None` when all are inside.
    pub fn after_export(&self, noun: &str, devices: &[(String, Option<String>)]) -> Option<String> {
        let outside = self.outside(devices);
        if outside.is_empty() {
            return None;
        }
        let known = devices.iter().filter(|(_, a)| a.is_some()).count();
        const SHOWN: usize = 10;
        let list: Vec<String> = outside
            .iter()
            .map(|(device, dev_addr)| format!("{device} {}", dev_addr.as_deref().unwrap_or("-")))
            .collect();
        let prefixes = self
            .prefixes
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let full_list = match outside.len() > SHOWN {
            true => " (--report lists them all)",
            false => "",
        };
        Some(format!(
            "Gateways: DevAddr outside the prefixes of {} ({prefixes}) for {} of {}: {}{full_list}.\n\
             They are heard only through gateways connected to the target; move those \
             gateways: {GATEWAY_MIGRATION_URL}",
            self.target,
            outside.len(),
            count(known, noun, &format!("{noun}s")),
            first_few(&list, SHOWN),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(list: &[&str]) -> TargetPrefixes {
        TargetPrefixes(list.iter().map(|p| Prefix::parse(p).unwrap()).collect())
    }

    #[test]
    fn parses_dev_addrs_and_prefixes() {
        assert_eq!(DevAddr::parse("260b1234").unwrap().to_string(), "260B1234");
        assert!(DevAddr::parse("260B123").is_none());
        assert!(DevAddr::parse("260B12345").is_none());
        assert!(DevAddr::parse("XYZ01234").is_none());
        assert_eq!(
            Prefix::parse("26000000/7").unwrap().to_string(),
            "26000000/7"
        );
        assert!(Prefix::parse("26000000/33").is_none());
        assert!(Prefix::parse("26000000").is_none());
        assert_eq!(
            Prefix::parse("00000000/0").unwrap().to_string(),
            "00000000/0"
        );
    }

    #[test]
    fn the_community_edition_blocks_are_inside_the_things_networks_block() {
        let ttn = Prefix::parse("26000000/7").unwrap();
        for cluster in ["eu1", "nam1", "au1"] {
            let block = community_edition_block(cluster).unwrap();
            assert!(ttn.covers(&block), "{cluster}");
            assert!(!block.covers(&ttn));
        }
        let eu1 = community_edition_block("eu1").unwrap();
        assert!(eu1.contains(DevAddr::parse("260B0ABC").unwrap()));
        assert!(!eu1.contains(DevAddr::parse("260C0ABC").unwrap()));
        // 27FFFFFF is the last address of 26000000/7.
        assert!(ttn.contains(DevAddr::parse("27FFFFFF").unwrap()));
        assert!(!ttn.contains(DevAddr::parse("28000000").unwrap()));
        assert!(Prefix::parse("00000000/0").unwrap().covers(&ttn));
    }

    #[test]
    fn reads_the_prefixes_output() {
        let parsed = TargetPrefixes::from_output(
            br#"{"dev_addr_prefixes": ["27FF0000/16", "260B0000/16"]}"#,
        )
        .unwrap();
        assert_eq!(parsed, prefixes(&["27FF0000/16", "260B0000/16"]));
        assert_eq!(TargetPrefixes::from_output(b"{}").unwrap(), prefixes(&[]));
        assert!(TargetPrefixes::from_output(b"not json").is_err());
        assert!(TargetPrefixes::from_output(br#"{"dev_addr_prefixes": ["nonsense"]}"#).is_err());
    }

    fn check(target_prefixes: &[&str]) -> GatewayCheck {
        GatewayCheck {
            prefixes: Ok(prefixes(target_prefixes)),
            source_block: Some((
                Deployment::CommunityEdition {
                    cluster: "eu1".into(),
                },
                community_edition_block("eu1").unwrap(),
            )),
            target: Deployment::Cloud {
                tenant: "acme".into(),
                cluster: "eu1".into(),
            },
        }
    }

    #[test]
    fn warns_before_the_migration_only_when_the_source_block_is_outside_the_target() {
        let warning = check(&["27FF0000/16"]).before_migration(3).unwrap();
        assert!(
            warning
                .contains("keeps its DevAddr (3 selected devices, in 260B0000/16 on the source)"),
            "{warning}"
        );
        assert!(warning.contains("260B0000/16"), "{warning}");
        assert!(warning.contains(GATEWAY_MIGRATION_URL));
        assert!(check(&["26000000/7"]).before_migration(3).is_none());
        let unknown = GatewayCheck {
            prefixes: Err("unknown command".into()),
            ..check(&[])
        };
        assert!(unknown
            .before_migration(1)
            .unwrap()
            .contains("could not be read"));
    }

    #[test]
    fn counts_the_exported_devices_outside_the_target_prefixes() {
        let devices = vec![
            ("dev-1".to_string(), Some("260B1234".to_string())),
            ("dev-2".to_string(), Some("27FF0001".to_string())),
            ("dev-3".to_string(), None),
        ];
        let check = check(&["27FF0000/16"]);
        let outside: Vec<&str> = check
            .outside(&devices)
            .iter()
            .map(|(d, _)| d.as_str())
            .collect();
        assert_eq!(outside, ["dev-1"]);
        let warning = check.after_export("exported device", &devices).unwrap();
        assert!(
            warning.contains("for 1 of 2 exported devices: dev-1 260B1234."),
            "{warning}"
        );
        assert!(warning.contains("dev-1 260B1234"), "{warning}");
        assert!(check
            .after_export("exported device", &devices[1..])
            .is_none());
    }
}
