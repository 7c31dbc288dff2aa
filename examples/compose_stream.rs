//! Compose a message with a large file attached and write it to stdout: streamed (the
//! file is base64-encoded piece by piece, constant memory) or built in memory.
//!
//! ```text
//! head -c 200M /dev/urandom > /tmp/big.bin
//! /usr/bin/time -v cargo run --release --example compose_stream -- /tmp/big.bin > /dev/null
//! /usr/bin/time -v cargo run --release --example compose_stream -- /tmp/big.bin memory > /dev/null
//! ```
//!
//! Exit status: 0 on success, 2 for usage or a refused message, 1 for an I/O error.

use std::io::Write;
use std::process::ExitCode;

use smtpkit::Message;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: compose_stream FILE [memory]");
        return ExitCode::from(2);
    };
    let in_memory = args.next().is_some_and(|m| m == "memory");
    let builder = Message::builder()
        .from(("Zoë Example", "zoe@example.com"))
        .to("bob@example.com")
        .subject("A large file")
        .text_body("The file is attached.\n")
        .attach_file(&path);
    let mut out = std::io::stdout().lock();
    let written = if in_memory {
        builder
            .build()
            .map_err(|e| e.to_string())
            .and_then(|m| out.write_all(m.as_bytes()).map(|()| m.len() as u64).map_err(|e| e.to_string()))
    } else {
        builder.build_streamed().map_err(|e| e.to_string()).and_then(|mut m| {
            let len = m.len();
            let n = std::io::copy(&mut m, &mut out).map_err(|e| e.to_string())?;
            if n != len {
                return Err(format!("wrote {n} octets, announced {len}"));
            }
            Ok(n)
        })
    };
    match written {
        Ok(n) => {
            eprintln!("wrote {n} octets");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
