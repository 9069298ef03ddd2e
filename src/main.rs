use std::net::SocketAddr;
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
    /// Write the reference page of each kind (`<kind>.md`, generated from the CRD schema)
    /// into a directory, as kept in `docs/reference/`.
    Docs {
        #[arg(long, default_value = "docs/reference")]
        output_dir: PathBuf,
    },
    /// Run the operator: reconcile stores and keys until SIGTERM or Ctrl-C. Uses the
    /// kubeconfig from the environment (KUBECONFIG, ~/.kube/config) or the in-cluster
    /// service account.
    Run {
        /// Watch only this namespace (ClusterCredentialStores are always watched).
        #[arg(long, env = "APIKEY_OPERATOR_NAMESPACE")]
        namespace: Option<String>,
        /// Address serving /healthz, /readyz and /metrics.
        #[arg(long, env = "APIKEY_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// Log format.
        #[arg(long, env = "APIKEY_OPERATOR_LOG_FORMAT", value_enum, default_value_t)]
        log_format: apikey_operator::telemetry::LogFormat,
        /// Name of this replica, shown as the reporting instance of events.
        #[arg(long, env = "POD_NAME")]
        instance: Option<String>,
        /// Reconciliations of one kind running at once (bounds concurrent upstream calls),
        /// shared fairly among the stores in use: with S stores busy, each is promised
        /// concurrency / S and may borrow what the others leave unused, so a slow store
        /// cannot delay the others.
        #[arg(long, env = "APIKEY_OPERATOR_CONCURRENCY", default_value_t = 16)]
        concurrency: u16,
        /// Identity of this cluster, mixed into default upstream names and owner marks so
        /// that clusters sharing one upstream never meet. Default: the UID of the
        /// `kube-system` namespace.
        #[arg(long, env = "APIKEY_OPERATOR_CLUSTER_ID")]
        cluster_id: Option<String>,
        /// A credential the upstream reports unused for this long (Go duration, e.g.
        /// `720h`) counts in the `apikey_operator_credentials_unused` metric.
        #[arg(long, env = "APIKEY_OPERATOR_UNUSED_AFTER", default_value = "720h", value_parser = parse_unused_after)]
        unused_after: std::time::Duration,
        #[command(flatten)]
        election: Election,
    },
    /// Run the operator's whole job on an embedded default: a local control plane, the
    /// embedded credential store, the operator and the examples.
    Demo(apikey_operator::demo::DemoOptions),
    /// Serve the embedded credential store: the four upstream APIs on one port, backed by SQLite.
    Credstore(apikey_operator::credstore::Config),
}

/// Leader election, for running several replicas of which one reconciles.
#[derive(clap::Args)]
struct Election {
    /// Run the controllers only while holding a Lease; the other replicas stand by.
    #[arg(long, env = "APIKEY_OPERATOR_LEADER_ELECTION")]
    leader_election: bool,
    /// Name of the Lease (coordination.k8s.io/v1).
    #[arg(long, env = "APIKEY_OPERATOR_LEASE_NAME", default_value = "apikey-operator")]
    lease_name: String,
    /// Namespace of the Lease; defaults to the namespace the operator watches.
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Seconds a lease stays valid after its last renewal: how long a standby waits before
    /// it takes over from a leader that died without releasing.
    #[arg(long, env = "APIKEY_OPERATOR_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds between the leader's renewals (less than half the lease duration).
    #[arg(long, env = "APIKEY_OPERATOR_LEASE_RENEW_PERIOD_SECONDS", default_value_t = 5)]
    lease_renew_period_seconds: u64,
}

impl Election {
    /// The election's settings, `None` without `--leader-election`. The holder identity is
    /// the instance name (the pod name in a cluster), else `<hostname>-<pid>`.
    fn config(
        self,
        namespace: Option<&str>,
        instance: Option<&str>,
    ) -> anyhow::Result<Option<apikey_operator::leader::Config>> {
        if !self.leader_election {
            return Ok(None);
        }
        let lease_namespace = self.lease_namespace.or(namespace.map(str::to_string)).context(
            "leader election needs --lease-namespace (or POD_NAMESPACE) when every namespace is watched",
        )?;
        let config = apikey_operator::leader::Config {
            lease_name: self.lease_name,
            namespace: lease_namespace,
            identity: instance.map_or_else(apikey_operator::leader::default_identity, str::to_string),
            duration: std::time::Duration::from_secs(self.lease_duration_seconds),
            renew_period: std::time::Duration::from_secs(self.lease_renew_period_seconds),
        };
        config.validate()?;
        Ok(Some(config))
    }
}

fn parse_unused_after(value: &str) -> Result<std::time::Duration, String> {
    let duration = apikey_operator::controller::schedule::parse_duration("--unused-after", value)
        .map_err(|e| e.to_string())?;
    std::time::Duration::try_from(duration).map_err(|_| "--unused-after must not be negative".to_string())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run {
            namespace,
            listen,
            log_format,
            instance,
            concurrency,
            cluster_id,
            unused_after,
            election,
        } => {
            apikey_operator::telemetry::init(log_format);
            // Where the key of status proofs lives: the watched namespace of a namespaced
            // install (its only permissions), else the operator's own.
            let system_namespace = namespace
                .clone()
                .or_else(|| election.lease_namespace.clone())
                .unwrap_or_else(|| "default".into());
            let leader_election = election.config(namespace.as_deref(), instance.as_deref())?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(async {
                let metrics = std::sync::Arc::new(apikey_operator::metrics::Metrics::default());
                metrics.set_unused_after(unused_after);
                let client = apikey_operator::operator::connect(metrics.clone())
                    .await
                    .context("connecting to the Kubernetes API")?;
                let options = apikey_operator::operator::Options {
                    namespace,
                    listen,
                    instance,
                    concurrency,
                    leader_election,
                    cluster_id,
                    system_namespace,
                };
                apikey_operator::operator::run(client, metrics, options)
                    .await
                    .context("running the operator")
            })?;
        }
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
        Command::Docs { output_dir } => {
            std::fs::create_dir_all(&output_dir)
                .with_context(|| format!("creating {}", output_dir.display()))?;
            for crd in apikey_operator::api::crds() {
                let path = output_dir.join(apikey_operator::api::reference::file_name(&crd));
                std::fs::write(&path, apikey_operator::api::reference::markdown(&crd))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Command::Credstore(config) => run_credstore(config)?,
        Command::Demo(options) => {
            apikey_operator::telemetry::init(apikey_operator::telemetry::LogFormat::Text);
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime
                .block_on(apikey_operator::demo::run(options))
                .context("running the demo")?;
        }
    }
    Ok(())
}

fn run_credstore(config: apikey_operator::credstore::Config) -> anyhow::Result<()> {
    apikey_operator::telemetry::init(apikey_operator::telemetry::LogFormat::Text);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = apikey_operator::credstore::CredStore::open(config)
            .await
            .context("opening the credential store")?;
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
        store
            .serve(shutdown)
            .await
            .context("serving the credential store")
    })
}
