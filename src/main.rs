//! The `switchboard` binary: `serve` (the default), `mask`, and the admin
//! commands of CONTRACT.md.

use switchboard::{config, generation, mask_cmd, server};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Contact-center conversation engine for digital channels"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the default with no command).
    Serve {
        /// TOML configuration; without it, the embedded demo tenant.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides the configuration).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Mask sensitive data in stdin, one message per line.
    Mask {
        /// One JSON object per line with the masked text and the spans.
        #[arg(long)]
        json: bool,
    },
    /// Tenant scripts.
    Scripts {
        #[command(subcommand)]
        command: ScriptsCmd,
    },
}

#[derive(Subcommand)]
enum ScriptsCmd {
    /// Load and validate every tenant's scripts and plugins as a reload would; print
    /// each problem as `tenant: file:line: message`; exit 1 if any.
    Check {
        /// TOML configuration; without it, the embedded demo tenant.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Mask { json }) => mask_cmd::run(json),
        Some(Cmd::Serve { config, listen }) => serve(config, listen),
        Some(Cmd::Scripts {
            command: ScriptsCmd::Check { config },
        }) => check_scripts(config),
        None => serve(None, None),
    }
}

fn check_scripts(config_path: Option<PathBuf>) -> Result<()> {
    let cfg = config::Config::load(config_path.as_deref())?;
    let problems = generation::check(&cfg);
    for (tenant, e) in &problems {
        println!("{tenant}: {e}");
    }
    if problems.is_empty() {
        println!("{} tenant(s): scripts are valid", cfg.tenants.len());
        Ok(())
    } else {
        std::process::exit(1);
    }
}

fn serve(config_path: Option<PathBuf>, listen: Option<String>) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut cfg = config::Config::load(config_path.as_deref())?;
    if let Some(l) = listen {
        cfg.listen = l;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(server::run(cfg, config_path.is_none()))
}
