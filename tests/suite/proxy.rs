//! Proxies against the real ones `scripts/interop/start.sh` runs: Dante (SOCKS5 with
//! RFC 1929 username/password against a throwaway system account) and tinyproxy (HTTP
//! CONNECT with Basic credentials), delivering through the real Postfix with STARTTLS +
//! AUTH and with implicit TLS. TLS runs end to end through the tunnel: the client
//! verifies Postfix's certificate for `localhost`, while the proxy is addressed as
//! `127.0.0.1`. Failures name the proxy step and never show the proxy password.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smtpkit::connect::{ConnectError, Proxy, ProxyReason, ProxyStep};
use smtpkit::{Client, ClientBuilder, Credentials, Envelope, Error, TlsPolicy};

use crate::support::interop::{self, ProxyServer, Server};

fn marker(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{test}-{nanos}")
}

/// Postfix and the chosen proxy, or a loud skip.
fn servers(test: &str, proxy: fn() -> Option<ProxyServer>) -> Option<(Server, ProxyServer)> {
    let pf = interop::postfix_or_skip(test)?;
    Some((pf, proxy().expect("proxy environment present with Postfix's")))
}

fn builder(pf: &Server, addr: SocketAddr, tls: TlsPolicy) -> ClientBuilder {
    Client::builder("localhost")
        .port(addr.port())
        .tls(tls)
        .without_native_roots()
        .add_root_pem_file(&pf.ca_pem_path)
        .expect("test CA")
        .credentials(Credentials::new(pf.user.clone(), pf.password.clone()))
        .timeouts(smtpkit::Timeouts::uniform(Duration::from_secs(20)))
}

fn socks(p: &ProxyServer) -> Proxy {
    Proxy::socks5(p.addr.ip().to_string(), p.addr.port()).credentials(&p.user, &p.password)
}

fn http(p: &ProxyServer) -> Proxy {
    Proxy::http(p.addr.ip().to_string(), p.addr.port()).credentials(&p.user, &p.password)
}

/// Sends one message and checks Postfix delivered it.
async fn deliver(pf: &Server, builder: ClientBuilder, test: &str) {
    let mut client = builder.connect().await.unwrap_or_else(|e| panic!("{test}: {e}"));
    assert!(client.is_tls(), "{test}: TLS through the tunnel");
    let marker = marker(test);
    let envelope = Envelope::parse("sender@example.test", &["rcpt@example.test"]).unwrap();
    let body = format!("Subject: {marker}\r\n\r\nthrough a proxy\r\n");
    client.send(&envelope, body).await.unwrap_or_else(|e| panic!("{test}: {e}"));
    client.quit().await.unwrap();
    let found = interop::wait_for_recipients(pf, &marker, &["rcpt@example.test"], Duration::from_secs(20));
    assert!(!found.is_empty(), "{test}: not delivered");
}

/// The proxy error inside `e`, after checking that no form of it shows `secret`.
fn proxy_error(e: &Error, secret: &str) -> (ProxyStep, ProxyReason) {
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(secret), "proxy password leaked: {shown}");
    match e {
        Error::Connect(ConnectError::Proxy(p)) => (p.step, p.reason.clone()),
        other => panic!("expected a proxy error, got {other:?}"),
    }
}

#[tokio::test]
async fn socks5_dante_starttls_auth_and_implicit_tls() {
    let Some((pf, dante)) = servers("socks5_dante_starttls_auth_and_implicit_tls", interop::dante) else {
        return;
    };
    deliver(&pf, builder(&pf, pf.starttls, TlsPolicy::Required).proxy(socks(&dante)), "socks5-starttls")
        .await;
    deliver(&pf, builder(&pf, pf.implicit_tls, TlsPolicy::Implicit).proxy(socks(&dante)), "socks5-implicit")
        .await;
}

#[tokio::test]
async fn http_connect_tinyproxy_starttls_auth_and_implicit_tls() {
    let Some((pf, tiny)) =
        servers("http_connect_tinyproxy_starttls_auth_and_implicit_tls", interop::tinyproxy)
    else {
        return;
    };
    deliver(&pf, builder(&pf, pf.starttls, TlsPolicy::Required).proxy(http(&tiny)), "http-starttls").await;
    deliver(&pf, builder(&pf, pf.implicit_tls, TlsPolicy::Implicit).proxy(http(&tiny)), "http-implicit")
        .await;
}

