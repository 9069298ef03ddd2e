//! One reconciliation of a key resource, whatever its kind: the status being built, the
//! durable record of intent before an upstream call that mints a secret, delivery of the
//! new secret (Secret → status → consumers restarted), and retirement of previous ones.
//!
//! The kinds differ only in how they talk to their upstream; everything a user can rely on
//! across kinds (ordering, crash safety, events, conditions) lives here.

use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::info;

use super::conditions::{self, reason};
use super::own_writes::CachedVersion;
use super::ownership::{ADOPT_ANNOTATION, ClusterIdentity, OwnerMark, Ownership};
use super::retirement::{self, Decision, Gates, How, Observed};
use super::schedule::{self, Issued, ROTATE_ANNOTATION, Schedule};
use super::target_secret::{self, Material};
use super::trigger::{self, Trigger};
use super::{Context, Error, compromised, key_status, rollout};
use crate::api::{
    DeletionPolicy, KeyStatus, PendingKind, PendingOperation, RetiringCredential, RolloutTarget, Rotation,
    SecretTemplate, StoreRef,
};
use crate::failpoint;
use crate::upstream::name_index::Lookup;
use crate::upstream::{ErrorClass, UpstreamError};

/// A key with nothing scheduled is still looked at this often, to notice drift upstream.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// `status.lastUsedTime` moves only by this much or more: a key in constant use would
/// otherwise cost a status write at every resync. (The usage gate of a retirement reads
/// the last use upstream, not this.)
const LAST_USED_PRECISION: Duration = Duration::from_secs(60 * 60);

/// The spec fields every key kind has, borrowed from the resource.
pub struct Common<'a> {
    pub store_ref: &'a StoreRef,
    pub secret: &'a SecretTemplate,
    pub rotation: Option<&'a Rotation>,
    pub rollout_restart: &'a [RolloutTarget],
    pub deletion_policy: DeletionPolicy,
}

/// A custom resource managed as a key: namespaced, with a [`KeyStatus`] and the common spec.
pub trait KeyResource:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The kind, for messages, events and metric labels.
    const KIND: &'static str;
    /// What the credential is called in messages ("token", "key", "credential").
    const NOUN: &'static str;
    /// What the upstream object holding it is called ("token", "key", "client").
    const UPSTREAM_NOUN: &'static str;
    /// The keys of every [`Delivery`], in its order (which the fingerprint follows).
    const SECRET_KEYS: &'static [&'static str];

    fn key_status(&self) -> Option<&KeyStatus>;
    fn common(&self) -> Common<'_>;
    /// Whether a fresh credential would expire later than the current one: false when the
    /// spec pins an absolute expiry, so renewing before it would loop.
    fn renewal_extends_expiry(&self) -> bool;
}

/// Why converging stopped short, as the condition to report and when to try again.
#[derive(Debug)]
pub struct Blocked {
    pub condition: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub retry: Duration,
}

impl Blocked {
    pub fn new(condition: &'static str, reason: &'static str, message: String, retry: Duration) -> Self {
        Blocked {
            condition,
            reason,
            message,
            retry,
        }
    }

    /// An upstream object named `name` exists that this resource cannot prove is its own
    /// (`whose`): nothing upstream is touched. `field` is the spec field that names it.
    pub fn name_taken<K: KeyResource>(name: &str, whose: Ownership, field: &str) -> Self {
        let whose = match whose {
            Ownership::Others => "belongs to another resource (it carries another owner mark)",
            _ => {
                "was not created by this resource (it carries no owner mark: made by hand, or by another tool)"
            }
        };
        let message = format!(
            "{} {name:?} already exists upstream and {whose}, so the operator leaves it untouched; set {field} to \
             another name (it is immutable: delete and re-create this {}), or take the existing one over with the \
             annotation {ADOPT_ANNOTATION}=<its id> where the store allows adoption",
            K::UPSTREAM_NOUN,
            K::KIND,
        );
        Blocked::new(
            conditions::UPSTREAM_SYNCED,
            reason::NAME_TAKEN,
            message,
            RESYNC_INTERVAL,
        )
    }

    /// The id recorded in status names an object carrying another resource's mark: the
    /// status was copied or edited, and the operator does not act on it.
    pub fn owned_by_other<K: KeyResource>(id: &str) -> Self {
        let message = format!(
            "{} {id} recorded in this {}'s status belongs to another resource (it carries another owner mark), so \
             the operator does not touch it; the status was copied or edited by hand: delete this {} and apply it anew",
            K::UPSTREAM_NOUN,
            K::KIND,
            K::KIND,
        );
        Blocked::new(
            conditions::UPSTREAM_SYNCED,
            reason::OWNED_BY_OTHER,
            message,
            RESYNC_INTERVAL,
        )
    }

