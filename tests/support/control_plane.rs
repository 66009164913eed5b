//! A real Kubernetes control plane, the way controller-runtime's envtest runs one: etcd and kube-apiserver
//! on free loopback ports, with a generated PKI, an admin client certificate (`O=system:masters`), RBAC on and
//! service-account token signing (so real ServiceAccount tokens work). No kubelet, scheduler or
//! controller-manager: Deployments get no pods, namespaces are not finalized, nothing is garbage-collected.

use super::pki::{IssuedCert, KeyAlgorithm, Pki};
use super::process::{fixture_dir, free_port, spawn_tied, stop, tail, wait_until};
use super::tools::k8s_tool;
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
    /// The kube-apiserver binary and its flags, to start it again exactly as it was (`start_apiserver`).
    apiserver_cmd: (PathBuf, Vec<String>),
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
        // EC P-256 keys for the CA and the certificates, RSA for signing service-account tokens.
        let pki = Pki::create(&dir.join("pki"), "kgo-test-ca", KeyAlgorithm::EcP256);
        let serving = pki.server_cert("apiserver", "/CN=kube-apiserver", &["DNS:kubernetes.default.svc"]);
        let admin = pki.client_cert("admin", "/O=system:masters/CN=kgo-admin");
        let (sa_key, sa_pub) = pki.rsa_key_pair("sa");

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
        let api_args = vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            // Without this, a loopback advertise address makes the apiserver crash on start.
            "--endpoint-reconciler-type=none".to_owned(),
            format!("--secure-port={port}"),
            format!("--tls-cert-file={}", serving.cert.display()),
            format!("--tls-private-key-file={}", serving.key.display()),
            format!("--client-ca-file={}", pki.ca_cert().display()),
            format!("--service-account-issuer={server}"),
            format!("--service-account-key-file={}", sa_pub.display()),
            format!("--service-account-signing-key-file={}", sa_key.display()),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--authorization-mode=RBAC".to_owned(),
            "--disable-admission-plugins=ServiceAccount".to_owned(),
            "--allow-privileged=true".to_owned(),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            "--v=1".to_owned(),
        ];
        let mut api_cmd = Command::new(&apiserver_bin);
        api_cmd.args(&api_args);
        let mut apiserver = spawn_tied(api_cmd, &api_log);

        let kubeconfig = dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &server, pki.ca_cert(), &admin);
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
            apiserver_cmd: (apiserver_bin, api_args),
            keep_dir: false,
        }
    }

    /// An outage: kills the kube-apiserver (SIGKILL, no graceful shutdown) and waits until its port is
    /// closed. etcd keeps running, so `start_apiserver` brings back the same state. Blocks; from async code
    /// call it in `tokio::task::block_in_place`. Only for a private control plane (`start()`), never the shared
    /// one.
    pub fn stop_apiserver(&self) {
        let mut child = self.apiserver.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        let port = self.port();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the kube-apiserver's port {port} is still open after it was killed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the kube-apiserver again, on the same port with the same flags (a no-op if it runs), and waits
    /// until `/readyz` answers. Blocks, like `stop_apiserver`.
    pub fn start_apiserver(&self) {
        let mut child = self.apiserver.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(child.try_wait(), Ok(None)) {
            return;
        }
        let api_log = self.dir.join("kube-apiserver.log");
        let (bin, args) = &self.apiserver_cmd;
        // The port may linger for a moment after the kill: retry the start until it binds.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let mut cmd = Command::new(bin);
            cmd.args(args);
            *child = spawn_tied(cmd, &api_log);
            let started = std::time::Instant::now();
            let mut ready = false;
            while started.elapsed() < Duration::from_secs(60) {
                if self.ready() {
                    ready = true;
                    break;
                }
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if ready {
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                std::time::Instant::now() < deadline,
                "the kube-apiserver did not start again; log {}:\n{}",
                api_log.display(),
                tail(&api_log, 40)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `stop_apiserver`, `down` of outage, `start_apiserver`; returns how long the API was unreachable.
    /// Blocks, like `stop_apiserver`.
    pub fn restart_apiserver(&self, down: Duration) -> Duration {
        let began = std::time::Instant::now();
        self.stop_apiserver();
        std::thread::sleep(down);
        self.start_apiserver();
        began.elapsed()
    }

    /// A kubeconfig in `dir` with only a token of ServiceAccount `sa` in `ns` (valid for an hour): a client
    /// certificate next to a token would win, so this one has none.
    pub fn token_kubeconfig(&self, dir: &Path, ns: &str, sa: &str) -> PathBuf {
        let out = self.kubectl(&["create", "token", sa, "-n", ns, "--duration=1h"]);
        assert!(
            out.status.success(),
            "kubectl create token {sa}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let path = dir.join(format!("{sa}.kubeconfig"));
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    \
             certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: c\n  \
             context:\n    cluster: c\n    user: sa\n    namespace: {ns}\ncurrent-context: c\n",
            self.server,
            self.dir.join("pki/ca.crt").display(),
        );
        std::fs::write(&path, config).expect("write kubeconfig");
        path
    }

    /// Whether `/readyz` answers now.
    pub fn ready(&self) -> bool {
        Command::new(k8s_tool("kubectl"))
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(["get", "--raw=/readyz", "--request-timeout=2s"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn port(&self) -> u16 {
        self.server
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the server URL has a port")
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

fn write_kubeconfig(path: &Path, server: &str, ca: &Path, admin: &IssuedCert) {
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kgo-test\n  cluster:\n    server: {server}\n    \
         certificate-authority: {}\nusers:\n- name: kgo-admin\n  user:\n    client-certificate: {}\n    \
         client-key: {}\ncontexts:\n- name: kgo-test\n  context:\n    cluster: kgo-test\n    user: kgo-admin\n\
         current-context: kgo-test\n",
        ca.display(),
        admin.cert.display(),
        admin.key.display(),
    );
    std::fs::write(path, config).expect("write kubeconfig");
}
