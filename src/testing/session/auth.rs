//! AUTH (RFC 4954): the exchange's states, one answer per client response, and the
//! record of each exchange.

use std::ops::Range;

use tokio::io::{AsyncRead, AsyncWrite};

use super::respond::Effect;
use super::{Flow, Greeted, Mode, Session};
use crate::testing::fault::Step;
use crate::testing::record::{Authentication, show};
use crate::testing::reply::Reply;
use crate::testing::sasl;

#[derive(Debug, Clone)]
pub(super) enum AuthState {
    /// Waiting for the PLAIN response after an empty `334`.
    Plain,
    /// LOGIN: waiting for the user name.
    LoginUser,
    /// LOGIN: waiting for the password.
    LoginPassword { user: String },
    /// CRAM-MD5: waiting for `user digest` after this challenge.
    CramMd5 { challenge: String },
    /// SCRAM-SHA-256: waiting for the client-first-message after an empty `334`.
    ScramFirst,
    /// SCRAM-SHA-256: waiting for the client-final-message.
    ScramFinal(Box<sasl::ScramServer>),
    /// SCRAM-SHA-256: the server signature is sent; waiting for the empty response.
    ScramVerified { user: String },
    /// OAUTHBEARER or XOAUTH2: waiting for the response after an empty `334`.
    OAuth { xoauth2: bool },
    /// The error challenge is sent; waiting for the client's dummy response.
    OAuthFailed { xoauth2: bool, user: Option<String> },
}

/// The AUTH exchange in progress, for [`Authentication`] records and [`Step::AuthRound`].
pub(super) struct Exchange {
    pub(super) mechanism: String,
    /// The user the client claimed, once known.
    pub(super) user: Option<String>,
    /// Lines of the exchange answered so far.
    pub(super) round: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    pub(super) async fn auth(&mut self, mechanism: &str, initial: Option<String>, index: usize) -> Flow {
        let steps = [Step::Auth, Step::AuthRound(0), Step::Command(index)];
        let c = &self.shared.config;
        let advertised = c.auth_mechanisms();
        let refusal = if advertised.is_empty() {
            Some(self.reply(502, "5.5.1", "Command not implemented"))
        } else if self.greeted == Greeted::No {
            Some(self.reply(503, "5.5.1", "Send EHLO first"))
        } else if self.auth_user.is_some() {
            // RFC 4954 4: "After a successful AUTH command completes, a server MUST reject any
            // further AUTH commands with a 503 reply."
            Some(self.reply(503, "5.5.1", "Already authenticated"))
        } else if self.txn.is_some() {
            // RFC 4954 4: "The AUTH command is not permitted during a mail transaction."
            Some(self.reply(503, "5.5.1", "AUTH not permitted during a mail transaction"))
        } else if !self.auth_offered() {
            // RFC 4954 6: "538 5.7.11 Encryption required for requested authentication
            // mechanism".
            Some(self.reply(538, "5.7.11", "Encryption required for requested authentication mechanism"))
        } else if !advertised.iter().any(|m| m == mechanism) {
            // RFC 4954 4: "If the requested authentication mechanism is invalid (e.g., is
            // not supported or requires an encryption layer), the server rejects the AUTH
            // command with a 504 reply."
            Some(self.reply(504, "5.5.4", "Unrecognized authentication type"))
        } else {
            None
        };
        if let Some(reply) = refusal {
            return self.respond(&steps, reply, Effect::None).await;
        }
        // RFC 4954 4: "If the client is transmitting an initial response of zero length, it
        // MUST instead transmit the response as a single equals sign".
        let initial = match initial.as_deref().map(sasl::decode_response) {
            None => None,
            Some(Some(decoded)) => Some(decoded),
            Some(None) => {
                let reply = self.reply(501, "5.5.2", "Cannot decode response");
                return self.respond(&steps, reply, Effect::None).await;
            }
        };
        // RFC 4954 4: "A server challenge that contains no data is defined as a 334 reply
        // with no text part" ("334 " followed by CRLF).
        let empty = |state: AuthState| (Reply::new(334, ""), Effect::AuthContinue(state.clone()), state);
        let (reply, effect, state) = match (mechanism, initial) {
            ("PLAIN", None) => empty(AuthState::Plain),
            ("PLAIN", Some(resp)) => {
                let (reply, effect) = self.finish_plain(&resp);
                (reply, effect, AuthState::Plain)
            }
            ("LOGIN", None) => {
                let state = AuthState::LoginUser;
                (Reply::new(334, sasl::prompt("Username:")), Effect::AuthContinue(state.clone()), state)
            }
            ("LOGIN", Some(user)) => {
                let user = String::from_utf8_lossy(&user).into_owned();
                let state = AuthState::LoginPassword { user };
                (Reply::new(334, sasl::prompt("Password:")), Effect::AuthContinue(state.clone()), state)
            }
            ("CRAM-MD5", None) => {
                // RFC 2195 2: "the presumptively arbitrary string of characters" in the form
                // of an RFC 822 msg-id, unique per exchange.
                let random = sasl::random_bytes(8).iter().map(|b| format!("{b:02x}")).collect::<String>();
                let challenge = format!("<{random}.{}@{}>", self.id, self.shared.config.hostname);
                let state = AuthState::CramMd5 { challenge: challenge.clone() };
                (Reply::new(334, sasl::encode(challenge)), Effect::AuthContinue(state.clone()), state)
            }
            ("SCRAM-SHA-256", None) => empty(AuthState::ScramFirst),
            ("SCRAM-SHA-256", Some(first)) => {
                let (reply, effect) = self.scram_first(&first);
                (reply, effect, AuthState::ScramFirst)
            }
            ("OAUTHBEARER" | "XOAUTH2", None) => empty(AuthState::OAuth { xoauth2: mechanism == "XOAUTH2" }),
            ("OAUTHBEARER" | "XOAUTH2", Some(resp)) => {
                let xoauth2 = mechanism == "XOAUTH2";
                let (reply, effect) = self.check_oauth(xoauth2, &resp);
                (reply, effect, AuthState::OAuth { xoauth2 })
            }
            ("CRAM-MD5", Some(_)) => {
                let reply = self.reply(501, "5.5.2", "CRAM-MD5 takes no initial response");
                return self.respond(&steps, reply, Effect::None).await;
            }
            _ => {
                let reply = self.reply(504, "5.5.4", "Unrecognized authentication type");
                return self.respond(&steps, reply, Effect::None).await;
            }
        };
        self.exchange = Some(Exchange { mechanism: mechanism.to_owned(), user: None, round: 0 });
        let flow = self.respond(&steps, reply, effect).await;
        self.keep_auth_on_334(state);
        self.end_exchange(false);
        flow
    }

