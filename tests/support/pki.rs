//! A small PKI for fixtures, made with the openssl command line: a CA, server certificates for loopback
//! (SANs `IP:127.0.0.1` and `DNS:localhost`) and client certificates. Every private key is an UNENCRYPTED
//! PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`): Java's PEM keystore rejects PKCS#1 keys, and OpenSSL 3's
//! encrypted default fails on Java 17. Each certificate comes from a CSR and `openssl x509 -req` with an
//! explicit extension file, so the distribution's `openssl.cnf` does not decide what ends up in it.

use super::tools::system_tool;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kind of key generated for the CA and every certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 (prime256v1): small and fast to generate.
    EcP256,
    /// RSA, 2048 bits: what most Kafka installations use.
    Rsa2048,
}

/// A certificate and its private key, both PEM files.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// The certificate alone (not the chain).
    pub cert: PathBuf,
    /// Its unencrypted PKCS#8 private key.
    pub key: PathBuf,
}

/// A CA in a directory; issues certificates into the same directory as `<name>.crt` / `<name>.key`.
pub struct Pki {
    dir: PathBuf,
    openssl: PathBuf,
    algorithm: KeyAlgorithm,
    ca: IssuedCert,
}

impl Pki {
    /// Creates `dir` (if needed) and a self-signed CA in it (`ca.crt`, `ca.key`) with subject `/CN=<common_name>`,
    /// valid for 30 days.
    pub fn create(dir: &Path, common_name: &str, algorithm: KeyAlgorithm) -> Pki {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut pki = Pki {
            dir: dir.to_owned(),
            openssl: system_tool("openssl", "install it (Debian: apt-get install openssl)"),
            algorithm,
            ca: IssuedCert {
                cert: dir.join("ca.crt"),
                key: dir.join("ca.key"),
            },
        };
        pki.ca = pki.sign(
            "ca",
            &format!("/CN={common_name}"),
            "basicConstraints=critical,CA:TRUE\n\
             keyUsage=critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier=hash\n",
            None,
        );
        pki
    }

    /// The CA certificate (PEM): what clients and servers trust.
    pub fn ca_cert(&self) -> &Path {
        &self.ca.cert
    }

    /// The directory holding every file of this PKI.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A TLS server certificate for `subject` (e.g. `/CN=kafka`) with SANs `IP:127.0.0.1`, `DNS:localhost`
    /// and `extra_sans` (e.g. `DNS:kubernetes.default.svc`), signed by the CA.
    pub fn server_cert(&self, name: &str, subject: &str, extra_sans: &[&str]) -> IssuedCert {
        let sans = ["IP:127.0.0.1", "DNS:localhost"]
            .iter()
            .chain(extra_sans)
            .copied()
            .collect::<Vec<_>>()
            .join(",");
        self.issue(
            name,
            subject,
            &format!("extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n"),
        )
    }

    /// A TLS client certificate for `subject` (e.g. `/O=system:masters/CN=kgo-admin`), signed by the CA.
    pub fn client_cert(&self, name: &str, subject: &str) -> IssuedCert {
        self.issue(name, subject, "extendedKeyUsage=clientAuth\n")
    }

    /// A certificate for `subject` signed by the CA, with the extensions in `extensions` (openssl extension
    /// file syntax, one per line) besides `basicConstraints=CA:FALSE` and the key identifiers.
    pub fn issue(&self, name: &str, subject: &str, extensions: &str) -> IssuedCert {
        assert_ne!(name, "ca", "the name `ca` belongs to the CA itself");
        let extensions = format!(
            "basicConstraints=critical,CA:FALSE\n\
             subjectKeyIdentifier=hash\n\
             authorityKeyIdentifier=keyid\n\
             {extensions}"
        );
        self.sign(name, subject, &extensions, Some(&self.ca))
    }

    /// An RSA key pair (`<name>.key`, PKCS#8, and `<name>.pub`, SubjectPublicKeyInfo) not tied to any
    /// certificate, e.g. for signing service-account tokens.
    pub fn rsa_key_pair(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = format!("{name}.key");
        let public = format!("{name}.pub");
        self.generate_key(&key, KeyAlgorithm::Rsa2048);
        self.openssl(&["pkey", "-in", &key, "-pubout", "-out", &public]);
        (self.dir.join(key), self.dir.join(public))
    }

    /// Writes one PEM file holding `cert`'s key, `cert` and the CA certificate, in that order: the file Java's
    /// `ssl.keystore.type=PEM` keystore wants (one entry; the chain must follow the key).
    pub fn write_key_and_chain(&self, cert: &IssuedCert, path: &Path) {
        let mut bundle = String::new();
        for part in [&cert.key, &cert.cert, &self.ca.cert] {
            let text = std::fs::read_to_string(part).unwrap_or_else(|e| panic!("cannot read {}: {e}", part.display()));
            bundle.push_str(text.trim_end());
            bundle.push('\n');
        }
        std::fs::write(path, bundle).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Generates `<name>.key`, a CSR for `subject`, and `<name>.crt` signed by `issuer` (self-signed if `None`)
    /// with `extensions`, valid for 30 days.
    fn sign(&self, name: &str, subject: &str, extensions: &str, issuer: Option<&IssuedCert>) -> IssuedCert {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let ext = format!("{name}.ext");
        std::fs::write(self.dir.join(&ext), extensions).expect("write openssl extension file");
        self.generate_key(&key, self.algorithm);
        self.openssl(&["req", "-new", "-key", &key, "-subj", subject, "-out", &csr]);
        let signer = match issuer {
            Some(ca) => vec![
                "-CA".to_owned(),
                ca.cert.display().to_string(),
                "-CAkey".to_owned(),
                ca.key.display().to_string(),
                "-CAcreateserial".to_owned(),
            ],
            None => vec!["-signkey".to_owned(), key.clone()],
        };
        let mut x509 = vec![
            "x509", "-req", "-in", &csr, "-days", "30", "-extfile", &ext, "-out", &crt,
        ];
        x509.extend(signer.iter().map(String::as_str));
        self.openssl(&x509);
        IssuedCert {
            cert: self.dir.join(crt),
            key: self.dir.join(key),
        }
    }

    /// Writes an unencrypted PKCS#8 private key to `file` (relative to the PKI dir), and checks that it is one.
    fn generate_key(&self, file: &str, algorithm: KeyAlgorithm) {
        let params: &[&str] = match algorithm {
            KeyAlgorithm::EcP256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyAlgorithm::Rsa2048 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        };
        let mut args = vec!["genpkey"];
        args.extend(params);
        args.extend(["-out", file]);
        self.openssl(&args);
        let path = self.dir.join(file);
        let pem = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "openssl genpkey wrote {} in a format other than unencrypted PKCS#8 (first line {:?})",
            path.display(),
            pem.lines().next().unwrap_or_default()
        );
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new(&self.openssl)
            .current_dir(&self.dir)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.openssl.display()));
        assert!(
            out.status.success(),
            "openssl {} failed ({}) in {}: {}",
            args.join(" "),
            out.status,
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
