//! Pod manifests: multi-document YAML into Kubernetes API types, API-server defaulting and validation with field paths.
