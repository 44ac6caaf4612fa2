//! `govdc-operator`: the govdc operator's command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use govdc_operator::config::RunArgs;
use govdc_operator::runtime;

/// The govdc operator: runs a government data center's tenant clouds, exchange hub nodes, open
/// datasets and disaster-recovery replication on Kubernetes.
#[derive(Parser, Debug)]
#[command(name = "govdc-operator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controllers against a cluster.
    // A flag given twice takes its last value, so wrappers can append overrides.
    #[command(args_override_self = true)]
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML, for `kubectl apply -f -`.
    Crds,
    /// Disaster recovery: restore points, restore, failover.
    Backup(Box<govdc_operator::backup_commands::BackupArgs>),
    /// Open datasets: approve an application for a conditional dataset.
    Dataset(Box<govdc_operator::dataset_commands::DatasetArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => print_crds(),
        Command::Backup(args) => run_command("backup", govdc_operator::backup_commands::run(*args)),
        Command::Dataset(args) => {
            run_command("dataset", govdc_operator::dataset_commands::run(*args))
        }
        Command::Run(args) => {
            if let Err(error) = runtime::telemetry::init(args.log_format, &args.log_filter) {
                eprintln!("govdc-operator: {error:#}");
                return ExitCode::FAILURE;
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("govdc-operator: starting the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(runtime::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(error = %for_a_person(&error), "govdc-operator failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs a one-shot command on its own runtime and turns its error into the exit code.
fn run_command(name: &str, command: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("govdc-operator: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("govdc-operator {name}: {}", for_a_person(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each as a person reads it: an API server's refusal in its own words
/// (kube's `Display` of it appends a `Debug` dump of the response).
fn for_a_person(error: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in error.chain() {
        if let Some(api) = cause.downcast_ref::<kube::Error>() {
            // Its own sources are the same refusal again.
            parts.push(govdc_operator::error::api_message(api));
            break;
        }
        parts.push(cause.to_string());
    }
    parts.join(": ")
}

fn print_crds() -> ExitCode {
    for crd in govdc_crds::custom_resource_definitions() {
        match govdc_crds::crd_yaml(&crd) {
            Ok(yaml) => println!("---\n{yaml}"),
            Err(error) => {
                eprintln!("govdc-operator: rendering CRD: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_refusal_reaches_the_command_line_in_the_api_servers_words() {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": 403, "reason": "Forbidden",
            "message": "deployments.apps \"web\" is forbidden: User \"dr\" cannot patch resource",
        }))
        .expect("a Status");
        let error = anyhow::Error::new(kube::Error::Api(Box::new(status)))
            .context("failing over policy extranet-to-dr");
        assert_eq!(
            for_a_person(&error),
            "failing over policy extranet-to-dr: deployments.apps \"web\" is forbidden: User \"dr\" cannot patch resource"
        );
    }
}