#[tokio::test]
async fn proxies_from_the_url() {
    let Some((pf, dante)) = servers("proxies_from_the_url", interop::dante) else { return };
    let tiny = interop::tinyproxy().expect("tinyproxy environment");
    let enc = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    for (scheme, p) in [("socks5", &dante), ("http", &tiny)] {
        // The whole proxy URL percent-encoded once, its credentials twice over: both
        // forms of the parameter are accepted.
        let proxy = format!("{scheme}://{}:{}@{}", enc(&p.user), enc(&p.password), p.addr);
        let url = format!(
            "smtps://{}:{}@localhost:{}?proxy={}",
            enc(&pf.user),
            enc(&pf.password),
            pf.implicit_tls.port(),
            proxy
        );
        let b = Client::from_url(&url)
            .unwrap()
            .without_native_roots()
            .add_root_pem_file(&pf.ca_pem_path)
            .unwrap();
        assert!(!format!("{b:?}").contains(&p.password), "builder Debug shows the proxy password");
        deliver(&pf, b, &format!("url-{scheme}")).await;
    }
}

#[tokio::test]
async fn proxy_authentication_failures_name_the_step() {
    let Some((pf, dante)) = servers("proxy_authentication_failures_name_the_step", interop::dante) else {
        return;
    };
    let tiny = interop::tinyproxy().expect("tinyproxy environment");
    let wrong = "wrong-password-never-shown";
    let cases = [
        (
            Proxy::socks5(dante.addr.ip().to_string(), dante.addr.port()).credentials(&dante.user, wrong),
            ProxyStep::Auth,
        ),
        (Proxy::socks5(dante.addr.ip().to_string(), dante.addr.port()), ProxyStep::Greeting),
        (
            Proxy::http(tiny.addr.ip().to_string(), tiny.addr.port()).credentials(&tiny.user, wrong),
            ProxyStep::Auth,
        ),
        (Proxy::http(tiny.addr.ip().to_string(), tiny.addr.port()), ProxyStep::Auth),
    ];
    for (proxy, step) in cases {
        let name = proxy.to_string();
        let err = builder(&pf, pf.starttls, TlsPolicy::Required).proxy(proxy).connect().await.unwrap_err();
        let (got, reason) = proxy_error(&err, wrong);
        assert_eq!(got, step, "{name}: {err}");
        assert!(!err.is_transient(), "{name}: refused credentials are not transient: {err}");
        let expected = match step {
            ProxyStep::Greeting => matches!(reason, ProxyReason::NoAcceptableMethod),
            _ => matches!(reason, ProxyReason::Refused(_) | ProxyReason::CredentialsRequired),
        };
        assert!(expected, "{name}: {reason:?}");
    }
}

#[tokio::test]
async fn tunnel_refused_carries_the_proxy_reply() {
    let Some((pf, dante)) = servers("tunnel_refused_carries_the_proxy_reply", interop::dante) else { return };
    let tiny = interop::tinyproxy().expect("tinyproxy environment");
    // A port nothing listens on (Dante's CONNECT is refused by the kernel) and one that
    // tinyproxy's ConnectPort rules do not allow (tinyproxy answers 403).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let b = builder(&pf, closed, TlsPolicy::Required).proxy(socks(&dante));
    let (step, reason) = proxy_error(&b.connect().await.unwrap_err(), &dante.password);
    assert_eq!(step, ProxyStep::Tunnel);
    assert!(matches!(&reason, ProxyReason::Refused(r) if r.contains("0x0")), "{reason:?}");

    let b = builder(&pf, pf.submission.unwrap(), TlsPolicy::Required).proxy(http(&tiny));
    let err = b.connect().await.unwrap_err();
    let (step, reason) = proxy_error(&err, &tiny.password);
    assert_eq!(step, ProxyStep::Tunnel);
    assert!(
        matches!(&reason, ProxyReason::Refused(r) if r.starts_with("HTTP/1.") && r.contains("403")),
        "{reason:?}"
    );
    assert!(err.to_string().contains("tunnel"), "{err}");
}

#[tokio::test]
async fn proxy_down_is_a_connect_step_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let proxy = Proxy::socks5("127.0.0.1", closed.port()).credentials("u", "never-shown-secret");
    let err = Client::builder("localhost").port(2525).proxy(proxy).connect().await.unwrap_err();
    let (step, reason) = proxy_error(&err, "never-shown-secret");
    assert_eq!(step, ProxyStep::Connect);
    assert!(matches!(reason, ProxyReason::Io(_)), "{reason:?}");
    assert!(err.is_transient());
}
