//! The API server's validation messages, pinned down case by case.
use crate::manifest::{load, LoadOptions, ManifestError};

fn err_of(spec_yaml: &str) -> String {
    let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec_yaml}");
    match load(&text, &LoadOptions::default()) {
        Err(ManifestError::Invalid(e)) => e.to_string(),
        Err(other) => panic!("not a validation error: {other}"),
        Ok(_) => panic!("accepted:\n{text}"),
    }
}

fn ok(spec_yaml: &str) {
    let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec_yaml}");
    if let Err(e) = load(&text, &LoadOptions::default()) {
        panic!("refused: {e}\n{text}");
    }
}

#[test]
fn missing_image_is_required() {
    assert_eq!(
        err_of("  containers:\n  - name: c\n"),
        "The Pod \"p\" is invalid: spec.containers[0].image: Required value"
    );
}

#[test]
fn several_errors_are_listed_as_kubectl_does() {
    let e = err_of("  containers:\n  - name: c\n  - name: c\n    image: i\n");
    assert_eq!(
        e,
        "The Pod \"p\" is invalid: \n* spec.containers[0].image: Required value\n* spec.containers[1].name: Duplicate value: \"c\""
    );
}

#[test]
fn pod_name_must_be_a_dns_subdomain() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: My_Pod}\nspec:\n  containers: [{name: c, image: i}]\n";
    let e = load(text, &LoadOptions::default()).unwrap_err().to_string();
    assert!(e.starts_with("The Pod \"My_Pod\" is invalid: metadata.name: Invalid value: \"My_Pod\": a lowercase RFC 1123 subdomain must consist of"), "{e}");
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {labels: {a: b}}\nspec:\n  containers: [{name: c, image: i}]\n";
    let e = load(text, &LoadOptions::default()).unwrap_err().to_string();
    assert!(
        e.contains("metadata.name: Required value: name or generateName is required"),
        "{e}"
    );
}

#[test]
fn container_name_must_be_a_dns_label() {
    let e = err_of("  containers: [{name: Web.1, image: i}]\n");
    assert!(e.contains("spec.containers[0].name: Invalid value: \"Web.1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"), "{e}");
}

#[test]
fn init_and_regular_container_names_share_one_namespace() {
    let e =
        err_of("  initContainers: [{name: c, image: i}]\n  containers: [{name: c, image: i}]\n");
    assert!(
        e.ends_with("spec.containers[0].name: Duplicate value: \"c\""),
        "{e}"
    );
}

#[test]
fn bad_quantity_names_the_resource() {
    let e = err_of(
        "  containers:\n  - name: c\n    image: i\n    resources: {limits: {memory: 10Gx}}\n",
    );
    assert!(e.contains("spec.containers[0].resources.limits[memory]: Invalid value: \"10Gx\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"), "{e}");
}

#[test]
fn requests_above_limits_are_refused() {
    let e = err_of("  containers:\n  - name: c\n    image: i\n    resources: {limits: {cpu: '1'}, requests: {cpu: '2'}}\n");
    assert_eq!(e, "The Pod \"p\" is invalid: spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1");
    ok("  containers:\n  - name: c\n    image: i\n    resources: {limits: {cpu: '2', memory: 10Gi}, requests: {cpu: '1', memory: 10Mi}}\n");
}

