//! Building and serialising a message with a 1 MiB attachment.
//!
//! Run with `cargo bench --no-default-features --features mime --bench mime`.
//! `mail_builder_alone` serialises the same content with bare mail-builder (no
//! validation, Bcc strip or line check), to show what the wrapper costs.
// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smtpkit::Message;

fn compose(c: &mut Criterion) {
    // Pseudo-random bytes, so the attachment is base64 encoded as real files are.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let attachment: Bytes = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into();
    let text = "Hello Bob,\nyour receipt is attached.\n".repeat(20);
    let html = format!("<p>{}</p><img src=\"cid:logo\">", "Your receipt is attached. ".repeat(40));
    let logo = Bytes::from_static(&[0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0, 0, 13]);

    let mut group = c.benchmark_group("mime");
    group.throughput(Throughput::Bytes(attachment.len() as u64));
    group.bench_function("build_1mib_attachment", |b| {
        b.iter(|| {
            let msg = Message::builder()
                .from(("Zoë Example", "zoe@example.com"))
                .to("bob@example.com")
                .bcc("audit@example.com")
                .subject("Grüße from smtpkit ✓")
                .text_body(text.as_str())
                .html_body(html.as_str())
                .inline_image("logo", "image/png", logo.clone())
                .attachment("résumé.pdf", "application/pdf", attachment.clone())
                .build()
                .expect("builds");
            black_box(msg.len())
        })
    });
    group.bench_function("mail_builder_alone", |b| {
        b.iter(|| {
            let bytes = mail_builder::MessageBuilder::new()
                .from(("Zoë Example", "zoe@example.com"))
                .to("bob@example.com")
                .subject("Grüße from smtpkit ✓")
                .text_body(text.as_str())
                .html_body(html.as_str())
                .inline("image/png", "logo", &logo[..])
                .attachment("application/pdf", "résumé.pdf", &attachment[..])
                .write_to_vec()
                .expect("writes");
            black_box(bytes.len())
        })
    });
    group.finish();

    // Per-message cost of a typical notification: no attachment.
    c.bench_function("mime/build_small", |b| {
        b.iter(|| {
            let msg = Message::builder()
                .from(("Zoë Example", "zoe@example.com"))
                .to("bob@example.com")
                .subject("Your receipt")
                .text_body(text.as_str())
                .html_body(html.as_str())
                .build()
                .expect("builds");
            black_box(msg.len())
        })
    });
}

criterion_group!(benches, compose);
criterion_main!(benches);
