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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { output_dir: None } => {
            let yaml = apikey_operator::api::crds_yaml().context("rendering the CRDs as YAML")?;
            print!("{yaml}");
        }
        Command::Crd {
            output_dir: Some(dir),
        } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in apikey_operator::api::crds() {
                let path = dir.join(apikey_operator::api::crd_file_name(&crd));
                let yaml = apikey_operator::api::crd_yaml(&crd).context("rendering a CRD as YAML")?;
                std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}