    /// Record the exchange once it is over (or, with `abandoned`, whatever its state).
    pub(super) fn end_exchange(&mut self, abandoned: bool) {
        if !abandoned && matches!(self.mode, Mode::Auth(_)) {
            return;
        }
        if let Some(x) = self.exchange.take() {
            let succeeded = !abandoned && self.auth_user.is_some();
            let user = x.user;
            let auth = Authentication { connection: self.id, mechanism: x.mechanism, user, succeeded };
            self.shared.recorder.authentication(auth);
        }
    }

    /// A fault that answers 334 where the exchange would have ended keeps the exchange
    /// going, so "334 forever" can be scripted with one rule.
    pub(super) fn keep_auth_on_334(&mut self, state: AuthState) {
        if self.last_class == 3 && matches!(self.mode, Mode::Command) {
            self.mode = Mode::Auth(state);
        }
    }

    pub(super) async fn auth_response(&mut self, state: AuthState, line: Option<Vec<u8>>) -> Flow {
        let round = self.exchange.as_mut().map_or(0, |x| {
            x.round += 1;
            x.round
        });
        let steps = [Step::Auth, Step::AuthRound(round)];
        let Some(line) = line else {
            self.shared.recorder.line(self.id, "C: <line too long, dropped>".into());
            let reply = self.reply(500, "5.5.2", "Line too long");
            let flow = self.respond(&steps, reply, Effect::None).await;
            self.end_exchange(false);
            return flow;
        };
        // Every response is secret but the cancel `*` (and an empty one, which holds nothing).
        let secret = (!line.is_empty() && line != b"*").then_some(0..line.len());
        self.client_line(&line, secret);
        let text = String::from_utf8_lossy(&line).into_owned();
        let (reply, effect) = if text == "*" {
            // RFC 4954 4: "If the client wishes to cancel the authentication exchange, it
            // issues a line with a single "*". If the server receives such a response, it
            // MUST reject the AUTH command by sending a 501 reply."
            (self.reply(501, "5.0.0", "Authentication cancelled"), Effect::None)
        } else if let Some(decoded) = sasl::decode_response(&text) {
            self.auth_step(&state, decoded)
        } else {
            (self.reply(501, "5.5.2", "Cannot decode response"), Effect::None)
        };
        let flow = self.respond(&steps, reply, effect).await;
        self.keep_auth_on_334(state);
        self.end_exchange(false);
        flow
    }

