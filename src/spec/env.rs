//! A container's environment and command line as kubelet builds them: envFrom, env with
//! valueFrom (downward API, resources, ConfigMap/Secret keys), `$(VAR)` expansion, and
//! command/args against the image's ENTRYPOINT/CMD.
use super::SpecError;
use crate::manifest::quantity::ParsedQuantity;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, ResourceFieldSelector, Secret};

/// The node's allocatable resources: what `limits.*` read through the downward API when
/// the container sets no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeAllocatable {
    pub cpu_milli: i64,
    pub memory_bytes: i64,
    pub ephemeral_storage_bytes: i64,
}

/// What the downward API and key references read from, besides the pod itself.
#[derive(Debug, Clone, Copy)]
pub struct EnvContext<'a> {
    pub pod: &'a Pod,
    /// ConfigMaps and Secrets available to the pod (those of the same manifest).
    pub config_maps: &'a [ConfigMap],
    pub secrets: &'a [Secret],
    pub pod_ips: &'a [String],
    pub host_ips: &'a [String],
    pub node_name: &'a str,
    pub node_allocatable: NodeAllocatable,
}

impl<'a> EnvContext<'a> {
    fn namespace(&self) -> &'a str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The ConfigMap `name` in the pod's namespace.
    pub fn config_map(&self, name: &str) -> Option<&'a ConfigMap> {
        let ns = self.namespace();
        self.config_maps.iter().find(|c| {
            c.metadata.name.as_deref() == Some(name)
                && c.metadata.namespace.as_deref().unwrap_or("default") == ns
        })
    }

    /// The Secret `name` in the pod's namespace.
    pub fn secret(&self, name: &str) -> Option<&'a Secret> {
        let ns = self.namespace();
        self.secrets.iter().find(|s| {
            s.metadata.name.as_deref() == Some(name)
                && s.metadata.namespace.as_deref().unwrap_or("default") == ns
        })
    }
}

/// A ConfigMap's value for `key` (data, else binaryData as text).
pub fn config_map_value(cm: &ConfigMap, key: &str) -> Option<Vec<u8>> {
    cm.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.clone().into_bytes())
        .or_else(|| {
            cm.binary_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|b| b.0.clone())
        })
}

/// A Secret's value for `key`.
pub fn secret_value(s: &Secret, key: &str) -> Option<Vec<u8>> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
}

