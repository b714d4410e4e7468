//! The write verbs served so far: delete of a pod, through the library `podrun delete`
//! uses. The reply is the pod marked for deletion (deletionTimestamp set), as the API
//! server answers; the deletion itself runs on its own thread and its end reaches
//! watchers as DELETED, which is what `kubectl delete` waits for.
use super::server::{Reply, State};
use super::status;
use serde_json::Value;

/// gracePeriodSeconds from the DeleteOptions body or the query (the query wins, as the
/// API server reads it last).
fn grace_period(req: &hyper::Request<bytes::Bytes>) -> Result<Option<i64>, String> {
    let mut grace = None;
    if !req.body().is_empty() {
        let opts: Value = serde_json::from_slice(req.body())
            .map_err(|e| format!("invalid DeleteOptions: {e}"))?;
        grace = opts["gracePeriodSeconds"].as_i64();
    }
    for pair in req.uri().query().unwrap_or("").split('&') {
        if let Some(v) = pair.strip_prefix("gracePeriodSeconds=") {
            grace = Some(
                v.parse()
                    .map_err(|_| format!("invalid gracePeriodSeconds {v:?}"))?,
            );
        }
    }
    Ok(grace)
}

/// DELETE /api/v1/namespaces/NS/pods/NAME.
pub fn delete_pod(
    state: &State,
    ns: &str,
    name: &str,
    req: &hyper::Request<bytes::Bytes>,
) -> Reply {
    let grace = match grace_period(req) {
        Ok(g) => g,
        Err(e) => return status::bad_request(&e),
    };
    let ctx = crate::pod::PodContext {
        root: state.opts.root.clone(),
        data_dir: state.opts.data_dir.clone(),
    };
    let Some(mut rec) = crate::pod::load(&ctx, ns, name) else {
        return status::not_found("pods", name);
    };
    let spec_grace = rec
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds);
    if rec.pod.metadata.deletion_timestamp.is_none() {
        rec.pod.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(crate::util::now()),
        );
    }
    rec.pod.metadata.deletion_grace_period_seconds = grace.or(spec_grace).or(Some(30));
    let opts = crate::pod::DeleteOptions {
        grace_period: grace,
        force: grace == Some(0),
    };
    let (ns_owned, name_owned) = (ns.to_string(), name.to_string());
    let spawned = std::thread::Builder::new()
        .name("api-delete".into())
        .spawn(move || {
            if let Err(e) = crate::pod::delete(&ctx, &ns_owned, &name_owned, opts) {
                eprintln!("podrun serve: API delete of pod {ns_owned}/{name_owned}: {e}");
            }
        });
    if let Err(e) = spawned {
        return status::failure(500, "InternalError", &format!("deleting: {e}"), None);
    }
    match serde_json::to_value(&rec.pod) {
        Ok(v) => status::json_reply(200, &v),
        Err(e) => status::failure(500, "InternalError", &e.to_string(), None),
    }
}
