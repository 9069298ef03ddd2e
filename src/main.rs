use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Manages API keys in upstream credential stores as Kubernetes custom resources.
#[derive(Parser)]
#[command(name = "apikey-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every CustomResourceDefinition as one multi-document YAML stream.
    Crd {
        /// Instead of printing, write one file per kind into this directory
        /// (`<plural>.apikeys.dev.yaml`), as kept in `crds/`.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
    /// Serve the embedded credential store: the four upstream APIs on one port, backed by SQLite.
    Credstore(apikey_operator::credstore::Config),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { output_dir: None } => {
            let yaml = apikey_operator::api::crds_yaml().context("rendering the CRDs as YAML")?;
            print!("{yaml}");
        }
        Command::Crd { output_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in apikey_operator::api::crds() {
                let path = dir.join(apikey_operator::api::crd_file_name(&crd));
                let yaml = apikey_operator::api::crd_yaml(&crd).context("rendering a CRD as YAML")?;
                std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Command::Credstore(config) => run_credstore(config)?,
    }
    Ok(())
}

fn run_credstore(config: apikey_operator::credstore::Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = apikey_operator::credstore::CredStore::open(config).await.context("opening the credential store")?;
        // Scripts and tests read the bound address (useful with port 0) from this line.
        println!("credstore listening on {}", store.local_addr());
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        };
        store.serve(shutdown).await.context("serving the credential store")
    })
}