/// Expands `$(VAR)` as Kubernetes does: `$$` is a literal `$`, references to undefined
/// variables and unterminated `$(` are left as written.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let b = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < b.len() {
        if b[cursor] == b'$' && cursor + 1 < b.len() {
            out.extend_from_slice(&b[checkpoint..cursor]);
            let rest = &b[cursor + 1..];
            let advance = match rest[0] {
                b'$' => {
                    out.push(b'$');
                    1
                }
                b'(' => match rest.iter().position(|&c| c == b')') {
                    Some(close) => {
                        let name = String::from_utf8_lossy(&rest[1..close]).into_owned();
                        match lookup(&name) {
                            Some(v) => out.extend_from_slice(v.as_bytes()),
                            None => out.extend_from_slice(format!("$({name})").as_bytes()),
                        }
                        close + 1
                    }
                    None => {
                        out.extend_from_slice(b"$(");
                        1
                    }
                },
                other => {
                    out.push(b'$');
                    out.push(other);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < b.len() {
        out.extend_from_slice(&b[checkpoint..]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Ordered environment with replace-or-append semantics (later definitions win).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvList(Vec<(String, String)>);

impl EnvList {
    pub fn set(&mut self, k: &str, v: String) {
        match self.0.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v,
            None => self.0.push((k.to_string(), v)),
        }
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    pub fn iter(&self) -> impl Iterator<Item = &(String, String)> {
        self.0.iter()
    }
    /// `KEY=VALUE` strings for the OCI process.
    pub fn to_oci(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// The downward API's value for a fieldRef path.
pub fn field_ref_value(ctx: &EnvContext<'_>, path: &str) -> Result<String, SpecError> {
    let meta = &ctx.pod.metadata;
    let spec = ctx.pod.spec.as_ref();
    let subscript = |prefix: &str| -> Option<String> {
        path.strip_prefix(prefix)?
            .strip_suffix("']")
            .map(str::to_string)
    };
    if let Some(k) = subscript("metadata.labels['") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|l| l.get(&k).cloned())
            .unwrap_or_default());
    }
    if let Some(k) = subscript("metadata.annotations['") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|l| l.get(&k).cloned())
            .unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| ctx.node_name.to_string()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => ctx.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => ctx.pod_ips.join(","),
        "status.hostIP" => ctx.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => ctx.host_ips.join(","),
        other => {
            return Err(SpecError::UnsupportedFieldPath {
                path: other.to_string(),
            })
        }
    })
}

/// Labels/annotations as the downward API volume writes them: `key="value"` lines, sorted.
fn format_map(m: Option<&std::collections::BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The downward API's value for a resourceFieldRef of `container` (limits fall back to
/// the node's allocatable), divided by the divisor and rounded up.
pub fn resource_field_value(
    ctx: &EnvContext<'_>,
    container: &Container,
    sel: &ResourceFieldSelector,
) -> Result<String, SpecError> {
    let target = match sel.container_name.as_deref() {
        None | Some("") => container,
        Some(name) => ctx
            .pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == name)
            .ok_or_else(|| SpecError::ResourceField {
                resource: sel.resource.clone(),
                reason: format!("no container named {name:?}"),
            })?,
    };
    let err = |reason: String| SpecError::ResourceField {
        resource: sel.resource.clone(),
        reason,
    };
    let (part, name) = sel
        .resource
        .split_once('.')
        .ok_or_else(|| err("not of the form limits.NAME or requests.NAME".into()))?;
    let res = target.resources.as_ref();
    let map = match part {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => return Err(err("not of the form limits.NAME or requests.NAME".into())),
    };
    let given = map.and_then(|m| m.get(name)).map(|q| q.0.clone());
    let alloc = ctx.node_allocatable;
    let text = match (given, part, name) {
        (Some(q), _, _) => q,
        (None, "limits", "cpu") => format!("{}m", alloc.cpu_milli),
        (None, "limits", "memory") => alloc.memory_bytes.to_string(),
        (None, "limits", "ephemeral-storage") => alloc.ephemeral_storage_bytes.to_string(),
        (None, _, _) => "0".to_string(),
    };
    let value = ParsedQuantity::parse(&text).map_err(|e| err(e.to_string()))?;
    let divisor_text = sel
        .divisor
        .as_ref()
        .map(|d| d.0.as_str())
        .filter(|d| !d.is_empty() && *d != "0")
        .unwrap_or("1");
    let divisor = ParsedQuantity::parse(divisor_text).map_err(|e| err(e.to_string()))?;
    let v = value
        .divided_ceil(&divisor)
        .map_err(|e| err(e.to_string()))?;
    Ok(v.to_string())
}

/// kubelet's makeEnvironmentVariables: envFrom sources in order, then env in order (each
/// value expanded against what came before); later definitions replace earlier ones.
pub fn container_env(ctx: &EnvContext<'_>, container: &Container) -> Result<EnvList, SpecError> {
    let mut env = EnvList::default();
    for src in container.env_from.iter().flatten() {
        let prefix = src.prefix.as_deref().unwrap_or("");
        if let Some(r) = &src.config_map_ref {
            let optional = r.optional == Some(true);
            let cm = match ctx.config_map(&r.name) {
                Some(cm) => cm,
                None if optional => continue,
                None => {
                    return Err(SpecError::ConfigMapNotFound {
                        name: r.name.clone(),
                    })
                }
            };
            for (k, v) in cm.data.iter().flatten() {
                let name = format!("{prefix}{k}");
                if crate::manifest::validate::is_env_var_name(&name) {
                    env.set(&name, v.clone());
                }
            }
        }
        if let Some(r) = &src.secret_ref {
            let optional = r.optional == Some(true);
            let s = match ctx.secret(&r.name) {
                Some(s) => s,
                None if optional => continue,
                None => {
                    return Err(SpecError::SecretNotFound {
                        name: r.name.clone(),
                    })
                }
            };
            for (k, v) in s.data.iter().flatten() {
                let name = format!("{prefix}{k}");
                if crate::manifest::validate::is_env_var_name(&name) {
                    env.set(&name, String::from_utf8_lossy(&v.0).into_owned());
                }
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(v) = var.value.as_deref().filter(|v| !v.is_empty()) {
            let snapshot = env.clone();
            expand(v, &|name| snapshot.get(name).map(str::to_string))
        } else if let Some(vf) = &var.value_from {
            if let Some(f) = &vf.field_ref {
                field_ref_value(ctx, &f.field_path)?
            } else if let Some(r) = &vf.resource_field_ref {
                resource_field_value(ctx, container, r)?
            } else if let Some(r) = &vf.config_map_key_ref {
                let optional = r.optional == Some(true);
                let Some(cm) = ctx.config_map(&r.name) else {
                    if optional {
                        continue;
                    }
                    return Err(SpecError::ConfigMapNotFound {
                        name: r.name.clone(),
                    });
                };
                match config_map_value(cm, &r.key) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if optional => continue,
                    None => {
                        return Err(SpecError::KeyNotFound {
                            kind: "ConfigMap",
                            namespace: ctx.namespace().to_string(),
                            name: r.name.clone(),
                            key: r.key.clone(),
                        })
                    }
                }
            } else if let Some(r) = &vf.secret_key_ref {
                let optional = r.optional == Some(true);
                let Some(s) = ctx.secret(&r.name) else {
                    if optional {
                        continue;
                    }
                    return Err(SpecError::SecretNotFound {
                        name: r.name.clone(),
                    });
                };
                match secret_value(s, &r.key) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if optional => continue,
                    None => {
                        return Err(SpecError::KeyNotFound {
                            kind: "Secret",
                            namespace: ctx.namespace().to_string(),
                            name: r.name.clone(),
                            key: r.key.clone(),
                        })
                    }
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        env.set(&var.name, value);
    }
    Ok(env)
}

/// The process arguments: Kubernetes' four cases of command/args against ENTRYPOINT/CMD,
/// with `$(VAR)` expanded from the container's environment.
pub fn container_args(
    container: &Container,
    image_entrypoint: &[String],
    image_cmd: &[String],
    env: &EnvList,
) -> Result<Vec<String>, SpecError> {
    let lookup = |name: &str| env.get(name).map(str::to_string);
    let ex = |v: &[String]| -> Vec<String> { v.iter().map(|s| expand(s, &lookup)).collect() };
    let command = container.command.as_deref().filter(|c| !c.is_empty());
    let args = container.args.as_deref().filter(|a| !a.is_empty());
    let argv: Vec<String> = match (command, args) {
        // Neither: the image's ENTRYPOINT and CMD.
        (None, None) => image_entrypoint.iter().chain(image_cmd).cloned().collect(),
        // command only: it replaces ENTRYPOINT, and CMD is ignored.
        (Some(c), None) => ex(c),
        // args only: the image's ENTRYPOINT with args instead of CMD.
        (None, Some(a)) => image_entrypoint.iter().cloned().chain(ex(a)).collect(),
        // Both: the image's ENTRYPOINT and CMD are ignored.
        (Some(c), Some(a)) => ex(c).into_iter().chain(ex(a)).collect(),
    };
    if argv.is_empty() {
        return Err(SpecError::NoCommand {
            container: container.name.clone(),
        });
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{load, LoadOptions};

    fn manifest(text: &str) -> crate::manifest::Manifest {
        load(text, &LoadOptions::default()).unwrap()
    }

    fn ctx<'a>(m: &'a crate::manifest::Manifest, ips: &'a [String]) -> EnvContext<'a> {
        EnvContext {
            pod: &m.pods[0],
            config_maps: &m.config_maps,
            secrets: &m.secrets,
            pod_ips: ips,
            host_ips: &ips[1..],
            node_name: "node-a",
            node_allocatable: NodeAllocatable {
                cpu_milli: 2000,
                memory_bytes: 8 << 30,
                ephemeral_storage_bytes: 100 << 30,
            },
        }
    }

    fn env_of(text: &str) -> Result<EnvList, SpecError> {
        let m = manifest(text);
        let ips = vec!["10.88.0.5".to_string(), "192.168.1.2".to_string()];
        let c = ctx(&m, &ips);
        container_env(&c, &m.pods[0].spec.as_ref().unwrap().containers[0])
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars = |n: &str| match n {
            "A" => Some("a".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(expand("$(A)", &vars), "a");
        assert_eq!(expand("x$(A)y$(A)", &vars), "xaya");
        assert_eq!(expand("$(B)", &vars), "$(B)", "undefined stays as written");
        assert_eq!(expand("$$(A)", &vars), "$(A)", "$$ escapes");
        assert_eq!(expand("$$$(A)", &vars), "$a");
        assert_eq!(expand("$(A", &vars), "$(A", "unterminated stays");
        assert_eq!(expand("$A", &vars), "$A", "shell syntax is not ours");
        assert_eq!(expand("cost $", &vars), "cost $");
        assert_eq!(expand("[$(EMPTY)]", &vars), "[]");
        assert_eq!(expand("héllo $(A) wörld", &vars), "héllo a wörld");
    }

    #[test]
    fn pod_env_seed_gives_username_and_password() {
        let env = env_of(&crate::manifest::tests::seed("pod-env.yaml")).unwrap();
        assert_eq!(env.get("username"), Some("admin"));
        assert_eq!(env.get("password"), Some("123456"));
    }

    #[test]
    fn downward_api_field_refs() {
        let text = r#"apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: shop}, annotations: {team: blue}}
spec:
  containers:
  - name: c
    image: i
    env:
    - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: TEAM, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['team']"}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}
    - {name: HOST, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
"#;
        let m = manifest(text);
        let ips = vec!["10.88.0.5".to_string(), "192.168.1.2".to_string()];
        let c = ctx(&m, &ips);
        let env = container_env(&c, &m.pods[0].spec.as_ref().unwrap().containers[0]).unwrap();
        assert_eq!(env.get("NAME"), Some("web"));
        assert_eq!(env.get("NS"), Some("prod"));
        assert_eq!(env.get("UID"), m.pods[0].metadata.uid.as_deref());
        assert_eq!(env.get("APP"), Some("shop"));
        assert_eq!(env.get("TEAM"), Some("blue"));
        assert_eq!(env.get("NODE"), Some("node-a"));
        assert_eq!(env.get("SA"), Some("default"));
        assert_eq!(env.get("IP"), Some("10.88.0.5"));
        assert_eq!(env.get("IPS"), Some("10.88.0.5,192.168.1.2"));
        assert_eq!(env.get("HOST"), Some("192.168.1.2"));
    }

    #[test]
    fn resource_field_refs_with_divisor_and_node_fallback() {
        let text = r#"apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: i
    resources: {limits: {cpu: 500m}, requests: {memory: 64Mi}}
    env:
    - {name: CPU_LIMIT, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
    - {name: CPU_LIMIT_M, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
    - {name: MEM_LIMIT, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: MEM_REQ, valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1Mi}}}
    - {name: CPU_REQ_M, valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}}
"#;
        let env = env_of(text).unwrap();
        assert_eq!(env.get("CPU_LIMIT"), Some("1"), "500m rounds up to 1 core");
        assert_eq!(env.get("CPU_LIMIT_M"), Some("500"));
        assert_eq!(
            env.get("MEM_LIMIT"),
            Some("8192"),
            "no limit: node allocatable"
        );
        assert_eq!(env.get("MEM_REQ"), Some("64"));
        assert_eq!(
            env.get("CPU_REQ_M"),
            Some("500"),
            "request defaulted from the limit"
        );
    }

    #[test]
    fn config_map_and_secret_keys_and_env_from_with_later_wins() {
        let text = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {username: admin, LEVEL: debug, shared: from-cm}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: "123456", shared: from-secret}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: i
    envFrom:
    - configMapRef: {name: cfg}
    - prefix: S_
      secretRef: {name: creds}
    - secretRef: {name: creds}
    env:
    - {name: USER, valueFrom: {configMapKeyRef: {name: cfg, key: username}}}
    - {name: PASS, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: LEVEL, value: "info-$(LEVEL)"}
    - {name: GREETING, value: "hi $(USER)"}
    - {name: MAYBE, valueFrom: {secretKeyRef: {name: nope, key: x, optional: true}}}
"#;
        let env = env_of(text).unwrap();
        assert_eq!(env.get("USER"), Some("admin"));
        assert_eq!(env.get("PASS"), Some("123456"));
        assert_eq!(env.get("S_password"), Some("123456"));
        assert_eq!(env.get("shared"), Some("from-secret"), "later envFrom wins");
        assert_eq!(
            env.get("LEVEL"),
            Some("info-debug"),
            "env wins over envFrom, expanded"
        );
        assert_eq!(env.get("GREETING"), Some("hi admin"));
        assert_eq!(env.get("MAYBE"), None, "optional missing: unset");
    }

    #[test]
    fn missing_references_are_kubelets_errors() {
        let base = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: i\n";
        let e = env_of(&format!(
            "{base}    env: [{{name: A, valueFrom: {{configMapKeyRef: {{name: cfg, key: k}}}}}}]\n"
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "configmap \"cfg\" not found");
        let e = env_of(&format!(
            "{base}    envFrom: [{{secretRef: {{name: s}}}}]\n"
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "secret \"s\" not found");
        let text = format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{a: b}}\n---\n{base}    env: [{{name: A, valueFrom: {{secretKeyRef: {{name: s, key: k}}}}}}]\n");
        let e = env_of(&text).unwrap_err();
        assert_eq!(e.to_string(), "couldn't find key k in Secret default/s");
    }

    fn container(command: Option<&[&str]>, args: Option<&[&str]>) -> Container {
        Container {
            name: "c".into(),
            command: command.map(|c| c.iter().map(|s| s.to_string()).collect()),
            args: args.map(|c| c.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn the_four_cases_of_command_and_args() {
        let ep = vec!["/ep".to_string(), "-x".to_string()];
        let cmd = vec!["default-arg".to_string()];
        let env = EnvList::default();
        let run = |c: Container| container_args(&c, &ep, &cmd, &env).unwrap();
        assert_eq!(run(container(None, None)), ["/ep", "-x", "default-arg"]);
        assert_eq!(run(container(Some(&["/bin/sh"]), None)), ["/bin/sh"]);
        assert_eq!(
            run(container(None, Some(&["a", "b"]))),
            ["/ep", "-x", "a", "b"]
        );
        assert_eq!(
            run(container(Some(&["/bin/sh"]), Some(&["-c", "echo"]))),
            ["/bin/sh", "-c", "echo"]
        );
    }

    #[test]
    fn seed_command_is_passed_verbatim_to_the_shell() {
        let m = manifest(&crate::manifest::tests::seed("pod-command.yaml"));
        let c = &m.pods[0].spec.as_ref().unwrap().containers[1];
        let argv = container_args(c, &[], &["sh".to_string()], &EnvList::default()).unwrap();
        assert_eq!(argv[0], "/bin/sh");
        assert_eq!(argv[1], "-c");
        assert!(
            argv[2].contains("$(date +%T)"),
            "not a defined variable: stays for the shell"
        );
        let m = manifest(&crate::manifest::tests::seed("two-containers.yaml"));
        let c = &m.pods[0].spec.as_ref().unwrap().containers[1];
        let argv = container_args(c, &[], &["bash".to_string()], &EnvList::default()).unwrap();
        assert_eq!(
            argv,
            [
                "/bin/sh",
                "-c",
                "echo Hello from the debian container > /pod-data/index.html"
            ]
        );
    }

    #[test]
    fn command_and_args_expand_env() {
        let mut env = EnvList::default();
        env.set("MSG", "hello".into());
        let c = container(Some(&["echo", "$(MSG)", "$$(MSG)", "$(NOPE)"]), None);
        assert_eq!(
            container_args(&c, &[], &[], &env).unwrap(),
            ["echo", "hello", "$(MSG)", "$(NOPE)"]
        );
    }

    #[test]
    fn nothing_to_run_is_an_error() {
        let e = container_args(&container(None, None), &[], &[], &EnvList::default()).unwrap_err();
        assert!(e.to_string().contains("no command specified"), "{e}");
    }
}
