//! Converging one ApiClient against Akamai IAM: the client (found by name or created), its
//! managed credential (issued through the durable `pending` record), lock state, settings,
//! rotation and retirement; and deletion upstream.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::decide::{self, CredentialIssue, EdgercValues};
use crate::api::{ApiClient, KeyStatus};
use crate::controller::Error;
use crate::controller::conditions::{self, reason};
use crate::controller::key_run::{
    Blocked, Delivery, RESYNC_INTERVAL, Run, Step, default_upstream_name, owner_uid,
};
use crate::controller::ownership::{ClusterIdentity, Ownership, user_description};
use crate::controller::policy;
use crate::controller::reconcile_key::{KeyKind, wrong_provider};
use crate::controller::trigger::Trigger;
use crate::failpoint;
use crate::upstream::akamai::{AkamaiApiClient, Credential, CredentialStatus};
use crate::upstream::name_index::Lookup;
use crate::upstream::{self, AkamaiClient, ErrorClass, UpstreamClient, UpstreamError};

impl KeyKind for ApiClient {
    const PROVIDERS: &'static [upstream::Api] = &[upstream::Api::Akamai];

    async fn converge(run: &mut Run<'_, Self>, upstream: &UpstreamClient) -> Step<Duration> {
        let Some(akamai) = upstream.akamai() else {
            return Err(wrong_provider::<Self>(upstream).into());
        };
        converge(run, akamai).await
    }

    fn policy_request<'a>(
        &'a self,
        _upstream: &UpstreamClient,
        cluster: &ClusterIdentity,
        _store_account: Option<&'a str>,
    ) -> policy::Request<'a> {
        policy::Request {
            upstream_name: Some(client_name(self, cluster)),
            expiry: (
                "spec.credential.expiresAt",
                self.spec.credential.expires_at.as_ref().map(|t| t.0),
            ),
            rotation_interval: self.spec.rotation.as_ref().and_then(|r| r.interval.as_deref()),
            provider: policy::ProviderRequest::Akamai(&self.spec),
        }
    }

    async fn delete_upstream(
        object: &Self,
        status: &KeyStatus,
        upstream: &UpstreamClient,
        cluster: &ClusterIdentity,
    ) -> Result<usize, Error> {
        let Some(akamai) = upstream.akamai() else {
            return Err(Error::CleanupBlocked(wrong_provider::<Self>(upstream).message));
        };
        let mark = cluster.mark(&owner_uid(object));
        let ids: Vec<String> = match &status.upstream_id {
            // Recorded in the proven status.
            Some(id) => vec![id.clone()],
            // Created, perhaps, before a crash recorded its id: found by its name and mark.
            None => akamai
                .find_clients_by_name(&client_name(object, cluster), Lookup::Now)
                .await?
                .into_iter()
                .filter(|c| mark.judge(c.client_description.as_deref()) == Ownership::Ours)
                .map(|c| c.client_id)
                .collect(),
        };
        let mut credentials = 0;
        for id in &ids {
            credentials += delete_client(akamai, id).await?;
        }
        Ok(credentials)
    }
}

/// Deactivates every credential of client `id` and deletes it; returns how many
/// credentials it had. A client already gone is done: the operator may have deleted it and
/// been killed before the finalizer was removed.
async fn delete_client(akamai: &AkamaiClient, id: &str) -> Result<usize, UpstreamError> {
    let gone = |error: &UpstreamError| error.class() == ErrorClass::NotFound;
    let credentials = match akamai.list_credentials(id).await {
        Ok(listed) => listed
            .iter()
            .filter(|c| c.status != CredentialStatus::Deleted)
            .count(),
        Err(error) if gone(&error) => {
            info!(client_id = %id, "client already gone upstream");
            return Ok(0);
        }
        Err(error) => return Err(error),
    };
    if let Err(error) = akamai.deactivate_all_credentials(id).await
        && !gone(&error)
    {
        return Err(error);
    }
    akamai.delete_client(id).await?;
    info!(client_id = %id, "client deleted upstream");
    Ok(credentials)
}

