//! The resources under test: a mix of the four key kinds, the operations done to them
//! (create, rotate, delete), and waiting — on watches — until the operator has caught up.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use apikey_operator::api::{ApiClient, ApiToken, ServiceAccountKey};
use futures::{StreamExt, stream};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use crate::world::World;
use apikey_operator_test_support::fixtures;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ApiToken,
    ZenmlKey,
    TrendKey,
    ApiClient,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::ApiToken, Kind::ZenmlKey, Kind::TrendKey, Kind::ApiClient];

    pub fn resource(self) -> ApiResource {
        match self {
            Kind::ApiToken => ApiResource::erase::<ApiToken>(&()),
            Kind::ZenmlKey | Kind::TrendKey => ApiResource::erase::<ServiceAccountKey>(&()),
            Kind::ApiClient => ApiResource::erase::<ApiClient>(&()),
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::ApiToken => "token",
            Kind::ZenmlKey => "zenml",
            Kind::TrendKey => "trend",
            Kind::ApiClient => "client",
        }
    }

    fn spec(self, retain: &str) -> Value {
        let common = json!({"deletionPolicy": "Delete", "rotation": {"retainPrevious": retain}});
        let own = match self {
            Kind::ApiToken => json!({"storeRef": {"name": "prefactor"}, "scope": "account"}),
            Kind::ZenmlKey => json!({"storeRef": {"name": "zenml"}, "serviceAccount": "apikey-operator"}),
            Kind::TrendKey => json!({"storeRef": {"name": "trend"}, "roleID": 1}),
            Kind::ApiClient => json!({
                "storeRef": {"name": "akamai"},
                "authorizedUsers": ["platform-bot"],
                "apiAccess": {"allAccessibleApis": true}, "purgeOptions": {"canPurgeByCacheTag": true, "canPurgeByCpcode": true, "cpcodeAccess": {"allCurrentAndNewCpcodes": true}},
                "groupAccess": {"cloneAuthorizedUserGroups": true},
                "clientDescription": "chaos",
            }),
        };
        let mut spec = own;
        spec.as_object_mut()
            .unwrap()
            .extend(common.as_object().unwrap().clone());
        spec
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Kind::ApiToken => "ApiToken/Prefactor",
            Kind::ZenmlKey => "ServiceAccountKey/ZenML",
            Kind::TrendKey => "ServiceAccountKey/Trend Micro",
            Kind::ApiClient => "ApiClient/Akamai",
        })
    }
}

/// One resource and what the test asked of it.
#[derive(Clone, Debug)]
pub struct Member {
    pub kind: Kind,
    pub name: String,
    /// `spec.rotation.retainPrevious`: half the fleet rotates with no overlap, half with a
    /// short one, so both retirement paths run.
    pub retain: &'static str,
    pub created: bool,
    pub deleted: bool,
    /// The current `apikeys.dev/rotate` annotation and `spec.rotation.requestedAt`.
    pub annotation: Option<String>,
    pub requested_at: Option<String>,
    pub rotations: u32,
}

impl Member {
    /// Whether the resource should exist once the operator caught up.
    pub fn survives(&self) -> bool {
        self.created && !self.deleted
    }
}

/// Operations performed, per kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub creates: u32,
    pub rotations: u32,
    pub deletions: u32,
}

pub struct Fleet {
    pub members: Vec<Member>,
    apis: BTreeMap<Kind, Api<DynamicObject>>,
}

impl Fleet {
    /// `count` resources named `<prefix>-<kind>-<n>`, the kinds taken in turn.
    pub fn new(world: &World, prefix: &str, count: usize) -> Self {
        let members = (0..count)
            .map(|i| {
                let kind = Kind::ALL[i % Kind::ALL.len()];
                let ordinal = i / Kind::ALL.len();
                Member {
                    kind,
                    name: format!("{prefix}-{}-{ordinal:03}", kind.prefix()),
                    retain: if ordinal.is_multiple_of(2) { "0s" } else { "5s" },
                    created: false,
                    deleted: false,
                    annotation: None,
                    requested_at: None,
                    rotations: 0,
                }
            })
            .collect();
        let apis = Kind::ALL
            .into_iter()
            .map(|kind| {
                let api = Api::namespaced_with(world.client.clone(), &world.namespace, &kind.resource());
                (kind, api)
            })
            .collect();
        Fleet { members, apis }
    }

    /// Each member's position within its kind (0, 1, 2, … per kind).
    pub fn ordinal(&self, index: usize) -> usize {
        index / Kind::ALL.len()
    }

    pub fn tally(&self) -> BTreeMap<Kind, Tally> {
        let mut tally: BTreeMap<Kind, Tally> = Kind::ALL.iter().map(|k| (*k, Tally::default())).collect();
        for member in &self.members {
            let entry = tally.get_mut(&member.kind).unwrap();
            entry.creates += u32::from(member.created);
            entry.rotations += member.rotations;
            entry.deletions += u32::from(member.deleted);
        }
        tally
    }

