//! Reading a reqwest error by its sources, never by its message.

use std::error::Error as StdError;

/// `e` and its sources as one line (`a: b: c`), each cause once.
pub fn error_chain(e: &(dyn StdError + 'static)) -> String {
    chain(Some(e))
}

/// The causes of `e` as one line, without `e`'s own text when it has a source (reqwest's top
/// line, "error sending request for url (…)", repeats what the caller already names); `e`'s
/// text alone when it has none.
pub fn cause_chain(e: &(dyn StdError + 'static)) -> String {
    match e.source() {
        Some(_) => chain(e.source()),
        None => e.to_string(),
    }
}

fn chain(first: Option<&(dyn StdError + 'static)>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = first;
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Whether the TLS handshake behind `e` failed on a certificate (the peer's was refused, or
/// it refused ours): a rustls error of the certificate kinds somewhere in the source chain,
/// including inside an `io::Error`.
pub fn is_certificate_error(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(s) = cur {
        let tls = s.downcast_ref::<rustls::Error>().or_else(|| {
            s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::AlertReceived(
                        rustls::AlertDescription::BadCertificate
                            | rustls::AlertDescription::UnknownCA
                            | rustls::AlertDescription::CertificateRequired
                            | rustls::AlertDescription::CertificateRevoked
                            | rustls::AlertDescription::CertificateExpired
                            | rustls::AlertDescription::CertificateUnknown
                            | rustls::AlertDescription::UnsupportedCertificate
                            | rustls::AlertDescription::AccessDenied
                    )
            );
        }
        cur = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(Box<dyn StdError + Send + Sync>);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn certificate_errors_are_found_by_kind_inside_io_errors() {
        let bad = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let e = Wrap(Box::new(std::io::Error::other(bad)));
        assert!(is_certificate_error(&e));
        let refused = Wrap(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(!is_certificate_error(&refused));
        let other = Wrap(Box::new(std::io::Error::other(rustls::Error::DecryptError)));
        assert!(!is_certificate_error(&other));
        assert_eq!(
            error_chain(&e),
            "client error (Connect): invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(cause_chain(&e), "invalid peer certificate: UnknownIssuer");
        assert_eq!(cause_chain(&refused), "connection refused");
    }
}
