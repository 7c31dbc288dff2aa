//! Criterion benches of the sans-IO protocol core: no sockets, no tokio, pure CPU.
//!
//! - `reply/*`: [`ReplyParser`] on a one-line reply, a 20-line EHLO reply, a pipelined batch
//!   of 32 replies in one buffer, and the EHLO reply fed one byte at a time.
//! - `data/*`: the DATA encoder, [`analyze`] and [`DotStuffer`], on bodies of 78-character
//!   lines (1 KiB to 10 MiB) and on a body where every line starts with a dot.
//! - `bdat/*`: the BDAT [`Normalizer`] on a CRLF body (pass-through) and an LF-only body.
//! - `session/*`: a whole [`Session`]: greeting, EHLO, then N pipelined (or lock-step)
//!   messages answered with canned replies; throughput in messages per second of protocol
//!   CPU alone.
//!
//! Run: `cargo bench --bench proto` (see BENCHMARKS.md for the exact flags used).

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use smtpkit::proto::dot_stuff::{DotStuffer, LineEndings, Normalizer, analyze};
use smtpkit::proto::reply::{ReplyLimits, ReplyParser};
use smtpkit::proto::session::{Event, Session, SessionConfig, Want};
use smtpkit::{EhloName, Envelope, MessageOptions, TlsPolicy};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// A body of `size` octets made of 78-character lines plus CRLF (the last line may be
/// short). `dot` puts a `.` at the start of every line.
fn body(size: usize, dot: bool, eol: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 80);
    let mut n = 0u32;
    while out.len() < size {
        let start = out.len();
        if dot {
            out.push(b'.');
        }
        while out.len() - start < 78 {
            out.push(b'a' + (n % 26) as u8);
            n = n.wrapping_add(7);
        }
        out.extend_from_slice(eol);
    }
    out.truncate(size);
    // Keep the body well formed (no line ending cut in half).
    while out.last() == Some(&b'\r') {
        out.pop();
    }
    out
}

fn ehlo_reply(lines: usize) -> Vec<u8> {
    let mut caps = vec![
        "mx.example.com Hello client.example [127.0.0.1]".to_string(),
        "PIPELINING".into(),
        "SIZE 52428800".into(),
        "8BITMIME".into(),
        "ENHANCEDSTATUSCODES".into(),
        "CHUNKING".into(),
        "SMTPUTF8".into(),
        "DSN".into(),
        "AUTH PLAIN LOGIN".into(),
    ];
    let mut i = 0;
    while caps.len() < lines {
        caps.push(format!("X-EXTENSION-{i} some parameters here"));
        i += 1;
    }
    let mut out = Vec::new();
    for (i, c) in caps.iter().enumerate() {
        let sep = if i + 1 == caps.len() { ' ' } else { '-' };
        out.extend_from_slice(format!("250{sep}{c}\r\n").as_bytes());
    }
    out
}

fn parse_all(parser: &mut ReplyParser, mut buf: &[u8]) -> usize {
    let mut n = 0;
    while let Some((reply, used)) = parser.parse(buf).expect("valid replies") {
        black_box(&reply);
        buf = &buf[used..];
        n += 1;
    }
    n
}

