//! Profiles: named ttn-lw-cli config files, one per deployment (source CE, target Cloud).
//!
//! A profile is a `.ttn-lw-cli.yml` kept as `<profiles dir>/<name>.yml`. Passing it with `-c`
//! on every call switches ttn-lw-cli between deployments; its own `credentials-id` keeps the
//! logins of the two deployments apart in the CLI's credential cache.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::ttn_lw_cli::{Invocation, TtnLwCli};

/// Where profiles live: `--profiles-dir`, `TTN_SESSION_MIGRATE_PROFILES`, or
/// `$XDG_CONFIG_HOME/ttn-session-migrate/profiles`.
#[derive(Debug, Clone)]
pub struct ProfileStore {
    dir: PathBuf,
}

impl ProfileStore {
    pub fn new(dir: Option<PathBuf>) -> Result<ProfileStore> {
        let dir = match dir {
            Some(dir) => dir,
            None => default_config_dir()?
                .join("ttn-session-migrate")
                .join("profiles"),
        };
        Ok(ProfileStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, name: &ProfileName) -> PathBuf {
        self.dir.join(format!("{}.yml", name.0))
    }

    /// Resolves what the operator typed for `--from`/`--to`: a profile name, or a path to any
    /// ttn-lw-cli config file (a value with `/` or ending in `.yml`/`.yaml`).
    pub fn resolve(&self, value: &str) -> Result<Profile> {
        let (label, path) = if looks_like_path(value) {
            (value.to_string(), PathBuf::from(value))
        } else {
            let name = ProfileName::parse(value)?;
            (name.0.clone(), self.path_of(&name))
        };
        if !path.is_file() {
            if looks_like_path(value) {
                bail!("config file {} does not exist", path.display());
            }
            bail!(
                "profile `{label}` does not exist (looked for {}). Create it with \
                 `ttn-session-migrate profile add {label} --host <HOST>`, or list profiles with \
                 `ttn-session-migrate profile list`",
                path.display()
            );
        }
        let path = fs::canonicalize(&path).unwrap_or(path);
        let config = ProfileConfig::read(&path)?;
        Ok(Profile {
            label,
            path,
            config,
        })
    }

    /// All profiles, sorted by name. Files that do not parse are listed with their error.
    pub fn list(&self) -> Result<Vec<(String, Result<Profile>)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e).with_context(|| format!("could not read {}", self.dir.display()))
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".yml"))
                    .map(str::to_string)
            })
            .filter(|n| ProfileName::parse(n).is_ok())
            .collect();
        names.sort();
        Ok(names
            .into_iter()
            .map(|n| {
                let profile = self.resolve(&n);
                (n, profile)
            })
            .collect())
    }

    /// `profile add NAME --host HOST`: `ttn-lw-cli use HOST` in a private directory, then the
    /// generated file moves into the store. Nothing is written if any step fails.
    pub fn add_from_host(&self, cli: &TtnLwCli, name: &ProfileName, host: &str) -> Result<Profile> {
        self.refuse_existing(name)?;
        // Where the CLI may write (the snap may not write to the caller's /tmp).
        let scratch = cli
            .scratch_dir()
            .context("could not create a temporary directory")?;
        // Exactly one -c, pointing at an empty file, so no config in the home directory leaks in.
        let empty = scratch.path().join("empty.yml");
        fs::write(&empty, "").context("could not write a temporary file")?;
        let invocation = Invocation::new(&empty, ["use", host]).in_dir(scratch.path());
        cli.run(&invocation).map_err(|e| {
            anyhow::anyhow!(
                "`ttn-lw-cli use {host}` failed: {}. Check the host name: Community Edition is \
                 `eu1.cloud.thethings.network` (or nam1, au1), The Things Stack Cloud is \
                 `<tenant>.<cluster>.cloud.thethings.industries`",
                e.detail
            )
        })?;
        let generated = scratch.path().join(".ttn-lw-cli.yml");
        let content = fs::read(&generated).with_context(|| {
            format!("`ttn-lw-cli use {host}` succeeded but wrote no .ttn-lw-cli.yml")
        })?;
        self.install(name, &content)
    }

    /// `profile add NAME --config FILE`: copies an existing ttn-lw-cli config.
    pub fn add_from_file(&self, name: &ProfileName, file: &Path) -> Result<Profile> {
        self.refuse_existing(name)?;
        let content =
            fs::read(file).with_context(|| format!("could not read {}", file.display()))?;
        ProfileConfig::parse(&content)
            .with_context(|| format!("{} is not a ttn-lw-cli config file", file.display()))?;
        self.install(name, &content)
    }

    pub fn remove(&self, name: &ProfileName) -> Result<PathBuf> {
        let path = self.path_of(name);
        if !path.is_file() {
            bail!("profile `{}` does not exist ({})", name, path.display());
        }
        fs::remove_file(&path).with_context(|| format!("could not remove {}", path.display()))?;
        Ok(path)
    }

    fn refuse_existing(&self, name: &ProfileName) -> Result<()> {
        let path = self.path_of(name);
        if path.exists() {
            bail!(
                "profile `{name}` already exists ({}). Remove it first with \
                 `ttn-session-migrate profile remove {name}`",
                path.display()
            );
        }
        Ok(())
    }

    /// Writes the file whole or not at all, and never over an existing profile.
    fn install(&self, name: &ProfileName, content: &[u8]) -> Result<Profile> {
        ProfileConfig::parse(content)?;
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("could not create {}", self.dir.display()))?;
        // The temporary file's name is no help to the operator: only the directory is named.
        let mut file = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| {
            anyhow::anyhow!(
                "could not write in {}: {}; choose another directory with --profiles-dir or \
                 TTN_SESSION_MIGRATE_PROFILES",
                self.dir.display(),
                std::io::Error::from(e.kind())
            )
        })?;
        file.write_all(content)?;
        file.as_file().sync_all()?;
        let path = self.path_of(name);
        file.persist_noclobber(&path).map_err(|e| {
            anyhow::anyhow!("could not create profile {}: {}", path.display(), e.error)
        })?;
        self.resolve(&name.0)
    }
}

