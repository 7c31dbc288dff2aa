//! Memory held per idle connection: resident memory growth of this process while it keeps
//! N connected, idle [`Client`]s, each of which has sent a few messages.
//!
//! ```text
//! cargo run --release --example idle_memory                 # plain SMTP, 1000 connections
//! cargo run --release --example idle_memory -- --starttls   # STARTTLS (rustls) connections
//! cargo run --release --example idle_memory -- --connections 2000 --messages 5
//! ```
//!
//! The server ([`TestServer`]) runs in a child process (this same binary with `--server`),
//! so only client-side memory is counted. Clients talk to it over TCP on loopback, on a
//! current-thread tokio runtime. The figure is VmRSS from `/proc/self/status` (Linux): a
//! counting `#[global_allocator]` needs `unsafe impl GlobalAlloc`, which the package-wide
//! `unsafe_code = "forbid"` lint refuses for examples too. RSS counts touched pages only, so
//! heap that was allocated but never written (such as the unused tail of a zeroed read
//! buffer fresh from the OS) does not show; kernel socket buffers are not in RSS either.
//!
//! Output: a Markdown table of RSS after each quarter of the connections and the growth
//! per connection, then one JSON line.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use smtpkit::testing::TestServer;
use smtpkit::{Client, Envelope, TlsPolicy};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux only)");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

struct Args {
    server: bool,
    starttls: bool,
    connections: usize,
    messages: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args { server: false, starttls: false, connections: 1000, messages: 3 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |what: &str| -> Result<usize, String> {
            it.next().and_then(|v| v.parse().ok()).ok_or(format!("{what} needs a number"))
        };
        match arg.as_str() {
            "--server" => a.server = true,
            "--starttls" => a.starttls = true,
            "--connections" => a.connections = number("--connections")?,
            "--messages" => a.messages = number("--messages")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// Child: start a server, print its port and CA, serve until the parent closes stdin.
fn serve(starttls: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    rt.block_on(async {
        let server = TestServer::builder().starttls(starttls).start().await.expect("test server");
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", server.addr().port()).expect("stdout");
        write!(out, "{}", server.ca_pem()).expect("stdout");
        writeln!(out, "END").expect("stdout");
        out.flush().expect("stdout");
        drop(out);
        // Parent gone (stdin at EOF): stop.
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
        drop(server);
    });
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.server {
        serve(args.starttls);
        return ExitCode::SUCCESS;
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new(exe);
    cmd.arg("--server");
    if args.starttls {
        cmd.arg("--starttls");
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn server");
    let mut lines = BufReader::new(child.stdout.take().expect("child stdout")).lines();
    let port: u16 = lines.next().and_then(Result::ok).and_then(|l| l.parse().ok()).expect("server port");
    let mut ca = String::new();
    for line in lines.by_ref() {
        let line = line.expect("child output");
        if line == "END" {
            break;
        }
        ca.push_str(&line);
        ca.push('\n');
    }

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let code = rt.block_on(run(&args, port, &ca));
    drop(child.stdin.take());
    let _ = child.wait();
    code
}

async fn run(args: &Args, port: u16, ca: &str) -> ExitCode {
    let mut builder = Client::builder("localhost").port(port);
    builder = if args.starttls {
        builder.tls(TlsPolicy::Required).without_native_roots().add_root_pem(ca.as_bytes()).expect("CA")
    } else {
        builder.tls(TlsPolicy::Disabled)
    };
    let connector = builder.build().expect("client config");
    let envelope = Envelope::parse("sender@example.com", &["rcpt@example.net"]).expect("envelope");
    let body = bytes::Bytes::from(
        "Subject: idle memory\r\n\r\n".to_string()
            + &"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz012345\r\n"
                .repeat(25),
    );

    let open = async || -> Result<Client, smtpkit::Error> {
        let mut c = connector.connect().await?;
        for _ in 0..args.messages {
            c.send(&envelope, body.clone()).await?;
        }
        Ok(c)
    };
    // Warm up the runtime, the allocator and rustls' one-time state with a few connections.
    let mut warm = Vec::new();
    for _ in 0..8 {
        warm.push(open().await.expect("warm-up connection"));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let base = rss_kib();
    let mut clients = Vec::with_capacity(args.connections);
    let mut rows = vec![(0usize, base)];
    let quarter = (args.connections / 4).max(1);
    for i in 0..args.connections {
        match open().await {
            Ok(c) => clients.push(c),
            Err(e) => {
                eprintln!("error: connection {i}: {e}");
                return ExitCode::FAILURE;
            }
        }
        if (i + 1) % quarter == 0 || i + 1 == args.connections {
            rows.push((i + 1, rss_kib()));
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let end = rss_kib();
    assert!(clients.iter().all(Client::is_reusable));
    let kind = if args.starttls { "STARTTLS" } else { "plain" };
    println!(
        "| connections ({kind}, {} messages each) | VmRSS (KiB) | growth per connection |",
        args.messages
    );
    println!("|---:|---:|---:|");
    for (n, kib) in &rows {
        let per =
            if *n == 0 { "-".to_string() } else { format!("{:.1} KiB", (kib - base) as f64 / *n as f64) };
        println!("| {n} | {kib} | {per} |");
    }
    let per = (end.saturating_sub(base)) as f64 * 1024.0 / args.connections as f64;
    println!(
        "{{\"tls\":\"{kind}\",\"connections\":{},\"messages_each\":{},\"rss_base_kib\":{base},\
         \"rss_end_kib\":{end},\"bytes_per_idle_connection\":{per:.0},\"size_of_client\":{}}}",
        args.connections,
        args.messages,
        std::mem::size_of::<Client>()
    );
    drop(warm);
    for c in clients {
        let _ = c.quit().await;
    }
    ExitCode::SUCCESS
}
