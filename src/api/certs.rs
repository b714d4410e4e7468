//! The API's certificates: a node CA, the server certificate and the admin client
//! certificate, made at first start (rcgen) and kept under `<data-dir>/api/pki`.
use super::ApiError;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The PEM files of the node's API credentials.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert: String,
    pub server_cert: String,
    pub server_key: String,
    pub admin_cert: String,
    pub admin_key: String,
}

const FILES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "server.crt",
    "server.key",
    "admin.crt",
    "admin.key",
];

/// Where the credentials of a data dir live.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("api").join("pki")
}

fn cert_err(what: &str) -> impl FnOnce(rcgen::Error) -> ApiError + '_ {
    move |e| ApiError::Cert(format!("{what}: {e}"))
}

/// Loads the credentials, making them all anew when any file is missing.
pub fn load_or_create(data_dir: &Path, node_name: &str) -> Result<Pki, ApiError> {
    let dir = pki_dir(data_dir);
    if FILES.iter().all(|f| dir.join(f).exists()) {
        let read = |f: &str| {
            let p = dir.join(f);
            std::fs::read_to_string(&p).map_err(super::io(p.display().to_string()))
        };
        return Ok(Pki {
            ca_cert: read("ca.crt")?,
            server_cert: read("server.crt")?,
            server_key: read("server.key")?,
            admin_cert: read("admin.crt")?,
            admin_key: read("admin.key")?,
        });
    }
    let (pki, ca_key) = generate(node_name)?;
    std::fs::create_dir_all(&dir).map_err(super::io(dir.display().to_string()))?;
    for (name, text, mode) in [
        ("ca.key", ca_key.as_str(), 0o600),
        ("server.key", &pki.server_key, 0o600),
        ("admin.key", &pki.admin_key, 0o600),
        ("server.crt", &pki.server_cert, 0o644),
        ("admin.crt", &pki.admin_cert, 0o644),
        // Last: its presence says the set is complete.
        ("ca.crt", &pki.ca_cert, 0o644),
    ] {
        write_private(&dir.join(name), text, mode)?;
    }
    Ok(pki)
}

/// Writes a file atomically with `mode` (the key never exists with wider permissions).
pub fn write_private(path: &Path, text: &str, mode: u32) -> Result<(), ApiError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let what = || path.display().to_string();
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(super::io(what()))?;
    f.write_all(text.as_bytes()).map_err(super::io(what()))?;
    f.sync_all().map_err(super::io(what()))?;
    std::fs::rename(&tmp, path).map_err(super::io(what()))
}

/// A new CA, server and admin certificate; returns them with the CA's key.
fn generate(node_name: &str) -> Result<(Pki, String), ApiError> {
    let ca_key = KeyPair::generate().map_err(cert_err("CA key"))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(cert_err("CA"))?;
    ca.distinguished_name
        .push(DnType::CommonName, format!("podrun-ca@{node_name}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(cert_err("CA"))?;
    let issuer = Issuer::new(ca, &ca_key);

    let server_key = KeyPair::generate().map_err(cert_err("server key"))?;
    let mut sans = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    if !node_name.is_empty() && !sans.iter().any(|s| s == node_name) {
        sans.push(node_name.to_string());
    }
    let mut server = CertificateParams::new(sans).map_err(cert_err("server"))?;
    server
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .map_err(cert_err("server"))?;

    let admin_key = KeyPair::generate().map_err(cert_err("admin key"))?;
    let mut admin = CertificateParams::new(Vec::<String>::new()).map_err(cert_err("admin"))?;
    admin.distinguished_name.push(DnType::CommonName, "admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin
        .signed_by(&admin_key, &issuer)
        .map_err(cert_err("admin"))?;
    let pki = Pki {
        ca_cert: ca_cert.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        admin_cert: admin_cert.pem(),
        admin_key: admin_key.serialize_pem(),
    };
    Ok((pki, ca_key.serialize_pem()))
}

/// The admin kubeconfig for a server URL, credentials embedded (as k3s.yaml).
pub fn admin_kubeconfig(pki: &Pki, server: &str) -> String {
    let b64 = |s: &str| base64(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: podrun\ncontexts:\n- context:\n    cluster: podrun\n    user: admin\n  name: podrun\ncurrent-context: podrun\npreferences: {{}}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&pki.ca_cert),
        b64(&pki.admin_cert),
        b64(&pki.admin_key),
    )
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "certs_tests.rs"]
mod tests;