fn default_config_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config")),
        None => bail!(
            "cannot tell where profiles live: neither XDG_CONFIG_HOME nor HOME is set. \
             Pass --profiles-dir DIR or set TTN_SESSION_MIGRATE_PROFILES"
        ),
    }
}

/// Whether `--from`/`--to` names a file rather than a profile.
pub fn looks_like_path(value: &str) -> bool {
    value.contains('/') || value.ends_with(".yml") || value.ends_with(".yaml")
}

/// A profile name: `[a-z0-9][a-z0-9_-]*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileName(String);

impl ProfileName {
    pub fn parse(name: &str) -> Result<ProfileName> {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            && name.len() <= 64;
        if !valid {
            return Err(crate::exit::usage(format!(
                "invalid profile name `{name}`: use lower-case letters, digits, `-` and `_`, \
                 starting with a letter or digit (for example `ce` or `cloud`)"
            )));
        }
        Ok(ProfileName(name.to_string()))
    }
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resolved profile: a config file that exists and parses.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The name, or the path as typed.
    pub label: String,
    pub path: PathBuf,
    pub config: ProfileConfig,
}

impl Profile {
    pub fn deployment(&self) -> Deployment {
        Deployment::of(&self.config)
    }
}

/// The keys of a ttn-lw-cli config file that this tool reads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ProfileConfig {
    #[serde(default)]
    pub credentials_id: Option<String>,
    #[serde(default)]
    pub oauth_server_address: Option<String>,
    #[serde(default)]
    pub identity_server_grpc_address: Option<String>,
    #[serde(default)]
    pub network_server_grpc_address: Option<String>,
    #[serde(default)]
    pub application_server_grpc_address: Option<String>,
    #[serde(default)]
    pub join_server_grpc_address: Option<String>,
}

impl ProfileConfig {
    pub fn read(path: &Path) -> Result<ProfileConfig> {
        let content =
            fs::read(path).with_context(|| format!("could not read {}", path.display()))?;
        ProfileConfig::parse(&content)
            .with_context(|| format!("{} is not a valid ttn-lw-cli config file", path.display()))
    }