    pub async fn create(&mut self, world: &World, index: usize) {
        let member = &mut self.members[index];
        let kind = member.kind.resource();
        fixtures::apply(
            &world.client,
            &world.namespace,
            json!({
                "apiVersion": kind.api_version, "kind": kind.kind,
                "metadata": {"name": member.name},
                "spec": member.kind.spec(member.retain),
            }),
        )
        .await;
        member.created = true;
    }

    /// Asks for one rotation, through the annotation (kubectl's way) or, with `gitops`,
    /// through `spec.rotation.requestedAt`.
    pub async fn rotate(&mut self, index: usize, gitops: bool) {
        let member = &mut self.members[index];
        member.rotations += 1;
        let value = format!("r{}", member.rotations);
        let patch = if gitops {
            member.requested_at = Some(value.clone());
            json!({"spec": {"rotation": {"requestedAt": value}}})
        } else {
            member.annotation = Some(value.clone());
            json!({"metadata": {"annotations": {"apikeys.dev/rotate": value}}})
        };
        fixtures::merge(&self.apis[&member.kind], &member.name, patch).await;
    }

    pub async fn delete(&mut self, index: usize) {
        let member = &mut self.members[index];
        self.apis[&member.kind]
            .delete(&member.name, &DeleteParams::default())
            .await
            .unwrap();
        member.deleted = true;
    }

    /// Waits, on watches, until every surviving member is converged (see [`converged`]) and
    /// every deleted one is gone; returns the survivors as last seen. Panics after `limit`
    /// listing what did not converge.
    pub async fn wait_converged(&self, limit: Duration) -> BTreeMap<String, DynamicObject> {
        let mut readers: Vec<(Kind, Store<DynamicObject>)> = Vec::new();
        let mut streams = Vec::new();
        // ServiceAccountKeys of both stores share one watch.
        for kind in [Kind::ApiToken, Kind::ZenmlKey, Kind::ApiClient] {
            let writer = reflector::store::Writer::new(kind.resource());
            readers.push((kind, writer.as_reader()));
            let watch = watcher(self.apis[&kind].clone(), watcher::Config::default()).default_backoff();
            streams.push(reflector::reflector(writer, watch).boxed());
        }
        let watches = streams.len();
        let mut events = stream::select_all(streams);
        let deadline = tokio::time::Instant::now() + limit;
        // Judged only once every watch has listed what exists: an empty cache would pass
        // for "every deleted resource is gone".
        let mut listed = 0;
        loop {
            let seen = snapshot(&readers);
            let lagging = self.lagging(&seen);
            if listed >= watches && lagging.is_empty() {
                return seen;
            }
            match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(Some(Ok(watcher::Event::InitDone))) => listed += 1,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the watches ended"),
                Err(_) => panic!(
                    "{} resources did not converge within {limit:?}:\n{}",
                    lagging.len(),
                    lagging.join("\n")
                ),
            }
        }
    }

    /// What is not there yet, one line per resource.
    fn lagging(&self, seen: &BTreeMap<String, DynamicObject>) -> Vec<String> {
        self.members
            .iter()
            .filter_map(|member| {
                let object = seen.get(&member.name);
                match (member.survives(), object) {
                    (false, None) => None,
                    (false, Some(object)) => Some(format!(
                        "{} {}: not deleted yet; {}",
                        member.kind,
                        member.name,
                        describe(object)
                    )),
                    (true, None) => Some(format!("{} {}: missing", member.kind, member.name)),
                    (true, Some(object)) => (!converged(member, object))
                        .then(|| format!("{} {}: {}", member.kind, member.name, describe(object))),
                }
            })
            .collect()
    }
}

fn snapshot(readers: &[(Kind, Store<DynamicObject>)]) -> BTreeMap<String, DynamicObject> {
    readers
        .iter()
        .flat_map(|(_, reader)| reader.state())
        .map(|object| (object.metadata.name.clone().unwrap(), (*object).clone()))
        .collect()
}

/// Ready for its generation, nothing in flight, every requested rotation handled and every
/// previous credential retired.
pub fn converged(member: &Member, object: &DynamicObject) -> bool {
    let status = &object.data["status"];
    let handled = &status["handledRotationRequests"];
    fixtures::is_ready(object)
        && object.metadata.deletion_timestamp.is_none()
        && status["pending"].is_null()
        && status["retiring"].as_array().is_none_or(Vec::is_empty)
        && handled["annotation"].as_str() == member.annotation.as_deref()
        && handled["requestedAt"].as_str() == member.requested_at.as_deref()
}

/// The parts of a status that say why a resource is not converged (no secret material is
/// ever in a status).
pub fn describe(object: &DynamicObject) -> String {
    let status = &object.data["status"];
    let conditions: Vec<String> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{}={} {}: {}", c["type"], c["status"], c["reason"], c["message"]))
        .collect();
    format!(
        "generation {:?} observed {}, deleting {}, pending {}, retiring {}, handled {}, conditions [{}]",
        object.metadata.generation,
        status["observedGeneration"],
        object.metadata.deletion_timestamp.is_some(),
        status["pending"],
        status["retiring"],
        status["handledRotationRequests"],
        conditions.join("; ")
    )
}
