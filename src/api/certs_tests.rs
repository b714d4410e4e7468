use super::*;

#[test]
fn base64_matches_the_standard_alphabet_and_padding() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
}

#[test]
fn credentials_are_made_once_with_private_keys_and_serve_tls() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("podrun-api-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = load_or_create(&dir, "node-a").expect("made");
    let again = load_or_create(&dir, "node-a").expect("read back");
    assert_eq!(first.ca_cert, again.ca_cert, "kept across restarts");
    for key in ["ca.key", "server.key", "admin.key"] {
        let mode = std::fs::metadata(pki_dir(&dir).join(key))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    assert!(crate::api::server::tls_config(&first).is_ok());
    let kc = admin_kubeconfig(&first, "https://127.0.0.1:6443");
    assert!(kc.contains("server: https://127.0.0.1:6443"));
    assert!(kc.contains(&format!(
        "certificate-authority-data: {}",
        base64(first.ca_cert.as_bytes())
    )));
    let _ = std::fs::remove_dir_all(&dir);
}
