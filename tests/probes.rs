//! httpGet over HTTPS, redirects and grpc probes end to end (root, real kernel), checked
//! the way a kubectl user sees them: READY, restarts and `describe` events with kubelet's
//! messages. Servers run inside the pods (nginx with a self-signed certificate) or, for
//! grpc, a Python grpcio server started by the test inside the pod's network namespace.
mod pod_support;

use pod_support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn restarts(w: &World, ns: &str, pod: &str) -> i64 {
    w.pod(ns, pod)["status"]["containerStatuses"][0]["restartCount"]
        .as_i64()
        .unwrap_or(0)
}

/// nginx config for the probes: plain HTTP on 80 with redirects of every kind, TLS on
/// 8443 with a self-signed certificate made here by openssl.
const NGINX_CONF: &str = r#"
server {
    listen 80;
    location = /ok { return 200 "fine\n"; }
    location = /to-ok { return 302 /ok; }
    location = /to-missing { absolute_redirect off; return 302 missing; }
    location = /to-https { return 302 https://$host:8443/secure; }
    location = /away { return 302 http://example.invalid/elsewhere; }
    location = /loop { return 302 /loop; }
    location / { return 404; }
}
server {
    listen 8443 ssl;
    ssl_certificate /etc/nginx/conf.d/tls.crt;
    ssl_certificate_key /etc/nginx/conf.d/tls.key;
    location = /secure { return 200 "secure\n"; }
    location / { return 404; }
}
"#;

/// A directory with the nginx config, key and self-signed certificate, for a hostPath
/// volume at /etc/nginx/conf.d.
fn nginx_conf_dir(w: &World) -> PathBuf {
    let dir = w.root.parent().unwrap().join("nginx-conf");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("default.conf"), NGINX_CONF).unwrap();
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=probe-test",
        ])
        .arg("-keyout")
        .arg(dir.join("tls.key"))
        .arg("-out")
        .arg(dir.join("tls.crt"))
        .output()
        .expect("run openssl (scripts/setup.sh installs it)");
    assert!(st.status.success(), "openssl: {}", text(&st.stderr));
    dir
}

fn nginx_pod(name: &str, conf: &Path, probes: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: dev\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: nginx\n    image: nginx:1.17.1\n    volumeMounts:\n    - {{name: conf, mountPath: /etc/nginx/conf.d}}\n{probes}  volumes:\n  - name: conf\n    hostPath: {{path: {}, type: Directory}}\n",
        conf.display()
    )
}

#[test]
fn https_readiness_same_host_redirects_and_a_redirect_elsewhere_warns() {
    let w = World::new("probe-https");
    let conf = nginx_conf_dir(&w);
    // startup: a redirect to another host is not followed: success with a ProbeWarning.
    // readiness: HTTPS against the self-signed certificate.
    // liveness: http → https redirect on the same host, followed to a 200.
    let probes = "    startupProbe:\n      httpGet: {path: /away, port: 80}\n      periodSeconds: 1\n    readinessProbe:\n      httpGet: {path: /secure, port: 8443, scheme: HTTPS}\n      periodSeconds: 1\n    livenessProbe:\n      httpGet: {path: /to-https, port: 80}\n      periodSeconds: 1\n      failureThreshold: 1\n";
    w.up_ok(&nginx_pod("tls", &conf, probes));
    w.wait_for(40, "tls 1/1 Ready", || {
        (w.columns("dev", "tls").0 == "1/1").then_some(())
    });
    // Several liveness periods: the redirect chain keeps succeeding.
    std::thread::sleep(Duration::from_secs(4));
    let d = w.describe("dev", "tls");
    assert_eq!(restarts(&w, "dev", "tls"), 0, "{d}");
    assert!(d.contains("ProbeWarning"), "{d}");
    assert!(
        d.contains("Startup probe warning: Probe terminated redirects, Response body: <html>"),
        "{d}"
    );
    assert!(d.contains("302 Found"), "{d}");
    // (the startup probe may meet nginx before it listens; the others run after it)
    assert!(!d.contains("Liveness probe failed"), "{d}");
    assert!(!d.contains("Readiness probe failed"), "{d}");
    assert!(d.contains("http-get https://:8443/secure"), "{d}");
}

