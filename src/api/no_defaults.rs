//! The CRDs carry no OpenAPI `default`s.
//!
//! A schema default makes the API server write a field nobody wrote, so the live object
//! differs from the manifest in Git; Argo CD (with server-side diff off) and Flux's drift
//! detection compare the two, and a user reading `kubectl get -o yaml` cannot tell what they
//! set from what was filled in. The Rust types apply the very same defaults when the
//! operator reads an object (`#[serde(default)]`), so leaving the field out behaves exactly
//! like the default; rules that must hold for the default value too (immutability, the
//! terminal `Revoked` state) are written at the parent level with `has()`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// Removes every `default` from the CRD's schemas.
pub fn strip(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            strip_schema(schema);
        }
    }
    crd
}

fn strip_schema(schema: &mut JSONSchemaProps) {
    schema.default = None;
    let nested = schema
        .properties
        .iter_mut()
        .flat_map(|p| p.values_mut())
        .chain(schema.all_of.iter_mut().flatten())
        .chain(schema.any_of.iter_mut().flatten())
        .chain(schema.one_of.iter_mut().flatten())
        .chain(schema.not.as_deref_mut());
    for child in nested {
        strip_schema(child);
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => strip_schema(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(strip_schema),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = &mut schema.additional_properties {
        strip_schema(values);
    }
}
