//! From the greeting to "ready": EHLO (or HELO), STARTTLS, EHLO again over TLS, AUTH.
//! The session's stage is an enum whose handshake states own their data (the SASL client
//! and the mechanisms already refused live in [`Handshake::Auth`] and nowhere else).
//!
//! AUTH tries the allowed mechanisms in the configured order (strongest first by default)
//! among those the last EHLO advertised; a 504, 534 or 538 moves on to the next one, any
//! other failure (535 above all) ends it: see [`crate::proto::sasl`] for the full rule.

use super::super::capabilities::Capabilities;
use super::super::code::ReplyCode;
use super::super::command::Command;
use super::super::error::{Error, Extension, InputError, Phase, ProtocolError};
use super::super::reply::Reply;
use super::super::sasl::{Mechanism, MechanismRefusal, SaslClient, SaslContext, refuses_mechanism};
use super::Session;
use super::config::TlsPolicy;
use super::events::Event;
use super::in_flight::Kind;

/// Where the session is.
#[derive(Debug)]
pub(super) enum Stage {
    Greeting,
    Handshake(Handshake),
    Ready,
    /// QUIT is out; the session closes after its reply, with this error if a failure
    /// caused it.
    Quitting(Option<Error>),
    Closed,
}

/// The handshake between the greeting and "ready".
#[derive(Debug)]
pub(super) enum Handshake {
    /// EHLO, HELO or STARTTLS is out.
    Hello,
    /// STARTTLS got 220: the driver performs the TLS handshake.
    AwaitTls,
    /// AUTH is out; the mechanism's state answers the challenges.
    Auth(Box<AuthAttempt>),
}

/// One AUTH command in progress and the mechanisms refused before it.
#[derive(Debug)]
pub(super) struct AuthAttempt {
    sasl: SaslClient,
    refused: Vec<MechanismRefusal>,
}

impl Session {
    pub(super) fn on_greeting(&mut self, reply: Reply) {
        if reply.code() == ReplyCode::SERVICE_READY {
            self.events.push_back(Event::Greeting(reply));
            self.stage = Stage::Handshake(Handshake::Hello);
            self.send_ehlo(Kind::Ehlo);
        } else {
            // RFC 5321 section 3.1: after a 554 greeting "the client SHOULD wait for ... and
            // then send QUIT".
            self.fail_with_quit(Error::Rejected { phase: Phase::Greeting, reply, recipients: Vec::new() });
        }
    }

    /// EHLO, or LHLO for LMTP.
    pub(super) fn send_ehlo(&mut self, kind: Kind) {
        let name = self.config.ehlo_name.clone();
        let cmd = if self.config.lmtp { Command::Lhlo(&name) } else { Command::Ehlo(&name) };
        self.push_command(&cmd, kind);
    }

    /// The TLS handshake is done: start over with EHLO.
    pub(super) fn after_tls(&mut self) {
        if matches!(self.stage, Stage::Handshake(Handshake::AwaitTls)) {
            // RFC 3207 section 4.2: "The client MUST discard any knowledge obtained from
            // the server, such as the list of SMTP service extensions, which was not
            // obtained from the TLS negotiation itself. The client SHOULD send an EHLO
            // command as the first command after a successful TLS negotiation."
            self.caps = Capabilities::default();
            self.stage = Stage::Handshake(Handshake::Hello);
            self.send_ehlo(Kind::Ehlo);
        }
    }

    pub(super) fn on_ehlo(&mut self, reply: Reply) {
        // RFC 5321 section 4.1.1.1: the EHLO success reply is 250; a stray 220 (say, a
        // doubled greeting) would shift every later reply by one.
        if reply.is_positive() && reply.code() != ReplyCode::OK {
            self.fatal(ProtocolError::UnexpectedReply { phase: Phase::Ehlo, reply }.into());
            return;
        }
        if reply.is_positive() {
            self.caps = Capabilities::from_ehlo(&reply);
            self.after_capabilities();
            return;
        }
        let tls_missing = !self.tls_active && self.config.tls == TlsPolicy::Required;
        // LMTP has no HELO (RFC 2033 section 4.1).
        if reply.is_permanent() && !tls_missing && !self.config.lmtp {
            // RFC 5321 section 3.2: a client "MUST ... fall back to HELO" when EHLO is not
            // recognised — but never when that would skip a required STARTTLS.
            let name = self.config.ehlo_name.clone();
            self.push_command(&Command::Helo(&name), Kind::Helo);
        } else {
            self.fail_with_quit(Error::Rejected { phase: Phase::Ehlo, reply, recipients: Vec::new() });
        }
    }

    pub(super) fn on_helo(&mut self, reply: Reply) {
        if reply.is_positive() {
            self.caps = Capabilities::default();
            self.after_capabilities();
        } else {
            self.fail_with_quit(Error::Rejected { phase: Phase::Helo, reply, recipients: Vec::new() });
        }
    }

    fn after_capabilities(&mut self) {
        // With TLS up (implicit TLS included) a STARTTLS in the list is ignored: RFC 3207
        // section 4.2 "A client MUST NOT attempt to start a TLS session if a TLS session is
        // already active".
        if !self.tls_active {
            match self.config.tls {
                TlsPolicy::Required | TlsPolicy::Opportunistic if self.caps.starttls() => {
                    self.push_command(&Command::StartTls, Kind::StartTls);
                    return;
                }
                TlsPolicy::Required => {
                    self.fail_with_quit(Error::ExtensionMissing(Extension::StartTls));
                    return;
                }
                TlsPolicy::Implicit => {
                    // The driver must have reported the handshake before the greeting.
                    self.fail_with_quit(Error::Config("implicit TLS without a TLS handshake".into()));
                    return;
                }
                _ => {}
            }
        }
        self.start_auth();
    }