/// The client's name upstream: `spec.clientName`, or `<namespace>-<name>-<hash>`.
fn client_name(object: &ApiClient, cluster: &ClusterIdentity) -> String {
    object
        .spec
        .client_name
        .clone()
        .unwrap_or_else(|| default_upstream_name(object, cluster))
}

/// The client's description upstream: the spec's (else the one upstream, so a client from
/// before marks keeps its text) followed by this resource's mark.
fn client_description(run: &Run<'_, ApiClient>, observed: Option<&AkamaiApiClient>) -> String {
    let upstream = observed
        .and_then(|c| c.client_description.as_deref())
        .and_then(user_description);
    run.mark
        .describe(run.object.spec.client_description.as_deref().or(upstream))
}

async fn converge(run: &mut Run<'_, ApiClient>, akamai: &AkamaiClient) -> Step<Duration> {
    let object = run.object;
    let name = client_name(object, &run.ctx.cluster);
    // Taken before anything is saved: a save records the current generation as observed.
    // A resource never reconciled before has its client created with the current spec.
    let generation_changed = run
        .written
        .observed_generation
        .is_some_and(|observed| Some(observed) != object.meta().generation);
    // The client as this run last read it (or created it), so the issuance below need not
    // read it again.
    let (client_id, seen) = match (&run.status.upstream_id, run.adoption()) {
        (Some(id), _) => (id.clone(), None),
        (None, Some(Ok(wanted))) => {
            let client = adopt(run, akamai, &wanted).await?;
            (client.client_id.clone(), Some(client))
        }
        (None, Some(Err(refused))) => return Err(refused.into()),
        (None, None) => ensure_client(run, akamai, &name).await?,
    };
    if run.status.credential_id.is_none() && run.status.pending.is_none() {
        // Read with its credentials (or created with none) by this run: nothing to list.
        let known = seen
            .as_ref()
            .map(|c| c.credentials.iter().map(|c| c.credential_id).collect());
        record_issue(run, akamai, &client_id, Trigger::Create, None, known).await?;
    }
    let mut issued_now = None;
    if run.status.pending.is_some() {
        let client = match seen {
            Some(client) if client.access_token.is_some() => client,
            _ => observe(run, akamai, &client_id).await?,
        };
        issued_now = issue(run, akamai, client).await?;
    }

    let observed = match issued_now {
        Some(client) => client,
        None => observe(run, akamai, &client_id).await?,
    };
    run.status.upstream_state = Some(decide::state_name(Some(observed.is_locked)).into());
    let current_id = run.status.credential_id.as_deref();
    let current = observed.credentials.iter().find(|c| {
        Some(c.credential_id.to_string().as_str()) == current_id && c.status != CredentialStatus::Deleted
    });
    if let Some(current) = current {
        run.status.expires_at = current.expires_on.map(Time);
    }

    // A credential deleted behind our back cannot be brought back: issue another.
    let trigger = run
        .rotation_due()?
        .or(current.is_none().then_some(Trigger::CredentialDeleted));
    let observed = match trigger {
        None => observed,
        Some(trigger) => {
            let replaces = current.map(|c| c.credential_id);
            let known = observed.credentials.iter().map(|c| c.credential_id).collect();
            record_issue(run, akamai, &client_id, trigger, replaces, Some(known)).await?;
            // With the new credential, which gets its description and expiry below.
            match issue(run, akamai, observed).await? {
                Some(observed) => observed,
                None => observe(run, akamai, &client_id).await?,
            }
        }
    };
    drive(run, akamai, &observed, &name, generation_changed).await?;

    for credential in run.due_for_retirement() {
        // Akamai reports no use of a credential (the API refuses retireWhenUnusedFor).
        let Some(how) = run.may_retire(&credential, None).await? else {
            continue;
        };
        failpoint::hit("before-retire");
        if let Err(error) = retire(akamai, &client_id, parse_id(&credential.id)?).await {
            return Err(Blocked::upstream(
                &format!("retiring previous credential {}", credential.id),
                &error,
            )
            .into());
        }
        run.retired(&credential.id, how).await;
    }
    Ok(run.converged())
}

