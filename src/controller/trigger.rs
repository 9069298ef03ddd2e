//! Why the operator mints a credential. The trigger is recorded in `status.pending.trigger`
//! before the upstream call, named in the Rotated event, and labels the rotation metric.
//! The status is user-writable, so a recorded text is parsed back, never trusted as a label.

use crate::api::PendingKind;

/// What started a create or a rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The resource has no credential yet.
    Create,
    /// `apikeys.dev/adopt` names an upstream object whose secret is replaced.
    Adopt,
    /// `rotation.interval` elapsed since the last rotation.
    Interval,
    /// The credential expires within `rotation.renewBefore`.
    Expiring,
    /// `rotation.requestedAt` changed.
    RequestedAt,
    /// The `apikeys.dev/rotate` annotation changed.
    Annotation,
    /// The target Secret no longer holds the current secret, which cannot be shown again.
    SecretLost,
    /// The spec asks for another expiry than the credential has, and the upstream cannot
    /// change it in place.
    ExpiresAt,
    /// The current credential was deleted upstream behind the operator's back.
    CredentialDeleted,
}

impl Trigger {
    const ALL: [Trigger; 9] = [
        Trigger::Create,
        Trigger::Adopt,
        Trigger::Interval,
        Trigger::Expiring,
        Trigger::RequestedAt,
        Trigger::Annotation,
        Trigger::SecretLost,
        Trigger::ExpiresAt,
        Trigger::CredentialDeleted,
    ];

    /// How the status records it; also its metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Create => "create",
            Trigger::Adopt => "adopt",
            Trigger::Interval => "interval",
            Trigger::Expiring => "expiring",
            Trigger::RequestedAt => "requestedAt",
            Trigger::Annotation => "annotation",
            Trigger::SecretLost => "secretLost",
            Trigger::ExpiresAt => "expiresAt",
            Trigger::CredentialDeleted => "credentialDeleted",
        }
    }

    /// The operation it starts: a first credential, or one replacing the current.
    pub fn operation(self) -> PendingKind {
        match self {
            Trigger::Create | Trigger::Adopt => PendingKind::Create,
            _ => PendingKind::Rotate,
        }
    }

    /// The trigger a status records; `None` for a text this version never writes.
    pub fn from_recorded(text: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bounded metric label for a recorded trigger: `unknown` for a text this version does
/// not write, `resumed` for a pending record without one (an older version wrote it).
pub fn label(recorded: Option<&str>) -> &'static str {
    match recorded {
        None => "resumed",
        Some(text) => Trigger::from_recorded(text).map_or("unknown", Trigger::as_str),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trigger_reads_back_as_itself() {
        for trigger in Trigger::ALL {
            assert_eq!(Trigger::from_recorded(trigger.as_str()), Some(trigger));
            assert_eq!(label(Some(trigger.as_str())), trigger.as_str());
        }
    }

    #[test]
    fn a_recorded_text_never_becomes_a_label_of_its_own() {
        assert_eq!(label(None), "resumed", "recorded by a version without triggers");
        assert_eq!(label(Some("edited by hand")), "unknown");
    }
}