    pub(super) fn on_starttls(&mut self, reply: Reply) {
        if reply.code() == ReplyCode::SERVICE_READY {
            if !self.input.is_empty() {
                // Checked again in process_input for bytes arriving later.
                self.fatal(ProtocolError::DataAfterStartTls(self.input.len()).into());
                return;
            }
            self.stage = Stage::Handshake(Handshake::AwaitTls);
        } else if reply.code().is_positive_completion() {
            self.fatal(ProtocolError::UnexpectedReply { phase: Phase::StartTls, reply }.into());
        } else if self.config.tls == TlsPolicy::Opportunistic {
            self.start_auth();
        } else {
            self.fail_with_quit(Error::Rejected { phase: Phase::StartTls, reply, recipients: Vec::new() });
        }
    }

    fn start_auth(&mut self) {
        if self.config.credentials.is_none() {
            self.become_ready();
            return;
        }
        // Credentials only over verified TLS unless the caller opted in.
        if !(self.config.allow_insecure_auth || self.tls_active && self.tls_verified) {
            self.fail_with_quit(Error::InsecureAuth);
            return;
        }
        if self.caps.auth_mechanisms().is_empty() {
            self.fail_with_quit(Error::ExtensionMissing(Extension::Auth));
            return;
        }
        self.try_next_mechanism(Vec::new());
    }

    /// Sends AUTH with the first allowed, advertised mechanism not refused yet; with none
    /// left, fails: [`Error::NoAuthMechanism`] if none was ever tried, else
    /// [`Error::AuthMechanismsRefused`] listing the refusals.
    fn try_next_mechanism(&mut self, refused: Vec<MechanismRefusal>) {
        let Some(creds) = self.config.credentials.clone() else {
            self.fatal(Error::Internal("AUTH without credentials"));
            return;
        };
        let have_nonce = self.sasl_nonce.is_some();
        let allowed: Vec<Mechanism> = self
            .config
            .mechanisms
            .iter()
            .copied()
            .filter(|m| *m != Mechanism::ScramSha256 || have_nonce)
            .filter(|m| !refused.iter().any(|r| r.mechanism == *m))
            .collect();
        let Some(mech) = Mechanism::choose(self.caps.auth_mechanisms(), &allowed, creds.kind()) else {
            let err = if refused.is_empty() {
                Error::NoAuthMechanism(self.caps.auth_mechanisms().to_vec())
            } else {
                Error::AuthMechanismsRefused(refused)
            };
            self.fail_with_quit(err);
            return;
        };
        let context = SaslContext {
            host: self.config.server_name.clone(),
            port: self.config.server_port,
            // The nonce is single-use: only SCRAM consumes it.
            nonce: if mech == Mechanism::ScramSha256 { self.sasl_nonce.take() } else { None },
        };
        let mut sasl = match SaslClient::new(mech, creds, context) {
            Ok(s) => s,
            Err(e) => {
                self.fail_with_quit(InputError::Sasl(e).into());
                return;
            }
        };
        let initial = sasl.initial_response();
        self.push_command(&Command::Auth { mechanism: mech.name(), initial: initial.as_deref() }, Kind::Auth);
        self.stage = Stage::Handshake(Handshake::Auth(Box::new(AuthAttempt { sasl, refused })));
    }

    pub(super) fn on_auth(&mut self, reply: Reply) {
        let stage = std::mem::replace(&mut self.stage, Stage::Handshake(Handshake::Hello));
        let Stage::Handshake(Handshake::Auth(mut attempt)) = stage else {
            self.stage = stage;
            self.fatal(Error::Internal("an AUTH reply outside the AUTH stage"));
            return;
        };
        if reply.code() == ReplyCode::AUTH_CONTINUE {
            let challenge = reply.lines().next().unwrap_or_default().to_vec();
            match attempt.sasl.respond(&challenge) {
                Ok(line) => {
                    self.push_command(&Command::AuthResponse(&line), Kind::Auth);
                    self.stage = Stage::Handshake(Handshake::Auth(attempt));
                }
                Err(e) => self.fatal(ProtocolError::Sasl(e).into()),
            }
        } else if reply.is_positive() {
            match attempt.sasl.finish() {
                Ok(()) => self.become_ready(),
                Err(e) => self.fatal(ProtocolError::Sasl(e).into()),
            }
        } else if reply.code().is_positive_intermediate() {
            self.fatal(ProtocolError::UnexpectedReply { phase: Phase::Auth, reply }.into());
        } else if refuses_mechanism(&reply) {
            // The mechanism, not the credentials, was refused: each is tried at most once,
            // so this ends after as many AUTH commands as there are mechanisms.
            let AuthAttempt { sasl, mut refused } = *attempt;
            refused.push(MechanismRefusal { mechanism: sasl.mechanism(), reply });
            self.try_next_mechanism(refused);
        } else {
            // 535 and everything else: never retried with another mechanism (RFC 4954
            // 535 "Authentication credentials invalid"; more attempts only lock accounts).
            self.fail_with_quit(Error::AuthFailed(reply));
        }
    }

    fn become_ready(&mut self) {
        self.stage = Stage::Ready;
        self.events.push_back(Event::Ready);
    }
}
