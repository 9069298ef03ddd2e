//! The command line of `kubectl apikeys` and the dispatch to the commands.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::{Parser, Subcommand};
use kube::Client;
use kube::config::{Config, KubeConfigOptions};

use super::PluginError;
use super::kind::Target;
use super::status::{Listing, Scope};

/// Inspect and operate the API keys managed by apikey-operator (ApiClient, ApiToken,
/// ServiceAccountKey). Uses the kubeconfig from the environment, like kubectl.
#[derive(Parser)]
#[command(name = "kubectl apikeys", bin_name = "kubectl apikeys", version)]
pub struct Cli {
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace (default: the context's namespace).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// One table of every key resource: Ready, upstream state, Secret, expiry, next
    /// rotation and the reason of an unhappy Ready condition.
    Status {
        /// List every namespace.
        #[arg(short = 'A', long, conflicts_with = "namespace")]
        all_namespaces: bool,
    },
    /// Ask for one rotation now (the `apikeys.dev/rotate` annotation) and wait for it.
    Rotate {
        /// KIND/NAME, for example apitoken/billing-api.
        target: String,
        #[command(flatten)]
        wait: Wait,
        /// Also wait until the previous credential is retired upstream (after
        /// retainPrevious, the consumers' rollout and, where set, its last use).
        #[arg(long, conflicts_with = "no_wait")]
        wait_retired: bool,
    },
    /// Conditions, recent events and the rotation history of one key resource.
    Describe {
        /// KIND/NAME, for example sakey/siem-export.
        target: String,
    },
    /// Break glass: rotate now with no overlap, retire the current credential at once,
    /// restart the consumers and record the report as an event.
    Compromised {
        /// KIND/NAME, for example apiclient/cdn-purge.
        target: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(clap::Args)]
pub struct Wait {
    /// Return once the request is recorded instead of waiting for the outcome.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for the outcome, in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    timeout: u64,
}

impl Wait {
    fn limit(&self) -> Option<Duration> {
        (!self.no_wait).then(|| Duration::from_secs(self.timeout))
    }
}

/// Runs the command; the result is printed to stdout, notes to stderr.
pub async fn run(cli: Cli) -> Result<(), PluginError> {
    // Arguments are checked before connecting, so a typo never waits on the network.
    let target = match &cli.command {
        Command::Status { .. } => None,
        Command::Rotate { target, .. }
        | Command::Describe { target }
        | Command::Compromised { target, .. } => Some(target.parse::<Target>()?),
    };
    let (client, default_namespace) = connect(cli.context.as_deref()).await?;
    let namespace = cli.namespace.clone().unwrap_or(default_namespace);
    let output = match (cli.command, target) {
        (Command::Status { all_namespaces }, _) => {
            let scope = if all_namespaces {
                Scope::AllNamespaces
            } else {
                Scope::Namespace(namespace)
            };
            match super::status::status(&client, &scope).await? {
                Listing::Table(table) => table,
                Listing::Empty(note) => {
                    eprintln!("{note}");
                    return Ok(());
                }
            }
        }
        (
            Command::Rotate {
                wait, wait_retired, ..
            },
            Some(target),
        ) => super::rotate::rotate(&client, &namespace, &target, wait.limit(), wait_retired).await?,
        (Command::Describe { .. }, Some(target)) => {
            super::describe::describe(&client, &namespace, &target).await?
        }
        (Command::Compromised { yes, wait, .. }, Some(target)) => {
            if !yes {
                eprint!("{}", super::compromised::confirmation_prompt(&target, &namespace));
                let _ = std::io::stderr().flush();
                let stdin = std::io::stdin();
                let answer = super::compromised::confirmed(&target, &mut stdin.lock());
                // A terminal echoes the answer's newline; piped input does not.
                if !stdin.is_terminal() {
                    eprintln!();
                }
                answer?;
            }
            super::compromised::compromised(&client, &namespace, &target, wait.limit()).await?
        }
        (_, None) => unreachable!("every command but status parsed its target above"),
    };
    print!("{output}");
    if !output.ends_with('\n') {
        println!();
    }
    Ok(())
}

/// A client for the chosen context, and that context's namespace.
async fn connect(context: Option<&str>) -> Result<(Client, String), PluginError> {
    let config = match context {
        Some(context) => Config::from_kubeconfig(&KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        })
        .await
        .map_err(|e| PluginError::Config(super::error::one_line(&e)))?,
        None => Config::infer()
            .await
            .map_err(|e| PluginError::Config(super::error::one_line(&e)))?,
    };
    let namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| PluginError::Config(super::error::one_line(&e)))?;
    Ok((client, namespace))
}
