//! First start: one admin principal per API, their credentials written into the
//! data directory as owner-only files. Later starts reuse them (only the
//! `.edgerc` is rewritten, because its `host` follows the listen address).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::secrets::random_bytes;
use super::{Error, Shared, akamai, prefactor, trend, zenml};

pub const AKAMAI_EDGERC_FILE: &str = "akamai.edgerc";
pub const PREFACTOR_TOKEN_FILE: &str = "prefactor.token";
pub const ZENML_API_KEY_FILE: &str = "zenml.api-key";
/// The ZenML admin user's name and password (`grant_type=password`), which an
/// open-source ZenML server needs to manage keys (the emulation also takes the key above).
pub const ZENML_ADMIN_USER_FILE: &str = "zenml.admin-user";
pub const ZENML_ADMIN_PASSWORD_FILE: &str = "zenml.admin-password";
pub const TREND_SECRET_KEY_FILE: &str = "trendmicro.secret-key";
pub const IDS_FILE: &str = "bootstrap.json";
const MASTER_KEY_FILE: &str = "master.key";
const API: &str = "credstore";
const KIND: &str = "bootstrap";

/// Non-secret ids of the bootstrapped principals, as written to `bootstrap.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ids {
    pub akamai: akamai::BootstrapIds,
    pub prefactor: serde_json::Value,
    pub trendmicro: serde_json::Value,
    pub zenml: serde_json::Value,
}

pub fn create_private_dir(dir: &Path) -> Result<(), Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Io {
            action: "creating",
            path: dir.to_owned(),
            source,
        })
}

/// The key sealing EdgeGrid client secrets; created on first start.
pub fn master_key(dir: &Path) -> Result<[u8; 32], Error> {
    let path = dir.join(MASTER_KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|_| Error::MasterKey(path)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let key = random_bytes::<32>();
            write_private(&path, &key)?;
            Ok(key)
        }
        Err(source) => Err(Error::Io {
            action: "reading",
            path,
            source,
        }),
    }
}

pub fn run(shared: &Shared, dir: &Path) -> Result<(), Error> {
    let now_ms = shared.clock.now_ms();
    shared.db.write(|tx| {
        if let Some(ids) = tx.get::<Ids>(API, KIND, KIND)? {
            // The listen address may differ from the last start, and `host` must follow it.
            if let Some(edgerc) = akamai::edgerc(tx, shared, &ids.akamai)? {
                write_private(&dir.join(AKAMAI_EDGERC_FILE), edgerc.as_bytes())?;
            }
            return Ok(());
        }
        let akamai_ids = akamai::bootstrap(tx, shared, now_ms)?;
        if let Some(edgerc) = akamai::edgerc(tx, shared, &akamai_ids)? {
            write_private(&dir.join(AKAMAI_EDGERC_FILE), edgerc.as_bytes())?;
        }
        let (prefactor_ids, prefactor_token) = prefactor::bootstrap(tx, now_ms)?;
        write_private(
            &dir.join(PREFACTOR_TOKEN_FILE),
            format!("{prefactor_token}\n").as_bytes(),
        )?;
        let (zenml_ids, zenml_secrets) = zenml::bootstrap(tx, now_ms)?;
        write_private(
            &dir.join(ZENML_API_KEY_FILE),
            format!("{}\n", zenml_secrets.api_key).as_bytes(),
        )?;
        write_private(
            &dir.join(ZENML_ADMIN_USER_FILE),
            format!("{}\n", zenml_secrets.admin_user).as_bytes(),
        )?;
        write_private(
            &dir.join(ZENML_ADMIN_PASSWORD_FILE),
            format!("{}\n", zenml_secrets.admin_password).as_bytes(),
        )?;
        let (trend_ids, trend_secret) = trend::bootstrap(tx, now_ms)?;
        write_private(
            &dir.join(TREND_SECRET_KEY_FILE),
            format!("{trend_secret}\n").as_bytes(),
        )?;
        let ids = Ids {
            akamai: akamai_ids,
            prefactor: serde_json::json!(prefactor_ids),
            trendmicro: serde_json::json!(trend_ids),
            zenml: serde_json::json!(zenml_ids),
        };
        let ids_json = serde_json::to_vec_pretty(&ids).expect("ids serialise");
        write_private(&dir.join(IDS_FILE), &ids_json)?;
        tx.put(API, KIND, KIND, "", &ids)?;
        tracing::info!(dir = %dir.display(), "credstore bootstrapped admin principals");
        Ok::<_, Error>(())
    })
}

/// Writes atomically (temp file + rename) with mode 0600.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let io_err = |action: &'static str, path: PathBuf| move |source| Error::Io { action, path, source };
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("creating", tmp.clone()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
        .map_err(io_err("restricting", tmp.clone()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io_err("writing", tmp.clone()))?;
    fs::rename(&tmp, path).map_err(io_err("renaming", path.to_owned()))
}
