//! The `kafka-group-operator` command line: one binary for the operator, its tools and its embedded broker.

use anyhow::Result;
use clap::{Parser, Subcommand};
use kafka_group_operator::telemetry::{self, LogFormat};

#[derive(Parser, Debug)]
#[command(
    name = "kafka-group-operator",
    version,
    about = "A Kubernetes operator that owns the lifecycle of Apache Kafka consumer groups",
    long_about = None
)]
struct Cli {
    /// Log format written to stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "KGO_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter, in `RUST_LOG` syntax (e.g. `info,kube=warn`).
    #[arg(long, global = true, default_value = "info", env = "RUST_LOG")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (apply them with `kubectl apply -f -`).
    Crds,
    /// Print the version of the operator and of the APIs it was built against.
    Version,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, &cli.log_level)?;
    match cli.command {
        Command::Crds => print!("{}", kafka_group_operator::api::crds_yaml()?),
        Command::Version => {
            println!("kafka-group-operator {}", env!("CARGO_PKG_VERSION"));
            println!("kubernetes API: v1.37 (k8s-openapi feature v1_37)");
            println!("kafka protocol: kafka-protocol crate 0.18");
        }
    }
    Ok(())
}
