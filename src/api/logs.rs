//! pods/log: a container's log through the same library `podrun logs` uses (container,
//! previous, tailLines, sinceSeconds, timestamps; follow is not served yet).
use super::server::{Reply, State};
use super::status;
use crate::pod::{LogsError, LogsRequest};

/// GET /api/v1/namespaces/NS/pods/NAME/log.
pub fn pod_log(state: &State, ns: &str, name: &str, query: &str) -> Reply {
    let mut req = LogsRequest {
        namespace: ns.to_string(),
        pod: name.to_string(),
        container: None,
        previous: false,
        tail: -1,
        since_seconds: None,
    };
    let mut timestamps = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = super::resources::percent_decode(v);
        match k {
            "container" => req.container = Some(v),
            "previous" => req.previous = v == "true",
            "timestamps" => timestamps = v == "true",
            "tailLines" => match v.parse::<i64>() {
                Ok(n) if n >= 0 => req.tail = n,
                _ => return status::bad_request(&format!("invalid tailLines {v:?}")),
            },
            "sinceSeconds" => match v.parse::<i64>() {
                Ok(n) if n > 0 => req.since_seconds = Some(n),
                _ => return status::bad_request(&format!("invalid sinceSeconds {v:?}")),
            },
            "follow" if v == "true" => {
                return status::bad_request("follow is not served by this node's API yet")
            }
            _ => {}
        }
    }
    let ctx = crate::pod::PodContext {
        root: state.opts.root.clone(),
        data_dir: state.opts.data_dir.clone(),
    };
    match crate::pod::open_logs(&ctx, &req) {
        Ok(log) => {
            let mut text = String::new();
            for l in &log.lines {
                if timestamps {
                    text.push_str(&l.time);
                    text.push(' ');
                }
                text.push_str(&l.text);
                text.push('\n');
            }
            super::resources::plain_text(text)
        }
        Err(LogsError::NotFound(_)) => status::not_found("pods", name),
        Err(e) => status::bad_request(&e.to_string()),
    }
}
