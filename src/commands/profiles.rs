//! `profile add|list|show|remove` and `login`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context as _, Result};

use super::Context;
use crate::cli::{LoginArgs, ProfileCommand};
use crate::profile::{Deployment, Profile, ProfileName};
use crate::ttn_lw_cli::{Invocation, TtnLwCli};

pub fn profile(context: &Context, command: &ProfileCommand) -> Result<bool> {
    let store = context.profiles()?;
    match command {
        ProfileCommand::Add { name, host, config } => {
            let name = ProfileName::parse(name)?;
            let profile = match (host, config) {
                (Some(host), _) => store.add_from_host(&context.ttn_lw_cli(None)?, &name, host)?,
                (None, Some(file)) => store.add_from_file(&name, file)?,
                (None, None) => bail!("give --host HOST or --config FILE"),
            };
            println!(
                "Created profile `{name}` for {} at {}",
                profile.deployment(),
                profile.path.display()
            );
            if profile.config.credentials_id.is_none() {
                crate::terminal::eprint_wrapped(&format!(
                    "warning: this config has no `credentials-id`; two profiles without one share \
                     a single login in ttn-lw-cli's cache. Add `credentials-id: {name}` to {}",
                    profile.path.display()
                ));
            }
            println!("Next: ttn-session-migrate login {name}");
        }
        ProfileCommand::List { json } => {
            let profiles = store.list()?;
            if *json {
                let list: Vec<serde_json::Value> = profiles
                    .iter()
                    .map(|(name, profile)| {
                        profile_json(name, &store.dir().join(format!("{name}.yml")), profile)
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(true);
            }
            if profiles.is_empty() {
                println!(
                    "No profiles in {}. Create them with:\n  ttn-session-migrate profile add ce --host eu1.cloud.thethings.network\n  ttn-session-migrate profile add cloud --host <tenant>.eu1.cloud.thethings.industries",
                    store.dir().display()
                );
            }
            if !profiles.is_empty() {
                println!("{}", profile_table(&profiles));
            }
        }
        ProfileCommand::Show { name } => {
            let profile = store.resolve(name)?;
            println!("profile:        {}", profile.label);
            println!("file:           {}", profile.path.display());
            println!("deployment:     {}", profile.deployment());
            println!(
                "credentials-id: {}",
                profile.config.credentials_id.as_deref().unwrap_or("(none)")
            );
            for (what, address) in [
                (
                    "identity server",
                    &profile.config.identity_server_grpc_address,
                ),
                (
                    "network server",
                    &profile.config.network_server_grpc_address,
                ),
                (
                    "application srv",
                    &profile.config.application_server_grpc_address,
                ),
                ("join server", &profile.config.join_server_grpc_address),
                ("oauth server", &profile.config.oauth_server_address),
            ] {
                println!("{what:<15} {}", address.as_deref().unwrap_or("(default)"));
            }
        }
        ProfileCommand::Remove { name } => {
            let path = store.remove(&ProfileName::parse(name)?)?;
            println!("Removed {}", path.display());
        }
    }
    Ok(true)
}

pub fn login(context: &Context, args: &LoginArgs) -> Result<bool> {
    let profile = context.profiles()?.resolve(&args.profile)?;
    let cli = context.ttn_lw_cli(None)?;
    match &args.api_key {
        Some(key) => {
            let key = if key == "-" {
                read_api_key_from_stdin()?
            } else {
                key.clone()
            };
            if key.is_empty() {
                return Err(crate::exit::usage("the API key is empty"));
            }
            // ttn-lw-cli stores any key without checking it, over the working login: check the
            // key in a private credentials slot first, and store it only once it works.
            check_api_key(&cli, &profile, &key)?;
            let invocation = Invocation::new(&profile.path, ["login", "--api-key", &key]);
            cli.run(&invocation)
                .map_err(|e| anyhow::anyhow!("login failed: {}", e.detail))?;
            println!(
                "Logged in to {} with an API key (profile `{}`)",
                profile.deployment(),
                profile.label
            );
        }
        None => {
            if !std::io::stdin().is_terminal() && !args.no_callback {
                crate::terminal::eprint_wrapped("note: OAuth login opens a browser; on a machine without one use --no-callback or --api-key");
            }
            let mut words = vec!["login".to_string()];
            if args.no_callback {
                words.push("--callback=false".into());
            }
            let login = cli.run_interactive(&Invocation::new(&profile.path, words));
            if let Err(e) = login {
                if args.no_callback {
                    return Err(e);
                }
                // ttn-lw-cli's own hint names its flag, `--callback=false`; this tool's is
                // `--no-callback`.
                bail!(
                    "{e:#}. Without a browser on this machine (ttn-lw-cli's `--callback=false`), run \
                     `ttn-session-migrate login {label} --no-callback`, or log in with an API key: \
                     `ttn-session-migrate login {label} --api-key -`",
                    label = profile.label
                );
            }
            println!(
                "Logged in to {} (profile `{}`)",
                profile.deployment(),
                profile.label
            );
        }
    }
    Ok(true)
}

/// One line of standard input, so the key stays out of the shell history and `ps`.
fn read_api_key_from_stdin() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("API key (it is shown as you type it; press Enter): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("could not read the API key from standard input")?;
    Ok(line.trim().to_string())
}

/// Logs in with the key in a copy of the profile that has its own `credentials-id`, asks the
/// deployment with `auth-info`, then clears that slot and removes the copy. The profile's own
/// login is never touched here.
fn check_api_key(cli: &TtnLwCli, profile: &Profile, key: &str) -> Result<()> {
    let copy = private_copy(profile)?;
    let config = copy.path();
    let checked = cli
        .run(&Invocation::new(config, ["login", "--api-key", key]))
        .and_then(|_| cli.run(&Invocation::new(config, ["auth-info"])));
    // Clear the key from the private slot whatever happened.
    let _ = cli.run(&Invocation::new(config, ["logout"]));
    match checked {
        Ok(_) => Ok(()),
        Err(e) => bail!(
            "{} does not accept this API key: {}. Nothing was stored; the login of profile `{}` \
             is unchanged. Check the key and its rights",
            profile.deployment(),
            e.detail,
            profile.label
        ),
    }
}

/// The profile's config with a `credentials-id` of its own, next to the profile (or in the
/// temporary directory when that is not writable); removed when dropped.
fn private_copy(profile: &Profile) -> Result<tempfile::NamedTempFile> {
    let text = std::fs::read(&profile.path)
        .with_context(|| format!("could not read {}", profile.path.display()))?;
    let mut config: serde_norway::Value = serde_norway::from_slice(&text)
        .with_context(|| format!("{} is not a ttn-lw-cli config file", profile.path.display()))?;
    let Some(map) = config.as_mapping_mut() else {
        bail!("{} is not a ttn-lw-cli config file", profile.path.display());
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".login-check-").suffix(".yml");
    let dir = profile.path.parent().unwrap_or(std::path::Path::new("."));
    let mut file = builder
        .tempfile_in(dir)
        .or_else(|_| builder.tempfile())
        .context("could not write a temporary copy of the profile")?;
    let slot = file
        .path()
        .file_stem()
        .map(|s| s.to_string_lossy().trim_start_matches('.').to_string())
        .unwrap_or_else(|| "login-check".into());
    map.insert("credentials-id".into(), slot.into());
    let text = serde_norway::to_string(&config).context("could not write the profile copy")?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .context("could not write a temporary copy of the profile")?;
    Ok(file)
}

/// One profile of `profile list --json`: its deployment spelt out, or why it does not load.
fn profile_json(
    name: &str,
    file: &std::path::Path,
    profile: &Result<Profile>,
) -> serde_json::Value {
    let mut entry = serde_json::json!({ "name": name, "file": file });
    match profile {
        Ok(p) => {
            let deployment = p.deployment();
            entry["deployment"] = deployment.to_string().into();
            let (kind, cluster, tenant, host) = match &deployment {
                Deployment::CommunityEdition { cluster } => {
                    ("community_edition", Some(cluster), None, None)
                }
                Deployment::Cloud { tenant, cluster } => {
                    ("cloud", Some(cluster), Some(tenant), None)
                }
                Deployment::Other { host } => ("other", None, None, Some(host)),
            };
            entry["kind"] = kind.into();
            entry["cluster"] = serde_json::json!(cluster);
            entry["tenant"] = serde_json::json!(tenant);
            entry["host"] = serde_json::json!(host);
            entry["credentials_id"] = serde_json::json!(p.config.credentials_id);
        }
        Err(e) => entry["error"] = format!("{e:#}").into(),
    }
    entry
}

/// `profile list`: aligned columns under a header; two profiles that share a login
/// (`credentials-id`) are marked, since logging in to one replaces the other's login.
fn profile_table(profiles: &[(String, anyhow::Result<crate::profile::Profile>)]) -> String {
    let rows: Vec<[String; 3]> = profiles
        .iter()
        .map(|(name, profile)| match profile {
            Ok(p) => {
                let id = p.config.credentials_id.as_deref().unwrap_or("(none)");
                let sharing: Vec<&str> = profiles
                    .iter()
                    .filter(|(other, o)| {
                        other != name
                            && o.as_ref()
                                .is_ok_and(|o| o.config.credentials_id == p.config.credentials_id)
                    })
                    .map(|(other, _)| other.as_str())
                    .collect();
                let login = match sharing.is_empty() {
                    true => id.to_string(),
                    false => format!("{id} (shared with {})", sharing.join(", ")),
                };
                [name.clone(), p.deployment().to_string(), login]
            }
            Err(e) => [name.clone(), format!("broken: {e:#}"), String::new()],
        })
        .collect();
    let header = [
        "NAME".to_string(),
        "DEPLOYMENT".into(),
        "CREDENTIALS-ID".into(),
    ];
    let width = |i: usize| {
        rows.iter()
            .chain([&header])
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (name_width, deployment_width) = (width(0), width(1));
    [&header]
        .into_iter()
        .chain(&rows)
        .map(|r| {
            format!("{:name_width$}  {:deployment_width$}  {}", r[0], r[1], r[2])
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