    pub fn parse(content: &[u8]) -> Result<ProfileConfig> {
        if content.iter().all(u8::is_ascii_whitespace) {
            bail!("the file is empty");
        }
        let config: ProfileConfig =
            serde_norway::from_slice(content).map_err(|e| anyhow::anyhow!("YAML error: {e}"))?;
        if config.identity_server_grpc_address.is_none() {
            bail!("it has no `identity-server-grpc-address`; generate one with `ttn-lw-cli use <HOST>`");
        }
        Ok(config)
    }

    /// The host of the Network Server address (where devices of this profile are registered).
    pub fn network_server_host(&self) -> Option<String> {
        self.network_server_grpc_address
            .as_deref()
            .or(self.identity_server_grpc_address.as_deref())
            .map(host_of)
    }
}

/// `host` of `host:port`, `scheme://host:port/path`.
pub fn host_of(address: &str) -> String {
    let rest = address.split("://").last().unwrap_or(address);
    let rest = rest.split('/').next().unwrap_or(rest);
    match rest.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host.to_string(),
        _ => rest.to_string(),
    }
}

/// Which deployment a profile talks to, told from its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// The Things Stack Community Edition (Sandbox), `<cluster>.cloud.thethings.network`.
    CommunityEdition {
        cluster: String,
    },
    /// The Things Stack Cloud, `<tenant>.<cluster>.cloud.thethings.industries`.
    Cloud {
        tenant: String,
        cluster: String,
    },
    Other {
        host: String,
    },
}

impl Deployment {
    pub fn of(config: &ProfileConfig) -> Deployment {
        let host = config.network_server_host().unwrap_or_default();
        Deployment::of_host(&host)
    }

    pub fn of_host(host: &str) -> Deployment {
        let labels: Vec<&str> = host.split('.').collect();
        match labels.as_slice() {
            [cluster, "cloud", "thethings", "network"] => Deployment::CommunityEdition {
                cluster: cluster.to_string(),
            },
            [tenant, cluster, "cloud", "thethings", "industries"] => Deployment::Cloud {
                tenant: tenant.to_string(),
                cluster: cluster.to_string(),
            },
            _ => Deployment::Other {
                host: host.to_string(),
            },
        }
    }
}

impl fmt::Display for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deployment::CommunityEdition { cluster } => {
                write!(f, "The Things Stack Community Edition, cluster {cluster}")
            }
            Deployment::Cloud { tenant, cluster } => {
                write!(
                    f,
                    "The Things Stack Cloud, tenant {tenant}, cluster {cluster}"
                )
            }
            Deployment::Other { host } => write!(f, "The Things Stack at {host}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_are_validated() {
        for good in ["ce", "cloud", "ce-eu1", "t3_prod", "0"] {
            assert!(ProfileName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "CE", "-ce", "_x", "ce.yml", "a/b", "with space", "é"] {
            assert!(ProfileName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_a_generated_config() {
        let yml = b"oauth-server-address: https://eu1.cloud.thethings.network/oauth\n\
identity-server-grpc-address: eu1.cloud.thethings.network:8884\n\
network-server-grpc-address: nam1.cloud.thethings.network:8884\n\
credentials-id: nam1.cloud.thethings.network\n\
base:\n  log:\n    format: console\n";
        let config = ProfileConfig::parse(yml).unwrap();
        assert_eq!(
            config.credentials_id.as_deref(),
            Some("nam1.cloud.thethings.network")
        );
        assert_eq!(
            Deployment::of(&config),
            Deployment::CommunityEdition {
                cluster: "nam1".into()
            }
        );
        assert!(ProfileConfig::parse(b"").is_err());
        assert!(ProfileConfig::parse(b"foo: [").is_err());
        assert!(ProfileConfig::parse(b"credentials-id: x\n").is_err());
    }

    #[test]
    fn names_deployments() {
        assert_eq!(
            Deployment::of_host("acme.au1.cloud.thethings.industries").to_string(),
            "The Things Stack Cloud, tenant acme, cluster au1"
        );
        assert_eq!(
            host_of("https://eu1.cloud.thethings.network:443/oauth"),
            "eu1.cloud.thethings.network"
        );
        assert_eq!(host_of("localhost:8884"), "localhost");
    }
}