/// Reads the client with its credentials; a client gone upstream blocks.
/// A client carrying another resource's mark blocks too: the operator never acts on it.
async fn observe(
    run: &mut Run<'_, ApiClient>,
    akamai: &AkamaiClient,
    client_id: &str,
) -> Result<AkamaiApiClient, Blocked> {
    match akamai.get_client(client_id).await {
        Ok(Some(observed)) if run.mark.judge(observed.client_description.as_deref()) == Ownership::Others => {
            Err(Blocked::owned_by_other::<ApiClient>(client_id))
        }
        Ok(Some(observed)) => Ok(observed),
        Ok(None) => {
            run.status.upstream_state = Some(decide::state_name(None).into());
            Err(deleted_upstream(run, client_id))
        }
        Err(error) => Err(Blocked::upstream(&format!("reading client {client_id}"), &error)),
    }
}

/// Finds the client by its name and this resource's mark (created before a crash recorded
/// its id) or creates it, marked, and records its id. A client of that name without the
/// mark is someone else's: nothing is created or changed.
async fn ensure_client(
    run: &mut Run<'_, ApiClient>,
    akamai: &AkamaiClient,
    name: &str,
) -> Step<(String, Option<AkamaiApiClient>)> {
    let found = match akamai.find_clients_by_name(name, run.name_lookup()).await {
        Ok(found) => found,
        Err(error) => {
            return Err(Blocked::upstream(&format!("looking for client {name}"), &error).into());
        }
    };
    let whose = |c: &AkamaiApiClient| run.mark.judge(c.client_description.as_deref());
    // A listed client lacks the details an issuance needs, so only a created one is kept.
    let (client, created) = match found.iter().find(|c| whose(c) == Ownership::Ours) {
        Some(client) => (client.clone(), false),
        None if !found.is_empty() => {
            let taken = Blocked::name_taken::<ApiClient>(name, whose(&found[0]), "spec.clientName");
            return Err(taken.into());
        }
        None => {
            let settings = decide::settings(&run.object.spec, name, &client_description(run, None));
            match akamai.create_client(&settings).await {
                Ok(client) => (client, true),
                Err(error) => {
                    return Err(Blocked::upstream(&format!("creating client {name}"), &error).into());
                }
            }
        }
    };
    info!(client_id = %client.client_id, created, "client created or found by name and mark");
    // Saved with the pending record of its first credential, next: a crash before that
    // leaves the client to be found again by its name and mark.
    run.status.upstream_id = Some(client.client_id.clone());
    run.status.upstream_state = Some(decide::state_name(Some(client.is_locked)).into());
    let id = client.client_id.clone();
    Ok((id, created.then_some(client)))
}

/// Takes over client `wanted` (its id): records it as this resource's; the credential the
/// operator manages is then created on it and the spec's settings and mark applied. The
/// client's other credentials are left as they are. Another resource's client is refused.
async fn adopt(run: &mut Run<'_, ApiClient>, akamai: &AkamaiClient, wanted: &str) -> Step<AkamaiApiClient> {
    let client = match akamai.get_client(wanted).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return Err(run
                .adoption_refused(wanted, "the account has no such client")
                .into());
        }
        Err(error) => {
            return Err(Blocked::upstream(&format!("reading client {wanted}"), &error).into());
        }
    };
    if run.mark.judge(client.client_description.as_deref()) == Ownership::Others {
        return Err(run
            .adoption_refused(wanted, "it belongs to another resource")
            .into());
    }
    info!(client_id = %client.client_id, "client adopted");
    run.status.upstream_id = Some(client.client_id.clone());
    run.status.upstream_state = Some(decide::state_name(Some(client.is_locked)).into());
    run.save().await?;
    let note = format!(
        "client {} adopted: the operator creates its own credential on it and applies the spec's settings; the \
         client's other credentials are left as they are",
        client.client_id
    );
    run.event(EventType::Normal, "Adopted", "Adopt", note).await;
    Ok(client)
}