    /// A spec the controller cannot act on; only a change to the resource helps.
    pub fn spec(reason: &'static str, message: String) -> Self {
        Blocked::new(conditions::UPSTREAM_SYNCED, reason, message, RESYNC_INTERVAL)
    }

    /// Classifies an upstream failure into "fix the store", "fix the spec" or "retry later".
    pub fn upstream(what: &str, error: &UpstreamError) -> Self {
        let (condition, reason, advice, retry) = match error.class() {
            ErrorClass::Authentication => (
                conditions::STORE_READY,
                reason::CREDENTIALS_REFUSED,
                "; fix the store's credential Secret",
                Duration::from_secs(300),
            ),
            ErrorClass::Permission => (
                conditions::STORE_READY,
                reason::PERMISSION_DENIED,
                "; grant the store's credential the permission",
                Duration::from_secs(300),
            ),
            ErrorClass::InvalidRequest => (
                conditions::UPSTREAM_SYNCED,
                reason::INVALID_REQUEST,
                "; fix the spec",
                RESYNC_INTERVAL,
            ),
            ErrorClass::Transient => (
                conditions::UPSTREAM_SYNCED,
                reason::UPSTREAM_UNREACHABLE,
                "; retrying",
                Duration::from_secs(15),
            ),
            _ => (
                conditions::UPSTREAM_SYNCED,
                reason::UPSTREAM_ERROR,
                "; retrying",
                Duration::from_secs(30),
            ),
        };
        Blocked::new(condition, reason, format!("{what}: {error}{advice}"), retry)
    }
}

/// Why converging ended before the key converged: at a condition the status reports (the
/// run still saves it), or at a failure the controller retries with backoff. Both travel by
/// `?`, so each step reads as the happy path.
#[derive(Debug)]
pub enum Stop {
    Blocked(Blocked),
    Failed(Error),
}

impl From<Blocked> for Stop {
    fn from(blocked: Blocked) -> Self {
        Stop::Blocked(blocked)
    }
}

impl<E: Into<Error>> From<E> for Stop {
    fn from(error: E) -> Self {
        Stop::Failed(error.into())
    }
}

/// What a converging step gives: its value, or why the run stops.
pub type Step<T = ()> = Result<T, Stop>;

/// A freshly minted secret and what is known about it, ready to be delivered.
pub struct Delivery {
    /// Identifier of the upstream object (`status.upstreamId`).
    pub upstream_id: String,
    /// Identifier of the credential written to the Secret (`status.credentialId`).
    pub credential_id: String,
    /// The Secret's entries under the operator's key names.
    pub entries: Vec<(&'static str, String)>,
    pub expires_at: Option<Timestamp>,
    pub upstream_state: String,
    /// The credential this one replaces, retired by the operator after `retainPrevious`.
    /// `None` when there is none or the upstream retires it by itself.
    pub replaces: Option<String>,
}

/// One reconciliation's view: the status being built and the last status written.
pub struct Run<'a, K: KeyResource> {
    pub object: &'a K,
    pub ctx: &'a Context,
    api: Api<K>,
    pub secrets: Api<Secret>,
    pub namespace: String,
    pub status: KeyStatus,
    pub written: KeyStatus,
    /// The resourceVersion `written` belongs to: the precondition of the next write.
    resource_version: Option<String>,
    pub now: Timestamp,
    /// The fingerprint the target Secret recorded when the run started.
    secret_fingerprint: Option<String>,
    /// Whether this run announced a new credential (`Created` or `Rotated` event), which
    /// also tells that the resource is Ready.
    announced: bool,
    /// This resource's owner mark (see [`super::ownership`]).
    pub mark: OwnerMark,
    /// Whether the stored status was proven to be the operator's (see
    /// [`super::status_proof`]): only then does a save prove the status it writes.
    trusted: bool,
    /// When a held retirement is looked at again (see [`Run::may_retire`]).
    hold_recheck: Option<Duration>,
    /// Whether this is the resource's first reconciliation: it added the finalizer, so no
    /// earlier one can have created anything upstream.
    first_reconcile: bool,
}

