//! `up` reads a manifest as the API server reads a request strictly: a mapping key
//! given twice, an oversized body or annotations, and absurdly deep nesting are
//! refused with the API server's words, at once, and leave no pod behind (no image
//! needed: nothing gets that far).
mod pod_support;
use pod_support::*;
use std::time::{Duration, Instant};

/// `up` of `manifest` fails with a message containing `want`, and no pod exists.
fn refused(w: &World, manifest: &str, want: &str) -> Duration {
    let t = Instant::now();
    let o = w.up(manifest);
    let took = t.elapsed();
    assert!(!o.status.success(), "up accepted it: {}", text(&o.stdout));
    assert!(text(&o.stderr).contains(want), "{}", text(&o.stderr));
    let pods = std::fs::read_dir(w.root.join("pods"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(pods, 0, "a refused manifest left a pod");
    took
}

#[test]
fn a_key_given_twice_is_refused() {
    let w = World::empty_store("strict-dup");
    refused(
        &w,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: dup\nspec:\n  containers:\n  - name: c\n    image: busybox:1.30\n    image: nginx:1.17.1\n",
        "mapping key \"image\" already defined",
    );
}

#[test]
fn oversized_annotations_and_bodies_are_refused() {
    let w = World::empty_store("strict-size");
    let big = "x".repeat(300 * 1024);
    refused(
        &w,
        &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\n  annotations:\n    a: {big}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.30\n"),
        "metadata.annotations: Too long: must have at most 262144 bytes",
    );
    let huge = "y".repeat(4 * 1024 * 1024);
    refused(
        &w,
        &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: huge\n  labels:\n    a: {huge}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.30\n"),
        "Request entity too large: limit is 3145728",
    );
}

#[test]
fn deep_nesting_is_refused_at_once() {
    let w = World::empty_store("strict-deep");
    let deep = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: deep\n  annotations: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let took = refused(&w, &deep, "recursion limit exceeded at line 5");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}
