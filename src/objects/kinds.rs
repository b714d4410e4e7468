//! The kinds of object podrun keeps, in one table: for each (apiVersion, kind) its
//! resource name, scope, how a document of it is admitted (strictly decoded, defaulted
//! and validated as the API server does), how an update is checked, and whether a
//! controller of the node agent acts on it. A new kind is one row of [`KINDS`].
use crate::manifest::validate::InvalidError;
use serde_json::Value;

/// Why a document of a known kind was refused at admission.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// The message after "cannot be handled as a Kind: " (unknown field, wrong type).
    #[error("{0}")]
    Decode(String),
    #[error("{0}")]
    Invalid(#[from] InvalidError),
}

/// Decodes, defaults and validates one document in place.
pub type Admit = fn(&mut Value) -> Result<(), AdmitError>;

/// Checks a change to a stored object (`old` as stored, `new` as admitted); the error is
/// the API server's whole message (`The ConfigMap "x" is invalid: ...`).
pub type CheckUpdate = fn(old: &Value, new: &Value) -> Result<(), String>;

/// Runs after an object of the kind was created or changed (e.g. ConfigMap: tell the
/// pods that use it).
pub type AfterApply = fn(&crate::pod::PodContext, &Object);

/// One kind podrun runs.
#[derive(Clone, Copy)]
pub struct Kind {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// The resource as the API names it (plural, lower case); also its store directory.
    pub resource: &'static str,
    /// Other names `get`/`describe`/`delete` accept (singular, short names).
    pub aliases: &'static [&'static str],
    pub namespaced: bool,
    pub admit: Admit,
    pub check_update: CheckUpdate,
    pub after_apply: Option<AfterApply>,
    /// A controller of `podrun serve` acts on it: with no agent, `apply` says so.
    pub needs_agent: bool,
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.api_version, self.kind)
    }
}

impl Kind {
    /// kubectl's name of the type in `configmap/x created`, `deployment.apps/x created`.
    pub fn type_name(&self) -> String {
        let kind = self.kind.to_lowercase();
        match self.api_version.split_once('/') {
            Some((group, _)) => format!("{kind}.{group}"),
            None => kind,
        }
    }

    /// Whether `name` (as typed after `get`) names this kind.
    pub fn is_named(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        let bare = name.split('.').next().unwrap_or("");
        bare == self.resource || bare == self.kind.to_lowercase() || self.aliases.contains(&bare)
    }
}

/// Accepts any change (the API server's rule for most objects' metadata and data).
pub fn any_update(_old: &Value, _new: &Value) -> Result<(), String> {
    Ok(())
}

/// Every kind podrun runs. The pod path is its own (`crate::pod::apply`); the others are
/// desired state in the object store, acted on by their controllers.
///
/// Extension point: a controller's kind (apps/v1 Deployment, batch/v1 Job, ...) is one
/// row here with its admit function and `needs_agent: true`.
pub static KINDS: &[Kind] = &[
    Kind {
        api_version: "v1",
        kind: "Pod",
        resource: "pods",
        aliases: &["po"],
        namespaced: true,
        admit: |_| Ok(()),
        check_update: any_update,
        after_apply: None,
        needs_agent: false,
    },
    Kind {
        api_version: "v1",
        kind: "ConfigMap",
        resource: "configmaps",
        aliases: &["cm"],
        namespaced: true,
        admit: super::configs::admit_config_map,
        check_update: super::configs::check_config_map_update,
        after_apply: Some(super::configs::after_apply),
        needs_agent: false,
    },
    Kind {
        api_version: "v1",
        kind: "Secret",
        resource: "secrets",
        aliases: &[],
        namespaced: true,
        admit: super::configs::admit_secret,
        check_update: super::configs::check_secret_update,
        after_apply: Some(super::configs::after_apply),
        needs_agent: false,
    },
    Kind {
        api_version: "v1",
        kind: "Namespace",
        resource: "namespaces",
        aliases: &["ns"],
        namespaced: false,
        admit: super::namespaces::admit,
        check_update: any_update,
        after_apply: None,
        needs_agent: false,
    },
    Kind {
        api_version: "v1",
        kind: "PersistentVolumeClaim",
        resource: "persistentvolumeclaims",
        aliases: &["pvc"],
        namespaced: true,
        admit: super::storage::admit_claim,
        check_update: super::storage::check_claim_update,
        after_apply: Some(super::storage::after_apply_claim),
        needs_agent: false,
    },
    Kind {
        api_version: "v1",
        kind: "PersistentVolume",
        resource: "persistentvolumes",
        aliases: &["pv"],
        namespaced: false,
        admit: super::storage::admit_volume,
        check_update: any_update,
        after_apply: Some(super::storage::after_apply_volume),
        needs_agent: false,
    },
    Kind {
        api_version: "storage.k8s.io/v1",
        kind: "StorageClass",
        resource: "storageclasses",
        aliases: &["sc"],
        namespaced: false,
        admit: super::storage::admit_class,
        check_update: any_update,
        after_apply: None,
        needs_agent: false,
    },
];

