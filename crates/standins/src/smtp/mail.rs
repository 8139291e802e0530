//! A message as the SMTP stand-in received it, with MIME accessors for tests.
//!
//! The envelope and the raw bytes are kept exactly as they crossed the wire,
//! so a test can assert on framing; the accessors parse those bytes with
//! `mail-parser` so a test can also assert on what a mail client would show.

use std::time::Instant;

use mail_parser::{HeaderValue, Message, MessageParser};

/// One message the sink accepted with `250`.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The reverse-path of `MAIL FROM`, without angle brackets; empty for `<>`.
    pub mail_from: String,
    /// Every accepted `RCPT TO` forward-path, without angle brackets, in order.
    pub rcpt_to: Vec<String>,
    /// The message exactly as sent, after dot-unstuffing and without the
    /// final `.\r\n`. The CRLF before that dot ends the last line, so it is kept.
    pub data: Vec<u8>,
    /// When the sink accepted the message's DATA, just before answering
    /// `250`; a load test in the same process measures latency against it.
    pub received_at: Instant,
    /// Whether it came over TLS.
    pub encrypted: bool,
    /// The user the client authenticated as, if the sink asked.
    pub authenticated_as: Option<String>,
}

impl ReceivedMail {
    /// The message parsed as RFC 5322 / MIME, or `None` if it is not a message.
    pub fn parsed(&self) -> Option<Message<'_>> {
        MessageParser::default().parse(&self.data)
    }

    /// A top-level header by case-insensitive name.
    ///
    /// Unstructured headers (Subject, Message-ID, custom `X-` headers) come
    /// back decoded, so RFC 2047 encoded words are already turned into text;
    /// lists (Keywords, References) are joined with `", "`.
    /// Structured ones (addresses, dates, Content-Type) come back as their raw
    /// value, trimmed, because they have no single textual form.
    pub fn header(&self, name: &str) -> Option<String> {
        let message = self.parsed()?;
        match message.header(name)? {
            HeaderValue::Text(text) => Some(text.to_string()),
            HeaderValue::TextList(parts) => Some(parts.join(", ")),
            _ => message.header_raw(name).map(|raw| raw.trim().to_owned()),
        }
    }

    /// The decoded Subject.
    pub fn subject(&self) -> Option<String> {
        self.parsed()?.subject().map(str::to_owned)
    }

    /// The first inline `text/plain` body, decoded. `None` if the message has
    /// only HTML: unlike `mail-parser`'s `body_text`, nothing is converted, so
    /// a missing part is visible to the test.
    pub fn text_body(&self) -> Option<String> {
        let message = self.parsed()?;
        let part = message.text_part(0)?;
        if part.is_text() && !part.is_text_html() {
            part.text_contents().map(str::to_owned)
        } else {
            None
        }
    }

    /// The first inline `text/html` body, decoded, without conversion from text.
    pub fn html_body(&self) -> Option<String> {
        let message = self.parsed()?;
        let part = message.html_part(0)?;
        if part.is_text_html() {
            part.text_contents().map(str::to_owned)
        } else {
            None
        }
    }
}