impl<'a, K: KeyResource> Run<'a, K> {
    /// `finalizer_added`: this reconciliation added the finalizer, so it is the first.
    pub fn new(object: &'a K, ctx: &'a Context, finalizer_added: bool) -> Self {
        let namespace = object.namespace().unwrap_or_default();
        let status = object.key_status().cloned().unwrap_or_default();
        Run {
            object,
            ctx,
            api: Api::namespaced(ctx.client.clone(), &namespace),
            secrets: Api::namespaced(ctx.client.clone(), &namespace),
            namespace,
            written: status.clone(),
            status,
            resource_version: object.meta().resource_version.clone(),
            now: Timestamp::now(),
            secret_fingerprint: None,
            announced: false,
            mark: ctx.cluster.mark(&owner_uid(object)),
            trusted: false,
            hold_recheck: None,
            first_reconcile: finalizer_added,
        }
    }

    /// Records that the stored status is the operator's own, so the ids it holds may be
    /// acted on and the statuses this run writes are proven.
    pub fn trust(&mut self) {
        self.trusted = true;
    }

    /// The upstream object `apikeys.dev/adopt` names, while this resource has none of its
    /// own yet: `Ok(id)` when its store allows adoption, else the refusal to report.
    pub fn adoption(&self) -> Option<Result<String, Blocked>> {
        if self.status.upstream_id.is_some() || self.status.pending.is_some() {
            return None;
        }
        let id = self.object.annotations().get(ADOPT_ANNOTATION)?.trim();
        if id.is_empty() {
            return None;
        }
        let store_ref = self.object.common().store_ref;
        if self.ctx.stores.allows_adoption(&self.namespace, store_ref) {
            return Some(Ok(id.to_string()));
        }
        let why = format!(
            "store {} does not allow adoption for namespace {}; ask its owner to allow it in spec.adoption, or \
             remove the annotation to have a new {} created",
            store_ref.name,
            self.namespace,
            K::UPSTREAM_NOUN
        );
        Some(Err(self.adoption_refused(id, &why)))
    }

    /// `apikeys.dev/adopt` names `id`, which cannot be adopted for the reason `why`.
    pub fn adoption_refused(&self, id: &str, why: &str) -> Blocked {
        let message = format!(
            "the annotation {ADOPT_ANNOTATION} asks to adopt {} {id}, but {why}",
            K::UPSTREAM_NOUN
        );
        Blocked::new(
            conditions::UPSTREAM_SYNCED,
            reason::ADOPTION_REFUSED,
            message,
            RESYNC_INTERVAL,
        )
    }

    /// The idempotency key sent upstream for pending record key `nonce`: bound to this
    /// resource's UID, so a record copied from another resource replays nothing of its.
    pub fn idempotency_key(&self, nonce: &str) -> String {
        self.ctx.cluster.idempotency_key(&owner_uid(self.object), nonce)
    }

    /// [`Run::idempotency_key`] as a UUID, for APIs that take only UUIDs.
    pub fn idempotency_uuid(&self, nonce: &str) -> uuid::Uuid {
        self.ctx.cluster.idempotency_uuid(&owner_uid(self.object), nonce)
    }

    /// The operation `status.pending` records, which the steps that execute it are only
    /// called with.
    pub fn pending(&self) -> Result<PendingOperation, Error> {
        (self.status.pending.clone()).ok_or_else(|| Error::CorruptStatus("no operation is pending".into()))
    }

    /// The upstream object's id, which every step after the create has.
    pub fn upstream_id(&self) -> Result<String, Error> {
        (self.status.upstream_id.clone())
            .ok_or_else(|| Error::CorruptStatus("no upstream id is recorded".into()))
    }

    /// Where the operator writes this resource's secret.
    pub fn secret_name(&self) -> String {
        secret_name(self.object)
    }

    /// Remembers what the target Secret held when the run started (see [`Run::rotation_due`]).
    pub fn observed_secret(&mut self, secret: Option<&Secret>) {
        let template = self.object.common().secret;
        self.secret_fingerprint =
            secret.and_then(|s| target_secret::held_fingerprint(s, template, K::SECRET_KEYS));
    }

    /// Writes the status if it changed since it was last written, with `Ready` and the
    /// kstatus conditions summarised from the detail conditions and the operation in flight.
    pub async fn save(&mut self) -> Result<(), Error> {
        self.summarise();
        if self.trusted {
            let store = self.object.common().store_ref;
            self.status.owner_proof = self
                .ctx
                .status_key
                .sign(&owner_uid(self.object), store, &self.status);
        }
        if self.status != self.written {
            key_status::patch(&self.api, self.object, &self.status, &mut self.resource_version).await?;
            self.written = self.status.clone();
            if let (Some(uid), Some(version)) = (self.object.uid(), &self.resource_version) {
                self.ctx.own_writes.wrote(&uid, version);
            }
        }
        Ok(())
    }