#[test]
fn ports_in_range_with_unique_names() {
    let e =
        err_of("  containers:\n  - name: c\n    image: i\n    ports: [{containerPort: 70000}]\n");
    assert!(e.contains("spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"), "{e}");
    let e = err_of("  containers:\n  - name: c\n    image: i\n    ports: [{name: http, containerPort: 80}, {name: http, containerPort: 81}]\n");
    assert!(
        e.contains("spec.containers[0].ports[1].name: Duplicate value: \"http\""),
        "{e}"
    );
    let e = err_of("  containers:\n  - name: c\n    image: i\n    ports: [{containerPort: 80, protocol: HTTP}]\n");
    assert!(e.contains("spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""), "{e}");
    let e = err_of("  containers:\n  - name: c\n    image: i\n    ports: [{name: nginx_port, containerPort: 80}]\n");
    assert!(e.contains("spec.containers[0].ports[0].name: Invalid value: \"nginx_port\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"), "{e}");
}

#[test]
fn volume_mounts_must_name_a_volume_and_a_path() {
    let e = err_of(
        "  containers:\n  - name: c\n    image: i\n    volumeMounts: [{name: x, mountPath: /x}]\n",
    );
    assert_eq!(
        e,
        "The Pod \"p\" is invalid: spec.containers[0].volumeMounts[0].name: Not found: \"x\""
    );
    let e = err_of("  volumes: [{name: x, emptyDir: {}}]\n  containers:\n  - name: c\n    image: i\n    volumeMounts: [{name: x, mountPath: ''}]\n");
    assert!(
        e.contains("spec.containers[0].volumeMounts[0].mountPath: Required value"),
        "{e}"
    );
    let e = err_of("  volumes: [{name: x, emptyDir: {}}]\n  containers:\n  - name: c\n    image: i\n    volumeMounts: [{name: x, mountPath: /a, subPath: ../etc}]\n");
    assert!(e.contains("spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../etc\": must not contain '..'"), "{e}");
}

#[test]
fn volumes_have_unique_names_and_one_source() {
    let e = err_of("  volumes: [{name: x, emptyDir: {}}, {name: x, emptyDir: {}}]\n  containers: [{name: c, image: i}]\n");
    assert!(
        e.contains("spec.volumes[1].name: Duplicate value: \"x\""),
        "{e}"
    );
    let e = err_of("  volumes: [{name: x, emptyDir: {}, hostPath: {path: /tmp}}]\n  containers: [{name: c, image: i}]\n");
    assert!(
        e.contains("spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type"),
        "{e}"
    );
    let e = err_of("  volumes: [{name: x, hostPath: {path: /tmp, type: Dir}}]\n  containers: [{name: c, image: i}]\n");
    assert!(e.contains("spec.volumes[0].hostPath.type: Unsupported value: \"Dir\": supported values: \"DirectoryOrCreate\""), "{e}");
}

#[test]
fn restart_policy_values() {
    let e = err_of("  restartPolicy: Sometimes\n  containers: [{name: c, image: i}]\n");
    assert_eq!(e, "The Pod \"p\" is invalid: spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"");
}

#[test]
fn probes_need_exactly_one_handler() {
    let e =
        err_of("  containers:\n  - name: c\n    image: i\n    livenessProbe: {periodSeconds: 5}\n");
    assert!(
        e.contains("spec.containers[0].livenessProbe: Required value: must specify a handler type"),
        "{e}"
    );
    let e = err_of("  containers:\n  - name: c\n    image: i\n    readinessProbe: {exec: {command: [ls]}, tcpSocket: {port: 80}}\n");
    assert!(e.contains("spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"), "{e}");
    let e = err_of("  containers:\n  - name: c\n    image: i\n    livenessProbe: {exec: {command: [ls]}, successThreshold: 2}\n");
    assert!(
        e.contains(
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"
        ),
        "{e}"
    );
}

#[test]
fn env_names_and_sources() {
    let e =
        err_of("  containers:\n  - name: c\n    image: i\n    env: [{name: 'A=B', value: x}]\n");
    assert!(e.contains("spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name"), "{e}");
    let e = err_of("  containers:\n  - name: c\n    image: i\n    env: [{name: A, value: x, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n");
    assert!(e.contains("spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty"), "{e}");
    let e = err_of("  containers:\n  - name: c\n    image: i\n    env: [{name: A, valueFrom: {fieldRef: {fieldPath: spec.foo}}}]\n");
    assert!(e.contains("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.foo\""), "{e}");
    ok("  containers:\n  - name: c\n    image: i\n    env: [{name: L, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}]\n");
}

#[test]
fn sidecar_restart_policy_only_on_init_containers() {
    ok("  initContainers: [{name: s, image: i, restartPolicy: Always, readinessProbe: {tcpSocket: {port: 80}}}]\n  containers: [{name: c, image: i}]\n");
    let e = err_of("  containers: [{name: c, image: i, restartPolicy: Always}]\n");
    assert!(
        e.contains(
            "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"
        ),
        "{e}"
    );
    let e = err_of("  initContainers: [{name: s, image: i, restartPolicy: Never}]\n  containers: [{name: c, image: i}]\n");
    assert!(e.contains("spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""), "{e}");
    let e = err_of("  initContainers: [{name: s, image: i, livenessProbe: {tcpSocket: {port: 80}}}]\n  containers: [{name: c, image: i}]\n");
    assert!(e.contains("spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"), "{e}");
}

#[test]
fn containers_are_required() {
    let e = err_of("  restartPolicy: Never\n");
    assert!(e.contains("spec.containers: Required value"), "{e}");
}

#[test]
fn host_users_false_forbids_the_host_namespaces() {
    let e = err_of("  hostUsers: false\n  hostNetwork: true\n  hostPID: true\n  hostIPC: true\n  containers: [{name: c, image: i}]\n");
    for f in ["spec.hostNetwork", "spec.HostPID", "spec.HostIPC"] {
        assert!(
            e.contains(&format!(
                "{f}: Forbidden: when `pod.Spec.HostUsers` is false"
            )),
            "{f}: {e}"
        );
    }
    ok("  hostUsers: false\n  containers: [{name: c, image: i}]\n");
    ok("  hostUsers: true\n  hostNetwork: true\n  containers: [{name: c, image: i}]\n");
}

#[test]
fn unmasked_proc_needs_a_user_namespace() {
    let c = "  containers: [{name: c, image: i, securityContext: {procMount: Unmasked}}]\n";
    let e = err_of(c);
    assert!(e.contains("spec.containers[0].securityContext.procMount: Invalid value: \"Unmasked\": `hostUsers` must be false to use `Unmasked`"), "{e}");
    ok(&format!("  hostUsers: false\n{c}"));
}

#[test]
fn privileged_with_no_escalation_is_contradictory() {
    let e = err_of("  containers:\n  - name: c\n    image: i\n    securityContext: {privileged: true, allowPrivilegeEscalation: false}\n");
    assert!(e.contains("spec.containers[0].securityContext: Invalid value: \"\": cannot set `allowPrivilegeEscalation` to false and `privileged` to true"), "{e}");
}

#[test]
fn a_host_port_is_used_once_per_pod() {
    let e = err_of("  containers:\n  - {name: a, image: i, ports: [{containerPort: 80, hostPort: 8080}]}\n  - {name: b, image: i, ports: [{containerPort: 81, hostPort: 8080}]}\n");
    assert!(
        e.ends_with("spec.containers[1].ports[0].hostPort: Duplicate value: \"/TCP/8080\""),
        "{e}"
    );
    ok("  containers:\n  - {name: a, image: i, ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 80, hostPort: 8080, protocol: UDP}]}\n");
}

#[test]
fn affinity_rules_are_checked() {
    let e = err_of("  containers: [{name: c, image: i}]\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: nodeenv, operator: Equals, values: [pro]}]\n");
    assert!(e.contains("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator: Invalid value: \"Equals\": not a valid selector operator"), "{e}");
    let e = err_of("  containers: [{name: c, image: i}]\n  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: 0\n        preference: {matchExpressions: [{key: a, operator: In, values: []}]}\n");
    assert!(e.contains("preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100"), "{e}");
    assert!(e.contains("preference.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"), "{e}");
    let e = err_of("  containers: [{name: c, image: i}]\n  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchExpressions: [{key: podenv, operator: Exists, values: [pro]}]}\n        topologyKey: ''\n");
    assert!(e.contains("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value: can not be empty"), "{e}");
    assert!(e.contains("labelSelector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"), "{e}");
    for seed in [
        "pod-nodeaffinity-required.yaml",
        "pod-nodeaffinity-preferred.yaml",
        "pod-podaffinity-required.yaml",
        "pod-podantiaffinity-required.yaml",
        "pod-toleration.yaml",
    ] {
        load(&crate::manifest::tests::seed(seed), &LoadOptions::default()).unwrap();
    }
}

#[test]
fn configmap_keys_are_checked() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {'a b': x}\n";
    let e = load(text, &LoadOptions::default()).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "The ConfigMap \"c\" is invalid: data[a b]: Invalid value: \"a b\": a valid config key"
        ),
        "{e}"
    );
}
