//! `profile add|list|show|remove` and `login`.

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context as _, Result};

use super::Context;
use crate::cli::{LoginArgs, ProfileCommand};
use crate::profile::ProfileName;
use crate::ttn_lw_cli::Invocation;

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
                eprintln!(
                    "warning: this config has no `credentials-id`; two profiles without one share \
                     a single login in ttn-lw-cli's cache. Add `credentials-id: {name}` to {}",
                    profile.path.display()
                );
            }
            println!("Next: ttn-session-migrate login {name}");
        }
        ProfileCommand::List => {
            let profiles = store.list()?;
            if profiles.is_empty() {
                println!(
                    "No profiles in {}. Create them with:\n  ttn-session-migrate profile add ce --host eu1.cloud.thethings.network\n  ttn-session-migrate profile add cloud --host <tenant>.eu1.cloud.thethings.industries",
                    store.dir().display()
                );
            }
            for (name, profile) in profiles {
                match profile {
                    Ok(p) => println!(
                        "{name}\t{}\tcredentials-id: {}",
                        p.deployment(),
                        p.config.credentials_id.as_deref().unwrap_or("(none)")
                    ),
                    Err(e) => println!("{name}\tbroken: {e:#}"),
                }
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
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("could not read the API key from standard input")?;
                line.trim().to_string()
            } else {
                key.clone()
            };
            if key.is_empty() {
                bail!("the API key is empty");
            }
            let invocation = Invocation::new(&profile.path, ["login", "--api-key", &key]);
            cli.run(&invocation)
                .map_err(|e| anyhow::anyhow!("login failed: {}", e.detail))?;
            // The CLI does not check an API key at login: ask the deployment now.
            match cli.run(&Invocation::new(&profile.path, ["auth-info"])) {
                Ok(_) => println!(
                    "Logged in to {} with an API key (profile `{}`)",
                    profile.deployment(),
                    profile.label
                ),
                Err(e) => bail!(
                    "the API key was stored, but {} does not accept it: {}. Check the key and its rights",
                    profile.deployment(),
                    e.detail
                ),
            }
        }
        None => {
            if !std::io::stdin().is_terminal() && !args.no_callback {
                eprintln!("note: OAuth login opens a browser; on a machine without one use --no-callback or --api-key");
            }
            let mut words = vec!["login".to_string()];
            if args.no_callback {
                words.push("--callback=false".into());
            }
            cli.run_interactive(&Invocation::new(&profile.path, words))?;
            println!(
                "Logged in to {} (profile `{}`)",
                profile.deployment(),
                profile.label
            );
        }
    }
    Ok(true)
}
