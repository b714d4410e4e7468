//! What engines rely on at the OCI CLI, checked with plain bundles: docker's zero
//! blkio weight is "unset", runc's words for killing a stopped container, a forced
//! delete of a missing container succeeds, and failing poststart/poststop hooks are
//! warnings after which the remaining hooks still run (the runtime spec).
mod oci_support;
use oci_support::*;
use serde_json::json;

#[test]
fn a_zero_blkio_weight_as_docker_sends_it_is_left_unset() {
    let env = Env::new();
    env.set_args(&["true"]);
    env.edit_config(|c| {
        c["linux"]["resources"]["blockIO"] = json!({"weight": 0, "leafWeight": 0});
    });
    let (code, out, err) = env.run(&unique("blkio0"));
    assert_eq!(code, 0, "{out} {err}");
}

#[test]
fn killing_a_stopped_container_says_container_not_running_as_runc() {
    let env = Env::new();
    env.set_args(&["true"]);
    let id = unique("stopped");
    let out = env.podrun(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while env.status(&id) != "stopped" {
        assert!(std::time::Instant::now() < deadline, "never stopped");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = env.podrun(&["kill", &id, "KILL"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("container not running"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn forced_delete_of_a_missing_container_succeeds_and_plain_delete_fails() {
    let env = Env::new();
    let out = env.podrun(&["delete", "--force", "never-created"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.podrun(&["delete", "never-created"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn a_failing_poststart_or_poststop_hook_does_not_skip_the_rest() {
    let env = Env::new();
    let marks = env.dir.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let hook = |script: String| json!({"path": "/bin/sh", "args": ["sh", "-c", script]});
    env.edit_config(|c| {
        c["hooks"] = json!({
            "poststart": [
                hook("exit 3".into()),
                hook(format!("touch {}/poststart", marks.display())),
            ],
            "poststop": [
                hook("exit 4".into()),
                hook(format!("touch {}/poststop", marks.display())),
            ],
        });
    });
    env.set_args(&["sleep", "60"]);
    let id = unique("hooks");
    let out = env.create(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.podrun(&["start", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        marks.join("poststart").exists(),
        "second poststart hook skipped"
    );
    assert_eq!(env.status(&id), "running");
    let out = env.podrun(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        marks.join("poststop").exists(),
        "second poststop hook skipped"
    );
    assert!(!env.container_dir(&id).exists());
}
