//! Caller input: every C0 control byte and DEL in MAIL FROM, RCPT TO (quoted local parts
//! too), the EHLO name, ESMTP parameters and AUTH credentials is a typed error, and the
//! server receives nothing beyond what was sent before (checked with `received_bytes`).

use smtpkit::proto::params::{EnvId, ParamError};
use smtpkit::proto::sasl::SaslError;
use smtpkit::testing::TestServer;
use smtpkit::{Address, AddressError, Credentials, EhloName, Envelope, EnvelopeError, Error, InputError};

use super::{connect, plain, received, start};

/// Every C0 control byte and DEL.
fn controls() -> impl Iterator<Item = u8> {
    (0u8..0x20).chain([0x7f])
}

fn with_byte(template: &str, byte: u8) -> String {
    template.replace('#', &char::from(byte).to_string())
}

#[track_caller]
fn assert_control(err: &AddressError, byte: u8) {
    assert!(matches!(err, AddressError::ControlByte { byte: b, .. } if *b == byte), "0x{byte:02x}: {err:?}");
}

#[tokio::test(start_paused = true)]
async fn control_bytes_in_envelope_addresses_are_refused_and_nothing_is_written() {
    let server = start(TestServer::builder()).await;
    let client = connect(&server, plain()).await.unwrap();
    let mut cases = 0;
    for byte in controls() {
        for template in [
            "a#b@example.com",
            "ab@exa#mple.com",
            "\"quoted#local\"@example.com",
            "\"a\\#b\"@example.com",
            "ab@example.com#",
            "#ab@example.com",
        ] {
            let bad = with_byte(template, byte);
            let err = Address::new(&bad).unwrap_err();
            assert_control(&err, byte);
            // As sender and as recipient through Envelope::parse.
            let as_from = Envelope::parse(&bad, &["ok@example.com"]).unwrap_err();
            assert!(
                matches!(&as_from, EnvelopeError::Address(e) if matches!(e, AddressError::ControlByte { .. }))
            );
            let as_to = Envelope::parse("ok@example.com", &["ok2@example.com", &bad]).unwrap_err();
            assert!(
                matches!(&as_to, EnvelopeError::Address(e) if matches!(e, AddressError::ControlByte { .. }))
            );
            cases += 3;
        }
    }
    assert_eq!(cases, 33 * 6 * 3);
    // The connection saw only the EHLO; the client is still usable.
    assert!(client.is_reusable());
    client.quit().await.unwrap();
    assert_eq!(received(&server, 0).await, "EHLO localhost\r\nQUIT\r\n");
}

#[tokio::test(start_paused = true)]
async fn control_bytes_in_the_ehlo_name_are_refused_before_connecting() {
    for byte in controls() {
        for template in ["client#.example.com", "#client.example.com", "client.example.com#", "[127.0.0.1#]"]
        {
            let err = EhloName::new(&with_byte(template, byte)).unwrap_err();
            assert_control(&err, byte);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn control_bytes_in_esmtp_parameters_are_refused() {
    for byte in controls() {
        let err = EnvId::new(&with_byte("env#id", byte)).unwrap_err();
        assert!(matches!(err, ParamError::Invalid { param: "ENVID", .. }), "0x{byte:02x}: {err:?}");
    }
    for bad in ["SUCCESS\r\nRSET", "FAILURE\x7f", "DELAY\x00"] {
        assert!(smtpkit::proto::params::Notify::parse(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn control_bytes_in_auth_credentials_are_refused_before_connecting() {
    let server = start(TestServer::builder().user("u", "p").auth_requires_tls(false)).await;
    for byte in controls() {
        for (user, pass) in
            [(with_byte("us#er", byte), "pw".to_string()), ("user".into(), with_byte("p#w", byte))]
        {
            let builder = plain().allow_insecure_auth(true).credentials(Credentials::new(user, pass));
            let err = builder.build().unwrap_err();
            let expected = if byte == 0 {
                matches!(err, Error::Input(InputError::Sasl(SaslError::NulInCredentials)))
            } else {
                matches!(err, Error::Input(InputError::Sasl(SaslError::ControlInCredentials { byte: b, .. })) if b == byte)
            };
            assert!(expected, "0x{byte:02x}: {err:?}");
            assert!(err.is_permanent());
        }
    }
    assert_eq!(server.connection_count(), 0, "nothing was even connected");
    // Control: valid credentials do authenticate over this server.
    let client = connect(&server, plain().allow_insecure_auth(true).credentials(Credentials::new("u", "p")))
        .await
        .unwrap();
    client.quit().await.unwrap();
    assert!(received(&server, 0).await.contains("AUTH PLAIN"));
}

#[tokio::test(start_paused = true)]
async fn control_bytes_in_vrfy_are_refused_and_nothing_is_written() {
    let server = start(TestServer::builder()).await;
    let mut client = connect(&server, plain()).await.unwrap();
    for byte in controls() {
        let err = client.vrfy(&with_byte("post#master", byte)).await.unwrap_err();
        assert!(matches!(err, Error::Input(InputError::Command(_))), "{err:?}");
    }
    assert!(client.is_reusable());
    client.quit().await.unwrap();
    assert_eq!(received(&server, 0).await, "EHLO localhost\r\nQUIT\r\n");
}

#[tokio::test(start_paused = true)]
async fn overlong_paths_are_refused() {
    let local = "l".repeat(65);
    assert!(matches!(
        Address::new(&format!("{local}@example.com")),
        Err(AddressError::TooLong { len: 65, max: 64, .. })
    ));
    let domain = format!("{}.example.com", "d".repeat(250));
    assert!(matches!(Address::new(&format!("a@{domain}")), Err(AddressError::TooLong { .. })));
    // 254 octets + brackets = 256: the limit exactly; one more is refused.
    let label = "a".repeat(60);
    let host = format!("{label}.{label}.{label}.{}", "b".repeat(50));
    let fits = format!("{}@{host}", "c".repeat(254 - host.len() - 1));
    assert_eq!(fits.len(), 254);
    assert!(Address::new(&fits).is_ok(), "{}", fits.len());
    let over = format!("{}@{host}", "c".repeat(255 - host.len() - 1));
    assert!(matches!(Address::new(&over), Err(AddressError::TooLong { what: "path", len: 257, max: 256 })));
}
