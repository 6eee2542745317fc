//! Registry pulls that authenticate: Basic (docker-registry's htpasswd), Bearer (its token
//! auth, with a token service the test runs) and HTTPS verified against a given CA.

#[path = "common/registry_fixtures/mod.rs"]
mod fixtures;

use bulkhead_builder::registry::{Auth, RegistryError};
use fixtures::image;
use fixtures::pull::*;
use fixtures::server::{self, Registry, RegistryAuth, skopeo_push};
use fixtures::token::{self, TokenService};

#[tokio::test]
async fn basic_auth_pulls_with_the_password_and_refuses_a_wrong_one() {
    if !server::tools_present() {
        return;
    }
    let registry = Registry::start(RegistryAuth::Htpasswd {
        username: USER.to_owned(),
        password: PASSWORD.to_owned(),
    });
    let layout = image::single(6, "v1");
    let creds = format!("{USER}:{PASSWORD}");
    let dest = push(&layout, &registry, "test/basic", &["--dest-creds", &creds]);
    let cache = tempfile::tempdir().expect("tempdir");
    let r = reference(&dest);

    let (pulled, _) = pull_ok(&r, &amd64(basic(PASSWORD)), cache.path()).await;
    check_layout(&pulled, &layout.images[0], Some("v1"));

    let fresh = tempfile::tempdir().expect("tempdir");
    let (result, _) = pull(&r, &amd64(basic("wrong")), fresh.path()).await;
    let err = result.expect_err("a wrong password is refused");
    assert!(
        matches!(err, RegistryError::CredentialsRefused { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the registry {} refused the credentials for test/basic",
            registry.addr
        )
    );
    assert!(!format!("{err:?}").contains("wrong"));

    let (result, _) = pull(&r, &amd64(Auth::Anonymous), fresh.path()).await;
    let err = result.expect_err("no credentials is refused");
    assert!(
        matches!(err, RegistryError::CredentialsRequired { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn bearer_tokens_from_the_token_service_are_used_and_refusals_named() {
    if !server::tools_present() {
        return;
    }
    let tokens = TokenService::start(USER, PASSWORD).await;
    let registry = Registry::start(RegistryAuth::Token {
        realm: tokens.realm.clone(),
        service: token::SERVICE.to_owned(),
        issuer: token::ISSUER.to_owned(),
        cert_pem: tokens.cert_pem.clone(),
    });
    let layout = image::single(7, "v1");
    let creds = format!("{USER}:{PASSWORD}");
    let src = layout.skopeo_src();
    let dest = format!("{}/test/bearer:v1", registry.addr);
    // skopeo blocks; the token service runs on this runtime.
    tokio::task::spawn_blocking(move || skopeo_push(&src, &dest, &["--dest-creds", &creds]))
        .await
        .expect("push");
    let cache = tempfile::tempdir().expect("tempdir");
    let r = reference(&format!("{}/test/bearer:v1", registry.addr));

    let (pulled, _) = pull_ok(&r, &amd64(basic(PASSWORD)), cache.path()).await;
    check_layout(&pulled, &layout.images[0], Some("v1"));
    // The registry verified the token this client presented.
    let log = registry.log_text();
    assert!(
        log.lines().any(|l| l.contains("authorized request")
            && l.contains("http.request.method=GET")
            && l.contains("/v2/test/bearer/manifests/v1")
            && l.contains("useragent=bulkhead/")),
        "registry log:\n{log}"
    );

    let fresh = tempfile::tempdir().expect("tempdir");
    let (result, _) = pull(&r, &amd64(basic("wrong")), fresh.path()).await;
    let err = result.expect_err("a wrong password is refused");
    assert_eq!(
        err.to_string(),
        format!(
            "the registry {} refused the credentials for test/bearer",
            registry.addr
        )
    );
    // Anonymous: the service hands out a token that grants nothing, and the registry says no.
    let (result, _) = pull(&r, &amd64(Auth::Anonymous), fresh.path()).await;
    let err = result.expect_err("an anonymous pull is refused");
    assert!(
        matches!(err, RegistryError::CredentialsRequired { .. }),
        "{err:?}; registry log:\n{}",
        registry.log_text()
    );
}

/// HTTPS, the transport of every registry off this machine: verified against the given CA,
/// and a registry whose certificate no trusted CA signed is refused as unreachable.
#[tokio::test]
async fn https_registries_are_verified_against_the_given_ca() {
    if !server::tools_present() {
        return;
    }
    let (ca, cert, key) = token::loopback_tls();
    let registry = Registry::start_tls(RegistryAuth::None, (&cert, &key));
    let layout = image::single(16, "v1");
    let dest = push(&layout, &registry, "test/tls", &[]);
    let r = reference(&dest);
    let cache = tempfile::tempdir().expect("tempdir");

    let mut opts = amd64(Auth::Anonymous);
    opts.ca_certificates = vec![ca];
    let (pulled, _) = pull_ok(&r, &opts, cache.path()).await;
    check_layout(&pulled, &layout.images[0], Some("v1"));

    let (other_ca, _, _) = token::loopback_tls();
    opts.ca_certificates = vec![other_ca];
    let (result, _) = pull(&r, &opts, cache.path()).await;
    let err = result.expect_err("an untrusted certificate is refused");
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("registry {0} is unreachable at https://{0}", registry.addr)
    );

    opts.ca_certificates = vec!["not a certificate".to_owned()];
    let (result, _) = pull(&r, &opts, cache.path()).await;
    assert!(
        matches!(result, Err(RegistryError::InvalidCertificate { .. })),
        "{result:?}"
    );
}