    /// The answer to one decoded client response in `state`.
    pub(super) fn auth_step(&self, state: &AuthState, decoded: Vec<u8>) -> (Reply, Effect) {
        match state {
            AuthState::Plain => self.finish_plain(&decoded),
            AuthState::LoginUser => {
                let user = String::from_utf8_lossy(&decoded).into_owned();
                let next = AuthState::LoginPassword { user };
                (Reply::new(334, sasl::prompt("Password:")), Effect::AuthContinue(next))
            }
            AuthState::LoginPassword { user } => self.check_credentials(user, &decoded),
            AuthState::CramMd5 { challenge } => {
                let Some((user, digest)) = sasl::parse_cram_md5(&decoded) else {
                    return (self.reply(501, "5.5.2", "Malformed CRAM-MD5 response"), Effect::None);
                };
                let ok = self.shared.config.users.iter().any(|(u, p)| {
                    *u == user && sasl::hmac_md5_hex(p.as_bytes(), challenge.as_bytes()) == digest
                });
                self.verdict(ok, user)
            }
            AuthState::ScramFirst => self.scram_first(&decoded),
            AuthState::ScramFinal(server) => match server.finish(&decoded) {
                Ok(server_final) => {
                    let next = AuthState::ScramVerified { user: server.user.clone() };
                    (Reply::new(334, sasl::encode(server_final)), Effect::AuthContinue(next))
                }
                Err(why) => {
                    self.note(format!("SCRAM-SHA-256 refused: {why}"));
                    self.verdict(false, server.user.clone())
                }
            },
            AuthState::ScramVerified { user } => {
                // RFC 5802 5: the client answers the server-final-message with an empty
                // response before the outcome.
                if !decoded.is_empty() {
                    self.violation("SCRAM-SHA-256: non-empty response to the server signature");
                }
                self.verdict(decoded.is_empty(), user.clone())
            }
            AuthState::OAuth { xoauth2 } => self.check_oauth(*xoauth2, &decoded),
            AuthState::OAuthFailed { xoauth2, user } => {
                // RFC 7628 3.2.3: the client answers the error challenge with "a single %x01
                // (control A) character"; XOAUTH2 clients send an empty response.
                let expected: &[u8] = if *xoauth2 { b"" } else { b"\x01" };
                if decoded != expected {
                    self.violation(&format!(
                        "wrong dummy response after the OAuth error: {}",
                        show(&decoded)
                    ));
                }
                let reply = self.reply(535, "5.7.8", "Authentication credentials invalid");
                (reply, user.clone().map_or(Effect::None, Effect::AuthSuccess))
            }
        }
    }

    /// `235` or `535` for `user`.
    pub(super) fn verdict(&self, ok: bool, user: String) -> (Reply, Effect) {
        let effect = Effect::AuthSuccess(user);
        if ok {
            (self.reply(235, "2.7.0", "Authentication successful"), effect)
        } else {
            (self.reply(535, "5.7.8", "Authentication credentials invalid"), effect)
        }
    }

    /// Answer a SCRAM client-first-message with the server-first-message.
    pub(super) fn scram_first(&self, decoded: &[u8]) -> (Reply, Effect) {
        let first = match sasl::parse_scram_client_first(decoded) {
            Ok(first) => first,
            Err(why) => return (self.reply(501, "5.5.2", format!("SCRAM-SHA-256: {why}")), Effect::None),
        };
        let c = &self.shared.config;
        let password = c.users.iter().find(|(u, _)| *u == first.user).map(|(_, p)| p.as_str());
        let suffix = c.scram.nonce_suffix.clone().unwrap_or_else(|| sasl::random_b64(18));
        let salt = c.scram.salt.clone().unwrap_or_default();
        let (server, server_first) =
            sasl::ScramServer::start(first, password, &suffix, &salt, c.scram.iterations);
        (
            Reply::new(334, sasl::encode(server_first)),
            Effect::AuthContinue(AuthState::ScramFinal(Box::new(server))),
        )
    }

