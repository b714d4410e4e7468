//! Registry credentials from every place the ecosystem keeps them, against a loopback
//! registry behind Basic and behind Bearer (token) auth: podman's and docker's auth files
//! in their lookup order, credential helpers (credHelpers, credsStore), `podrun login` /
//! `logout`, and a pod's imagePullSecrets. No secret ever shows in podrun's output.
mod image_support;
mod pod_support;
use image_support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55";

/// A private registry holding private/busybox:1.30, behind `mode`.
struct Private {
    _reg: Registry,
    proxy: AuthProxy,
}

fn private(t: &TempDir, mode: AuthMode) -> Private {
    let busybox = fixture("busybox");
    let dir = t.path().join(format!("{mode:?}"));
    std::fs::create_dir_all(&dir).unwrap();
    let reg = Registry::start(&dir);
    reg.push(&busybox, "1.30", "private/busybox:1.30");
    let proxy = AuthProxy::start(reg.port, mode, USER, PASSWORD);
    Private { _reg: reg, proxy }
}

fn auth_json(host: &str, user: &str, password: &str) -> String {
    let auth = podrun::image::auth::base64_encode(format!("{user}:{password}").as_bytes());
    format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#)
}

/// podrun with no credential source of the host: HOME, XDG dirs, DOCKER_CONFIG and
/// REGISTRY_AUTH_FILE point into `home` unless `env` sets them.
fn podrun_in(home: &Path, data: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = Command::new(PODRUN);
    c.arg("--data-dir").arg(data).args(args);
    for k in [
        "PODRUN_DATA_DIR",
        "PODRUN_REGISTRIES_CONFIG",
        "REGISTRY_AUTH_FILE",
        "DOCKER_CONFIG",
        "XDG_CONFIG_HOME",
    ] {
        c.env_remove(k);
    }
    c.env("HOME", home)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("CONTAINERS_REGISTRIES_CONF", home.join("registries.conf"));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Case {
    home: PathBuf,
    data: PathBuf,
}

fn case(t: &TempDir, name: &str) -> Case {
    let home = t.path().join(name).join("home");
    std::fs::create_dir_all(home.join("run")).unwrap();
    Case {
        data: t.path().join(name).join("data"),
        home,
    }
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

/// A credential helper on PATH: `docker-credential-podruntest get` answers for `host`
/// only, and records what it was asked.
fn helper(dir: &Path, host: &str) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("docker-credential-podruntest");
    write(
        &script,
        &format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\necho \"$server\" >> {asked}\n\
             if [ \"$server\" = \"{host}\" ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}\\n' \"$server\"\n\
             else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
            asked = dir.join("asked").display()
        ),
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn auth_files_and_credential_helpers_in_lookup_order_for_basic_and_bearer() {
    let t = TempDir::new("auth-files");
    for mode in [AuthMode::Basic, AuthMode::Bearer] {
        let p = private(&t, mode);
        let host = p.proxy.host();
        let image = format!("{host}/private/busybox:1.30");
        let pull = |c: &Case, env: &[(&str, String)]| {
            podrun_in(&c.home, &c.data, &["pull", "-q", &image], env)
        };
        let pulled = |c: &Case, env: &[(&str, String)], source: &str| {
            let o = pull(c, env);
            assert!(o.status.success(), "{mode:?} via {source}: {}", text(&o));
            assert!(!text(&o).contains(PASSWORD));
        };

        // No credentials anywhere: refused, saying where credentials would come from.
        let c = case(&t, &format!("{mode:?}-none"));
        let o = pull(&c, &[]);
        assert!(!o.status.success(), "{mode:?}: pulled without credentials");
        let err = text(&o);
        assert!(
            err.contains("401") || err.contains("no credentials"),
            "{mode:?}: {err}"
        );

        // $REGISTRY_AUTH_FILE
        let c = case(&t, &format!("{mode:?}-registry-auth-file"));
        let f = c.home.join("elsewhere/auth.json");
        write(&f, &auth_json(&host, USER, PASSWORD));
        pulled(
            &c,
            &[("REGISTRY_AUTH_FILE", f.display().to_string())],
            "REGISTRY_AUTH_FILE",
        );

        // ${XDG_RUNTIME_DIR}/containers/auth.json (podman's primary file)
        let c = case(&t, &format!("{mode:?}-xdg-runtime"));
        write(
            &c.home.join("run/containers/auth.json"),
            &auth_json(&host, USER, PASSWORD),
        );
        pulled(&c, &[], "XDG_RUNTIME_DIR");

        // ~/.config/containers/auth.json
        let c = case(&t, &format!("{mode:?}-xdg-config"));
        write(
            &c.home.join(".config/containers/auth.json"),
            &auth_json(&host, USER, PASSWORD),
        );
        pulled(&c, &[], "~/.config/containers/auth.json");

        // $DOCKER_CONFIG/config.json, with a docker-style http:// key
        let c = case(&t, &format!("{mode:?}-docker-config"));
        let d = c.home.join("dockercfgdir");
        write(
            &d.join("config.json"),
            &auth_json(&format!("http://{host}"), USER, PASSWORD),
        );
        pulled(
            &c,
            &[("DOCKER_CONFIG", d.display().to_string())],
            "DOCKER_CONFIG",
        );

        // ~/.docker/config.json
        let c = case(&t, &format!("{mode:?}-home-docker"));
        write(
            &c.home.join(".docker/config.json"),
            &auth_json(&host, USER, PASSWORD),
        );
        pulled(&c, &[], "~/.docker/config.json");

        // credHelpers for this registry, and credsStore as the default helper
        for (i, cfg) in [
            format!(r#"{{"credHelpers": {{"{host}": "podruntest"}}}}"#),
            r#"{"auths": {"other.example": {}}, "credsStore": "podruntest"}"#.to_string(),
        ]
        .iter()
        .enumerate()
        {
            let c = case(&t, &format!("{mode:?}-helper-{i}"));
            let path = helper(&c.home, &host);
            write(&c.home.join(".docker/config.json"), cfg);
            pulled(&c, &[("PATH", path)], "credential helper");
            let asked = std::fs::read_to_string(c.home.join("asked")).unwrap();
            assert_eq!(asked.lines().next(), Some(host.as_str()), "{asked}");
        }

        // Order: the first file that knows the registry answers (podman's rule), so a
        // wrong password in $REGISTRY_AUTH_FILE is not rescued by ~/.docker/config.json.
        let c = case(&t, &format!("{mode:?}-order"));
        let f = c.home.join("first.json");
        write(&f, &auth_json(&host, USER, "wrong-password"));
        write(
            &c.home.join(".docker/config.json"),
            &auth_json(&host, USER, PASSWORD),
        );
        let o = pull(&c, &[("REGISTRY_AUTH_FILE", f.display().to_string())]);
        assert!(!o.status.success(), "{mode:?}: the first file must win");
        assert!(!text(&o).contains("wrong-password"), "{}", text(&o));
        pulled(
            &c,
            &[],
            "~/.docker/config.json after the first file is gone",
        );

        // A broken auth file is an error naming it.
        let c = case(&t, &format!("{mode:?}-broken"));
        write(&c.home.join(".docker/config.json"), "{not json");
        let o = pull(&c, &[]);
        assert!(!o.status.success());
        assert!(text(&o).contains(".docker/config.json"), "{}", text(&o));
    }
}

#[test]
fn login_checks_and_stores_credentials_0600_and_logout_removes_them() {
    let t = TempDir::new("auth-login");
    for mode in [AuthMode::Basic, AuthMode::Bearer] {
        let p = private(&t, mode);
        let host = p.proxy.host();
        let c = case(&t, &format!("{mode:?}-login"));
        let login = |password: &str| {
            let mut cmd = Command::new(PODRUN);
            cmd.arg("--data-dir")
                .arg(&c.data)
                .args(["login", &host, "-u", USER, "--password-stdin"])
                .env_remove("REGISTRY_AUTH_FILE")
                .env("HOME", &c.home)
                .env("XDG_RUNTIME_DIR", c.home.join("run"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            use std::io::Write;
            writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
            child.wait_with_output().unwrap()
        };
        let file = c.home.join("run/containers/auth.json");
        let o = login("wrong-password");
        assert!(!o.status.success(), "{mode:?}: wrong password accepted");
        assert!(!text(&o).contains("wrong-password"), "{}", text(&o));
        assert!(!file.exists(), "nothing stored after a failed login");

        let o = login(PASSWORD);
        assert!(o.status.success(), "{mode:?}: {}", text(&o));
        assert!(text(&o).contains("Login Succeeded!"), "{}", text(&o));
        assert!(!text(&o).contains(PASSWORD));
        let mode_bits = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode_bits, 0o600, "auth.json mode");
        let stored: serde_json::Value = read_json(&file);
        assert!(stored["auths"][&host]["auth"].is_string(), "{stored}");
        // The stored login is what a pull uses.
        let image = format!("{host}/private/busybox:1.30");
        let o = podrun_in(&c.home, &c.data, &["pull", "-q", &image], &[]);
        assert!(
            o.status.success(),
            "{mode:?}: pull after login: {}",
            text(&o)
        );

        let logout = |reg: &str| {
            Command::new(PODRUN)
                .args(["logout", reg])
                .env_remove("REGISTRY_AUTH_FILE")
                .env("XDG_RUNTIME_DIR", c.home.join("run"))
                .output()
                .unwrap()
        };
        let o = logout(&host);
        assert!(o.status.success(), "{}", text(&o));
        let stored: serde_json::Value = read_json(&file);
        assert!(stored["auths"].get(&host).is_none(), "{stored}");
        let o = logout(&host);
        assert!(!o.status.success());
        assert!(
            text(&o).contains(&format!("not logged into {host}")),
            "{}",
            text(&o)
        );
    }
}

#[test]
fn image_pull_secrets_of_the_pod_are_used_for_its_pulls() {
    use pod_support::World;
    let t = TempDir::new("auth-pull-secrets");
    for mode in [AuthMode::Basic, AuthMode::Bearer] {
        let p = private(&t, mode);
        let host = p.proxy.host();
        let dockerconfigjson = auth_json(&host, USER, PASSWORD);
        let auth = podrun::image::auth::base64_encode(format!("{USER}:{PASSWORD}").as_bytes());
        let dockercfg = format!(r#"{{"http://{host}": {{"auth": "{auth}"}}}}"#);
        let b64 = |s: &str| podrun::image::auth::base64_encode(s.as_bytes());
        for (kind, key, value) in [
            (
                "kubernetes.io/dockerconfigjson",
                ".dockerconfigjson",
                &dockerconfigjson,
            ),
            ("kubernetes.io/dockercfg", ".dockercfg", &dockercfg),
        ] {
            let mut w = World::empty_store("pull-secret");
            // No credentials from the host's files.
            w.extra_env
                .push(("HOME".into(), t.path().join("nohome").display().to_string()));
            w.extra_env.push((
                "XDG_RUNTIME_DIR".into(),
                t.path().join("nohome").display().to_string(),
            ));
            let manifest = format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: regcred, namespace: priv}}\ntype: {kind}\ndata:\n  {key}: {}\n---\n\
                 apiVersion: v1\nkind: Pod\nmetadata: {{name: with-secret, namespace: priv}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - name: c\n    image: {host}/private/busybox:1.30\n    command: [sleep, '300']\n---\n\
                 apiVersion: v1\nkind: Pod\nmetadata: {{name: without-secret, namespace: priv}}\nspec:\n  containers:\n  - name: c\n    image: {host}/private/busybox:1.30\n    imagePullPolicy: Always\n    command: [sleep, '300']\n",
                b64(value)
            );
            w.up_ok(&manifest);
            w.wait_status("priv", "with-secret", "Running", 60);
            w.wait_for(60, "without-secret fails to pull", || {
                let (_, status, _) = w.columns("priv", "without-secret");
                (status == "ErrImagePull" || status == "ImagePullBackOff").then_some(())
            });
            let d = w.describe("priv", "with-secret");
            assert!(
                d.contains("Successfully pulled image"),
                "{mode:?} {kind}: {d}"
            );
            let d2 = w.describe("priv", "without-secret");
            assert!(d2.contains("Failed to pull image"), "{d2}");
            for out in [&d, &d2] {
                assert!(
                    !out.contains(PASSWORD) && !out.contains(&auth),
                    "secret printed: {out}"
                );
            }
        }
    }
}