    /// Whether this reconciliation was triggered by the operator's own last status write
    /// (or by an event of a Secret it wrote at the same time): the upstream was observed
    /// moments ago, so observing it again would only cost a request.
    fn is_echo(&self) -> bool {
        match (self.object.uid(), self.object.meta().resource_version.as_deref()) {
            (Some(uid), Some(version)) => {
                self.ctx.own_writes.observe_cached(&uid, version) == CachedVersion::SettledEcho
            }
            _ => false,
        }
    }

    /// The run finished with everything written: the echo of that version is idle.
    pub fn settle(&self) {
        if let (Some(uid), Some(version)) = (self.object.uid(), &self.resource_version) {
            self.ctx.own_writes.settled(&uid, version);
        }
    }

    /// Whether this reconciliation is only the echo of the operator's own write with nothing
    /// to do: a credential delivered, nothing in flight, no rotation or retirement due. The
    /// upstream was observed moments ago, so the kind can skip observing it again.
    pub fn is_idle_echo(&mut self) -> Result<bool, Error> {
        Ok(is_settled(&self.written)
            && self.is_echo()
            && self.rotation_due()?.is_none()
            && self.due_for_retirement().is_empty())
    }

    pub fn set(&mut self, condition: &str, ok: bool, reason: &str, message: String) {
        let generation = self.object.meta().generation;
        conditions::set(
            &mut self.status.conditions,
            condition,
            ok,
            reason,
            message,
            generation,
            self.now,
        );
    }

    /// Records the upstream's last use of the credential (`None`: none reported). A use
    /// from before the current credential was issued belongs to an earlier one.
    pub fn observed_use(&mut self, at: Option<Timestamp>) {
        let issued = self.status.last_rotation_time.as_ref().map(|t| t.0);
        let Some(at) = at.filter(|at| issued.is_none_or(|issued| *at >= issued)) else {
            return;
        };
        let recorded = self.status.last_used_time.as_ref().map(|t| t.0);
        let precision = k8s_openapi::jiff::SignedDuration::try_from(LAST_USED_PRECISION).unwrap_or_default();
        if recorded.is_none_or(|recorded| at.duration_since(recorded) >= precision) {
            self.status.last_used_time = Some(Time(at));
        }
    }

    /// The upstream object is as the spec wants it.
    pub fn upstream_in_sync(&mut self, id: &str, state: &str) {
        let message = format!("{} {id} is {state}", K::UPSTREAM_NOUN);
        self.set(conditions::UPSTREAM_SYNCED, true, reason::RECONCILED, message);
    }

    fn secret_current(&mut self) {
        let message = format!("Secret {} holds the current {}", self.secret_name(), K::NOUN);
        self.set(conditions::SECRET_SYNCED, true, reason::SECRET_WRITTEN, message);
    }

    /// Sets the summary `Ready` condition from the detail conditions and a create in
    /// flight (or steps of it still to come: nothing delivered yet), then
    /// `Reconciling`/`Stalled` from `Ready` and the operation in flight.
    fn summarise(&mut self) {
        let status = &self.status;
        let first_unhappy = [
            conditions::STORE_READY,
            conditions::UPSTREAM_SYNCED,
            conditions::SECRET_SYNCED,
        ]
        .into_iter()
        .filter_map(|t| conditions::find(&status.conditions, t).cloned())
        .find(|c| c.status != "True");
        let in_flight = self.in_flight();
        let creating = in_flight.as_ref().filter(|op| op.reason == reason::CREATING);
        let delivered = status.credential_id.is_some();
        match (first_unhappy, creating, delivered) {
            (Some(c), _, _) => self.set(conditions::READY, false, &c.reason, c.message),
            (None, Some(op), _) => {
                let message = op.message.clone();
                self.set(conditions::READY, false, reason::CREATING, message)
            }
            (None, None, false) => {
                let message = self.creating_message();
                self.set(conditions::READY, false, reason::CREATING, message)
            }
            (None, None, true) => {
                let message = format!(
                    "{} {} is delivered in Secret {} and {} upstream",
                    K::NOUN,
                    status.credential_id.as_deref().unwrap_or_default(),
                    status.secret_name.as_deref().unwrap_or_default(),
                    status.upstream_state.as_deref().unwrap_or_default(),
                );
                self.set(conditions::READY, true, reason::RECONCILED, message)
            }
        }
        let generation = self.object.meta().generation;
        conditions::set_progress(&mut self.status.conditions, in_flight, generation, self.now);
    }

    fn creating_message(&self) -> String {
        format!(
            "creating the {} upstream; Secret {} is written as soon as it exists",
            K::NOUN,
            self.secret_name()
        )
    }