fn bench_reply(c: &mut Criterion) {
    let mut g = c.benchmark_group("reply");
    let one = b"250 2.0.0 Ok: queued as 4BXYZ12345\r\n".to_vec();
    let ehlo = ehlo_reply(20);
    let mut batch = Vec::new();
    for _ in 0..8 {
        batch.extend_from_slice(b"250 2.0.0 Ok: queued as 4BXYZ12345\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
        batch.extend_from_slice(b"354 End data with <CR><LF>.<CR><LF>\r\n");
    }
    let cases: [(&str, &[u8], u64); 3] =
        [("one_line", &one, 1), ("ehlo_20_lines", &ehlo, 1), ("pipelined_batch_32", &batch, 32)];
    for (name, input, replies) in cases {
        g.throughput(Throughput::Elements(replies));
        g.bench_function(name, |b| {
            let mut p = ReplyParser::new(ReplyLimits::default());
            b.iter(|| assert_eq!(parse_all(&mut p, black_box(input)), replies as usize));
        });
    }
    // Byte at a time: the parser is called with one more octet each time, as a server
    // trickling its reply would make the driver do.
    g.throughput(Throughput::Bytes(ehlo.len() as u64));
    g.bench_function("ehlo_20_lines_bytewise", |b| {
        let mut p = ReplyParser::new(ReplyLimits::default());
        b.iter(|| {
            let input = black_box(&ehlo[..]);
            for end in 1..input.len() {
                assert!(p.parse(&input[..end]).expect("valid").is_none());
            }
            black_box(p.parse(input).expect("valid").expect("complete"));
        });
    });
    g.finish();
}

fn bench_data(c: &mut Criterion) {
    let mut g = c.benchmark_group("data");
    let sizes = [(KIB, "1KiB"), (64 * KIB, "64KiB"), (MIB, "1MiB"), (10 * MIB, "10MiB")];
    let mut bodies: Vec<(String, Vec<u8>)> =
        sizes.iter().map(|&(n, name)| (name.to_string(), body(n, false, b"\r\n"))).collect();
    bodies.push(("1MiB_dot_lines".into(), body(MIB, true, b"\r\n")));
    bodies.push(("1MiB_lf_only".into(), body(MIB, false, b"\n")));
    for (name, input) in &bodies {
        if input.len() >= MIB {
            g.sample_size(20);
        } else {
            g.sample_size(50);
        }
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_with_input(BenchmarkId::new("analyze", name), input, |b, input| {
            b.iter(|| analyze(black_box(input), LineEndings::Normalize).expect("valid body"));
        });
        let mut out = Vec::with_capacity(input.len() * 2 + 16);
        g.bench_with_input(BenchmarkId::new("dot_stuff", name), input, |b, input| {
            b.iter(|| {
                out.clear();
                let mut s = DotStuffer::new();
                s.encode(black_box(input), &mut out);
                s.finish(&mut out);
                black_box(out.len())
            });
        });
        // What the session does: check once, then encode in 64 KiB pieces.
        g.bench_with_input(BenchmarkId::new("analyze+dot_stuff_64k_pieces", name), input, |b, input| {
            b.iter(|| {
                let info = analyze(black_box(input), LineEndings::Normalize).expect("valid body");
                out.clear();
                out.reserve(info.normalized_len as usize);
                let mut s = DotStuffer::new();
                for piece in input.chunks(64 * KIB) {
                    s.encode(piece, &mut out);
                }
                s.finish(&mut out);
                black_box(out.len())
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("bdat");
    g.sample_size(20);
    for (name, input) in [("1MiB_crlf", body(MIB, false, b"\r\n")), ("1MiB_lf_only", body(MIB, false, b"\n"))]
    {
        g.throughput(Throughput::Bytes(input.len() as u64));
        let mut out = Vec::with_capacity(input.len() * 2);
        g.bench_with_input(BenchmarkId::new("normalize", name), &input, |b, input| {
            b.iter(|| {
                out.clear();
                let mut n = Normalizer::default();
                n.encode(black_box(input), &mut out);
                n.finish(&mut out);
                black_box(out.len())
            });
        });
    }
    g.finish();
}

const MAIL_OK: &[u8] = b"250 2.1.0 Ok\r\n";
const RCPT_OK: &[u8] = b"250 2.1.5 Ok\r\n";
const DATA_GO: &[u8] = b"354 End data with <CR><LF>.<CR><LF>\r\n";
const QUEUED: &[u8] = b"250 2.0.0 Ok: queued as 4BXYZ12345\r\n";

/// Canned replies for one flight, given what the client just sent.
struct Script {
    pipelining: bool,
    recipients: usize,
    ehlo: Vec<u8>,
    first: Vec<u8>,
    steady: Vec<u8>,
}

impl Script {
    fn new(pipelining: bool, recipients: usize) -> Self {
        let mut first = MAIL_OK.to_vec();
        for _ in 0..recipients {
            first.extend_from_slice(RCPT_OK);
        }
        first.extend_from_slice(DATA_GO);
        let mut steady = QUEUED.to_vec();
        steady.extend_from_slice(&first);
        Self { pipelining, recipients, ehlo: ehlo_reply(10), first, steady }
    }
}

/// Greeting, EHLO, `messages` messages, all on canned replies; returns messages sent.
fn run_session(script: &Script, envelope: &Envelope, body: &Bytes, messages: usize) -> usize {
    let now = Instant::now();
    let config = SessionConfig {
        ehlo_name: EhloName::new("client.example").expect("valid"),
        tls: TlsPolicy::Disabled,
        pipelining: script.pipelining,
        ..SessionConfig::default()
    };
    let mut s = Session::new(config, now);
    s.handle_input(now, b"220 mx.example.com ESMTP ready\r\n");
    let mut wire = 0usize;
    while let Some(out) = s.poll_transmit() {
        wire += out.len();
        s.wrote(out.len(), now);
    }
    s.handle_input(now, &script.ehlo);
    for _ in 0..messages {
        s.send_message(envelope.clone(), body.clone(), MessageOptions::default()).expect("valid message");
    }
    let mut done = 0;
    let bound = messages * (script.recipients + 4) + 4;
    for flights in 0..bound {
        while let Some(out) = s.poll_transmit() {
            wire += out.len();
            s.wrote(out.len(), now);
        }
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::Message { result, .. } => {
                    result.expect("accepted");
                    done += 1;
                }
                Event::Ready | Event::Greeting(_) => {}
                other => panic!("unexpected event {other:?}"),
            }
        }
        if s.wants() != Want::Read {
            break;
        }
        if script.pipelining {
            // In steady state one flight carries body + dot + the next MAIL/RCPT/DATA.
            let reply = match (flights, done + 1 == messages) {
                (0, _) => &script.first[..],
                (_, true) => QUEUED,
                _ => &script.steady[..],
            };
            s.handle_input(now, reply);
        } else {
            lockstep_reply(&mut s, now, script.recipients, flights);
        }
    }
    assert_eq!(done, messages);
    black_box(wire);
    done
}

/// Without PIPELINING the session waits after every command: answer just the head one.
fn lockstep_reply(s: &mut Session, now: Instant, recipients: usize, flight: usize) {
    let step = flight % (recipients + 3);
    let reply: &[u8] = match step {
        0 => MAIL_OK,
        n if n <= recipients => RCPT_OK,
        n if n == recipients + 1 => DATA_GO,
        _ => QUEUED,
    };
    s.handle_input(now, reply);
}

fn bench_session(c: &mut Criterion) {
    let mut g = c.benchmark_group("session");
    let messages = 100;
    g.throughput(Throughput::Elements(messages as u64));
    let one = Envelope::parse("sender@example.com", &["rcpt@example.net"]).expect("valid");
    let rcpts: Vec<String> = (0..10).map(|i| format!("rcpt{i}@example.net")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let ten = Envelope::parse("sender@example.com", &rcpts).expect("valid");
    let small = Bytes::from(body(2 * 1000, false, b"\r\n"));
    let large = Bytes::from(body(100 * 1000, false, b"\r\n"));
    let cases = [
        ("pipelined_2KB_1rcpt", true, &one, &small),
        ("pipelined_2KB_10rcpt", true, &ten, &small),
        ("pipelined_100KB_1rcpt", true, &one, &large),
        ("lockstep_2KB_1rcpt", false, &one, &small),
    ];
    for (name, pipelining, envelope, body) in cases {
        let script = Script::new(pipelining, envelope.to().len());
        g.bench_function(BenchmarkId::new(name, format!("{messages}msgs")), |b| {
            b.iter(|| run_session(&script, envelope, body, messages));
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

criterion_group! { name = benches; config = config(); targets = bench_reply, bench_data, bench_session }
criterion_main!(benches);
