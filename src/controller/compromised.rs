//! The break-glass rotation: a credential reported compromised is replaced at once and the
//! previous one retired immediately, ignoring `spec.rotation.retainPrevious` this once.
//!
//! Contract (what `kubectl apikeys compromised` writes): the annotation
//! `apikeys.dev/compromised` set to the same fresh value as `apikeys.dev/rotate`. The rotate
//! annotation triggers the rotation as usual; the matching compromised value turns that one
//! rotation into a no-overlap one. Tying it to the rotate value keeps it one-shot: once the
//! request is handled (`status.handledRotationRequests.annotation`), later scheduled
//! rotations keep their overlap although the annotation stays on the object.

use std::collections::BTreeMap;

use crate::api::RotationRequests;

use super::schedule::ROTATE_ANNOTATION;

/// Marks the rotation requested by the same `apikeys.dev/rotate` value as a break-glass one.
pub const COMPROMISED_ANNOTATION: &str = "apikeys.dev/compromised";

/// Whether the rotation about to be recorded as handled answers a compromise report: the
/// rotate annotation is new (not yet in `handled`) and the compromised annotation names it.
pub fn is_compromise_rotation(
    annotations: &BTreeMap<String, String>,
    handled: Option<&RotationRequests>,
) -> bool {
    let Some(requested) = annotations.get(ROTATE_ANNOTATION) else {
        return false;
    };
    annotations.get(COMPROMISED_ANNOTATION) == Some(requested)
        && handled.and_then(|h| h.annotation.as_ref()) != Some(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_the_rotation_the_report_names_skips_the_overlap() {
        let reported = annotations(&[(ROTATE_ANNOTATION, "v2"), (COMPROMISED_ANNOTATION, "v2")]);
        assert!(is_compromise_rotation(&reported, None));
        let handled_v1 = RotationRequests {
            requested_at: None,
            annotation: Some("v1".into()),
        };
        assert!(is_compromise_rotation(&reported, Some(&handled_v1)));
        let handled_v2 = RotationRequests {
            requested_at: None,
            annotation: Some("v2".into()),
        };
        assert!(
            !is_compromise_rotation(&reported, Some(&handled_v2)),
            "a later scheduled rotation keeps its overlap"
        );
        let plain = annotations(&[(ROTATE_ANNOTATION, "v3"), (COMPROMISED_ANNOTATION, "v2")]);
        assert!(
            !is_compromise_rotation(&plain, Some(&handled_v2)),
            "an ordinary rotate request"
        );
    }
}
