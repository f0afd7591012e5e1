//! The `switchboard` binary: `serve` (the default), `mask`, and the admin
//! commands of CONTRACT.md.

use switchboard::{channels, clock, config, http, mask_cmd, scripts, tenant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
    /// Load and validate every tenant's scripts as a reload would; print
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
    let problems = scripts::check(&cfg);
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
    runtime.block_on(run_server(cfg, config_path.is_none()))
}

async fn run_server(cfg: config::Config, demo: bool) -> Result<()> {
    let clock = Arc::new(clock::Clock::default());
    let (admin_token, generated) = match cfg.admin_token.clone().filter(|t| !t.is_empty()) {
        Some(t) => (t, false),
        None => {
            use rand::RngCore;
            let mut raw = [0u8; 24];
            rand::rng().fill_bytes(&mut raw);
            (hex::encode(raw), true)
        }
    };
    let mut tenants = HashMap::new();
    for t in &cfg.tenants {
        let tenant = Arc::new(tenant::Tenant::new(t.clone(), clock.clone())?);
        tokio::spawn(tenant::run_timers(tenant.clone()));
        tokio::spawn(channels::run_outbox(tenant.clone()));
        tenants.insert(t.id.clone(), tenant);
    }
    let state = Arc::new(http::AppState {
        tenants,
        sessions: Mutex::new(HashMap::new()),
        admin_token: admin_token.clone(),
        clock,
        test_clock: cfg.test_clock,
    });
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    println!("Switchboard is listening on http://{addr}");
    println!("Agent desktop: http://{addr}/");
    for t in &cfg.tenants {
        if t.webchat.is_some() {
            println!("Customer web chat ({}): http://{addr}/chat/{}", t.id, t.id);
        }
        for a in &t.agents {
            if demo {
                println!(
                    "  login: tenant {} / agent {} / password {}",
                    t.id, a.id, a.password
                );
            } else {
                println!("  agent: tenant {} / agent {}", t.id, a.id);
            }
        }
    }
    if generated {
        println!("Admin token (set SWITCHBOARD_ADMIN_TOKEN to choose it): {admin_token}");
    }
    tracing::info!(%addr, tenants = cfg.tenants.len(), "serving");
    axum::serve(listener, http::app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving HTTP")
}
