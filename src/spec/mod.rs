//! Pod + container + image config → OCI runtime spec (config.json) for each container.
