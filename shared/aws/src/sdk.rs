//! The AWS SDK configuration each function loads once at init.
//!
//! The SDK's default HTTPS client reads and parses the system's root bundle
//! (about 150 certificates) when it is built: 4–7 ms of every cold start,
//! most of a function's init time (docs/PERFORMANCE.md). The functions only
//! ever talk to AWS service endpoints, whose certificates chain to the
//! Amazon Trust Services roots, so their SDK clients trust exactly those,
//! compiled in. Credentials and region are read from the environment when
//! it has them (it always does on Lambda), `AWS_ENDPOINT_URL` as usual; a
//! plain-HTTP endpoint (an emulator) needs no roots at all.

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

/// Amazon Root CA 1–4 and Starfield Services Root CA G2, as PEM.
const AMAZON_TRUST_SERVICES: &str = include_str!("amazon-trust-services.pem");

/// The SDK configuration from the environment, with an HTTPS client that
/// trusts the Amazon Trust Services roots.
pub async fn load() -> aws_config::SdkConfig {
    let roots = TrustStore::empty().with_native_roots(false).with_pem_certificate(AMAZON_TRUST_SERVICES);
    let context = TlsContext::builder().with_trust_store(roots).build().expect("a trust store without native roots");
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https);
    // Lambda puts the function's credentials and region in the environment:
    // read them from there rather than building the default chains (IMDS,
    // ECS, SSO, web identity, profile files) at every cold start. Anywhere
    // else the default chains apply.
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() && std::env::var_os("AWS_SECRET_ACCESS_KEY").is_some() {
        loader = loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
    }
    if let Ok(region) = std::env::var("AWS_REGION") {
        loader = loader.region(aws_config::Region::new(region));
    }
    loader.load().await
}

/// What the functions send deliveries with: HTTP through the SSRF-guarded
/// sender, an ARN through the SDK ([`hookflow_destinations`]).
pub type Sender = hookflow_destinations::Outbound<hookflow_io::Sender>;

/// The functions' sender: private targets as `config` allows them, the
/// AWS destinations it allows, with the SDK configuration `sdk`.
pub fn sender(sdk: &aws_config::SdkConfig, config: &crate::AwsConfig) -> Result<Sender, hookflow_io::Error> {
    let policy = hookflow_core::ssrf::TargetPolicy::allowing(config.allow_private_targets.clone());
    sender_with(sdk, policy, config.subscriptions.destinations.clone())
}

/// A sender to the targets `policy` allows and the AWS destinations
/// `allowed`.
pub fn sender_with(
    sdk: &aws_config::SdkConfig,
    policy: hookflow_core::ssrf::TargetPolicy,
    allowed: hookflow_core::destination::Allowed,
) -> Result<Sender, hookflow_io::Error> {
    Ok(Sender {
        http: hookflow_io::Sender::new(policy)?,
        aws: hookflow_destinations::Destinations::new(sdk.clone(), allowed),
    })
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn the_compiled_in_roots_are_the_five_amazon_trust_services_certificates() {
        let certs = CertificateDer::pem_slice_iter(super::AMAZON_TRUST_SERVICES.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("valid PEM");
        assert_eq!(certs.len(), 5);
        let mut roots = rustls::RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(certs);
        assert_eq!((added, ignored), (5, 0), "every root parses as a trust anchor");
    }
}