    /// The create or rotation recorded in `status.pending`, as kstatus shows it.
    fn in_flight(&self) -> Option<conditions::InFlight> {
        let pending = self.status.pending.as_ref()?;
        let trigger = pending.trigger.as_deref().unwrap_or("resumed");
        Some(match pending.operation {
            PendingKind::Create => conditions::InFlight {
                reason: reason::CREATING,
                message: self.creating_message(),
            },
            PendingKind::Rotate => conditions::InFlight {
                reason: reason::ROTATING,
                message: format!(
                    "issuing a new {} ({trigger}); the current one keeps working until the new one is in Secret {}",
                    K::NOUN,
                    self.secret_name()
                ),
            },
        })
    }

    /// Whether this run announced a new credential, which says Ready on its own.
    pub fn announced(&self) -> bool {
        self.announced
    }

    pub async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        self.ctx
            .event(&self.object.object_ref(&()), type_, reason, action, note)
            .await;
    }

    /// Records, and saves, the intent to mint a secret before anything is sent: `key` is the
    /// idempotency key or deterministic upstream name recovery looks for, `request` the exact
    /// request (no secret material) a retry repeats.
    pub async fn record_pending(
        &mut self,
        trigger: Trigger,
        key: String,
        request: Option<String>,
    ) -> Result<(), Error> {
        if trigger == Trigger::SecretLost {
            let note = format!(
                "Secret {} no longer holds the current {} under the keys spec.secret names (deleted, edited or \
                 emptied by hand, or its keys renamed); issuing a new one, as the old secret cannot be shown again",
                self.secret_name(),
                K::NOUN
            );
            self.event(EventType::Warning, "SecretLost", "Rotate", note).await;
        }
        let operation = trigger.operation();
        self.status.pending = Some(PendingOperation {
            operation,
            idempotency_key: key,
            started_at: Time(self.now),
            trigger: Some(trigger.as_str().into()),
            request,
        });
        self.save().await?;
        failpoint::hit(match operation {
            PendingKind::Create => "before-create",
            PendingKind::Rotate => "before-rotate",
        });
        Ok(())
    }

    /// How current a look for an upstream object by name before a create must be: a list
    /// taken now when an earlier attempt may have created it (recovery must find it), a
    /// recent one when none can have — this is the first reconciliation (the finalizer is
    /// written before anything is created upstream) or this run recorded the pending create.
    pub fn name_lookup(&self) -> Lookup {
        match self.first_reconcile || self.pending_recorded_now() {
            true => Lookup::Recent,
            false => Lookup::Now,
        }
    }

    /// Whether `status.pending` was recorded by this run (so no earlier attempt of it can
    /// have reached the upstream): it is not the record the resource carried when the run
    /// began (each record has its own nonce and start time).
    pub fn pending_recorded_now(&self) -> bool {
        let at_start = self.object.key_status().and_then(|s| s.pending.as_ref());
        self.status.pending.is_some() && self.status.pending.as_ref() != at_start
    }

    /// Whether a rotation is due and why: scheduled, requested, or forced because the Secret
    /// no longer holds the current secret. Also sets `status.nextRotationTime`.
    pub fn rotation_due(&mut self) -> Result<Option<Trigger>, Error> {
        let plan = self.schedule_next_rotation()?;
        let secret_lost = self.secret_fingerprint.as_deref() != self.status.secret_fingerprint.as_deref();
        Ok(plan.due.or(secret_lost.then_some(Trigger::SecretLost)))
    }

    /// Sets `status.nextRotationTime` from the spec and the current credential, and returns
    /// the schedule it comes from.
    fn schedule_next_rotation(&mut self) -> Result<Schedule, Error> {
        let issued = Issued {
            at: self.status.last_rotation_time.as_ref().map(|t| t.0),
            expires_at: self.status.expires_at.as_ref().map(|t| t.0),
            renewal_extends_expiry: self.object.renewal_extends_expiry(),
            spread: schedule::spread_of(&owner_uid(self.object)),
        };
        let plan = schedule::evaluate(
            self.object.common().rotation,
            &current_requests(self.object),
            self.status.handled_rotation_requests.as_ref(),
            issued,
            self.now,
        )?;
        self.status.next_rotation_time = plan.next_rotation.map(Time);
        Ok(plan)
    }

    /// Delivers a minted secret in the order a crash cannot break: Secret first, then the
    /// status that clears `pending` (and schedules the replaced credential's retirement),
    /// then consumers restarted and the transition announced.
    pub async fn deliver(&mut self, delivery: Delivery) -> Result<(), Error> {
        let object = self.object;
        let common = object.common();
        let pending = self.status.pending.clone();
        let rotated = pending.as_ref().map(|p| p.operation) == Some(PendingKind::Rotate);
        failpoint::hit(if rotated { "after-rotate" } else { "after-create" });
        debug_assert!(
            delivery
                .entries
                .iter()
                .map(|(key, _)| *key)
                .eq(K::SECRET_KEYS.iter().copied()),
            "a {} delivers exactly SECRET_KEYS",
            K::KIND
        );
        let material = Material {
            credential_id: delivery.credential_id.clone(),
            entries: delivery.entries,
        };
        let name = self.secret_name();
        let owner = object
            .controller_owner_ref(&())
            .ok_or_else(|| Error::CorruptStatus("the resource has no uid".into()))?;
        let desired = target_secret::desired(&name, &self.namespace, owner, common.secret, &material);
        // Read again, not reused from the start of the run: a Secret someone created since
        // must be refused, not taken over.
        let existing = self.secrets.get_opt(&name).await.map_err(Error::Kube)?;
        if !existing
            .as_ref()
            .is_some_and(|e| target_secret::is_current(e, &desired))
        {
            target_secret::apply(&self.secrets, existing.as_ref(), &owner_uid(object), &desired).await?;
        }

        // Break glass (see controller::compromised): this one rotation keeps no overlap, and
        // every credential still retiring is retired now with the replaced one.
        let compromised = rotated
            && compromised::is_compromise_rotation(
                object.annotations(),
                self.status.handled_rotation_requests.as_ref(),
            );
        if compromised {
            self.status.retiring.iter_mut().for_each(|r| {
                r.retire_at = Time(self.now);
                r.break_glass = true;
            });
        }
        if let (true, Some(old)) = (rotated, &delivery.replaces) {
            let retire_at = match compromised {
                true => self.now,
                false => self.now + schedule::retain_previous(common.rotation)?,
            };
            self.status.retiring.retain(|r| r.id != *old);
            self.status.retiring.push(RetiringCredential {
                id: old.clone(),
                retire_at: Time(retire_at),
                break_glass: compromised,
                waiting_for: None,
                rotated_at: Some(Time(self.now)),
            });
        }
        let fingerprint = material.fingerprint();
        let new_id = delivery.credential_id;
        self.status.upstream_id = Some(delivery.upstream_id);
        self.status.credential_id = Some(new_id.clone());
        self.status.secret_fingerprint = Some(fingerprint.clone());
        self.secret_fingerprint = Some(fingerprint.clone());
        self.status.last_rotation_time = Some(Time(self.now));
        self.status.last_used_time = None;
        self.status.expires_at = delivery.expires_at.map(Time);
        self.status.upstream_state = Some(delivery.upstream_state);
        self.status.handled_rotation_requests = Some(current_requests(object));
        if rotated {
            self.status.rotation_count = Some(self.status.rotation_count.unwrap_or_default() + 1);
        }
        self.status.pending = None;
        // Written as the run will most likely end (in sync, Secret current, Ready), so the
        // end of the run has nothing left to write unless a later step changes something.
        let id = self.status.upstream_id.clone().unwrap_or_default();
        let state = self.status.upstream_state.clone().unwrap_or_default();
        self.upstream_in_sync(&id, &state);
        self.secret_current();
        self.schedule_next_rotation()?;
        failpoint::hit("after-secret-write");
        self.save().await?;
        self.announced = true;

        let noun = K::NOUN;
        let recorded = pending.and_then(|p| p.trigger);
        let label = trigger::label(recorded.as_deref());
        let trigger = recorded.unwrap_or_else(|| label.into());
        let adopted = label == Trigger::Adopt.as_str();
        if !rotated {
            info!(credential_id = %new_id, kind = K::KIND, adopted, "credential created");
            let (reason_, note) = match adopted {
                true => (
                    "Adopted",
                    format!(
                        "{} {id} adopted: its secret was replaced (the previous one no longer works) and the new one \
                         written to Secret {name}",
                        K::UPSTREAM_NOUN
                    ),
                ),
                false => (
                    "Created",
                    format!("{noun} {new_id} created and written to Secret {name}"),
                ),
            };
            self.event(EventType::Normal, reason_, "Create", note).await;
            return Ok(());
        }
        for failure in self.restart_consumers(&fingerprint).await {
            self.event(
                EventType::Warning,
                "RolloutRestartFailed",
                "Rotate",
                failure.to_string(),
            )
            .await;
        }
        self.ctx.metrics.rotated(K::KIND, label);
        let note = match &delivery.replaces {
            Some(old) if adopted => format!(
                "{noun} {old} adopted: its secret cannot be shown again, so new {noun} {new_id} is written to Secret \
                 {name} and {old} retires after spec.rotation.retainPrevious"
            ),
            Some(old) => format!(
                "new {noun} {new_id} written to Secret {name} ({trigger}); {noun} {old} retires after spec.rotation.retainPrevious"
            ),
            None => format!("new {noun} secret {new_id} written to Secret {name} ({trigger})"),
        };
        info!(credential_id = %new_id, %trigger, kind = K::KIND, "credential rotated");
        let reason_ = if adopted { "Adopted" } else { "Rotated" };
        self.event(EventType::Normal, reason_, "Rotate", note).await;
        Ok(())
    }

    /// Restarts the `rolloutRestart` targets for the credential at `fingerprint`; returns
    /// those that could not be restarted.
    async fn restart_consumers(&self, fingerprint: &str) -> Vec<rollout::RolloutError> {
        let targets = self.object.common().rollout_restart;
        rollout::restart(&self.ctx.client, &self.namespace, targets, fingerprint).await
    }

    /// The previous credentials whose retain period is over.
    pub fn due_for_retirement(&self) -> Vec<RetiringCredential> {
        schedule::due_for_retirement(&self.status.retiring, self.now).0
    }

    /// Whether the retirement of `entry`, whose retain period is over, is to go ahead, and
    /// how; `None` while a rollout or a use reported upstream (`last_use`; `None` where the
    /// upstream reports none) holds it, which the status then says.
    pub async fn may_retire(
        &mut self,
        entry: &RetiringCredential,
        last_use: Option<Timestamp>,
    ) -> Result<Option<How>, Error> {
        let common = self.object.common();
        let gates = Gates {
            rollout: !common.rollout_restart.is_empty(),
            unused_for: schedule::unused_for(common.rotation)?,
            retain_previous: schedule::retain_previous(common.rotation)?,
            max_retain: schedule::max_retain(common.rotation)?,
        };
        let fingerprint = self.status.secret_fingerprint.clone().unwrap_or_default();
        let rollouts = match gates.rollout && !entry.break_glass {
            true => {
                rollout::progress(
                    &self.ctx.client,
                    &self.namespace,
                    common.rollout_restart,
                    &fingerprint,
                )
                .await
            }
            false => Vec::new(),
        };
        // A restart refused, or lost to a crash after the status write: asked for again.
        if rollouts.iter().any(|r| !r.restarted) {
            for failure in self.restart_consumers(&fingerprint).await {
                info!(%failure, "restart for the current credential still refused");
            }
        }
        let observed = Observed { rollouts, last_use };
        let held = self.status.retiring.iter_mut().find(|r| r.id == entry.id);
        let (waiting_for, recheck) = match retirement::decide(entry, gates, &observed, self.now) {
            Decision::Retire(how) => {
                if let Some(held) = held {
                    held.waiting_for = None;
                }
                return Ok(Some(how));
            }
            Decision::Hold { waiting_for, recheck } => (waiting_for, recheck),
        };
        if let Some(held) = held {
            held.waiting_for = Some(waiting_for.clone());
        }
        self.hold_recheck = Some(self.hold_recheck.map_or(recheck, |r| r.min(recheck)));
        let message = format!("previous {} {} is kept: {waiting_for}", K::NOUN, entry.id);
        self.set(
            conditions::PREVIOUS_RETIRED,
            false,
            reason::RETIREMENT_HELD,
            message,
        );
        Ok(None)
    }

    /// Whether a retirement due now waits for the previous credential to go unused, so the
    /// kind must read its last use upstream.
    pub fn waits_for_use(&self, entry: &RetiringCredential) -> bool {
        !entry.break_glass
            && self
                .object
                .common()
                .rotation
                .is_some_and(|r| r.retire_when_unused_for.is_some())
    }

    /// Forgets a previous credential the kind has retired upstream, and says so.
    pub async fn retired(&mut self, id: &str, how: How) {
        failpoint::hit("after-retire");
        self.status.retiring.retain(|r| r.id != id);
        self.ctx.metrics.retired(K::KIND, how.metric_label());
        let noun = K::NOUN;
        let (type_, reason_, note) = match &how {
            How::Scheduled => (
                EventType::Normal,
                reason::RETIRED,
                format!("previous {noun} {id} retired upstream after its retain period"),
            ),
            How::Released => (
                EventType::Normal,
                reason::RETIRED,
                format!(
                    "previous {noun} {id} retired upstream: its retain period is over and nothing holds it any more \
                     (the consumers have rolled out, it is no longer used)"
                ),
            ),
            How::Forced { held_by } => (
                EventType::Warning,
                reason::RETIREMENT_FORCED,
                format!(
                    "previous {noun} {id} retired upstream after spec.rotation.maxRetain although {held_by}; find out \
                     why the rollout does not finish or who still uses it"
                ),
            ),
            How::BreakGlass => (
                EventType::Normal,
                reason::RETIRED,
                format!("previous {noun} {id} retired upstream at once: it was replaced as compromised"),
            ),
        };
        let shown = how != How::Scheduled
            || conditions::find(&self.status.conditions, conditions::PREVIOUS_RETIRED).is_some();
        if shown && self.status.retiring.iter().all(|r| r.waiting_for.is_none()) {
            self.set(conditions::PREVIOUS_RETIRED, true, reason_, note.clone());
        }
        info!(credential_id = %id, how = how.metric_label(), kind = K::KIND, "previous credential retired");
        self.event(type_, reason_, "Retire", note).await;
    }

    /// Marks the Secret as current and says when to look again: the next rotation, expiry
    /// or retirement, or the drift resync.
    pub fn converged(&mut self) -> Duration {
        self.secret_current();
        let wake = schedule::wake_after(
            self.now,
            [
                self.status.next_rotation_time.as_ref(),
                self.status.expires_at.as_ref(),
            ]
            .into_iter()
            .flatten()
            .map(|t| t.0)
            .chain(self.status.retiring.iter().map(|r| r.retire_at.0)),
        );
        let wake = wake.unwrap_or(RESYNC_INTERVAL);
        self.hold_recheck.map_or(wake, |hold| hold.min(wake))
    }
}

