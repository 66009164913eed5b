//! A real Kubernetes control plane, the way controller-runtime's envtest runs one: etcd and kube-apiserver
//! on free loopback ports, with a generated PKI, an admin client certificate (`O=system:masters`), RBAC on and
//! service-account token signing (so real ServiceAccount tokens work). No kubelet, scheduler or
//! controller-manager: Deployments get no pods, namespaces are not finalized, nothing is garbage-collected.

use super::process::{fixture_dir, free_port, spawn_tied, stop, tail, wait_until};
use super::tools::{k8s_tool, system_tool};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    server: String,
    etcd: Mutex<Child>,
    apiserver: Mutex<Child>,
    keep_dir: bool,
}

impl ControlPlane {
    /// One control plane for the whole test binary, started on first use and killed when the binary exits.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        SHARED.get_or_init(|| {
            let mut cp = ControlPlane::start();
            cp.keep_dir = true; // statics are never dropped; the next run's fixture_dir() cleans it up
            cp
        })
    }

    /// Starts a private control plane, stopped (apiserver first, then etcd) when dropped.
    pub fn start() -> ControlPlane {
        let etcd_bin = k8s_tool("etcd");
        let apiserver_bin = k8s_tool("kube-apiserver");
        let dir = fixture_dir("controlplane");
        let pki = dir.join("pki");
        std::fs::create_dir_all(&pki).expect("create pki dir");
        make_pki(&pki);

        let etcd_port = free_port();
        let peer_port = free_port();
        let etcd_log = dir.join("etcd.log");
        let mut etcd_cmd = Command::new(&etcd_bin);
        etcd_cmd.args([
            "--name=default".to_owned(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ]);
        let mut etcd = spawn_tied(etcd_cmd, &etcd_log);
        wait_until("etcd", &mut etcd, &etcd_log, Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", etcd_port)).is_ok()
        });

        let port = free_port();
        let server = format!("https://127.0.0.1:{port}");
        let api_log = dir.join("kube-apiserver.log");
        let p = |f: &str| pki.join(f).display().to_string();
        let mut api_cmd = Command::new(&apiserver_bin);
        api_cmd.args([
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            // Without this, a loopback advertise address makes the apiserver crash on start.
            "--endpoint-reconciler-type=none".to_owned(),
            format!("--secure-port={port}"),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            format!("--service-account-issuer={server}"),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--authorization-mode=RBAC".to_owned(),
            "--disable-admission-plugins=ServiceAccount".to_owned(),
            "--allow-privileged=true".to_owned(),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            "--v=1".to_owned(),
        ]);
        let mut apiserver = spawn_tied(api_cmd, &api_log);

        let kubeconfig = dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &server, &pki);
        let kubectl = k8s_tool("kubectl");
        wait_until(
            "kube-apiserver",
            &mut apiserver,
            &api_log,
            Duration::from_secs(90),
            || {
                Command::new(&kubectl)
                    .arg(format!("--kubeconfig={}", kubeconfig.display()))
                    .args(["get", "--raw=/readyz", "--request-timeout=2s"])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            },
        );
        ControlPlane {
            dir,
            kubeconfig,
            server,
            etcd: Mutex::new(etcd),
            apiserver: Mutex::new(apiserver),
            keep_dir: false,
        }
    }

    /// Path of an admin kubeconfig (client certificate in `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Directory with the PKI, data and logs of this instance.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A kube-rs client with admin rights.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("kubeconfig to config");
        kube::Client::try_from(config).expect("kube client")
    }

    /// Runs kubectl against this control plane.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(k8s_tool("kubectl"))
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// Creates a namespace with a unique name for one test and returns the name.
    pub async fn fresh_namespace(&self, client: &kube::Client, prefix: &str) -> String {
        use k8s_openapi::api::core::v1::Namespace;
        let name = super::unique_name(prefix);
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        kube::Api::<Namespace>::all(client.clone())
            .create(&Default::default(), &ns)
            .await
            .expect("create namespace");
        name
    }

    /// The last lines of the apiserver's log, for failure messages.
    pub fn apiserver_log_tail(&self, lines: usize) -> String {
        tail(&self.dir.join("kube-apiserver.log"), lines)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // The apiserver first: with etcd gone first, the apiserver ignores SIGTERM.
        if let Ok(mut child) = self.apiserver.lock() {
            stop(&mut child, Duration::from_secs(10));
        }
        if let Ok(mut child) = self.etcd.lock() {
            stop(&mut child, Duration::from_secs(5));
        }
        if std::thread::panicking() || self.keep_dir {
            eprintln!("control plane logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A CA, an apiserver serving certificate (SANs 127.0.0.1 and localhost), an admin client certificate and a
/// service-account signing key, made with the openssl command line.
fn make_pki(pki: &Path) {
    let openssl = system_tool("openssl", "install it (Debian: apt-get install openssl)");
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .current_dir(pki)
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "30",
        "-subj",
        "/CN=kgo-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ];
    ca.extend(ec);
    run(&ca);
    for (name, subj, ext) in [
        (
            "apiserver",
            "/CN=kube-apiserver",
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "admin",
            "/O=system:masters/CN=kgo-admin",
            "extendedKeyUsage=clientAuth\n",
        ),
    ] {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let extfile = format!("{name}.ext");
        std::fs::write(pki.join(&extfile), ext).expect("write ext file");
        let mut req = vec!["req", "-new", "-subj", subj, "-keyout", &key, "-out", &csr];
        req.extend(ec);
        run(&req);
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &extfile,
            "-out",
            &crt,
        ]);
    }
    run(&["genrsa", "-out", "sa.key", "2048"]);
    run(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

fn write_kubeconfig(path: &Path, server: &str, pki: &Path) {
    let file = |f: &str| pki.join(f).display().to_string();
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kgo-test\n  cluster:\n    server: {server}\n    \
         certificate-authority: {}\nusers:\n- name: kgo-admin\n  user:\n    client-certificate: {}\n    \
         client-key: {}\ncontexts:\n- name: kgo-test\n  context:\n    cluster: kgo-test\n    user: kgo-admin\n\
         current-context: kgo-test\n",
        file("ca.crt"),
        file("admin.crt"),
        file("admin.key"),
    );
    std::fs::write(path, config).expect("write kubeconfig");
}
