//! The API server's Status objects (errors as kubectl prints them) and JSON replies.
use super::server::Reply;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

/// A JSON reply with a status code.
pub fn json_reply(code: u16, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = hyper::Response::new(Full::new(Bytes::from(bytes)).boxed());
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A Status of failure: code, reason, message and details.
pub fn failure(code: u16, reason: &str, message: &str, details: Option<Value>) -> Reply {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        body["details"] = d;
    }
    json_reply(code, &body)
}

/// No valid client certificate.
pub fn unauthorized() -> Reply {
    failure(401, "Unauthorized", "Unauthorized", None)
}

/// `pods "x" not found`, as the API server words it.
pub fn not_found(resource: &str, name: &str) -> Reply {
    failure(
        404,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
        Some(json!({"name": name, "kind": resource})),
    )
}

/// A path the API does not serve.
pub fn no_route() -> Reply {
    failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

/// A request the API cannot take as it is.
pub fn bad_request(message: &str) -> Reply {
    failure(400, "BadRequest", message, None)
}

/// A verb the resource does not support (yet).
pub fn method_not_allowed(message: &str) -> Reply {
    failure(405, "MethodNotAllowed", message, Some(json!({})))
}
