//! The `govdc-hub` command: serve a node, issue tokens, verify an audit log.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use govdc_hub::anchor::{self, Anchor, Source};
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
    /// Recomputes the hash chain and checks it against the anchors of its head kept outside
    /// the node: the parent's (fetched over the link in the store), the copy beside the store,
    /// and any given with --anchor. Exits 1 and names what it found (an altered record, a gap, a
    /// truncation, a rewrite, an older copy) if the log is not intact.
    Verify {
        /// The node's data directory (safe while the node runs: it only reads).
        #[arg(long)]
        data_dir: PathBuf,
        /// An anchor of the head known elsewhere, `SEQ:HASH` (the operator's, from the
        /// ExchangeNode's `status.auditHead`); repeatable.
        #[arg(long = "anchor", value_parser = parse_anchor)]
        anchors: Vec<(i64, String)>,
        /// Do not ask the parent for its anchor.
        #[arg(long)]
        no_parent: bool,
    },
}

fn parse_anchor(text: &str) -> Result<(i64, String), String> {
    let (seq, hash) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not SEQ:HASH"))?;
    let seq: i64 = seq
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("{seq:?} is not a positive record number"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{hash:?} is not a 64-digit hex hash"));
    }
    Ok((seq, hash.to_ascii_lowercase()))
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

fn verify(data_dir: PathBuf, given: Vec<(i64, String)>, no_parent: bool) -> anyhow::Result<bool> {
    let path = data_dir.join(govdc_hub::store::DB_FILE);
    if !path.is_file() {
        anyhow::bail!("no store at {}", path.display());
    }
    let conn = govdc_hub::store::open_reader(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let setting = |key: &str| {
        govdc_hub::service::setting(&conn, key).map_err(|e| anyhow::anyhow!("{}", e.report()))
    };
    let local = anchor::read_local(&data_dir)
        .with_context(|| format!("reading the anchor copy in {}", data_dir.display()))?;
    let node = setting("node.name")?
        .or_else(|| local.as_ref().map(|a| a.node.clone()))
        .unwrap_or_default();
    let mut anchors: Vec<(Source, Result<Anchor, String>)> = given
        .into_iter()
        .map(|(seq, hash)| {
            let anchor = Anchor {
                node: node.clone(),
                seq,
                hash,
                recorded_by: "the command line".to_owned(),
                recorded_seq: 0,
                recorded_at_micros: 0,
            };
            (Source::Caller, Ok(anchor))
        })
        .collect();
    if !no_parent {
        let link = govdc_hub::federation::load_link(&conn)
            .map_err(|s| anyhow::anyhow!("reading the parent link: {}", s.message()))?;
        if let Some(link) = link {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            match runtime.block_on(govdc_hub::federation::fetch_anchors(&link)) {
                Ok(parent) => anchors.extend(parent.into_iter().map(|a| (Source::Parent, Ok(a)))),
                Err(why) => anchors.push((Source::Parent, Err(why))),
            }
        }
    }
    if let Some(local) = local {
        anchors.push((Source::Local, Ok(local)));
    }
    let report = anchor::verify(&conn, &node, anchors)
        .with_context(|| format!("reading the audit log in {}", path.display()))?;
    for check in &report.checks {
        let what = match &check.anchor {
            Some(a) => format!("record {} by {}", a.seq, a.recorded_by),
            None => "no anchor".to_owned(),
        };
        println!(
            "anchor ({}, {what}): {}",
            check.source.as_str(),
            check.outcome
        );
    }
    match report.first_broken {
        None => {
            println!(
                "audit log intact: {} records verified, {} anchors compared",
                report.records_checked,
                report.checks.len()
            );
            Ok(true)
        }
        Some((seq, reason)) => {
            println!(
                "audit log BROKEN at record {seq}: {} ({} records verified): {reason}",
                report.finding.as_str(),
                report.records_checked
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
            command:
                AuditCommand::Verify {
                    data_dir,
                    anchors,
                    no_parent,
                },
        } => verify(data_dir, anchors, no_parent),
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
