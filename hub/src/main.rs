//! The `govdc-hub` command: serve a node, issue tokens, verify an audit log.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use govdc_hub::audit;
use govdc_hub::config::{Config, LogFormat, parse_duration};
use govdc_hub::server;
use govdc_hub_api::auth::{Claims, Role};

#[derive(Parser)]
#[command(
    name = "govdc-hub",
    version,
    about = "A node of the national data sharing and exchange hub"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the node: gRPC on `listen`, /metrics and /healthz on `metricsListen`.
    Serve {
        /// YAML configuration file; every key can be overridden by GOVDC_HUB_<KEY>.
        #[arg(long, env = "GOVDC_HUB_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Prints a token signed with the node's key.
    Issue {
        /// The node's key file (its bytes, exactly, as the node reads it).
        #[arg(long)]
        key_file: PathBuf,
        /// The node the token is for (its audience).
        #[arg(long)]
        node: String,
        /// admin, member or node.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// operator (admin), a credit code (member) or a child node's name (node).
        #[arg(long)]
        subject: String,
        /// How long it is valid, e.g. 1h, 30d.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: Duration,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recomputes the hash chain; exits 1 and names the first broken record if there is one.
    Verify {
        /// The node's data directory (safe while the node runs: it only reads).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    match text {
        "admin" => Ok(Role::Admin),
        "member" => Ok(Role::Member),
        "node" => Ok(Role::Node),
        _ => Err(format!("{text:?} is not a role: admin, member or node")),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GOVDC_HUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
    }
}

fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let (config, unknown) = Config::load(config.as_deref(), |name| std::env::var(name).ok())?;
    init_logging(config.log_format);
    if !unknown.is_empty() {
        tracing::warn!(keys = ?unknown, "ignoring unknown configuration keys");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(server::run(config, shutdown_signal()))
}

fn verify(data_dir: PathBuf) -> anyhow::Result<bool> {
    let path = data_dir.join(govdc_hub::store::DB_FILE);
    if !path.is_file() {
        anyhow::bail!("no store at {}", path.display());
    }
    let conn = govdc_hub::store::open_reader(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let verification = audit::verify(&conn)
        .with_context(|| format!("reading the audit log in {}", path.display()))?;
    match verification.first_broken {
        None => {
            println!(
                "audit log intact: {} records verified",
                verification.records_checked
            );
            Ok(true)
        }
        Some((seq, reason)) => {
            println!(
                "audit log BROKEN at record {seq} ({} records before it verified): {reason}",
                verification.records_checked
            );
            Ok(false)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config).map(|()| true),
        Command::Token {
            command:
                TokenCommand::Issue {
                    key_file,
                    node,
                    role,
                    subject,
                    ttl,
                },
        } => server::read_key(&key_file).and_then(|key| {
            let token = key.issue(&Claims::new(subject, role, node, ttl))?;
            println!("{token}");
            Ok(true)
        }),
        Command::Audit {
            command: AuditCommand::Verify { data_dir },
        } => verify(data_dir),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("govdc-hub: {e:#}");
            ExitCode::from(2)
        }
    }
}