/// The kind of a document, None when podrun does not run it.
pub fn lookup(api_version: &str, kind: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.api_version == api_version && k.kind == kind)
}

/// The kind a resource name (`cm`, `configmaps`, `deployment.apps`, ...) stands for.
pub fn by_resource(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.is_named(name))
}

/// The store's directory for cluster-scoped objects (not a valid namespace name).
pub const CLUSTER_SCOPE: &str = "_cluster";

/// One admitted object of a stored kind.
#[derive(Debug, Clone)]
pub struct Object {
    pub kind: &'static Kind,
    pub value: Value,
}

impl Object {
    pub fn name(&self) -> &str {
        meta_str(&self.value, "name")
    }

    /// Its namespace ("" for a cluster-scoped object).
    pub fn namespace(&self) -> &str {
        if self.kind.namespaced {
            meta_str(&self.value, "namespace")
        } else {
            ""
        }
    }

    /// Where the store keeps it.
    pub fn key(&self) -> super::ObjectKey {
        store_key(self.kind, self.namespace(), self.name())
    }
}

/// The store key of an object of `kind`.
pub fn store_key(kind: &Kind, namespace: &str, name: &str) -> super::ObjectKey {
    let ns = if kind.namespaced {
        namespace
    } else {
        CLUSTER_SCOPE
    };
    super::ObjectKey::new(kind.resource, ns, name)
}

/// A string field of an object's metadata ("" when absent).
pub fn meta_str<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Decodes strictly into `T`, runs `fix` (defaults, validation) and writes it back.
pub fn admit_typed<T: serde::de::DeserializeOwned + serde::Serialize>(
    value: &mut Value,
    fix: impl FnOnce(&mut T) -> Result<(), InvalidError>,
) -> Result<(), AdmitError> {
    let mut typed: T = crate::manifest::strict_decode(value).map_err(AdmitError::Decode)?;
    fix(&mut typed)?;
    *value = serde_json::to_value(&typed).map_err(|e| AdmitError::Decode(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_found_by_document_and_by_resource_name() {
        assert_eq!(
            lookup("v1", "ConfigMap").map(|k| k.resource),
            Some("configmaps")
        );
        assert!(lookup("v1", "Service").is_none());
        assert!(lookup("apps/v1", "ConfigMap").is_none());
        for name in ["cm", "configmap", "configmaps", "ConfigMap"] {
            assert_eq!(
                by_resource(name).map(|k| k.kind),
                Some("ConfigMap"),
                "{name}"
            );
        }
        assert_eq!(by_resource("ns").map(|k| k.kind), Some("Namespace"));
        assert!(by_resource("deploy").is_none());
    }

    #[test]
    fn type_names_are_kubectls() {
        let cm = lookup("v1", "ConfigMap").expect("cm");
        assert_eq!(cm.type_name(), "configmap");
        let fake = Kind {
            api_version: "apps/v1",
            kind: "Deployment",
            ..*cm
        };
        assert_eq!(fake.type_name(), "deployment.apps");
    }
}
