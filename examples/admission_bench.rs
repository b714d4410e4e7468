//! Admission time of one pod against a node running 200 pods that carry inter-pod
//! affinity and anti-affinity terms (the issue's benchmark; target < 1 ms).
//!
//! Run: `bench/admission.sh` (release build) or `cargo run --example admission_bench`.
use k8s_openapi::api::core::v1::{Node, Pod};
use podrun::admission::{admit, Decision};
use std::time::Instant;

fn existing_pod(i: usize) -> Pod {
    let yaml = format!(
        r#"
metadata:
  name: web-{i}
  namespace: ns-{ns}
  labels: {{app: web-{app}, tier: frontend, release: r{i}}}
spec:
  containers:
  - name: c
    image: nginx:1.17.1
    resources: {{requests: {{cpu: 5m, memory: 16Mi}}}}
    ports: [{{containerPort: 80, hostPort: {port}}}]
  tolerations: [{{key: tag, operator: Exists, effect: NoSchedule}}]
  affinity:
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {{matchLabels: {{tier: frontend}}}}
        topologyKey: kubernetes.io/hostname
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 10
        podAffinityTerm:
          labelSelector: {{matchExpressions: [{{key: app, operator: In, values: [web-1, web-2]}}]}}
          topologyKey: kubernetes.io/hostname
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {{matchExpressions: [{{key: app, operator: In, values: [db-{i}, cache]}}]}}
        namespaceSelector: {{}}
        topologyKey: kubernetes.io/hostname
      - labelSelector: {{matchLabels: {{release: r{i}}}}}
        namespaces: [ns-0, ns-1]
        topologyKey: kubernetes.io/hostname
"#,
        ns = i % 5,
        app = i % 10,
        port = 10000 + i
    );
    serde_yaml_ng::from_str(&yaml).expect("bench pod")
}

const INCOMING: &str = r#"
metadata:
  name: incoming
  namespace: ns-3
  labels: {app: api, tier: backend}
spec:
  containers:
  - name: c
    image: nginx:1.17.1
    resources: {requests: {cpu: 100m, memory: 64Mi}}
    ports: [{containerPort: 80, hostPort: 8080}]
  nodeSelector: {nodeenv: pro}
  tolerations: [{key: tag, operator: Equal, value: test, effect: NoSchedule}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: nodeenv, operator: In, values: [pro, yyy]}, {key: cores, operator: Gt, values: ["1"]}]
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 1
        preference: {matchExpressions: [{key: zone, operator: In, values: [a]}]}
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {matchExpressions: [{key: app, operator: In, values: [web-7]}]}
        namespaceSelector: {}
        topologyKey: kubernetes.io/hostname
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 50
        podAffinityTerm:
          labelSelector: {matchLabels: {tier: frontend}}
          namespaces: [ns-0, ns-1, ns-2, ns-3, ns-4]
          topologyKey: kubernetes.io/hostname
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {matchExpressions: [{key: app, operator: In, values: [api]}]}
        namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ns-3}}
        topologyKey: kubernetes.io/hostname
"#;

const NODE: &str = r#"
metadata:
  name: node1
  labels: {kubernetes.io/hostname: node1, kubernetes.io/os: linux, nodeenv: pro, cores: "8"}
spec:
  taints: [{key: tag, value: test, effect: NoSchedule}, {key: soft, effect: PreferNoSchedule}]
status:
  allocatable: {cpu: "16", memory: 64Gi, pods: "250", ephemeral-storage: 100Gi}
"#;

fn main() {
    let node: Node = serde_yaml_ng::from_str(NODE).expect("bench node");
    let pods: Vec<Pod> = (0..200).map(existing_pod).collect();
    let pod: Pod = serde_yaml_ng::from_str(INCOMING).expect("bench pod");
    match admit(&pod, &node, &pods) {
        Decision::Admitted(a) => eprintln!("decision: admitted ({} notes)", a.notes.len()),
        other => panic!("the benchmark pod should be admitted: {other:?}"),
    }
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    for _ in 0..50 {
        std::hint::black_box(admit(&pod, &node, &pods));
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        std::hint::black_box(admit(std::hint::black_box(&pod), &node, &pods));
        samples.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    println!(
        "admission of 1 pod against 200 pods with inter-pod (anti-)affinity: mean {mean:.1} us, median {:.1} us, p99 {:.1} us, max {:.1} us ({iterations} runs)",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}