/// Records which credentials exist before one is created (`known`, when this run has just
/// read them, else listed now), so recovery can tell the one whose secret a crash lost.
async fn record_issue(
    run: &mut Run<'_, ApiClient>,
    akamai: &AkamaiClient,
    client_id: &str,
    trigger: Trigger,
    replaces: Option<i64>,
    known: Option<Vec<i64>>,
) -> Result<(), Error> {
    let known = match known {
        Some(known) => known,
        None => akamai
            .list_credentials(client_id)
            .await?
            .iter()
            .map(|c| c.credential_id)
            .collect(),
    };
    let request =
        serde_json::to_string(&CredentialIssue { known, replaces }).map_err(Error::CorruptPending)?;
    run.record_pending(trigger, client_id.chars().take(64).collect(), Some(request))
        .await
}

/// Executes `status.pending` on `client` (read or created by this run, so a client carrying
/// another resource's mark is never touched): removes a credential an interrupted issuance
/// left without a known secret, creates a credential and delivers it. Returns the client
/// with the new credential when that is all there is to know of it (nothing was removed),
/// so it need not be read again.
async fn issue(
    run: &mut Run<'_, ApiClient>,
    akamai: &AkamaiClient,
    mut client: AkamaiApiClient,
) -> Step<Option<AkamaiApiClient>> {
    let client_id = client.client_id.as_str();
    let pending = run.pending()?;
    let recorded: CredentialIssue =
        serde_json::from_str(pending.request.as_deref().unwrap_or("{}")).map_err(Error::CorruptPending)?;
    // Recorded by this run: no earlier attempt can have created a credential since.
    let recorded_now = run.pending_recorded_now();
    let credentials = match recorded_now {
        true => Vec::new(),
        false => match akamai.list_credentials(client_id).await {
            Ok(credentials) => credentials,
            Err(error) => return Err(Blocked::upstream("listing credentials", &error).into()),
        },
    };
    for lost in decide::lost_credentials(&recorded, &credentials) {
        info!(
            credential_id = lost,
            "credential created before an interruption; its secret is lost, removing it"
        );
        if let Err(error) = retire(akamai, client_id, lost).await {
            return Err(Blocked::upstream(&format!("removing credential {lost}"), &error).into());
        }
    }
    let Some(access_token) = client.access_token.clone() else {
        let message = format!("client {client_id} has no access token upstream; retrying");
        return Err(Blocked::new(
            conditions::UPSTREAM_SYNCED,
            reason::UPSTREAM_ERROR,
            message,
            Duration::from_secs(30),
        )
        .into());
    };
    let issued = match akamai.create_credential(client_id).await {
        Ok(issued) => issued,
        Err(error) => return Err(Blocked::upstream("creating a credential", &error).into()),
    };
    let host = decide::credential_host(client.base_url.as_deref(), akamai.host());
    let entries = decide::secret_entries(&EdgercValues {
        host: &host,
        client_token: &issued.credential.client_token,
        client_secret: issued.client_secret.expose(),
        access_token: &access_token,
    });
    run.deliver(Delivery {
        upstream_id: client_id.to_string(),
        credential_id: issued.credential.credential_id.to_string(),
        entries,
        expires_at: issued.credential.expires_on,
        upstream_state: decide::state_name(Some(client.is_locked)).into(),
        replaces: recorded.replaces.map(|id| id.to_string()),
    })
    .await?;
    Ok(recorded_now.then(|| {
        client.credentials.push(issued.credential);
        client
    }))
}

