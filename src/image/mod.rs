//! Image store: references, content-addressed OCI layout, registry pull, import, layer unpack, per-container rootfs.