/// Whether a written status describes a converged resource: a credential delivered,
/// nothing in flight, and Ready. The echo of a status that says the last look failed (an
/// upstream error, "retrying") is not idle: skipping the look would replace that failure's
/// short retry with the drift resync, and the resource would stay not Ready for minutes.
fn is_settled(written: &KeyStatus) -> bool {
    written.pending.is_none()
        && written.credential_id.is_some()
        && conditions::is_true(&written.conditions, conditions::READY)
}

/// Where the operator writes this resource's secret.
pub fn secret_name<K: KeyResource>(object: &K) -> String {
    object
        .common()
        .secret
        .name
        .clone()
        .unwrap_or_else(|| object.name_any())
}

pub fn owner_uid<K: KeyResource>(object: &K) -> String {
    object.meta().uid.clone().unwrap_or_default()
}

/// The upstream name of a resource whose spec sets none (see
/// [`ClusterIdentity::default_name`]).
pub fn default_upstream_name<K: KeyResource>(object: &K, cluster: &ClusterIdentity) -> String {
    cluster.default_name(
        &object.namespace().unwrap_or_default(),
        &object.name_any(),
        DEFAULT_NAME_MAX,
    )
}

/// Default upstream names stay this short: within every API's limit (Trend Micro's 254)
/// with room for the `-r<n>` of a Trend Micro overlap key.
pub const DEFAULT_NAME_MAX: usize = 240;

