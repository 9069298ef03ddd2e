//! The embedded credential store: the four upstream APIs (Akamai IAM, Prefactor,
//! Trend Micro, ZenML) on one HTTP port, backed by SQLite. See README.md
//! ("Embedded credential store") for the bootstrap files and the admin API.

mod admin;
mod akamai;
pub mod bootstrap;
mod clock;
mod db;
mod faults;
mod http;
mod idempotency;
mod prefactor;
mod secrets;
mod trend;
mod zenml;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use tokio::net::TcpListener;

pub use faults::FaultSettings;

use admin::Counters;
use clock::Clock;
use db::{Db, DbError};
use faults::Faults;
use secrets::Sealer;

/// `apikey-operator credstore` options.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8400")]
    pub listen: SocketAddr,
    /// `HOST:PORT` clients use to reach this store (the `.edgerc` `host` and Akamai's
    /// `baseURL`); defaults to the listen address. Set it when serving on 0.0.0.0.
    #[arg(long)]
    pub advertise_address: Option<String>,
    /// Directory for the database and the bootstrap credential files (created 0700).
    #[arg(long)]
    pub data: PathBuf,
    /// Serves the unauthenticated test controls under `/_credstore/` (clock, faults, request counters).
    #[arg(long)]
    pub admin_api: bool,
    /// Starts the store's clock this many seconds ahead of (or, negative, behind) wall-clock time.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub clock_offset_seconds: i64,
    /// Lets ZenML bearer sessions expire this many minutes after login, as the real
    /// server's `ZENML_SERVER_JWT_TOKEN_EXPIRE_MINUTES` does. Unset: they never expire
    /// (`expires_in: null`), the real server's default.
    #[arg(long)]
    pub zenml_session_minutes: Option<u32>,
    #[command(flatten)]
    pub faults: FaultSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("listening on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("invalid fault settings: {0}")]
    Faults(String),
    #[error("the master key in {0} does not open the sealed secrets")]
    MasterKey(PathBuf),
    #[error("serving HTTP: {0}")]
    Serve(io::Error),
}

/// Everything handlers share.
pub struct Shared {
    db: Db,
    clock: Clock,
    faults: Faults,
    counters: Counters,
    sealer: Sealer,
    /// `http://host:port` as clients reach this store.
    base_url: String,
    /// See [`Config::zenml_session_minutes`].
    zenml_session_minutes: Option<u32>,
}

pub type AppState = Arc<Shared>;

/// A store bound to its port and bootstrapped, ready to serve.
pub struct CredStore {
    listener: TcpListener,
    app: Router,
    addr: SocketAddr,
}

impl CredStore {
    pub async fn open(config: Config) -> Result<Self, Error> {
        config.faults.validate().map_err(Error::Faults)?;
        let data = config.data.clone();
        bootstrap::create_private_dir(&data)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
        let master_key = bootstrap::master_key(&data)?;
        let shared = Arc::new(Shared {
            db: Db::open(&data.join("credstore.sqlite3"))?,
            clock: Clock::with_offset_seconds(config.clock_offset_seconds),
            zenml_session_minutes: config.zenml_session_minutes,
            faults: Faults::new(config.faults.clone()),
            counters: Counters::default(),
            sealer: Sealer::new(&master_key),
            base_url: format!(
                "http://{}",
                config
                    .advertise_address
                    .clone()
                    .unwrap_or_else(|| addr.to_string())
            ),
        });
        bootstrap::run(&shared, &data)?;
        Ok(Self {
            listener,
            app: router(shared, config.admin_api),
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        tracing::info!(addr = %self.addr, "credstore serving");
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Serve)
    }
}

fn router(shared: AppState, admin_api: bool) -> Router {
    // Liveness for probes (Helm); unlike the admin API it is always served.
    let mut app = Router::new()
        .route("/_credstore/healthz", get(|| async { "ok" }))
        .merge(akamai::router())
        .merge(prefactor::router())
        .merge(trend::router())
        .merge(zenml::router());
    if admin_api {
        app = app.merge(admin::router());
    }
    app.fallback(http::not_found)
        .layer(from_fn_with_state(shared.clone(), faults::inject))
        .layer(from_fn(http::shape_errors))
        .layer(from_fn_with_state(shared.clone(), http::log_and_count))
        .layer(DefaultBodyLimit::max(http::BODY_LIMIT_BYTES))
        .with_state(shared)
}
