//! The principal name of a client certificate on an SSL listener that requires one: the CN of its subject,
//! read from the DER of a certificate rustls has already verified (Certificate → TBSCertificate → subject).

/// Why a verified client certificate names no principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateNameError {
    #[error("the client certificate's subject has no CN (common name), which names its user")]
    NoCommonName,
    #[error("the client certificate's subject has {0} CNs (common names): which one names the user is ambiguous")]
    SeveralCommonNames(usize),
    #[error("the client certificate's CN is not a user name: 1 to 255 bytes of text without control characters")]
    InvalidCommonName,
    #[error("the client certificate cannot be read: {0}")]
    Malformed(&'static str),
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// `[0] EXPLICIT Version`, absent from v1 certificates.
const VERSION: u8 = 0xa0;
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The CN of `certificate`'s subject (DER): the one CN attribute, in any RDN. Its value must be a user name.
pub fn common_name(certificate: &[u8]) -> Result<String, CertificateNameError> {
    let certificate = Der(certificate).only(SEQUENCE, "Certificate")?;
    let mut tbs = Der(certificate).expect(SEQUENCE, "TBSCertificate")?;
    if tbs.peek() == Some(VERSION) {
        tbs.any("version")?;
    }
    for field in ["serialNumber", "signature", "issuer", "validity"] {
        tbs.any(field)?;
    }
    let mut subject = tbs.expect(SEQUENCE, "subject")?;
    let mut names = Vec::new();
    while !subject.is_empty() {
        let mut rdn = subject.expect(SET, "RelativeDistinguishedName")?;
        while !rdn.is_empty() {
            let mut attribute = rdn.expect(SEQUENCE, "AttributeTypeAndValue")?;
            let kind = attribute.expect(OID, "attribute type")?;
            let value = attribute.any("attribute value")?;
            if kind.0 == COMMON_NAME {
                names.push(value);
            }
        }
    }
    match names.as_slice() {
        [] => Err(CertificateNameError::NoCommonName),
        [(tag, value)] => text(*tag, value)
            .filter(|name| super::users::valid_name(name))
            .ok_or(CertificateNameError::InvalidCommonName),
        several => Err(CertificateNameError::SeveralCommonNames(several.len())),
    }
}

/// A DirectoryString (or IA5String) as text; None for another type or an invalid encoding.
fn text(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String
        0x0c => String::from_utf8(value.to_vec()).ok(),
        // PrintableString, IA5String
        0x13 | 0x16 => value.is_ascii().then(|| value.iter().map(|b| char::from(*b)).collect()),
        // TeletexString, read as Latin-1 like OpenSSL and Java do
        0x14 => Some(value.iter().map(|b| char::from(*b)).collect()),
        // BMPString: UTF-16BE
        0x1e if value.len().is_multiple_of(2) => {
            let units = value.chunks_exact(2).map(|u| u16::from_be_bytes([u[0], u[1]]));
            char::decode_utf16(units).collect::<Result<String, _>>().ok()
        }
        // UniversalString: UTF-32BE
        0x1c if value.len().is_multiple_of(4) => value
            .chunks_exact(4)
            .map(|u| char::from_u32(u32::from_be_bytes([u[0], u[1], u[2], u[3]])))
            .collect(),
        _ => None,
    }
}