fn current_requests<K: KeyResource>(object: &K) -> crate::api::RotationRequests {
    schedule::current_requests(
        object.common().rotation,
        object.annotations().get(ROTATE_ANNOTATION).map(String::as_str),
    )
}

/// A fresh idempotency key, or the nonce one is derived from (32 hex characters;
/// Prefactor allows 64).
pub fn idempotency_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiClient, ApiToken, ServiceAccountKey};

    #[test]
    fn each_kinds_label_is_its_kubernetes_kind() {
        fn label_matches<K: KeyResource>() -> bool {
            K::KIND == K::kind(&())
        }
        assert!(label_matches::<ApiToken>());
        assert!(label_matches::<ServiceAccountKey>());
        assert!(label_matches::<ApiClient>());
    }

    fn status(ready: bool, pending: bool) -> KeyStatus {
        let now = Timestamp::now();
        let mut status = KeyStatus {
            credential_id: Some("c1".into()),
            ..KeyStatus::default()
        };
        conditions::set(
            &mut status.conditions,
            conditions::READY,
            ready,
            reason::RECONCILED,
            String::new(),
            Some(1),
            now,
        );
        if pending {
            status.pending = Some(PendingOperation {
                operation: PendingKind::Rotate,
                idempotency_key: "k".into(),
                started_at: Time(now),
                trigger: None,
                request: None,
            });
        }
        status
    }

    #[test]
    fn only_a_ready_status_with_nothing_in_flight_is_settled() {
        assert!(is_settled(&status(true, false)));
        assert!(!is_settled(&status(false, false)), "a failed look is retried");
        assert!(!is_settled(&status(true, true)), "an operation in flight");
        assert!(!is_settled(&KeyStatus::default()), "nothing delivered yet");
    }
}
