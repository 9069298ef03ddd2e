//! The floor: only the work no implementation can avoid — per object the resource's
//! creation, one upstream create, one Secret write and one status write — at the
//! benchmark's concurrency and mix of kinds, against the same API server and credential
//! store, with upstream clients built exactly as the operator builds them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::kinds;
use crate::{Options, kind_api};
use apikey_operator_test_support::processes::Credstore;

pub async fn run(
    client: &Client,
    namespace: &str,
    options: &Options,
    credstore: &Credstore,
) -> anyhow::Result<Duration> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let mut upstream = HashMap::new();
    for kind in &options.kinds {
        upstream.insert(*kind, kind.client(credstore).await?);
    }
    let upstream = &upstream;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    stream::iter(0..options.objects)
        .map(|i| {
            let kind = kinds::kind_of(&options.kinds, i);
            let (api, secrets) = (kind_api(client, namespace, kind), secrets.clone());
            async move {
                let name = format!("floor-{}", kind.name(i));
                let object: DynamicObject = serde_json::from_value(kind.manifest(&name))?;
                api.create(&PostParams::default(), &object).await?;
                let (id, secret_value) = kind.create_upstream(&upstream[&kind], &name).await?;
                let secret = json!({
                    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                    "stringData": {"secret": secret_value},
                });
                let apply = PatchParams::apply("floor").force();
                secrets.patch(&name, &apply, &Patch::Apply(&secret)).await?;
                let resource = kind.resource();
                let status = json!({
                    "apiVersion": resource.api_version, "kind": resource.kind,
                    "status": {"upstreamId": id, "conditions": [{
                        "type": "Ready", "status": "True", "reason": "Reconciled", "message": "floor",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }]},
                });
                api.patch_status(&name, &apply, &Patch::Apply(&status)).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(options.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}
