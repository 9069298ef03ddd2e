//! A key resource as the plugin reads it: metadata and the shared `KeyStatus`, whatever
//! the kind.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::DynamicObject;

use super::PluginError;
use super::kind::{Kind, Target};
use crate::api::KeyStatus;
use crate::controller::conditions;
use crate::controller::key_status::PAUSED_ANNOTATION;
use crate::controller::schedule;

/// The parts of a key resource the commands show and wait on.
#[derive(Clone, Debug)]
pub struct KeyView {
    pub target: Target,
    pub namespace: String,
    pub generation: Option<i64>,
    pub paused: bool,
    /// `spec.rotation.interval`, as written.
    pub interval: Option<String>,
    /// How early in the interval's jitter window this object rotates (see
    /// [`schedule::INTERVAL_JITTER`]).
    pub spread: f64,
    pub status: KeyStatus,
}

impl KeyView {
    pub fn new(kind: Kind, object: &DynamicObject) -> Result<KeyView, PluginError> {
        let target = Target {
            kind,
            name: object.name_any(),
        };
        let status = match object.data.get("status") {
            Some(value) if !value.is_null() => serde_json::from_value(value.clone())
                .map_err(|e| PluginError::UnreadableStatus(target.to_string(), e.to_string()))?,
            _ => KeyStatus::default(),
        };
        Ok(KeyView {
            namespace: object.namespace().unwrap_or_default(),
            generation: object.metadata.generation,
            paused: object
                .annotations()
                .get(PAUSED_ANNOTATION)
                .is_some_and(|v| v == "true"),
            interval: object.data["spec"]["rotation"]["interval"]
                .as_str()
                .map(str::to_owned),
            spread: schedule::spread_of(object.metadata.uid.as_deref().unwrap_or_default()),
            target,
            status,
        })
    }

    pub fn ready(&self) -> Option<&Condition> {
        conditions::find(&self.status.conditions, conditions::READY)
    }

    /// The status describes the current spec (kstatus' observedGeneration rule).
    pub fn observed_current(&self) -> bool {
        self.status.observed_generation.is_some() && self.status.observed_generation == self.generation
    }

    pub fn is_ready(&self) -> bool {
        self.observed_current() && self.ready().is_some_and(|c| c.status == "True")
    }

    pub fn rotation_count(&self) -> i64 {
        self.status.rotation_count.unwrap_or_default()
    }
}
