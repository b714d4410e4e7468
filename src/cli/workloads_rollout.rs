//! `rollout status|history|undo` of a Deployment as kubectl does them (its words, its
//! wait), and orphaning a workload's pods for `delete --cascade=orphan`.
use super::printers::table_pad;
use super::workloads::revision;
use crate::controllers::meta::{self, POD_TEMPLATE_HASH};
use crate::controllers::store;
use crate::objects::{ObjectKey, ObjectStore};
use crate::pod::PodContext;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use std::time::{Duration, Instant};

/// One look at a Deployment: the line kubectl's status viewer prints, and whether done
/// (Ok) or failed (Err).
pub fn status_line(d: &Deployment) -> (String, Option<Result<(), ()>>) {
    let name = meta::name(&d.metadata);
    let st = d.status.clone().unwrap_or_default();
    if d.metadata.generation > st.observed_generation {
        return (
            "Waiting for deployment spec update to be observed...".into(),
            None,
        );
    }
    let exceeded = st.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if exceeded {
        return (
            format!("error: deployment {name:?} exceeded its progress deadline"),
            Some(Err(())),
        );
    }
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = st.updated_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let wait = |what: String| {
        (
            format!("Waiting for deployment {name:?} rollout to finish: {what}"),
            None,
        )
    };
    if updated < want {
        return wait(format!(
            "{updated} out of {want} new replicas have been updated..."
        ));
    }
    if total > updated {
        return wait(format!(
            "{} old replicas are pending termination...",
            total - updated
        ));
    }
    if available < updated {
        return wait(format!(
            "{available} of {updated} updated replicas are available..."
        ));
    }
    (
        format!("deployment {name:?} successfully rolled out"),
        Some(Ok(())),
    )
}

fn parse_timeout(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (n, mult) = if let Some(n) = s.strip_suffix('m') {
        (n, 60)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1)
    } else {
        (s, 1)
    };
    let secs: u64 = n.parse().ok()?;
    (secs > 0).then(|| Duration::from_secs(secs * mult))
}

/// `rollout status`: prints each new line until the rollout is done, failed or timed out.
pub fn status(
    store: &ObjectStore,
    ns: &str,
    name: &str,
    timeout: &str,
    watch: bool,
) -> anyhow::Result<i32> {
    let deadline = parse_timeout(timeout).map(|t| Instant::now() + t);
    let mut last = String::new();
    loop {
        let Some(d) = store.get::<Deployment>(&ObjectKey::new("deployments", ns, name))? else {
            eprintln!("Error from server (NotFound): deployments.apps {name:?} not found");
            return Ok(1);
        };
        let (line, done) = status_line(&d);
        match done {
            Some(Ok(())) => {
                println!("{line}");
                return Ok(0);
            }
            Some(Err(())) => {
                eprintln!("{line}");
                return Ok(1);
            }
            None if line != last => {
                println!("{line}");
                last = line;
            }
            None => {}
        }
        if !watch {
            return Ok(0);
        }
        if deadline.is_some_and(|t| Instant::now() > t) {
            eprintln!("error: timed out waiting for the condition");
            return Ok(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn owned_sets(store: &ObjectStore, d: &Deployment) -> Vec<ReplicaSet> {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let mut sets: Vec<ReplicaSet> = store::list(store, Some(&meta::ns(&d.metadata)));
    sets.retain(|rs| meta::controlled_by(&rs.metadata, &uid));
    sets.sort_by_key(revision);
    sets
}

/// `rollout history`: every revision with its change cause.
pub fn history(store: &ObjectStore, d: &Deployment) -> i32 {
    println!("deployment.apps/{}", meta::name(&d.metadata));
    let mut rows = vec![vec!["REVISION".to_string(), "CHANGE-CAUSE".to_string()]];
    for rs in owned_sets(store, d) {
        let cause = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubernetes.io/change-cause"))
            .cloned()
            .unwrap_or_else(|| "<none>".into());
        rows.push(vec![revision(&rs).to_string(), cause]);
    }
    print!("{}", table_pad(&rows, 2));
    println!();
    0
}

/// `rollout undo [--to-revision=N]`: the Deployment's template becomes that revision's.
pub fn undo(store: &ObjectStore, d: &Deployment, to: i64) -> anyhow::Result<i32> {
    let name = meta::name(&d.metadata);
    let sets = owned_sets(store, d);
    let current = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::controllers::deployment::REVISION))
        .and_then(|r| r.parse::<i64>().ok())
        .unwrap_or(0);
    let target = if to > 0 {
        sets.iter().find(|rs| revision(rs) == to)
    } else {
        sets.iter()
            .rev()
            .find(|rs| revision(rs) != current && revision(rs) < current.max(1) + 1)
    };
    let Some(rs) = target else {
        if to > 0 {
            eprintln!("error: unable to find specified revision {to} in history");
        } else {
            eprintln!("error: no rollout history found for deployment {name:?}");
        }
        return Ok(1);
    };
    let mut template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    if let Some(l) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(POD_TEMPLATE_HASH);
    }
    if d.spec.as_ref().map(|s| &s.template) == Some(&template) {
        println!("deployment.apps/{name} skipped rollback (current template already matches revision {})", revision(rs));
        return Ok(0);
    }
    store::modify(store, d, |cur| {
        if let Some(s) = cur.spec.as_mut() {
            s.template = template;
        }
        cur.metadata.generation = Some(cur.metadata.generation.unwrap_or(1) + 1);
    })?;
    println!("deployment.apps/{name} rolled back");
    Ok(0)
}

/// Drops the owner references to `owner_uids` from the pods (they stay, ownerless):
/// pod.json and the desired record rewritten, the supervisor told (SIGHUP).
pub fn orphan_pods(ctx: &PodContext, owner_uids: &[String]) {
    use crate::supervisor::store as pstore;
    for rec in ctx.store().list() {
        let mut pod = rec.pod.clone();
        let Some(refs) = pod.metadata.owner_references.as_mut() else {
            continue;
        };
        let before = refs.len();
        refs.retain(|r| !owner_uids.contains(&r.uid));
        if refs.len() == before {
            continue;
        }
        pod.status = None;
        if pstore::write_json(&rec.dir.join(pstore::POD_FILE), &pod).is_ok() {
            let objects =
                pstore::read_json(&rec.dir.join(pstore::OBJECTS_FILE)).unwrap_or_default();
            let _ = crate::pod::desired::record(ctx, &pod, &objects);
            pstore::signal_pid_file(
                &rec.dir.join(pstore::PID_FILE),
                nix::sys::signal::Signal::SIGHUP,
            );
        }
    }
}
