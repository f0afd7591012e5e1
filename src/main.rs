//! The `switchboard` binary: `serve` (the default), `mask`, and the admin
//! commands of CONTRACT.md.

use switchboard::{config, generation, mask_cmd, replay, server};

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
        /// Development: reload a tenant when one of its script files
        /// changes, printing problems as `tenant: file:line: message`.
        #[arg(long)]
        watch: bool,
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
    /// Run every tenant's script self-tests (`tests`) and print each
    /// result; exit 1 on a failure, with the failing assertion's file:line.
    Test {
        /// TOML configuration; without it, the embedded demo tenant.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Replay a tenant's journal against a candidate routing policy: for
    /// every routing decision, what the candidate would have chosen with
    /// the same inputs.
    Replay {
        /// TOML configuration; without it, the embedded demo tenant.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        tenant: String,
        /// A script under the tenant's script folder (`routing/x.lua`), a
        /// `.lua` file elsewhere, or the name of one of its plugins.
        #[arg(long)]
        routing: String,
        /// Only decisions made at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only decisions made before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// One JSON document instead of the text report.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Mask { json }) => Ok(mask_cmd::run(json)?),
        Some(Cmd::Serve {
            config,
            listen,
            watch,
        }) => serve(config, listen, watch),
        Some(Cmd::Scripts {
            command: ScriptsCmd::Check { config },
        }) => check_scripts(config),
        Some(Cmd::Scripts {
            command: ScriptsCmd::Test { config },
        }) => test_scripts(config),
        Some(Cmd::Scripts {
            command:
                ScriptsCmd::Replay {
                    config,
                    tenant,
                    routing,
                    since,
                    until,
                    json,
                },
        }) => replay_journal(config, &tenant, &routing, since, until, json),
        None => serve(None, None, false),
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

/// `serve --watch`: the watcher reloads through the admin API, so it needs
/// the address (a free port is chosen now for port 0) and the token (one
/// is made now when none is configured, and printed).
fn watch_scripts(cfg: &mut config::Config) -> Result<()> {
    use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
    let mut addr: SocketAddr = cfg
        .listen
        .to_socket_addrs()
        .with_context(|| format!("listen address {:?}", cfg.listen))?
        .next()
        .with_context(|| format!("listen address {:?}", cfg.listen))?;
    if addr.port() == 0 {
        addr = std::net::TcpListener::bind(addr)?.local_addr()?;
        cfg.listen = addr.to_string();
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    let token = match cfg.admin_token.clone().filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => {
            let t = hex::encode(rand::random::<[u8; 24]>());
            println!("Admin token (set SWITCHBOARD_ADMIN_TOKEN to choose it): {t}");
            cfg.admin_token = Some(t.clone());
            t
        }
    };
    switchboard::watch::start(cfg, addr, token).context("starting the script watcher")
}

fn test_scripts(config_path: Option<PathBuf>) -> Result<()> {
    let cfg = config::Config::load(config_path.as_deref())?;
    let (report, ok) = switchboard::scripts::test(&cfg);
    print!("{report}");
    if ok {
        Ok(())
    } else {
        std::process::exit(1);
    }
}

fn replay_journal(
    config_path: Option<PathBuf>,
    tenant: &str,
    routing: &str,
    since: Option<String>,
    until: Option<String>,
    json: bool,
) -> Result<()> {
    let cfg = config::Config::load(config_path.as_deref())?;
    let t = cfg
        .tenants
        .iter()
        .find(|t| t.id == tenant)
        .with_context(|| format!("no tenant {tenant:?} in the configuration"))?;
    let time = |s: Option<String>| {
        s.as_deref()
            .map(replay::parse_time)
            .transpose()
            .map_err(anyhow::Error::msg)
    };
    let window = replay::Window {
        since: time(since)?,
        until: time(until)?,
    };
    // A .lua file outside the tenant's folder: loaded as routing/<name>.
    let (name, extra) = match std::fs::read_to_string(routing) {
        Ok(source) if routing.ends_with(".lua") && !is_tenant_script(t, routing) => {
            let file = std::path::Path::new(routing)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| "candidate.lua".into());
            (format!("routing/{file}"), Some(source))
        }
        _ => (routing.to_string(), None),
    };
    let now = switchboard::clock::Clock::default().now();
    let candidate = match generation::load_candidate(t, &name, extra, 0, now) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("{tenant}: {e}");
            }
            std::process::exit(1);
        }
    };
    let store = replay::open_journal(&cfg)?;
    let report = replay::replay_journal(&*store, t, &candidate, &name, window)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

/// Whether `path` names a file of the tenant's script folder.
fn is_tenant_script(t: &config::TenantConfig, path: &str) -> bool {
    match switchboard::scripts::spec_of(t) {
        Ok(spec) => spec.files.0.contains_key(path),
        Err(_) => false,
    }
}

fn serve(config_path: Option<PathBuf>, listen: Option<String>, watch: bool) -> Result<()> {
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
    if watch {
        watch_scripts(&mut cfg)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(server::run(cfg, config_path.is_none()))?)
}