/// Brings the settings, the lock state and the current credential to the spec. A locked
/// client takes unlock → update → lock.
async fn drive(
    run: &mut Run<'_, ApiClient>,
    akamai: &AkamaiClient,
    observed: &AkamaiApiClient,
    name: &str,
    generation_changed: bool,
) -> Result<(), Blocked> {
    let spec = &run.object.spec;
    let id = observed.client_id.as_str();
    let failed = |what: &str| {
        let what = format!("{what} client {id}");
        move |e: UpstreamError| Blocked::upstream(&what, &e)
    };
    let mut locked = observed.is_locked;
    let mut changes = Vec::new();
    let description = client_description(run, Some(observed));
    if decide::settings_stale(spec, name, &description, observed, generation_changed) {
        if locked {
            akamai.set_locked(id, false).await.map_err(failed("unlocking"))?;
            locked = false;
        }
        akamai
            .update_client(id, &decide::settings(spec, name, &description))
            .await
            .map_err(failed("updating"))?;
        if generation_changed {
            info!(client_id = %id, "client settings applied");
        } else {
            changes.push("settings restored".to_string());
        }
    }
    if locked != spec.locked {
        akamai
            .set_locked(id, spec.locked)
            .await
            .map_err(failed("locking"))?;
        if spec.locked != observed.is_locked {
            changes.push(format!("now {}", decide::state_name(Some(spec.locked))));
        }
    }
    run.status.upstream_state = Some(decide::state_name(Some(spec.locked)).into());

    let current = observed
        .credentials
        .iter()
        .find(|c| Some(c.credential_id.to_string()) == run.status.credential_id);
    if let Some((credential, update)) =
        current.and_then(|c| decide::credential_update(spec, c).map(|update| (c.credential_id, update)))
    {
        let updated = akamai
            .update_credential(id, credential, &update)
            .await
            .map_err(|e| Blocked::upstream(&format!("updating credential {credential}"), &e))?;
        run.status.expires_at = updated.expires_on.map(Time);
        changes.push(format!("credential {credential} updated"));
    }

    let state = decide::state_name(Some(spec.locked));
    if changes.is_empty() {
        run.upstream_in_sync(id, state);
        return Ok(());
    }
    let note = format!("client {id}: {}", changes.join(", "));
    info!(client_id = %id, changes = %changes.join(", "), "client brought to the spec");
    run.event(EventType::Normal, reason::STATE_CHANGED, "Update", note.clone())
        .await;
    run.set(conditions::UPSTREAM_SYNCED, true, reason::STATE_CHANGED, note);
    Ok(())
}

/// Deactivates and deletes credential `id` (the API deletes only inactive ones); one
/// already gone is fine.
async fn retire(akamai: &AkamaiClient, client_id: &str, credential: i64) -> Result<(), UpstreamError> {
    let listed: Vec<Credential> = akamai.list_credentials(client_id).await?;
    match listed
        .iter()
        .find(|c| c.credential_id == credential)
        .map(|c| c.status)
    {
        None | Some(CredentialStatus::Deleted) => return Ok(()),
        Some(CredentialStatus::Active) => akamai.deactivate_credential(client_id, credential).await?,
        Some(CredentialStatus::Inactive) => {}
    }
    akamai.delete_credential(client_id, credential).await
}

/// The client is gone upstream: say how to get a new one.
fn deleted_upstream(run: &Run<'_, ApiClient>, id: &str) -> Blocked {
    let message = format!(
        "client {id} was deleted outside the operator, so the Secret holds a dead credential; to create the \
         client again, delete ApiClient {} and apply it anew",
        run.object.name_any()
    );
    Blocked::new(
        conditions::UPSTREAM_SYNCED,
        reason::DELETED_UPSTREAM,
        message,
        RESYNC_INTERVAL,
    )
}

/// Akamai credential ids are integers; the status stores them as strings like every kind.
fn parse_id(id: &str) -> Result<i64, Error> {
    id.parse()
        .map_err(|_| Error::CorruptStatus(format!("{id:?} is not an Akamai credential id")))
}
