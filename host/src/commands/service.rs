//! `service install|uninstall|start|stop|run`: the host as a Windows
//! service ([`winservice`]); elsewhere each action is an error that points
//! at the systemd unit.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use buktor_middleware::{config, service::winservice};

use super::{printable_error, run::run};

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Register this executable as a service that starts at boot and is
    /// restarted when it fails, with this --config (default: the
    /// his-config.json found as `run` finds it) and --log-dir (default:
    /// `logs` beside the config).
    Install {
        #[arg(long, default_value = winservice::DEFAULT_NAME)]
        name: String,
    },
    /// Stop the service if it runs, then remove it. The journal, the config
    /// and the logs stay.
    Uninstall {
        #[arg(long, default_value = winservice::DEFAULT_NAME)]
        name: String,
    },
    /// Start the service and wait until it is listening.
    Start {
        #[arg(long, default_value = winservice::DEFAULT_NAME)]
        name: String,
    },
    /// Stop the service gracefully (as Ctrl-C does) and wait until it has.
    Stop {
        #[arg(long, default_value = winservice::DEFAULT_NAME)]
        name: String,
    },
    /// What the Windows service manager starts; not for people.
    #[command(hide = true)]
    Run {
        #[arg(long, default_value = winservice::DEFAULT_NAME)]
        name: String,
    },
}

/// `service install|uninstall|start|stop|run` (Windows).
pub fn service(
    config_path: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    log_format: &str,
    action: Action,
) -> anyhow::Result<()> {
    match action {
        Action::Install { name } => {
            // Absolute paths: a service starts in C:\Windows\System32. The
            // config must load now, not at the first boot.
            let config = std::path::absolute(config::locate(config_path.as_deref())?)?;
            config::load(&config)?;
            let log_dir = std::path::absolute(log_dir.unwrap_or_else(|| winservice::default_log_dir(&config)))?;
            let exe = std::env::current_exe().context("cannot find this executable's path")?;
            winservice::install(&winservice::Install {
                name: name.clone(),
                exe,
                config,
                log_dir: log_dir.clone(),
                log_format: log_format.into(),
            })?;
            println!(
                "installed the service {name}: it starts at boot and restarts when it fails. Start it now with \
                 `buktor-middleware service start --name {name}`; its logs go to {}",
                log_dir.display()
            );
        }
        Action::Uninstall { name } => {
            winservice::uninstall(&name)?;
            println!("removed the service {name}; the journal, his-config.json and the logs are left as they were");
        }
        Action::Start { name } => {
            winservice::start(&name)?;
            println!("the service {name} is running");
        }
        Action::Stop { name } => {
            winservice::stop(&name)?;
            println!("the service {name} has stopped");
        }
        Action::Run { name } => {
            let run: winservice::RunFn = Box::new(move |control| {
                run(config_path.clone(), control).map_err(|e| printable_error(config_path.as_deref(), &e))
            });
            winservice::run_as_service(&name, run)?;
        }
    }
    Ok(())
}