/// DER elements one after another (definite lengths, single-byte tags: all a certificate's structure uses);
/// every length is checked against the bytes left, so nothing is read out of bounds or allocated by it.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next element: its tag and content.
    fn any(&mut self, what: &'static str) -> Result<(u8, &'a [u8]), CertificateNameError> {
        let malformed = || CertificateNameError::Malformed(what);
        let (&tag, rest) = self.0.split_first().ok_or_else(malformed)?;
        if tag & 0x1f == 0x1f {
            return Err(malformed()); // a multi-byte tag
        }
        let (&first, mut rest) = rest.split_first().ok_or_else(malformed)?;
        let length = match first {
            n if n < 0x80 => usize::from(n),
            0x81..=0x84 => {
                let count = usize::from(first & 0x7f);
                if rest.len() < count {
                    return Err(malformed());
                }
                let (bytes, after) = rest.split_at(count);
                rest = after;
                bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
            }
            // Indefinite (0x80) or longer than any certificate.
            _ => return Err(malformed()),
        };
        if rest.len() < length {
            return Err(malformed());
        }
        let (content, after) = rest.split_at(length);
        self.0 = after;
        Ok((tag, content))
    }

    /// The next element, which must have `tag`: its content.
    fn expect(&mut self, tag: u8, what: &'static str) -> Result<Der<'a>, CertificateNameError> {
        match self.any(what)? {
            (found, content) if found == tag => Ok(Der(content)),
            _ => Err(CertificateNameError::Malformed(what)),
        }
    }

    /// The only element, which must have `tag`: its content.
    fn only(mut self, tag: u8, what: &'static str) -> Result<&'a [u8], CertificateNameError> {
        let content = self.expect(tag, what)?;
        if !self.is_empty() {
            return Err(CertificateNameError::Malformed(what));
        }
        Ok(content.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    /// `openssl x509 -req` (a v1 certificate, no version field) for `/C=DE/O=kgo/OU=team/CN=alice`, issued by
    /// `/CN=kgo-test-ca`.
    const ALICE: &str = "-----BEGIN CERTIFICATE-----
MIIBTDCB8wIUPql1fSwelCp46k48C8OKZ6MQJzUwCgYIKoZIzj0EAwIwFjEUMBIG
A1UEAwwLa2dvLXRlc3QtY2EwIBcNMjYxMjA3MDgwMDU5WhgPMjEyNjExMTMwODAw
NTlaMDoxCzAJBgNVBAYTAkRFMQwwCgYDVQQKDANrZ28xDTALBgNVBAsMBHRlYW0x
DjAMBgNVBAMMBWFsaWNlMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEzY8m9Bgz
5tfMPFxmbbSkZKSFOXnmgmH/7aUta6F8np5/LCrYRovuuNZVaMCdUIIvMHZ9XniT
NkUAMSwqkzV4zDAKBggqhkjOPQQDAgNIADBFAiAXjpb00UD/JjoO4leQgVCMkUgA
LYXdSkHwpA/U+emQ4AIhAP0rGkZep0f3vjJHOFfa1KSMNfPPu5RA/8kk/w3sH8EK
-----END CERTIFICATE-----";

    /// The same issuer (whose subject has a CN) for `/O=kgo/OU=no-common-name`.
    const NO_CN: &str = "-----BEGIN CERTIFICATE-----
MIIBOTCB4AIUPql1fSwelCp46k48C8OKZ6MQJzYwCgYIKoZIzj0EAwIwFjEUMBIG
A1UEAwwLa2dvLXRlc3QtY2EwIBcNMjYxMjA3MDgwMDU5WhgPMjEyNjExMTMwODAw
NTlaMCcxDDAKBgNVBAoMA2tnbzEXMBUGA1UECwwObm8tY29tbW9uLW5hbWUwWTAT
BgcqhkjOPQIBBggqhkjOPQMBBwNCAATNjyb0GDPm18w8XGZttKRkpIU5eeaCYf/t
pS1roXyenn8sKthGi+641lVowJ1Qgi8wdn1eeJM2RQAxLCqTNXjMMAoGCCqGSM49
BAMCA0gAMEUCIHLMCo+YIPhpPrWL6B9co6vPTSesrL1CSB1Hfliqx/NxAiEAp+uy
WPSbdesPZIN3UcIYhd1xIWB7B1YQ5pnocmp4L8c=
-----END CERTIFICATE-----";

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM").to_vec()
    }

    /// A DER element; lengths in short or long form as DER requires.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n <= 0xff => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;
    const BMP: u8 = 0x1e;

    fn attribute(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        tlv(0x30, &[tlv(0x06, oid), tlv(tag, value)].concat())
    }

    /// A v3 certificate whose subject is these RDNs (each a SET of attributes); signature and key are dummies.
    fn certificate(rdns: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let name = |rdns: &[Vec<Vec<u8>>]| {
            let sets: Vec<u8> = rdns.iter().flat_map(|rdn| tlv(0x31, &rdn.concat())).collect();
            tlv(0x30, &sets)
        };
        let algorithm = tlv(0x30, &tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]));
        let tbs = [
            tlv(0xa0, &tlv(0x02, &[2])),
            tlv(0x02, &[1]),
            algorithm.clone(),
            name(&[vec![attribute(CN, UTF8, b"issuing-ca")]]),
            tlv(
                0x30,
                &[tlv(0x17, b"260101000000Z"), tlv(0x17, b"360101000000Z")].concat(),
            ),
            name(rdns),
            tlv(0x30, &[algorithm.clone(), tlv(0x03, &[0, 4, 1, 2])].concat()),
        ]
        .concat();
        tlv(0x30, &[tlv(0x30, &tbs), algorithm, tlv(0x03, &[0, 1, 2, 3])].concat())
    }

    #[test]
    fn the_cn_of_an_openssl_certificate_is_read_from_its_subject() {
        assert_eq!(common_name(&der(ALICE)), Ok("alice".to_owned()));
    }

    #[test]
    fn a_subject_without_a_cn_names_nobody_even_if_its_issuer_has_one() {
        assert_eq!(common_name(&der(NO_CN)), Err(CertificateNameError::NoCommonName));
    }

    #[test]
    fn the_cn_is_found_wherever_it_is_in_the_subject_and_in_a_multi_valued_rdn() {
        let last = certificate(&[vec![attribute(O, UTF8, b"kgo")], vec![attribute(CN, UTF8, b"bob")]]);
        assert_eq!(common_name(&last), Ok("bob".to_owned()));
        let first = certificate(&[vec![attribute(CN, PRINTABLE, b"bob")], vec![attribute(O, UTF8, b"kgo")]]);
        assert_eq!(common_name(&first), Ok("bob".to_owned()));
        let multi_valued = certificate(&[vec![attribute(O, UTF8, b"kgo"), attribute(CN, UTF8, b"bob")]]);
        assert_eq!(common_name(&multi_valued), Ok("bob".to_owned()));
    }

    #[test]
    fn text_is_decoded_from_utf8_and_bmp_strings() {
        let utf8 = certificate(&[vec![attribute(CN, UTF8, "jürgen".as_bytes())]]);
        assert_eq!(common_name(&utf8), Ok("jürgen".to_owned()));
        let bmp: Vec<u8> = "jürgen".encode_utf16().flat_map(u16::to_be_bytes).collect();
        let bmp = certificate(&[vec![attribute(CN, BMP, &bmp)]]);
        assert_eq!(common_name(&bmp), Ok("jürgen".to_owned()));
    }

    #[test]
    fn two_cns_are_ambiguous_and_refused() {
        let two = certificate(&[vec![attribute(CN, UTF8, b"alice")], vec![attribute(CN, UTF8, b"admin")]]);
        assert_eq!(common_name(&two), Err(CertificateNameError::SeveralCommonNames(2)));
    }

    #[test]
    fn a_cn_that_is_no_user_name_is_refused() {
        for value in [&b""[..], b"alice\nUser:admin", &[b'a'; 256], &[0xff, 0xfe]] {
            let cert = certificate(&[vec![attribute(CN, UTF8, value)]]);
            assert_eq!(
                common_name(&cert),
                Err(CertificateNameError::InvalidCommonName),
                "{value:?}"
            );
        }
        let integer = certificate(&[vec![attribute(CN, 0x02, b"\x01")]]);
        assert_eq!(common_name(&integer), Err(CertificateNameError::InvalidCommonName));
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        let alice = der(ALICE);
        for end in 0..alice.len() {
            assert!(common_name(&alice[..end]).is_err(), "{end} bytes");
        }
        // An indefinite length, and a length beyond the input.
        assert!(common_name(&[0x30, 0x80, 0x00, 0x00]).is_err());
        assert!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_an_answer_not_a_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = common_name(&bytes);
        }
    }
}