#[test]
fn redirect_to_a_404_fails_and_redirect_loops_stop_after_ten() {
    let w = World::new("probe-redirect");
    let conf = nginx_conf_dir(&w);
    let probes = "    readinessProbe:\n      httpGet: {path: /loop, port: 80}\n      periodSeconds: 1\n    livenessProbe:\n      httpGet: {path: /to-missing, port: 80}\n      periodSeconds: 1\n      failureThreshold: 2\n";
    w.up_ok(&nginx_pod("redir", &conf, probes));
    w.wait_for(60, "a restart", || {
        (restarts(&w, "dev", "redir") >= 1).then_some(())
    });
    let d = w.describe("dev", "redir");
    assert!(
        d.contains("Liveness probe failed: HTTP probe failed with statuscode: 404"),
        "{d}"
    );
    assert!(
        d.contains("Container nginx failed liveness probe, will be restarted"),
        "{d}"
    );
    assert!(d.contains("Readiness probe failed: Get \"http://"), "{d}");
    assert!(d.contains("/loop\": stopped after 10 redirects"), "{d}");
    assert_eq!(w.columns("dev", "redir").0, "0/1");
}

/// A grpc.health.v1 server on grpcio with raw-bytes (de)serializers: "" is SERVING,
/// "sick" NOT_SERVING, anything else NOT_FOUND (as grpcio's own health servicer answers).
const GRPC_SERVER: &str = r#"
import sys
from concurrent import futures
import grpc

STATUS = {"": 1, "sick": 2}

def service_of(req):
    if not req:
        return ""
    assert req[0] == 0x0A and req[1] < 0x80
    return req[2:2 + req[1]].decode()

def check(req, ctx):
    svc = service_of(req)
    if svc not in STATUS:
        ctx.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
    return bytes([0x08, STATUS[svc]])

handler = grpc.method_handlers_generic_handler(
    "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port("0.0.0.0:" + sys.argv[1])
server.start()
print("serving", flush=True)
server.wait_for_termination()
"#;

/// The grpc server, running in a pod's network namespace; killed (by pid) on drop.
struct GrpcServer(std::process::Child);

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the grpc server on port 9000 inside the network namespace of pod `name`
/// (entered through one of the pod's processes, found by its cgroup).
fn grpc_server_in_pod(w: &World, name: &str) -> GrpcServer {
    let script = w.root.parent().unwrap().join("health_server.py");
    std::fs::write(&script, GRPC_SERVER).unwrap();
    let uid = w.pod("dev", name)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let netns = w.wait_for(30, "a process of the pod", || {
        processes_in_cgroup(&uid)
            .into_iter()
            .map(|pid| PathBuf::from(format!("/proc/{pid}/ns/net")))
            .find(|p| std::fs::read_link(p).is_ok_and(|l| l != own))
    });
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["/usr/bin/python3", "-u"])
        .arg(&script)
        .arg("9000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("nsenter python3 (scripts/setup.sh installs python3-grpcio)");
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = GrpcServer(child);
    assert_eq!(line.trim(), "serving", "grpc test server did not start");
    server
}

fn busybox_pod(name: &str, probes: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: dev\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: app\n    image: busybox:1.30\n    command: [sleep, \"3600\"]\n{probes}"
    )
}

#[test]
fn grpc_serving_makes_the_pod_ready() {
    let w = World::new("probe-grpc-ok");
    let probes = "    readinessProbe:\n      grpc: {port: 9000}\n      periodSeconds: 1\n";
    let o = w.up(&busybox_pod("grpc-ok", probes));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let said = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(!said.contains("not supported"), "{said}");
    let _server = grpc_server_in_pod(&w, "grpc-ok");
    w.wait_for(30, "grpc-ok 1/1 Ready", || {
        (w.columns("dev", "grpc-ok").0 == "1/1").then_some(())
    });
    let d = w.describe("dev", "grpc-ok");
    assert!(
        d.contains("Readiness:      grpc <pod>:9000  delay=0s"),
        "{d}"
    );
}

#[test]
fn grpc_not_serving_restarts_with_kubelets_message() {
    let w = World::new("probe-grpc-sick");
    let probes = "    livenessProbe:\n      grpc: {port: 9000, service: sick}\n      initialDelaySeconds: 3\n      periodSeconds: 1\n      failureThreshold: 2\n    readinessProbe:\n      grpc: {port: 9000, service: other}\n      periodSeconds: 1\n";
    w.up_ok(&busybox_pod("grpc-sick", probes));
    let _server = grpc_server_in_pod(&w, "grpc-sick");
    w.wait_for(60, "a restart", || {
        (restarts(&w, "dev", "grpc-sick") >= 1).then_some(())
    });
    let d = w.describe("dev", "grpc-sick");
    assert!(
        d.contains("Liveness probe failed: service unhealthy (responded with \"NOT_SERVING\")"),
        "{d}"
    );
    assert!(
        d.contains("Container app failed liveness probe, will be restarted"),
        "{d}"
    );
    assert!(
        d.contains("Readiness probe failed: error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"),
        "{d}"
    );
    assert!(d.contains("grpc <pod>:9000 sick"), "{d}");
    assert_eq!(w.columns("dev", "grpc-sick").0, "0/1");
}
