#!/usr/bin/env python3
"""Write an OCI image layout from root filesystem directories (one gzip layer each).

  mkoci.py --out DIR --name docker.io/library/busybox:1.30 --layer ROOTFS [--layer ROOTFS2]
           [--cmd JSON] [--entrypoint JSON] [--env K=V]... [--expose 80/tcp]...
           [--stop-signal SIGTERM] [--workdir DIR] [--created RFC3339]

index.json names the manifest twice over: org.opencontainers.image.ref.name holds the
tag alone (what `skopeo copy oci:DIR:TAG` looks for) and io.containerd.image.name the
full reference (what `podrun import DIR` tags it as). Tar entries are sorted and gzip
headers carry no time, so the same rootfs gives the same digests.
"""
import argparse
import gzip
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return "sha256:" + h.hexdigest()


def tar_rootfs(rootfs, tar_path):
    """Sorted, PAX tar of rootfs contents (hard links, devices, symlinks kept)."""
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            names = sorted(dirnames + filenames)
            for n in names:
                full = os.path.join(dirpath, n)
                arc = os.path.relpath(full, rootfs)
                st = os.lstat(full)
                if stat.S_ISSOCK(st.st_mode):
                    continue
                ti = tar.gettarinfo(full, arcname=arc)
                ti.uname = ""
                ti.gname = ""
                if ti.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(ti, f)
                else:
                    tar.addfile(ti)


def add_blob(out, src_path):
    digest = sha256_file(src_path)
    dst = os.path.join(out, "blobs", "sha256", digest.split(":", 1)[1])
    shutil.move(src_path, dst)
    return digest, os.path.getsize(dst)


def add_json_blob(out, obj):
    data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest.split(":", 1)[1]), "wb") as f:
        f.write(data)
    return digest, len(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True, help="full reference, e.g. docker.io/library/nginx:1.17.1")
    ap.add_argument("--layer", action="append", required=True)
    ap.add_argument("--cmd")
    ap.add_argument("--entrypoint")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--expose", action="append", default=[])
    ap.add_argument("--stop-signal")
    ap.add_argument("--workdir")
    ap.add_argument("--created", default="2019-07-01T00:00:00Z")
    a = ap.parse_args()

    tmp_out = a.out + ".tmp"
    shutil.rmtree(tmp_out, ignore_errors=True)
    os.makedirs(os.path.join(tmp_out, "blobs", "sha256"))
    with open(os.path.join(tmp_out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')

    layers, diff_ids, history = [], [], []
    for rootfs in a.layer:
        fd, tar_path = tempfile.mkstemp(dir=tmp_out, suffix=".tar")
        os.close(fd)
        tar_rootfs(rootfs, tar_path)
        diff_ids.append(sha256_file(tar_path))
        gz_path = tar_path + ".gz"
        with open(tar_path, "rb") as src, open(gz_path, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6, filename="") as gz:
                shutil.copyfileobj(src, gz, 1 << 20)
        os.unlink(tar_path)
        digest, size = add_blob(tmp_out, gz_path)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": digest, "size": size})
        history.append({"created": a.created,
                        "created_by": "rootfs-fixtures: " + os.path.basename(os.path.normpath(rootfs))})

    config = {"Env": a.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    if a.cmd:
        config["Cmd"] = json.loads(a.cmd)
    if a.entrypoint:
        config["Entrypoint"] = json.loads(a.entrypoint)
    if a.expose:
        config["ExposedPorts"] = {p if "/" in p else p + "/tcp": {} for p in a.expose}
    if a.stop_signal:
        config["StopSignal"] = a.stop_signal
    if a.workdir:
        config["WorkingDir"] = a.workdir
    cfg = {"created": a.created, "architecture": "amd64", "os": "linux", "config": config,
           "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}
    cfg_digest, cfg_size = add_json_blob(tmp_out, cfg)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cfg_digest, "size": cfg_size},
                "layers": layers}
    m_digest, m_size = add_json_blob(tmp_out, manifest)
    tag = a.name.rsplit(":", 1)[1] if ":" in a.name.rsplit("/", 1)[-1] else "latest"
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": m_digest, "size": m_size,
                            "annotations": {"org.opencontainers.image.ref.name": tag,
                                            "io.containerd.image.name": a.name}}]}
    with open(os.path.join(tmp_out, "index.json"), "w") as f:
        json.dump(index, f)
    shutil.rmtree(a.out, ignore_errors=True)
    os.rename(tmp_out, a.out)
    print(f"{a.name} {m_digest} -> {a.out}")


if __name__ == "__main__":
    main()