    /// Check an OAUTHBEARER (RFC 7628) or XOAUTH2 response against the configured tokens.
    pub(super) fn check_oauth(&self, xoauth2: bool, decoded: &[u8]) -> (Reply, Effect) {
        let parsed = if xoauth2 { sasl::parse_xoauth2(decoded) } else { sasl::parse_oauthbearer(decoded) };
        let Some(resp) = parsed else {
            return (self.reply(501, "5.5.2", "Malformed OAuth response"), Effect::None);
        };
        let matched = self
            .shared
            .config
            .oauth_tokens
            .iter()
            .find(|(u, t)| *t == resp.token && resp.user.as_ref().is_none_or(|claimed| claimed == u));
        if let Some((user, _)) = matched {
            return self.verdict(true, user.clone());
        }
        // RFC 7628 3.2.2: the failure is a JSON status in a challenge, not a reply code yet.
        let json = if xoauth2 {
            r#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#.to_owned()
        } else {
            format!(
                r#"{{"status":"invalid_token","scope":"mail","openid-configuration":"https://{}/.well-known/openid-configuration"}}"#,
                self.shared.config.hostname
            )
        };
        let next = AuthState::OAuthFailed { xoauth2, user: resp.user };
        (Reply::new(334, sasl::encode(json)), Effect::AuthContinue(next))
    }

    /// Check a decoded PLAIN response (RFC 4616).
    pub(super) fn finish_plain(&self, decoded: &[u8]) -> (Reply, Effect) {
        let Some(plain) = sasl::parse_plain(decoded) else {
            return (self.reply(501, "5.5.2", "Malformed PLAIN response"), Effect::None);
        };
        let user = String::from_utf8_lossy(&plain.authcid).into_owned();
        // This server has no authorization identities beyond the user itself.
        if !plain.authzid.is_empty() && plain.authzid != plain.authcid {
            return (
                self.reply(535, "5.7.8", "Authentication credentials invalid"),
                Effect::AuthSuccess(user),
            );
        }
        self.check_credentials(&user, &plain.password)
    }

    pub(super) fn check_credentials(&self, user: &str, password: &[u8]) -> (Reply, Effect) {
        let ok = self.shared.config.users.iter().any(|(u, p)| u == user && p.as_bytes() == password);
        self.verdict(ok, user.to_owned())
    }
}

/// Where the initial response of an `AUTH mechanism initial-response` line is, as a byte
/// range of the line (everything after the mechanism, so nothing secret is left out).
pub(super) fn initial_response_span(line: &[u8]) -> Option<Range<usize>> {
    let skip = |mut i: usize, space: bool| {
        while line.get(i).is_some_and(|&b| (b == b' ') == space) {
            i += 1;
        }
        i
    };
    let verb_end = skip(0, false);
    if !line.get(..verb_end)?.eq_ignore_ascii_case(b"AUTH") {
        return None;
    }
    let start = skip(skip(skip(verb_end, true), false), true);
    (start < line.len()).then_some(start..line.len())
}

#[cfg(test)]
mod tests {
    use super::initial_response_span;

    #[test]
    fn initial_response_span_covers_everything_after_the_mechanism() {
        let span = |l: &str| initial_response_span(l.as_bytes()).map(|r| l[r].to_owned());
        assert_eq!(span("AUTH PLAIN AGFsaWNl").as_deref(), Some("AGFsaWNl"));
        assert_eq!(span("auth  plain  AGF extra").as_deref(), Some("AGF extra"));
        assert_eq!(span("AUTH PLAIN"), None);
        assert_eq!(span("AUTH PLAIN "), None);
        assert_eq!(span("AUTHX PLAIN abc"), None);
        assert_eq!(span("MAIL FROM:<a@b> AUTH=<>"), None);
        assert_eq!(span(""), None);
    }
}
